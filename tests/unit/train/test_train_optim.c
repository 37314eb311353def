/* Tests of the trainer's optimizer settings (src/train/supervised.c): AdamW,
 * the step schedule, warm-up, gradient clipping and label smoothing.
 *
 * The strongest check is a manual loop with the public optimizer and loss
 * API: on a dataset whose labeled images are copies of one image with one
 * label, every batch is the same whatever order the trainer draws, so the
 * trainer's weights must equal the loop's bit for bit. */
#include <math.h>

#include "testutil.h"

enum { SH = 4, SW = 4, SK = 3, COPIES = 3 };

/* COPIES labeled copies of one 4 x 4 image (label 2) and two unlabeled
 * images the trainer must skip. */
static del_dataset *copies_dataset(void)
{
    enum { N = COPIES + 2 };
    uint8_t px[N * SH * SW];
    int32_t labels[N];
    for (int i = 0; i < N; i++) {
        int unlabeled = i == 1 || i == 3;
        for (int p = 0; p < SH * SW; p++)
            px[i * SH * SW + p] = (uint8_t)(unlabeled ? 255 - p : (p * 37 + 11) % 256);
        labels[i] = unlabeled ? -1 : 2;
    }
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, N, SH, SW, 1));
    return ds;
}

static del_model *small_model(void)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 4 4; flatten; linear 8; relu; linear 3"));
    ck_assert_del_ok(del_model_init(m, 11));
    return m;
}

static del_trainer *copies_trainer(del_model *m, const del_dataset *ds)
{
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, ds));
    ck_assert_del_ok(del_trainer_set_batch_size(tr, COPIES));
    return tr;
}

/* The manual loop's state: the batch of all labeled copies, normalised as
 * the trainer's defaults do. */
typedef struct manual {
    del_model *model;
    del_tensor *x, *y, *grad;
} manual;

static void manual_init(manual *mn, const del_dataset *ds)
{
    const int64_t idx[COPIES] = {0, 2, 4};
    const float mean[1] = {0.2860f}, stdv[1] = {0.3530f};
    const int64_t xshape[4] = {COPIES, 1, SH, SW}, yshape[1] = {COPIES}, gshape[2] = {COPIES, SK};
    mn->model = small_model();
    mn->x = mn->y = mn->grad = NULL;
    ck_assert_del_ok(del_tensor_new(&mn->x, DEL_DTYPE_F32, 4, xshape));
    ck_assert_del_ok(del_tensor_new(&mn->y, DEL_DTYPE_I32, 1, yshape));
    ck_assert_del_ok(del_tensor_new(&mn->grad, DEL_DTYPE_F32, 2, gshape));
    ck_assert_del_ok(del_dataset_batch(ds, idx, COPIES, mean, stdv, mn->x, mn->y));
    ck_assert_del_ok(del_model_set_training(mn->model, 1));
}

/* One step of the textbook loop: forward, smoothed loss, backward, update. */
static void manual_step(manual *mn, del_optimizer *opt, float smoothing)
{
    float loss = 0.0f;
    ck_assert_del_ok(del_model_forward(mn->model, mn->x));
    ck_assert_del_ok(del_loss_cross_entropy_smooth(del_model_output(mn->model), mn->y, smoothing, &loss, mn->grad));
    ck_assert_del_ok(del_model_zero_grad(mn->model));
    ck_assert_del_ok(del_model_backward(mn->model, mn->grad));
    ck_assert_del_ok(del_optimizer_step(opt));
}

static void manual_free(manual *mn)
{
    del_model_free(mn->model);
    del_tensor_free(mn->x);
    del_tensor_free(mn->y);
    del_tensor_free(mn->grad);
}

static void assert_same_params(del_model *a, del_model *b, const char *what)
{
    int64_t n = del_model_num_params(a);
    ck_assert_int_eq(n, del_model_num_params(b));
    const float *pa = del_model_params(a), *pb = del_model_params(b);
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(memcmp(&pa[i], &pb[i], sizeof(float)) == 0, "%s: param %lld %.9g vs %.9g", what, (long long)i,
                      (double)pa[i], (double)pb[i]);
}

