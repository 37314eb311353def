/* fmnist1k — the FMNIST-1k reference benchmark (SPEC section 5) with libdel.
 *
 *   fmnist1k [-t THREADS] [--seeds "0 1 2"] [--steps N] [--dir DIR]
 *            [--models DIR] [--reuse] RECIPE...
 *   fmnist1k --list
 *
 * Labeled set: the first 100 Fashion-MNIST training images of each class in
 * file order (1,000); test: the 10,000 t10k images. For each recipe and
 * seed, stdout gets one JSON line
 *   {"recipe": "R0", "seed": 0, "libdel_acc": 0.xx, "libdel_s": ..., "steps": N}
 * where libdel_s is the wall time of training plus test evaluation (data
 * loading excluded); a recipe of several parts (R6, R7) writes one line per
 * part, with "part" (e.g. "teacher") after "recipe" and the steps and
 * seconds of the training that part measures. bench/fmnist1k.sh pairs these
 * lines with the PyTorch ones. --steps overrides the recipe's step counts
 * (every training of the recipe gets N steps; for smoke runs only).
 *
 * R6's teacher and R7's pre-trained model are saved under --models (default
 * build/fmnist1k-models) and the later parts load them from there, as
 * another program would (SPEC 1.2). --reuse loads a seed's saved model
 * instead of training it again when the file is there (its part is then
 * reported with "reused": true and the seconds of evaluation alone).
 *
 * Adding a recipe is one entry in RECIPES (its augmentation, if any, is a
 * function adding pipeline steps) plus, if it needs new machinery, its run
 * function. Public API only, as any user program. */
#include <del.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_SEEDS 64
#define MAX_PARTS 8

typedef struct fmnist_data {
    del_dataset *train, *labeled, *unlabeled, *test;
} fmnist_data;

/* What a recipe measured: one accuracy per part (part NULL: the recipe's
 * only one), with the steps and seconds of the training it comes from. */
typedef struct part_result {
    const char *part;
    double accuracy, seconds;
    double data_wait; /* seconds the training waited for batches (del_trainer_fit_times); < 0: not measured */
    int64_t steps;
    int reused;
} part_result;

typedef struct results {
    part_result p[MAX_PARTS];
    int n;
} results;

/* Where R6 and R7 keep the models they hand from one part to the next. */
typedef struct run_options {
    const char *models_dir;
    int reuse;
} run_options;

typedef struct recipe {
    const char *name;
    const char *about;
    int64_t steps;
    /* Trains from scratch with seed (steps_override 0: the recipe's own
     * step counts) and appends its accuracies to out; 0 on success. */
    int (*run)(const struct recipe *r, const fmnist_data *d, int64_t steps_override, uint64_t seed,
               const run_options *opt, results *out);
    /* Adds the recipe's augmentation steps to an empty pipeline; NULL: none. */
    del_status (*augment)(del_augment *aug);
} recipe;

