/* Wrote the committed format-1 checkpoints in this folder with libdel at
 * commit 04af073 (the last writer of format 1 only); kept to say exactly
 * what they hold. tests/unit/io/test_checkpoint_v2.c rebuilds the same
 * states and checks that they load, and that today's writer still writes
 * these bytes (format 1 when a checkpoint fits it).
 *   cc -Iinclude make_v1_checkpoints.c -Llib -ldel -o /tmp/mk && /tmp/mk DIR */
#include <stdio.h>
#include <stdlib.h>

#include "del.h"

static void ok(del_status st, const char *what)
{
    if (st != DEL_OK) {
        fprintf(stderr, "%s: %s\n", what, del_last_error());
        exit(1);
    }
}

int main(int argc, char **argv)
{
    char path[512];
    if (argc != 2)
        return 2;
    /* v1_sgd.delc: a model with a dropout stream moved on, layer 2 frozen,
     * layer 3 at lr x 0.5, and SGD (nesterov momentum) after one step. */
    del_model *m = NULL;
    del_optimizer *opt = NULL;
    ok(del_model_from_spec(&m, "input 1 2 2; flatten; dropout 0.5; linear 3; linear 2"), "spec");
    ok(del_model_init(m, 7), "init");
    int64_t xs[4] = {1, 1, 2, 2};
    del_tensor *x = NULL;
    ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, xs), "x");
    ok(del_model_set_training(m, 1), "train");
    ok(del_model_forward(m, x), "forward");
    ok(del_optimizer_new_sgd(&opt, m, 0.1f, 0.9f, 1e-3f, 1), "sgd");
    float *g = del_model_grads(m);
    for (int64_t i = 0; i < del_model_num_params(m); i++)
        g[i] = 0.25f * (float)(i + 1);
    ok(del_optimizer_step(opt), "step");
    ok(del_model_freeze(m, 2, 2), "freeze");
    ok(del_model_set_lr_mult(m, 3, 3, 0.5f), "lr_mult");
    snprintf(path, sizeof path, "%s/v1_sgd.delc", argv[1]);
    ok(del_checkpoint_save(path, m, opt), "save");

    /* v1_trainer.delc: a supervised trainer after 2 of 5 steps, batch 4. */
    uint8_t px[6 * 4];
    int32_t labels[6];
    for (int i = 0; i < 6; i++) {
        for (int p = 0; p < 4; p++)
            px[i * 4 + p] = (uint8_t)(i * 40 + p * 9);
        labels[i] = i % 3;
    }
    del_model *a = NULL;
    del_dataset *ds = NULL;
    del_trainer *tr = NULL;
    ok(del_model_from_spec(&a, "input 1 2 2; flatten; linear 3"), "spec a");
    ok(del_model_init(a, 1), "init a");
    ok(del_dataset_from_arrays(&ds, px, labels, 6, 2, 2, 1), "dataset");
    ok(del_trainer_new_supervised(&tr, a, ds), "trainer");
    ok(del_trainer_set_batch_size(tr, 4), "batch");
    ok(del_trainer_set_total_steps(tr, 5), "total");
    ok(del_trainer_fit(tr, 2), "fit");
    snprintf(path, sizeof path, "%s/v1_trainer.delc", argv[1]);
    ok(del_trainer_save_checkpoint(tr, path), "save trainer");
    del_trainer_free(tr);
    del_dataset_free(ds);
    del_model_free(a);
    del_tensor_free(x);
    del_optimizer_free(opt);
    del_model_free(m);
    return 0;
}