enum { ADAMW_STEPS = 10 };
#define ADAMW_CLIP 0.5f

START_TEST(test_adamw_step_schedule_warmup_clip_and_smoothing_equal_a_manual_loop)
{
    del_dataset *ds = copies_dataset();
    del_model *m = small_model();
    del_trainer *tr = copies_trainer(m, ds);
    ck_assert_del_ok(del_trainer_set_adamw(tr, 0.01f, 0.8f, 0.99f, 1e-6f, 0.05f));
    ck_assert_del_ok(del_trainer_set_step_schedule(tr, 3, 0.5f));
    ck_assert_del_ok(del_trainer_set_warmup(tr, 2));
    ck_assert_del_ok(del_trainer_set_clip_norm(tr, ADAMW_CLIP));
    ck_assert_del_ok(del_trainer_set_label_smoothing(tr, 0.1f));
    ck_assert_del_ok(del_trainer_fit(tr, ADAMW_STEPS));

    manual mn;
    manual_init(&mn, ds);
    del_optimizer *opt = NULL;
    ck_assert_del_ok(del_optimizer_new_adamw(&opt, mn.model, 0.01f, 0.8f, 0.99f, 1e-6f, 0.05f));
    ck_assert_del_ok(del_optimizer_set_step_schedule(opt, 3, 0.5f));
    ck_assert_del_ok(del_optimizer_set_warmup(opt, 2));
    ck_assert_del_ok(del_optimizer_set_clip_norm(opt, ADAMW_CLIP));
    /* warm-up 0.01 * (t + 1) / 2, then 0.01 halved every 3 steps */
    const float want_lr[ADAMW_STEPS] = {0.005f, 0.01f, 0.01f, 0.01f, 0.01f, 0.005f, 0.005f, 0.005f, 0.0025f, 0.0025f};
    int clipped = 0, unclipped = 0;
    for (int s = 0; s < ADAMW_STEPS; s++) {
        ck_assert_float_eq_tol(del_optimizer_lr(opt), want_lr[s], 1e-9f);
        manual_step(&mn, opt, 0.1f);
        if (del_optimizer_grad_norm(opt) > ADAMW_CLIP)
            clipped++;
        else
            unclipped++;
    }
    /* Both sides of the threshold occur, so clipping is exercised. */
    ck_assert_msg(clipped > 0 && unclipped > 0, "clipped %d, unclipped %d steps", clipped, unclipped);
    assert_same_params(m, mn.model, "trainer vs manual AdamW loop");

    del_optimizer_free(opt);
    manual_free(&mn);
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_set_sgd_switches_back_from_adamw_and_warmup_precedes_the_cosine)
{
    enum { STEPS = 8 };
    del_dataset *ds = copies_dataset();
    del_model *m = small_model();
    del_trainer *tr = copies_trainer(m, ds);
    ck_assert_del_ok(del_trainer_set_adamw(tr, 0.01f, 0.9f, 0.999f, 1e-8f, 0.0f));
    ck_assert_del_ok(del_trainer_set_sgd(tr, 0.1f, 0.9f, 5e-4f, 1));
    ck_assert_del_ok(del_trainer_set_schedule(tr, DEL_SCHEDULE_COSINE));
    ck_assert_del_ok(del_trainer_set_warmup(tr, 3));
    ck_assert_del_ok(del_trainer_fit(tr, STEPS));

    manual mn;
    manual_init(&mn, ds);
    del_optimizer *opt = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&opt, mn.model, 0.1f, 0.9f, 5e-4f, 1));
    ck_assert_del_ok(del_optimizer_set_schedule(opt, DEL_SCHEDULE_COSINE, STEPS, 0.0f));
    ck_assert_del_ok(del_optimizer_set_warmup(opt, 3));
    /* warm-up 0.1 (t + 1) / 3, then 0.1 (1 + cos(pi t / 5)) / 2 over 5 steps */
    const double pi = 3.14159265358979323846;
    for (int s = 0; s < STEPS; s++) {
        double want = s < 3 ? 0.1 * (s + 1) / 3.0 : 0.05 * (1.0 + cos(pi * (s - 3) / 5.0));
        ck_assert_double_eq_tol(del_optimizer_lr(opt), want, 1e-8);
        manual_step(&mn, opt, 0.0f);
    }
    assert_same_params(m, mn.model, "trainer vs manual SGD loop");

    del_optimizer_free(opt);
    manual_free(&mn);
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