#define TRY(expr)                                                                 \
    do {                                                                          \
        del_status st_ = (expr);                                                  \
        if (st_ != DEL_OK) {                                                      \
            fprintf(stderr, "fmnist1k: %s failed: %s (%s)\n", #expr,              \
                    del_last_error(), del_status_str(st_));                       \
            goto cleanup;                                                         \
        }                                                                         \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int log_progress(int64_t step, int64_t total, float loss, void *user)
{
    fprintf(stderr, "  %s step %lld/%lld  loss %.4f\n", (const char *)user, (long long)step,
            (long long)total, loss);
    return 0;
}

static void add_result(results *out, const char *part, double accuracy, double seconds, int64_t steps, int reused)
{
    if (out->n == MAX_PARTS)
        return;
    out->p[out->n++] = (part_result){part, accuracy, seconds, -1.0, steps, reused};
}

/* SPEC section 5 "std aug": a random 28x28 crop of the image zero-padded by
 * 2, then a horizontal flip with p = 0.5. */
static del_status add_std_aug(del_augment *aug)
{
    del_status st = del_augment_add_random_crop(aug, 28, 28, 2, 0);
    return st != DEL_OK ? st : del_augment_add_flip_h(aug, 0.5f);
}

/* RandAugment(2, 9) after crop and flip, the order of torchvision's
 * classification reference (crop, flip, then the auto-augment policy);
 * fmnist1k_torch.py composes the same three transforms in the same order. */
static del_status add_std_aug_randaugment(del_augment *aug)
{
    del_status st = add_std_aug(aug);
    return st != DEL_OK ? st : del_augment_add_randaugment(aug, 2, 9);
}

/* CutMix with p = 0.5, alpha = 1 on the normalised std-aug batch. */
static del_status add_std_aug_cutmix(del_augment *aug)
{
    del_status st = add_std_aug(aug);
    return st != DEL_OK ? st : del_augment_add_cutmix(aug, 0.5f, 1.0f);
}

/* SPEC section 5 baseline: fmnist-cnn, SGD 0.05 momentum 0.9 Nesterov wd 5e-4,
 * cosine to 0, batch 64, normalised 0.2860/0.3530; R1-R3 add the recipe's
 * pipeline (seeded with the run's seed), trained on its soft labels. The
 * settings are spelled out rather than left to the trainer's defaults so the
 * recipe does not change if those ever do. */
static int run_supervised(const recipe *r, const fmnist_data *d, int64_t steps_override, uint64_t seed,
                          const run_options *opt, results *out)
{
    const float mean[1] = {0.2860f}, std[1] = {0.3530f};
    const int64_t steps = steps_override ? steps_override : r->steps;
    const double t0 = now_s();
    double accuracy = 0.0;
    del_model *model = NULL;
    del_trainer *trainer = NULL;
    del_augment *aug = NULL;
    int rc = 1;
    (void)opt;

    TRY(del_model_preset(&model, "fmnist-cnn", 1, 28, 28, 10));
    TRY(del_model_init(model, seed));
    TRY(del_trainer_new_supervised(&trainer, model, d->labeled));
    if (r->augment) {
        TRY(del_augment_new(&aug));
        TRY(del_augment_set_seed(aug, seed));
        TRY(r->augment(aug));
        TRY(del_trainer_set_augment(trainer, aug));
    }
    TRY(del_trainer_set_batch_size(trainer, 64));
    TRY(del_trainer_set_sgd(trainer, 0.05f, 0.9f, 5e-4f, 1));
    TRY(del_trainer_set_schedule(trainer, DEL_SCHEDULE_COSINE));
    TRY(del_trainer_set_normalize(trainer, mean, std, 1));
    TRY(del_trainer_set_seed(trainer, seed));
    TRY(del_trainer_set_progress(trainer, log_progress, steps >= 1000 ? 500 : 100, (void *)r->name));
    TRY(del_trainer_fit(trainer, steps));
    double wait = 0.0, compute = 0.0;
    TRY(del_trainer_fit_times(trainer, &wait, &compute));
    fprintf(stderr, "fmnist1k: %s waited %.1f s for batches, %.1f s of steps (waiting: %.1f %% of the fit)\n", r->name,
            wait, compute, 100.0 * wait / (wait + compute));
    TRY(del_trainer_evaluate(trainer, d->test, &accuracy));
    add_result(out, NULL, accuracy, now_s() - t0, steps, 0);
    out->p[out->n - 1].data_wait = wait;
    rc = 0;
cleanup:
    del_trainer_free(trainer);
    del_augment_free(aug);
    del_model_free(model);
    return rc;
}

/* R4 (SPEC sections 1.5 and 5): the R0 optimizer on fmnist-cnn for 4000
 * steps, each 64 labeled images of L and 256 of U (the other 59,000
 * training images, labels unused), both streams with std aug; the
 * unlabeled images pseudo-labeled by the argmax of the model's own output
 * in the step (no threshold), one joint forward of the 320 images:
 *   loss = CE(L) + alpha(t) * mean over the 256 of CE(pseudo),
 * alpha(t) = 0 before step 800 (20 %), rising linearly to 3 at 2400 (60 %),
 * 3 after; while alpha is 0 only the labeled batch runs. */
static int run_pseudo_label(const recipe *r, const fmnist_data *d, int64_t steps_override, uint64_t seed,
                            const run_options *opt, results *out)
{
    const float mean[1] = {0.2860f}, std[1] = {0.3530f};
    const int64_t steps = steps_override ? steps_override : r->steps;
    const double t0 = now_s();
    double accuracy = 0.0, mask_rate = 0.0, pl_accuracy = 0.0;
    int64_t judged = 0;
    del_model *model = NULL;
    del_trainer *trainer = NULL;
    del_augment *aug_l = NULL, *aug_u = NULL;
    int32_t *truth = NULL;
    int rc = 1;
    (void)opt;

    TRY(del_model_preset(&model, "fmnist-cnn", 1, 28, 28, 10));
    TRY(del_model_init(model, seed));
    TRY(del_trainer_new_pseudo_label(&trainer, model, d->labeled, d->unlabeled));
    TRY(del_augment_new(&aug_l));
    TRY(del_augment_set_seed(aug_l, seed));
    TRY(add_std_aug(aug_l));
    TRY(del_augment_new(&aug_u));
    TRY(del_augment_set_seed(aug_u, seed + 1000003));
    TRY(add_std_aug(aug_u));
    TRY(del_trainer_set_augment(trainer, aug_l));
    TRY(del_trainer_set_augment_unlabeled(trainer, aug_u));
    TRY(del_trainer_set_batch_size(trainer, 64));
    TRY(del_trainer_set_unlabeled_batch_size(trainer, 256));
    TRY(del_trainer_set_sgd(trainer, 0.05f, 0.9f, 5e-4f, 1));
    TRY(del_trainer_set_schedule(trainer, DEL_SCHEDULE_COSINE));
    TRY(del_trainer_set_normalize(trainer, mean, std, 1));
    TRY(del_trainer_set_seed(trainer, seed));
    const int64_t t1 = steps / 5, t2 = steps * 3 / 5 > t1 ? steps * 3 / 5 : t1 + 1;
    TRY(del_trainer_set_pseudo_label_ramp(trainer, t1, t2, 3.0f));
    /* The true labels of U, for the log only (they never train). */
    const int64_t nu = del_dataset_size(d->unlabeled);
    truth = malloc((size_t)nu * sizeof *truth);
    if (!truth) {
        fprintf(stderr, "fmnist1k: out of memory\n");
        goto cleanup;
    }
    {
        /* del_dataset_split_per_class keeps U in the training set's order:
         * the rows after the first 100 of their class. */
        const int64_t nt = del_dataset_size(d->train);
        const int32_t *all = del_dataset_labels(d->train);
        int64_t k = 0;
        int per_class[10] = {0};
        for (int64_t i = 0; i < nt && k < nu; i++) {
            if (all[i] >= 0 && all[i] < 10 && per_class[all[i]] < 100)
                per_class[all[i]]++;
            else
                truth[k++] = all[i];
        }
        if (k != nu) {
            fprintf(stderr, "fmnist1k: R4: the unlabeled set is not the training set minus L\n");
            goto cleanup;
        }
    }
    TRY(del_trainer_set_unlabeled_truth(trainer, truth, nu));
    TRY(del_trainer_set_progress(trainer, log_progress, steps >= 1000 ? 500 : 100, (void *)r->name));
    TRY(del_trainer_fit(trainer, steps));
    TRY(del_trainer_pseudo_label_stats(trainer, &mask_rate, &pl_accuracy, &judged));
    fprintf(stderr, "fmnist1k: R4 pseudo-labels: %.1f %% kept, %.2f %% correct (%lld judged)\n", 100.0 * mask_rate,
            100.0 * pl_accuracy, (long long)judged);
    TRY(del_trainer_evaluate(trainer, d->test, &accuracy));
    add_result(out, NULL, accuracy, now_s() - t0, steps, 0);
    rc = 0;
cleanup:
    free(truth);
    del_trainer_free(trainer);
    del_augment_free(aug_l);
    del_augment_free(aug_u);
    del_model_free(model);
    return rc;
}

static del_status set_r0_recipe(del_trainer *trainer, uint64_t seed, int64_t steps, const char *label);

/* R5's clock: the time at which each iteration's training ended. */
typedef struct ns_clock {
    int64_t steps;
    double t0, ended[3];
    const char *name;
} ns_clock;

static int ns_progress(int64_t step, int64_t total, float loss, void *user)
{
    ns_clock *c = user;
    if (step % c->steps == 0 && step / c->steps <= 2)
        c->ended[step / c->steps] = now_s();
    if (step % 500 == 0 || step == total)
        fprintf(stderr, "  %s step %lld/%lld  loss %.4f\n", c->name, (long long)step, (long long)total, (double)loss);
    return 0;
}

/* R5 (SPEC sections 1.6 and 5): Noisy Student, 2 iterations from the R1
 * teacher (fmnist-cnn, 3000 steps, std aug, on L). Each iteration the
 * teacher, in evaluation mode on the plain images, gives its softmax on U
 * (the other 59,000 training images); rows whose top probability is below
 * 0.3 are dropped and each class (the argmax) brought to the mean count
 * per class (its most confident rows, or all repeated most confident
 * first); the student, a fresh fmnist-cnn (seed + iteration), trains 4000
 * steps with the R0 optimizer, each step 64 images of L and 192 of the
 * pool, both through std aug + RandAugment(2, 9) (its dropout 0.5 the
 * model's), one joint batch, loss CE(L) + mean CE(teacher's probabilities,
 * pool). The student is the next teacher. Parts: teacher, student1,
 * student2 (test accuracy of each; the test set is passed as the
 * validation split only to score each iteration). */
static int run_noisy_student(const recipe *r, const fmnist_data *d, int64_t steps_override, uint64_t seed,
                             const run_options *opt, results *out)
{
    const float mean[1] = {0.2860f}, std[1] = {0.3530f};
    const int64_t teacher_steps = steps_override ? steps_override : 3000;
    const int64_t steps = steps_override ? steps_override : r->steps;
    double t0 = now_s(), accuracy = 0.0;
    del_model *teacher = NULL;
    del_trainer *trainer = NULL;
    del_augment *aug = NULL, *aug_l = NULL, *aug_p = NULL;
    del_noisy_student *ns = NULL;
    int rc = 1;
    (void)opt;

    TRY(del_model_preset(&teacher, "fmnist-cnn", 1, 28, 28, 10));
    TRY(del_model_init(teacher, seed));
    TRY(del_trainer_new_supervised(&trainer, teacher, d->labeled));
    TRY(del_augment_new(&aug));
    TRY(del_augment_set_seed(aug, seed));
    TRY(add_std_aug(aug));
    TRY(del_trainer_set_augment(trainer, aug));
    TRY(set_r0_recipe(trainer, seed, teacher_steps, "teacher"));
    TRY(del_trainer_fit(trainer, teacher_steps));
    TRY(del_trainer_evaluate(trainer, d->test, &accuracy));
    add_result(out, "teacher", accuracy, now_s() - t0, teacher_steps, 0);
    fprintf(stderr, "fmnist1k: teacher accuracy %.4f\n", accuracy);

    TRY(del_augment_new(&aug_l));
    TRY(del_augment_set_seed(aug_l, seed + 1));
    TRY(add_std_aug_randaugment(aug_l));
    TRY(del_augment_new(&aug_p));
    TRY(del_augment_set_seed(aug_p, seed + 2));
    TRY(add_std_aug_randaugment(aug_p));
    TRY(del_noisy_student_new(&ns, teacher, d->labeled, d->unlabeled));
    TRY(del_noisy_student_set_iterations(ns, 2));
    TRY(del_noisy_student_set_steps(ns, steps));
    TRY(del_noisy_student_set_batch_sizes(ns, 64, 192));
    TRY(del_noisy_student_set_selection(ns, 0.3f, DEL_BALANCE_MEAN));
    TRY(del_noisy_student_set_augment(ns, aug_l, aug_p));
    TRY(del_noisy_student_set_sgd(ns, 0.05f, 0.9f, 5e-4f, 1));
    TRY(del_noisy_student_set_normalize(ns, mean, std, 1));
    TRY(del_noisy_student_set_seed(ns, seed));
    TRY(del_noisy_student_set_validation(ns, d->test));
    ns_clock clock = {steps, now_s(), {0}, r->name};
    clock.ended[0] = clock.t0;
    TRY(del_noisy_student_set_progress(ns, ns_progress, 100, &clock));
    TRY(del_noisy_student_run(ns));
    const double t_end = now_s();
    static const char *const parts[3] = {NULL, "student1", "student2"};
    for (int k = 1; k <= 2; k++) {
        int64_t kept = 0, pool = 0;
        TRY(del_noisy_student_stats(ns, k, &accuracy, &kept, &pool));
        /* An iteration's seconds: labelling, training, and the scoring of
         * the previous one (the last one's scoring goes to it). */
        const double seconds = (k == 2 ? t_end : clock.ended[k]) - clock.ended[k - 1];
        add_result(out, parts[k], accuracy, seconds, steps, 0);
        fprintf(stderr, "fmnist1k: %s accuracy %.4f (%lld of %lld unlabeled images kept, pool %lld)\n", parts[k],
                accuracy, (long long)kept, (long long)del_dataset_size(d->unlabeled), (long long)pool);
    }
    rc = 0;
cleanup:
    del_noisy_student_free(ns);
    del_trainer_free(trainer);
    del_augment_free(aug);
    del_augment_free(aug_l);
    del_augment_free(aug_p);
    del_model_free(teacher);
    return rc;
}

/* R8 (SPEC sections 1.7 and 5; the schedule is ours, docs/benchmarks.md):
 * FixMatch on fmnist-cnn with the R0 optimizer, each step 64 labeled
 * images (std aug) and 7 x 64 = 448 of U, each seen weakly (std aug) and
 * strongly (std aug + RandAugment(2, 10) + cutout 14); tau 0.95, lambda_u 1,
 * one joint forward of the 960 images; the score is the EMA model's
 * (decay 0.999). */
static int run_consistency(const recipe *r, const fmnist_data *d, int64_t steps_override, uint64_t seed,
                           const run_options *opt, results *out)
{
    const float mean[1] = {0.2860f}, std[1] = {0.3530f};
    const int64_t steps = steps_override ? steps_override : r->steps;
    const double t0 = now_s();
    double accuracy = 0.0, mask_rate = 0.0;
    del_model *model = NULL;
    del_trainer *trainer = NULL;
    del_augment *aug_l = NULL, *weak = NULL, *strong = NULL;
    int rc = 1;
    (void)opt;

    TRY(del_model_preset(&model, "fmnist-cnn", 1, 28, 28, 10));
    TRY(del_model_init(model, seed));
    TRY(del_augment_new(&aug_l));
    TRY(del_augment_set_seed(aug_l, seed));
    TRY(add_std_aug(aug_l));
    TRY(del_augment_new(&weak));
    TRY(del_augment_set_seed(weak, seed + 1000003));
    TRY(add_std_aug(weak));
    TRY(del_augment_new(&strong));
    TRY(del_augment_set_seed(strong, seed + 2000003));
    TRY(add_std_aug(strong));
    TRY(del_augment_add_randaugment(strong, 2, 10));
    TRY(del_augment_add_cutout(strong, 1.0f, 14, 0));
    TRY(del_trainer_new_consistency(&trainer, model, d->labeled, d->unlabeled, weak, strong));
    TRY(del_trainer_set_augment(trainer, aug_l));
    TRY(del_trainer_set_batch_size(trainer, 64));
    TRY(del_trainer_set_unlabeled_ratio(trainer, 7));
    TRY(del_trainer_set_sgd(trainer, 0.05f, 0.9f, 5e-4f, 1));
    TRY(del_trainer_set_schedule(trainer, DEL_SCHEDULE_COSINE));
    TRY(del_trainer_set_normalize(trainer, mean, std, 1));
    TRY(del_trainer_set_seed(trainer, seed));
    TRY(del_trainer_set_consistency_threshold(trainer, 0.95f));
    TRY(del_trainer_set_consistency_weight(trainer, 1.0f));
    TRY(del_trainer_set_ema(trainer, 0.999f));
    TRY(del_trainer_set_progress(trainer, log_progress, steps >= 1000 ? 500 : 100, (void *)r->name));
    TRY(del_trainer_fit(trainer, steps));
    TRY(del_trainer_consistency_stats(trainer, &mask_rate));
    fprintf(stderr, "fmnist1k: R8 pseudo-labels kept: %.1f %%\n", 100.0 * mask_rate);
    TRY(del_trainer_evaluate(trainer, d->test, &accuracy));
    add_result(out, NULL, accuracy, now_s() - t0, steps, 0);
    rc = 0;
cleanup:
    del_trainer_free(trainer);
    del_augment_free(aug_l);
    del_augment_free(weak);
    del_augment_free(strong);
    del_model_free(model);
    return rc;
}

/* ---- R6 and R7: models handed from one part to the next through files ---- */

/* The path of a saved model in opt->models_dir (created if need be). */
static int model_path(char *buf, size_t size, const run_options *opt, const char *what, uint64_t seed,
                      int64_t steps)
{
    if (mkdir(opt->models_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "fmnist1k: cannot create '%s': %s\n", opt->models_dir, strerror(errno));
        return 1;
    }
    int n = snprintf(buf, size, "%s/%s-seed%llu-steps%lld.delm", opt->models_dir, what, (unsigned long long)seed,
                     (long long)steps);
    return n < 0 || (size_t)n >= size;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The R0 optimizer recipe (SPEC section 5), spelled out on any trainer:
 * batch 64, SGD 0.05 momentum 0.9 Nesterov wd 5e-4, cosine to 0,
 * normalised 0.2860/0.3530, the run's seed, progress on stderr. */
static del_status set_r0_recipe(del_trainer *trainer, uint64_t seed, int64_t steps, const char *label)
{
    const float mean[1] = {0.2860f}, std[1] = {0.3530f};
    del_status st = del_trainer_set_batch_size(trainer, 64);
    if (st == DEL_OK) st = del_trainer_set_sgd(trainer, 0.05f, 0.9f, 5e-4f, 1);
    if (st == DEL_OK) st = del_trainer_set_schedule(trainer, DEL_SCHEDULE_COSINE);
    if (st == DEL_OK) st = del_trainer_set_normalize(trainer, mean, std, 1);
    if (st == DEL_OK) st = del_trainer_set_seed(trainer, seed);
    if (st == DEL_OK) st = del_trainer_set_progress(trainer, log_progress, steps >= 1000 ? 500 : 100, (void *)label);
    return st;
}

/* Trains preset (num_classes outputs, initialised with seed) supervised on
 * train for steps with the R0 recipe (with a linear learning-rate warm-up
 * over its first warmup steps when warmup > 0), scores it on test and saves it to
 * path; with opt->reuse and path present, loads and scores it instead.
 * Appends the part's result. */
static int train_and_save(const char *preset, int num_classes, const del_dataset *train, const del_dataset *test,
                          int64_t steps, int64_t warmup, uint64_t seed, const char *path, const run_options *opt,
                          const char *part, results *out)
{
    const double t0 = now_s();
    const int reuse = opt->reuse && file_exists(path);
    double accuracy = 0.0;
    del_model *model = NULL;
    del_trainer *trainer = NULL;
    int rc = 1;

    if (reuse) {
        fprintf(stderr, "fmnist1k: %s: reusing %s\n", part, path);
        TRY(del_model_load(&model, path));
    } else {
        TRY(del_model_preset(&model, preset, 1, 28, 28, num_classes));
        TRY(del_model_init(model, seed));
    }
    TRY(del_trainer_new_supervised(&trainer, model, train));
    TRY(set_r0_recipe(trainer, seed, steps, part));
    TRY(del_trainer_set_warmup(trainer, warmup));
    if (!reuse) {
        TRY(del_trainer_fit(trainer, steps));
        TRY(del_model_save(model, path));
    }
    TRY(del_trainer_evaluate(trainer, test, &accuracy));
    add_result(out, part, accuracy, now_s() - t0, steps, reuse);
    fprintf(stderr, "fmnist1k: %s accuracy %.4f\n", part, accuracy);
    rc = 0;
cleanup:
    del_trainer_free(trainer);
    del_model_free(model);
    return rc;
}

/* R6 (SPEC sections 1.3 and 5): the teacher is fmnist-cnn trained on all
 * 60,000 training labels for 4 epochs (3750 steps of 64) with the R0
 * recipe, saved, and loaded again for the distillation; the student, the
 * "mlp" preset (784-256-10, initialised with the seed), trains with the R0
 * recipe for 3000 steps (a) alone on L and (b) distilled: each step 64
 * labeled images of L and 64 of U (the other 59,000, labels unused), the
 * teacher in evaluation mode on the same 128 images, loss 0.9 * T^2 KL
 * (T = 4, mean over the 128) + 0.1 * CE on the 64 labels. */
static int run_kd(const recipe *r, const fmnist_data *d, int64_t steps_override, uint64_t seed,
                  const run_options *opt, results *out)
{
    const int64_t teacher_steps = steps_override ? steps_override : 3750;
    const int64_t steps = steps_override ? steps_override : r->steps;
    char path[1024];
    double accuracy = 0.0, t0;
    del_model *student = NULL, *teacher = NULL;
    del_trainer *trainer = NULL;
    int rc = 1;

    if (model_path(path, sizeof path, opt, "R6-teacher", seed, teacher_steps)) return 1;
    if (train_and_save("fmnist-cnn", 10, d->train, d->test, teacher_steps, 0, seed, path, opt, "teacher", out))
        return 1;

    t0 = now_s();
    TRY(del_model_preset(&student, "mlp", 1, 28, 28, 10));
    TRY(del_model_init(student, seed));
    TRY(del_trainer_new_supervised(&trainer, student, d->labeled));
    TRY(set_r0_recipe(trainer, seed, steps, "alone"));
    TRY(del_trainer_fit(trainer, steps));
    TRY(del_trainer_evaluate(trainer, d->test, &accuracy));
    add_result(out, "alone", accuracy, now_s() - t0, steps, 0);
    fprintf(stderr, "fmnist1k: alone accuracy %.4f\n", accuracy);
    del_trainer_free(trainer);
    trainer = NULL;
    del_model_free(student);
    student = NULL;

    t0 = now_s();
    TRY(del_model_load(&teacher, path));
    TRY(del_model_preset(&student, "mlp", 1, 28, 28, 10));
    TRY(del_model_init(student, seed));
    TRY(del_trainer_new_distill(&trainer, student, teacher, d->labeled, d->unlabeled));
    TRY(set_r0_recipe(trainer, seed, steps, "distilled"));
    TRY(del_trainer_set_unlabeled_batch_size(trainer, 64));
    TRY(del_trainer_set_temperature(trainer, 4.0f));
    TRY(del_trainer_set_distill_alpha(trainer, 0.9f));
    TRY(del_trainer_fit(trainer, steps));
    TRY(del_trainer_evaluate(trainer, d->test, &accuracy));
    add_result(out, "distilled", accuracy, now_s() - t0, steps, 0);
    fprintf(stderr, "fmnist1k: distilled accuracy %.4f\n", accuracy);
    rc = 0;
cleanup:
    del_trainer_free(trainer);
    del_model_free(student);
    del_model_free(teacher);
    return rc;
}

/* R7's data: the old task (classes 0-4: all their training images, and
 * their test images) and the new task (classes 5-9 as 0-4: the first 100
 * training images of each in file order, i.e. L's, and their test images). */
typedef struct transfer_data {
    del_dataset *old_train, *old_test, *new_train, *new_test;
} transfer_data;

/* The images of src whose label is in lo..lo+4, in order, labelled 0..4. */
static int select_classes(del_dataset **out, const del_dataset *src, int lo)
{
    const int64_t n = del_dataset_size(src);
    const size_t image = (size_t)del_dataset_height(src) * (size_t)del_dataset_width(src) *
                         (size_t)del_dataset_channels(src);
    const int32_t *labels = del_dataset_labels(src);
    const uint8_t *images = del_dataset_images(src);
    uint8_t *x = malloc((size_t)n * image);
    int32_t *y = malloc((size_t)n * sizeof *y);
    int64_t m = 0;
    int rc = 1;
    if (!x || !y) {
        fprintf(stderr, "fmnist1k: out of memory selecting classes\n");
        goto cleanup;
    }
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < lo || labels[i] > lo + 4) continue;
        memcpy(x + (size_t)m * image, images + (size_t)i * image, image);
        y[m++] = labels[i] - lo;
    }
    TRY(del_dataset_from_arrays(out, x, y, m, del_dataset_height(src), del_dataset_width(src),
                                del_dataset_channels(src)));
    rc = 0;
cleanup:
    free(x);
    free(y);
    return rc;
}

