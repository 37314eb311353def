/* Transfer learning (SPEC §1.2): a pre-trained model's classifier is
 * replaced by a new linear head for the new classes, then either only the
 * head trains on a frozen backbone (linear probe: frozen batchnorm runs on
 * its running statistics) or everything trains with the backbone at a
 * smaller learning rate (full fine-tuning), optionally after a warm-up of
 * the head alone. The objective is the supervised one; what differs is
 * the model's set-up and the warm-up's switch of the backbone's group. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "del.h"
#include "train_error.h"
#include "trainer_internal.h"

#define DEFAULT_BATCH 64
#define DEFAULT_BACKBONE_LR_MULT 0.1f

typedef struct finetune_state {
    supervised_state sup;    /* the loss and its gradient */
    del_finetune_mode mode;
    float backbone_lr_mult;  /* full fine-tuning */
    int64_t warmup;          /* steps of the head alone first (full) */
    int backbone_frozen;     /* the backbone's group as last set */
} finetune_state;

/* The backbone's group for a step: frozen in a probe and during the
 * warm-up, else trainable at the backbone's multiplier. Changing it
 * between steps is what the optimizer's group tracking is for. */
static del_status set_backbone_group(finetune_state *s, del_model *m, int frozen)
{
    const int last = del_model_backbone_layers(m) - 1;
    if (last < 0)
        return DEL_OK;
    del_status st = frozen ? del_model_freeze(m, 0, last) : del_model_unfreeze(m, 0, last);
    if (st == DEL_OK && !frozen)
        st = del_model_set_lr_mult(m, 0, last, s->backbone_lr_mult);
    if (st == DEL_OK)
        s->backbone_frozen = frozen;
    return st;
}

static int frozen_at(const finetune_state *s, int64_t step)
{
    return s->mode == DEL_FINETUNE_LINEAR_PROBE || step <= s->warmup;
}

static del_status finetune_init(void *state, del_trainer *tr, const char *fn)
{
    finetune_state *s = state;
    del_status st = del_objective_supervised.init(&s->sup, tr, fn);
    if (st == DEL_OK)
        st = set_backbone_group(s, tr->model, frozen_at(s, tr->steps_done + 1));
    return st;
}

static void finetune_release(void *state)
{
    finetune_state *s = state;
    del_objective_supervised.release(&s->sup);
}

static del_status finetune_step(void *state, del_trainer *tr, const train_step_in *in, float *loss, const char *fn)
{
    finetune_state *s = state;
    const int frozen = frozen_at(s, in->step);
    del_status st = frozen != s->backbone_frozen ? set_backbone_group(s, in->model, frozen) : DEL_OK;
    if (st == DEL_OK)
        st = del_objective_supervised.step(&s->sup, tr, in, loss, fn);
    return st;
}

static del_status finetune_save(const void *state, const del_trainer *tr, del_checkpoint *ck, const char *fn)
{
    (void)tr;
    (void)fn;
    const finetune_state *s = state;
    del_status st = del_checkpoint_set_i64(ck, "finetune_mode", s->mode);
    if (st == DEL_OK)
        st = del_checkpoint_set_f32(ck, "finetune_backbone_lr_mult", s->backbone_lr_mult);
    if (st == DEL_OK)
        st = del_checkpoint_set_i64(ck, "finetune_warmup", s->warmup);
    return st;
}

static del_status finetune_load(void *state, del_trainer *tr, const del_checkpoint *ck, const char *fn)
{
    (void)tr;
    finetune_state *s = state;
    int64_t mode = 0, warmup = 0;
    float mult = 0.0f;
    del_status st = del_trainer_read_i64(ck, "finetune_mode", &mode, fn);
    if (st == DEL_OK)
        st = del_trainer_read_f32(ck, "finetune_backbone_lr_mult", &mult, fn);
    if (st == DEL_OK)
        st = del_trainer_read_i64(ck, "finetune_warmup", &warmup, fn);
    if (st != DEL_OK)
        return st;
    if (mode != s->mode)
        return train_error(DEL_EINVAL, "%s: the checkpoint was saved by a %s, this trainer is a %s", fn,
                           mode == DEL_FINETUNE_LINEAR_PROBE ? "linear probe" : "full fine-tuning",
                           s->mode == DEL_FINETUNE_LINEAR_PROBE ? "linear probe" : "full fine-tuning");
    if (!(mult > 0.0f) || !isfinite(mult) || warmup < 0)
        return train_error(DEL_EFORMAT, "%s: the checkpoint is corrupt (fine-tuning settings out of range)", fn);
    s->backbone_lr_mult = mult;
    s->warmup = warmup;
    s->backbone_frozen = -1; /* set again at the next step, as the restored groups are */
    return DEL_OK;
}