/* Weights after 6 steps from the same start with one setting changed
 * (which = 0: the defaults). */
static void train_with_setting(int which, float *params, int64_t n)
{
    del_dataset *ds = copies_dataset();
    del_model *m = small_model();
    del_trainer *tr = copies_trainer(m, ds);
    ck_assert_del_ok(del_trainer_set_sgd(tr, 0.05f, 0.9f, 0.0f, 0));
    ck_assert_del_ok(del_trainer_set_schedule(tr, DEL_SCHEDULE_CONSTANT));
    switch (which) {
    case 1:
        ck_assert_del_ok(del_trainer_set_step_schedule(tr, 2, 0.5f));
        break;
    case 2:
        ck_assert_del_ok(del_trainer_set_warmup(tr, 4));
        break;
    case 3:
        ck_assert_del_ok(del_trainer_set_clip_norm(tr, 0.01f));
        break;
    case 4:
        ck_assert_del_ok(del_trainer_set_adamw(tr, 0.05f, 0.9f, 0.999f, 1e-8f, 0.0f));
        break;
    case 5:
        ck_assert_del_ok(del_trainer_set_label_smoothing(tr, 0.2f));
        break;
    default:
        break;
    }
    ck_assert_del_ok(del_trainer_fit(tr, 6));
    ck_assert_int_eq(del_model_num_params(m), n);
    memcpy(params, del_model_params(m), (size_t)n * sizeof(float));
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
}

START_TEST(test_each_setting_changes_the_training)
{
    enum { NP = 16 * 8 + 8 + 8 * 3 + 3 };
    static const char *names[6] = {"defaults", "step schedule", "warm-up", "clipping", "adamw", "smoothing"};
    static float p[6][NP];
    for (int w = 0; w < 6; w++)
        train_with_setting(w, p[w], NP);
    for (int w = 1; w < 6; w++)
        ck_assert_msg(memcmp(p[0], p[w], sizeof p[0]) != 0, "%s left the weights unchanged", names[w]);
    /* and the defaults are reproducible, so the differences are the settings' */
    static float again[NP];
    train_with_setting(0, again, NP);
    ck_assert(memcmp(p[0], again, sizeof again) == 0);
}
END_TEST

/* With a pipeline the labels are soft (one-hot here: identity op) and the
 * smoothing applies to them; the result agrees with the hard-label path up
 * to the rounding of the smoothed targets. */
START_TEST(test_smoothing_soft_labels_agrees_with_smoothing_hard_labels)
{
    float *p[2];
    int64_t n = 0;
    for (int run = 0; run < 2; run++) {
        del_dataset *ds = copies_dataset();
        del_model *m = small_model();
        del_trainer *tr = copies_trainer(m, ds);
        del_augment *aug = NULL;
        ck_assert_del_ok(del_augment_new(&aug));
        ck_assert_del_ok(del_augment_add_op(aug, "identity", 1.0f, 0.0f, 0.0f));
        ck_assert_del_ok(del_trainer_set_sgd(tr, 0.1f, 0.0f, 0.0f, 0));
        ck_assert_del_ok(del_trainer_set_schedule(tr, DEL_SCHEDULE_CONSTANT));
        ck_assert_del_ok(del_trainer_set_label_smoothing(tr, 0.3f));
        if (run == 1)
            ck_assert_del_ok(del_trainer_set_augment(tr, aug));
        ck_assert_del_ok(del_trainer_fit(tr, 5));
        n = del_model_num_params(m);
        p[run] = malloc((size_t)n * sizeof(float));
        ck_assert_ptr_nonnull(p[run]);
        memcpy(p[run], del_model_params(m), (size_t)n * sizeof(float));
        del_trainer_free(tr);
        del_augment_free(aug);
        del_model_free(m);
        del_dataset_free(ds);
    }
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(fabs(p[0][i] - p[1][i]) < 1e-5, "param %lld: hard %.8g, soft %.8g", (long long)i,
                      (double)p[0][i], (double)p[1][i]);
    free(p[0]);
    free(p[1]);
}
END_TEST