static void free_transfer_data(transfer_data *t)
{
    del_dataset_free(t->old_train);
    del_dataset_free(t->old_test);
    del_dataset_free(t->new_train);
    del_dataset_free(t->new_test);
}

/* Makes a pre-trained model (no heads, classifier last) ready for a
 * fine-tuning trainer that keeps the old task: the classifier becomes the
 * head "new" (the trainer replaces the first head) and a copy of it, the
 * head "old", follows it, frozen, so the old task can be scored on the
 * trained backbone with its original classifier (the LwF paper's
 * fine-tuning and feature-extraction baselines: theta_o unchanged). */
static int keep_old_head(del_model *model)
{
    int first_new = 0, count_new = 0, first_old = 0, count_old = 0;
    int64_t off_new = 0, n_new = 0, off_old = 0, n_old = 0;
    char spec[32];
    int ndim = 0;
    int64_t shape[4] = {0};
    int rc = 1;
    TRY(del_model_output_shape(model, &ndim, shape));
    snprintf(spec, sizeof spec, "linear %lld", (long long)shape[ndim - 1]);
    TRY(del_model_split_head(model, "new", -1));
    TRY(del_model_add_head(model, "old", spec));
    TRY(del_model_head_layers(model, "new", &first_new, &count_new));
    TRY(del_model_head_layers(model, "old", &first_old, &count_old));
    TRY(del_model_layer_params(model, first_new, &off_new, &n_new));
    TRY(del_model_layer_params(model, first_old, &off_old, &n_old));
    if (count_new != 1 || count_old != 1 || n_new != n_old) {
        fprintf(stderr, "fmnist1k: the copied classifier does not match (%lld vs %lld parameters)\n",
                (long long)n_new, (long long)n_old);
        goto cleanup;
    }
    memcpy(del_model_params(model) + off_old, del_model_params(model) + off_new, (size_t)n_new * sizeof(float));
    TRY(del_model_freeze(model, first_old, first_old));
    rc = 0;
cleanup:
    return rc;
}