const del_objective del_objective_finetune = {
    /* .name       = */ "finetune",
    /* .streams    = */ 1u << DEL_STREAM_L,
    /* .state_size = */ sizeof(finetune_state),
    /* .init       = */ finetune_init,
    /* .release    = */ finetune_release,
    /* .begin_fit  = */ NULL,
    /* .step       = */ finetune_step,
    /* .save       = */ finetune_save,
    /* .load       = */ finetune_load,
};

/* Checks everything the constructor needs before it changes the model. */
static del_status check_finetune_args(const del_model *model, const del_dataset *labeled, int num_classes,
                                      del_finetune_mode mode, const char *fn)
{
    if (mode != DEL_FINETUNE_LINEAR_PROBE && mode != DEL_FINETUNE_FULL)
        return train_error(DEL_EINVAL, "%s: 'mode' must be DEL_FINETUNE_LINEAR_PROBE (0) or DEL_FINETUNE_FULL (1), "
                           "got %d", fn, (int)mode);
    del_status st = del_check_new_task(model, labeled, num_classes, fn);
    if (st != DEL_OK)
        return st;
    const int layers = del_model_num_layers(model);
    if (del_model_num_heads(model) == 0) {
        const char *last = layers > 0 ? del_model_layer_type(model, layers - 1) : NULL;
        if (layers < 2 || strcmp(last, "linear") != 0)
            return train_error(DEL_EINVAL, "%s: 'model' must end in the linear layer to replace (its classifier) "
                               "after at least one other layer, got %s", fn, last ? last : "no layer");
    }
    return DEL_OK;
}

DEL_API del_status del_trainer_new_finetune(del_trainer **out, del_model *model, const del_dataset *labeled,
                                            int num_classes, del_finetune_mode mode)
{
    static const char fn[] = "del_trainer_new_finetune";
    if (!out)
        return train_error_null(fn, "out");
    *out = NULL;
    if (!model)
        return train_error_null(fn, "model");
    if (!labeled)
        return train_error_null(fn, "labeled");
    del_status st = check_finetune_args(model, labeled, num_classes, mode, fn);
    if (st != DEL_OK)
        return st;
    /* The classifier becomes a head (if it is not one) and is replaced. */
    if (del_model_num_heads(model) == 0)
        st = del_model_split_head(model, "head", -1);
    char spec[32];
    snprintf(spec, sizeof spec, "linear %d", num_classes);
    if (st == DEL_OK)
        st = del_model_replace_head(model, del_model_head_name(model, 0), spec);
    del_trainer *tr = NULL;
    if (st == DEL_OK)
        st = del_trainer_create(&tr, &del_objective_finetune, model, fn);
    if (st == DEL_OK) {
        finetune_state *s = tr->state;
        s->mode = mode;
        s->backbone_lr_mult = DEFAULT_BACKBONE_LR_MULT;
        st = del_stream_init(tr, DEL_STREAM_L, labeled, 1, DEFAULT_BATCH, "labeled", fn);
    }
    return del_trainer_finish(out, tr, st, fn);
}

DEL_API del_status del_trainer_set_backbone_lr_mult(del_trainer *trainer, float mult)
{
    static const char fn[] = "del_trainer_set_backbone_lr_mult";
    void *state = NULL;
    del_status st = del_trainer_state_of(trainer, &del_objective_finetune, NULL, &state, "backbone_lr_mult", fn);
    if (st != DEL_OK)
        return st;
    finetune_state *s = state;
    if (!(mult > 0.0f) || !isfinite(mult))
        return train_error(DEL_EINVAL, "%s: 'mult' must be a finite value > 0, got %g", fn, (double)mult);
    if (s->mode == DEL_FINETUNE_LINEAR_PROBE)
        return train_error(DEL_EINVAL, "%s: a linear probe trains no backbone (use DEL_FINETUNE_FULL)", fn);
    s->backbone_lr_mult = mult;
    return set_backbone_group(s, trainer->model, frozen_at(s, trainer->steps_done + 1));
}

DEL_API del_status del_trainer_set_head_warmup(del_trainer *trainer, int64_t steps)
{
    static const char fn[] = "del_trainer_set_head_warmup";
    void *state = NULL;
    del_status st = del_trainer_state_of(trainer, &del_objective_finetune, &del_objective_lwf, &state, "head_warmup",
                                         fn);
    if (st != DEL_OK)
        return st;
    if (steps < 0)
        return train_error(DEL_EINVAL, "%s: 'steps' must be >= 0 (0: none), got %lld", fn, (long long)steps);
    if (trainer->obj == &del_objective_lwf)
        return del_lwf_set_warmup(trainer, steps);
    finetune_state *s = state;
    if (s->mode == DEL_FINETUNE_LINEAR_PROBE && steps > 0)
        return train_error(DEL_EINVAL, "%s: a linear probe trains the head alone throughout (use DEL_FINETUNE_FULL)",
                           fn);
    s->warmup = steps;
    return set_backbone_group(s, trainer->model, frozen_at(s, trainer->steps_done + 1));
}