/* Smoothing s moves the optimum: every labeled image is the same, so the
 * smoothed cross-entropy is minimised where the model's softmax on it is the
 * target (1 - s) onehot + s / K itself, not the one-hot the plain loss
 * chases. A long plain-SGD run gets there. */
START_TEST(test_smoothing_drives_softmax_towards_the_smoothed_target)
{
    del_dataset *ds = copies_dataset();
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 4 4; flatten; linear 3"));
    del_trainer *tr = copies_trainer(m, ds);
    ck_assert_del_ok(del_trainer_set_sgd(tr, 0.5f, 0.9f, 0.0f, 0));
    ck_assert_del_ok(del_trainer_set_schedule(tr, DEL_SCHEDULE_CONSTANT));
    ck_assert_del_ok(del_trainer_set_label_smoothing(tr, 0.3f));
    ck_assert_del_ok(del_trainer_fit(tr, 300));
    const float mean[1] = {0.2860f}, stdv[1] = {0.3530f};
    const int64_t idx[1] = {0}, xshape[4] = {1, 1, SH, SW};
    del_tensor *x = NULL;
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, xshape));
    ck_assert_del_ok(del_dataset_batch(ds, idx, 1, mean, stdv, x, NULL));
    ck_assert_del_ok(del_model_forward(m, x));
    ck_assert_del_ok(del_softmax(del_model_output(m), 1.0f, del_model_output(m)));
    const float *prob = del_tensor_data(del_model_output(m));
    /* t = (0.1, 0.1, 0.8) */
    ck_assert_float_eq_tol(prob[0], 0.1f, 2e-3f);
    ck_assert_float_eq_tol(prob[1], 0.1f, 2e-3f);
    ck_assert_float_eq_tol(prob[2], 0.8f, 2e-3f);
    del_tensor_free(x);
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

typedef struct setter_log {
    del_trainer *trainer;
    int calls;
    del_status status[6];
} setter_log;

static int try_setters(int64_t step, int64_t total, float loss, void *user)
{
    (void)step;
    (void)total;
    (void)loss;
    setter_log *log = user;
    del_trainer *tr = log->trainer;
    log->status[0] = del_trainer_set_adamw(tr, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f);
    log->status[1] = del_trainer_set_schedule(tr, DEL_SCHEDULE_STEP);
    log->status[2] = del_trainer_set_step_schedule(tr, 5, 0.5f);
    log->status[3] = del_trainer_set_warmup(tr, 2);
    log->status[4] = del_trainer_set_clip_norm(tr, 1.0f);
    log->status[5] = del_trainer_set_label_smoothing(tr, 0.1f);
    log->calls++;
    return 0;
}