enum transfer_method { PROBE, FINETUNE, LWF };

/* One transfer run from the saved pre-trained model at path: scores the
 * new head on the new task's test images and the old head on the old
 * task's; appends "<name>_new" and "<name>_old". */
static int transfer_once(enum transfer_method method, const transfer_data *t, const char *path, int64_t steps,
                         int64_t warmup, uint64_t seed, results *out)
{
    static const char *names[][3] = {{"probe", "probe_new", "probe_old"},
                                     {"finetune", "finetune_new", "finetune_old"},
                                     {"lwf", "lwf_new", "lwf_old"}};
    const double t0 = now_s();
    double acc_new = 0.0, acc_old = 0.0, seconds;
    del_model *model = NULL;
    del_trainer *trainer = NULL;
    int rc = 1;

    TRY(del_model_load(&model, path));
    if (method == LWF) {
        int first = 0, count = 0;
        TRY(del_trainer_new_lwf(&trainer, model, t->new_train, "old", "new", 5));
        /* The pre-trained layers (backbone and old head) at 0.1x, as the
         * fine-tuned backbone. */
        TRY(del_model_head_layers(model, "old", &first, &count));
        TRY(del_model_set_lr_mult(model, 0, first + count - 1, 0.1f));
        TRY(del_trainer_set_temperature(trainer, 2.0f));
        TRY(del_trainer_set_lwf_lambda(trainer, 1.0f));
        TRY(del_trainer_set_head_warmup(trainer, warmup));
    } else {
        if (keep_old_head(model)) goto cleanup;
        TRY(del_trainer_new_finetune(&trainer, model, t->new_train, 5,
                                     method == PROBE ? DEL_FINETUNE_LINEAR_PROBE : DEL_FINETUNE_FULL));
        if (method == FINETUNE) {
            TRY(del_trainer_set_backbone_lr_mult(trainer, 0.1f));
            TRY(del_trainer_set_head_warmup(trainer, warmup));
        }
    }
    TRY(set_r0_recipe(trainer, seed, steps, names[method][0]));
    TRY(del_trainer_fit(trainer, steps));
    TRY(del_trainer_evaluate(trainer, t->new_test, &acc_new));
    TRY(del_trainer_evaluate_head(trainer, t->old_test, "old", &acc_old));
    seconds = now_s() - t0;
    add_result(out, names[method][1], acc_new, seconds, steps, 0);
    add_result(out, names[method][2], acc_old, seconds, steps, 0);
    fprintf(stderr, "fmnist1k: %s new %.4f old %.4f\n", names[method][0], acc_new, acc_old);
    rc = 0;
cleanup:
    del_trainer_free(trainer);
    del_model_free(model);
    return rc;
}

/* R7 (SPEC sections 1.2, 1.4 and 5): fmnist-cnn (5 outputs, initialised
 * with the seed) pre-trained with the R0 recipe for 1500 steps of 64 on
 * all 30,000 training images of classes 0-4, the learning rate warmed up
 * linearly over the first 100 steps (without it, some seeds collapse on
 * both sides: docs/benchmarks.md), saved; the new task is
 * classes 5-9 (labels 0-4) with the first 100 training images of each.
 * From the saved model, each loaded afresh, with the R0 recipe (batch 64,
 * SGD 0.05 Nesterov, cosine over the run) for 1000 steps:
 *   probe     new head alone, backbone frozen (batchnorm on running
 *             statistics), old head kept frozen;
 *   finetune  200 steps of the new head alone, then the backbone at 0.1x,
 *             old head kept frozen;
 *   lwf       200 steps of the new head alone, then everything, backbone
 *             and old head at 0.1x, loss CE + 1 * T^2 KL(Y_o || old head),
 *             T = 2, Y_o recorded before the first step. */
static int run_transfer(const recipe *r, const fmnist_data *d, int64_t steps_override, uint64_t seed,
                        const run_options *opt, results *out)
{
    const int64_t pre_steps = steps_override ? steps_override : 1500;
    const int64_t pre_warmup = pre_steps >= 1000 ? 100 : pre_steps / 10;
    const int64_t steps = steps_override ? steps_override : r->steps;
    const int64_t warmup = steps >= 1000 ? 200 : steps / 5;
    transfer_data t = {0};
    char path[1024];
    int rc = 1;

    if (select_classes(&t.old_train, d->train, 0) || select_classes(&t.old_test, d->test, 0) ||
        select_classes(&t.new_train, d->labeled, 5) || select_classes(&t.new_test, d->test, 5))
        goto cleanup;
    if (model_path(path, sizeof path, opt, "R7-pretrained-warmup100", seed, pre_steps)) goto cleanup;
    if (train_and_save("fmnist-cnn", 5, t.old_train, t.old_test, pre_steps, pre_warmup, seed, path, opt,
                       "pretrained_old", out))
        goto cleanup;
    if (transfer_once(PROBE, &t, path, steps, warmup, seed, out) ||
        transfer_once(FINETUNE, &t, path, steps, warmup, seed, out) ||
        transfer_once(LWF, &t, path, steps, warmup, seed, out))
        goto cleanup;
    rc = 0;
cleanup:
    free_transfer_data(&t);
    return rc;
}