START_TEST(test_new_settings_are_refused_during_a_fit)
{
    del_dataset *ds = copies_dataset();
    del_model *m = small_model();
    del_trainer *tr = copies_trainer(m, ds);
    setter_log log = {.trainer = tr};
    ck_assert_del_ok(del_trainer_set_progress(tr, try_setters, 1, &log));
    ck_assert_del_ok(del_trainer_fit(tr, 1));
    ck_assert_int_eq(log.calls, 1);
    for (int i = 0; i < 6; i++)
        ck_assert_msg(log.status[i] == DEL_ESTATE, "setter %d returned %d during a fit", i, (int)log.status[i]);
    /* allowed again afterwards */
    ck_assert_del_ok(del_trainer_set_progress(tr, NULL, 0, NULL));
    ck_assert_del_ok(del_trainer_set_label_smoothing(tr, 0.1f));
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_new_setters_reject_bad_values)
{
    del_dataset *ds = copies_dataset();
    del_model *m = small_model();
    del_trainer *tr = copies_trainer(m, ds);

    ck_assert_del_err(del_trainer_set_adamw(NULL, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f), DEL_EINVAL, "'trainer'");
    ck_assert_del_err(del_trainer_set_adamw(tr, 0.0f, 0.9f, 0.999f, 1e-8f, 0.0f), DEL_EINVAL,
                      "del_trainer_set_adamw: 'lr' must be a finite value > 0, got 0");
    ck_assert_del_err(del_trainer_set_adamw(tr, NAN, 0.9f, 0.999f, 1e-8f, 0.0f), DEL_EINVAL, "'lr'");
    ck_assert_del_err(del_trainer_set_adamw(tr, 1e-3f, 1.0f, 0.999f, 1e-8f, 0.0f), DEL_EINVAL, "'beta1'");
    ck_assert_del_err(del_trainer_set_adamw(tr, 1e-3f, -0.1f, 0.999f, 1e-8f, 0.0f), DEL_EINVAL, "'beta1'");
    ck_assert_del_err(del_trainer_set_adamw(tr, 1e-3f, 0.9f, 1.0f, 1e-8f, 0.0f), DEL_EINVAL, "'beta2'");
    ck_assert_del_err(del_trainer_set_adamw(tr, 1e-3f, 0.9f, 0.999f, 0.0f, 0.0f), DEL_EINVAL, "'eps'");
    ck_assert_del_err(del_trainer_set_adamw(tr, 1e-3f, 0.9f, 0.999f, 1e-8f, -0.1f), DEL_EINVAL, "'weight_decay'");

    ck_assert_del_err(del_trainer_set_schedule(tr, (del_schedule)3), DEL_EINVAL, "DEL_SCHEDULE_STEP (2), got 3");
    ck_assert_del_ok(del_trainer_set_schedule(tr, DEL_SCHEDULE_STEP));
    ck_assert_del_err(del_trainer_set_step_schedule(NULL, 1, 0.5f), DEL_EINVAL, "'trainer'");
    ck_assert_del_err(del_trainer_set_step_schedule(tr, 0, 0.5f), DEL_EINVAL,
                      "del_trainer_set_step_schedule: 'step_size' must be >= 1, got 0");
    ck_assert_del_err(del_trainer_set_step_schedule(tr, 1, 0.0f), DEL_EINVAL, "'gamma'");
    ck_assert_del_err(del_trainer_set_step_schedule(tr, 1, INFINITY), DEL_EINVAL, "'gamma'");

    ck_assert_del_err(del_trainer_set_warmup(NULL, 1), DEL_EINVAL, "'trainer'");
    ck_assert_del_err(del_trainer_set_warmup(tr, -1), DEL_EINVAL, "'warmup_steps' must be >= 0");
    ck_assert_del_ok(del_trainer_set_warmup(tr, 0));

    ck_assert_del_err(del_trainer_set_clip_norm(NULL, 1.0f), DEL_EINVAL, "'trainer'");
    ck_assert_del_err(del_trainer_set_clip_norm(tr, -1.0f), DEL_EINVAL, "'max_norm'");
    ck_assert_del_err(del_trainer_set_clip_norm(tr, NAN), DEL_EINVAL, "'max_norm'");
    ck_assert_del_ok(del_trainer_set_clip_norm(tr, 0.0f));

    ck_assert_del_err(del_trainer_set_label_smoothing(NULL, 0.1f), DEL_EINVAL, "'trainer'");
    ck_assert_del_err(del_trainer_set_label_smoothing(tr, 1.0f), DEL_EINVAL,
                      "del_trainer_set_label_smoothing: 'smoothing' must be in [0, 1), got 1");
    ck_assert_del_err(del_trainer_set_label_smoothing(tr, -0.01f), DEL_EINVAL, "'smoothing'");
    ck_assert_del_err(del_trainer_set_label_smoothing(tr, NAN), DEL_EINVAL, "'smoothing'");
    ck_assert_del_ok(del_trainer_set_label_smoothing(tr, 0.0f));

    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

/* ---- Fashion-MNIST: the settings together still train ---- */

START_TEST(test_adamw_with_warmup_steps_clip_and_smoothing_trains_mlp_to_70_percent)
{
    del_dataset *train = NULL, *labeled = NULL, *test_all = NULL, *test = NULL;
    del_status st = del_dataset_load_fashion_mnist(&train, test_fmnist_dir(), DEL_SPLIT_TRAIN);
    ck_assert_msg(st == DEL_OK, "Fashion-MNIST is required (install dataset-fashion-mnist or set DEL_FMNIST_DIR): %s",
                  del_last_error());
    ck_assert_del_ok(del_dataset_split_per_class(&labeled, NULL, train, 50));
    ck_assert_del_ok(del_dataset_load_fashion_mnist(&test_all, test_fmnist_dir(), DEL_SPLIT_TEST));
    static int64_t first[2000];
    for (int i = 0; i < 2000; i++)
        first[i] = i;
    ck_assert_del_ok(del_dataset_subset(&test, test_all, first, 2000));
    del_model *m = NULL;
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_model_preset(&m, "mlp", 1, 28, 28, 10));
    ck_assert_del_ok(del_model_init(m, 1));
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, labeled));
    ck_assert_del_ok(del_trainer_set_adamw(tr, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f));
    ck_assert_del_ok(del_trainer_set_step_schedule(tr, 100, 0.5f));
    ck_assert_del_ok(del_trainer_set_warmup(tr, 20));
    ck_assert_del_ok(del_trainer_set_clip_norm(tr, 5.0f));
    ck_assert_del_ok(del_trainer_set_label_smoothing(tr, 0.1f));
    ck_assert_del_ok(del_trainer_fit(tr, 300));
    double acc = 0.0;
    ck_assert_del_ok(del_trainer_evaluate(tr, test, &acc));
    /* Chance is 10%; SGD's 300 steps reach about 75% (test_supervised.c). */
    ck_assert_msg(acc >= 0.70, "accuracy after 300 AdamW steps %.3f < 0.70", acc);
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(train);
    del_dataset_free(labeled);
    del_dataset_free(test_all);
    del_dataset_free(test);
}
END_TEST

static Suite *train_optim_suite(void)
{
    Suite *s = suite_create("train_optim");
    TCase *small = tcase_create("small");
    tcase_add_test(small, test_adamw_step_schedule_warmup_clip_and_smoothing_equal_a_manual_loop);
    tcase_add_test(small, test_set_sgd_switches_back_from_adamw_and_warmup_precedes_the_cosine);
    tcase_add_test(small, test_each_setting_changes_the_training);
    tcase_add_test(small, test_smoothing_soft_labels_agrees_with_smoothing_hard_labels);
    tcase_add_test(small, test_smoothing_drives_softmax_towards_the_smoothed_target);
    tcase_add_test(small, test_new_settings_are_refused_during_a_fit);
    tcase_add_test(small, test_new_setters_reject_bad_values);
    suite_add_tcase(s, small);
    TCase *fm = tcase_create("fashion_mnist");
    tcase_set_timeout(fm, 300);
    tcase_add_test(fm, test_adamw_with_warmup_steps_clip_and_smoothing_trains_mlp_to_70_percent);
    suite_add_tcase(s, fm);
    return s;
}

int main(void)
{
    return test_run_suite(train_optim_suite());
}