static const recipe RECIPES[] = {
    {"R0", "supervised on L, no augmentation, 3000 steps", 3000, run_supervised, NULL},
    {"R1", "R0 + std aug (pad-2 random crop 28x28, flip p=0.5)", 3000, run_supervised, add_std_aug},
    {"R2", "R1 + RandAugment(2, 9) after crop and flip", 3000, run_supervised, add_std_aug_randaugment},
    {"R3", "R1 + CutMix (p=0.5, alpha=1), soft-target CE", 3000, run_supervised, add_std_aug_cutmix},
    {"R4", "pseudo-label: R1's std aug on L (64) and U (256, labels unused), hard argmax of the model in the step, "
           "alpha 0 -> 3 from 20 % to 60 % of 4000 steps", 4000, run_pseudo_label, NULL},
    {"R5", "Noisy Student: 2 iterations from the R1 teacher, soft labels, threshold 0.3, balanced to the mean per "
           "class, students noised with std aug + RandAugment(2, 9) + dropout, 64 labeled + 192 pseudo, 4000 steps",
     4000, run_noisy_student, NULL},
    {"R8", "FixMatch: L 64 (std aug) + U 448 (weak std aug / strong + RandAugment(2, 10) + cutout 14), tau 0.95, "
           "lambda_u 1, EMA 0.999 scored, 4000 steps", 4000, run_consistency, NULL},
    {"R6", "KD: fmnist-cnn teacher on all 60,000 labels (3750 steps = 4 epochs) -> MLP 784-256-10 alone on L "
           "vs distilled on L + U (T=4, alpha=0.9, 64 + 64 per step), 3000 steps", 3000, run_kd, NULL},
    {"R7", "transfer: fmnist-cnn pre-trained on classes 0-4 (1500 steps, 100 warm-up), new task 5-9 with 100 labels each: "
           "linear probe vs fine-tune (backbone 0.1x) vs LwF (T=2, lambda=1), 1000 steps, 200 head warm-up",
     1000, run_transfer, NULL},
};

static const recipe *find_recipe(const char *name)
{
    for (size_t i = 0; i < sizeof RECIPES / sizeof RECIPES[0]; i++)
        if (!strcmp(RECIPES[i].name, name)) return &RECIPES[i];
    return NULL;
}

static void list_recipes(FILE *f)
{
    for (size_t i = 0; i < sizeof RECIPES / sizeof RECIPES[0]; i++)
        fprintf(f, "%s\t%s\n", RECIPES[i].name, RECIPES[i].about);
}

static int load_data(fmnist_data *d, const char *dir)
{
    memset(d, 0, sizeof *d);
    TRY(del_dataset_load_fashion_mnist(&d->train, dir, DEL_SPLIT_TRAIN));
    TRY(del_dataset_load_fashion_mnist(&d->test, dir, DEL_SPLIT_TEST));
    TRY(del_dataset_split_per_class(&d->labeled, &d->unlabeled, d->train, 100));
    return 0;
cleanup:
    return 1;
}

static void free_data(fmnist_data *d)
{
    del_dataset_free(d->labeled);
    del_dataset_free(d->unlabeled);
    del_dataset_free(d->test);
    del_dataset_free(d->train);
}

/* Parses a space- or comma-separated list of non-negative integers. */
static int parse_seeds(const char *text, uint64_t *seeds, int *n)
{
    *n = 0;
    while (*text) {
        char *end;
        if (*text == ' ' || *text == ',') {
            text++;
            continue;
        }
        if (*text < '0' || *text > '9' || *n == MAX_SEEDS) return 1;
        seeds[(*n)++] = strtoull(text, &end, 10);
        text = end;
        if (*text && *text != ' ' && *text != ',') return 1;
    }
    return *n == 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: fmnist1k [-t THREADS] [--seeds \"0 1 2\"] [--steps N] [--dir DIR] [--models DIR] "
                    "[--reuse] RECIPE...\n"
                    "       fmnist1k --list\nrecipes:\n");
    list_recipes(stderr);
}

int main(int argc, char **argv)
{
    uint64_t seeds[MAX_SEEDS] = {0};
    int n_seeds = 1, threads = 0, n_recipes = 0, rc = 1;
    int64_t steps_override = 0;
    const char *dir = NULL;
    run_options opt = {"build/fmnist1k-models", 0};
    const recipe *todo[32];
    fmnist_data data;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--list")) {
            list_recipes(stdout);
            return 0;
        } else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && v) {
            char *end;
            long t = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || t < 1 || t > 256) {
                fprintf(stderr, "fmnist1k: -t must be an integer in 1..256, got '%s'\n", v);
                return 2;
            }
            threads = (int)t;
            i++;
        } else if (!strcmp(a, "--seeds") && v) {
            if (parse_seeds(v, seeds, &n_seeds)) {
                fprintf(stderr, "fmnist1k: --seeds must be 1..%d non-negative integers, got '%s'\n", MAX_SEEDS, v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--steps") && v) {
            steps_override = atoll(v);
            if (steps_override < 1) {
                fprintf(stderr, "fmnist1k: --steps must be >= 1, got '%s'\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--dir") && v) {
            dir = v;
            i++;
        } else if (!strcmp(a, "--models") && v) {
            opt.models_dir = v;
            i++;
        } else if (!strcmp(a, "--reuse")) {
            opt.reuse = 1;
        } else if (a[0] == '-') {
            usage();
            return 2;
        } else if (!find_recipe(a)) {
            fprintf(stderr, "fmnist1k: unknown recipe '%s'; known recipes:\n", a);
            list_recipes(stderr);
            return 2;
        } else if (n_recipes == (int)(sizeof todo / sizeof todo[0])) {
            fprintf(stderr, "fmnist1k: too many recipes\n");
            return 2;
        } else {
            todo[n_recipes++] = find_recipe(a);
        }
    }
    if (n_recipes == 0) {
        usage();
        return 2;
    }
    if (threads && del_set_num_threads(threads) != DEL_OK) {
        fprintf(stderr, "fmnist1k: %s\n", del_last_error());
        return 2;
    }
    if (load_data(&data, dir)) goto done;
    fprintf(stderr, "fmnist1k: libdel %s, %d thread(s), %lld labeled / %lld test images\n",
            del_version_string(), del_get_num_threads(), (long long)del_dataset_size(data.labeled),
            (long long)del_dataset_size(data.test));

    for (int r = 0; r < n_recipes; r++) {
        int64_t steps = steps_override ? steps_override : todo[r]->steps;
        for (int s = 0; s < n_seeds; s++) {
            results res = {.n = 0};
            fprintf(stderr, "fmnist1k: libdel %s seed %llu, %lld steps\n", todo[r]->name,
                    (unsigned long long)seeds[s], (long long)steps);
            if (todo[r]->run(todo[r], &data, steps_override, seeds[s], &opt, &res)) goto done;
            for (int k = 0; k < res.n; k++) {
                const part_result *p = &res.p[k];
                printf("{\"recipe\": \"%s\", ", todo[r]->name);
                if (p->part) printf("\"part\": \"%s\", ", p->part);
                printf("\"seed\": %llu, \"libdel_acc\": %.4f, \"libdel_s\": %.1f, \"steps\": %lld", (unsigned long long)seeds[s],
                       p->accuracy, p->seconds, (long long)p->steps);
                if (p->data_wait >= 0.0) printf(", \"libdel_data_wait_s\": %.1f", p->data_wait);
                printf("%s}\n", p->reused ? ", \"reused\": true" : "");
            }
            fflush(stdout);
        }
    }
    rc = 0;
done:
    free_data(&data);
    return rc;
}
