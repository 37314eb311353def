/* Noisy Student tutorial (docs/tutorials/noisy_student.md): SPEC §5 R5 on
 * Fashion-MNIST.
 *
 * A teacher, fmnist-cnn trained on FMNIST-1k's 1,000 labeled images L with
 * std aug (R1), labels the other 59,000 training images U; the confident
 * ones (top probability >= 0.3), balanced per class, train a noised
 * student (std aug + RandAugment(2, 9), dropout) together with L; the
 * student then teaches the next one. Prints the test accuracy of the
 * teacher and of each student. With --checkpoint DIR the run can be
 * stopped (Ctrl-C, a crash, SIGKILL) and started again with the same
 * arguments: it continues where it stopped.
 *
 *   noisy_student [--steps N] [--iterations N] [--threads N] [--data DIR]
 *                 [--checkpoint DIR] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <del.h>

#define PER_CLASS 100   /* FMNIST-1k */
#define REPORT_EVERY 500

typedef struct options {
    int64_t steps;
    int iterations, threads;
    const char *data_dir, *checkpoint;
} options;

static void usage(FILE *f)
{
    fprintf(f, "usage: noisy_student [--steps N] [--iterations N] [--threads N] [--data DIR]\n"
               "                     [--checkpoint DIR]\n"
               "  --steps N          steps of each student (default 4000; the teacher trains 3/4 of it, >= 100)\n"
               "  --iterations N     students, each the next one's teacher (default 2)\n"
               "  --threads N        compute threads (default: all CPUs)\n"
               "  --data DIR         Fashion-MNIST directory (default %s)\n"
               "  --checkpoint DIR   checkpoint every iteration (and every 500 steps) there\n",
            DEL_FASHION_MNIST_DIR);
}

/* A decimal number in [1, max]; 0 on success. */
static int parse_count(const char *text, long long max, long long *value)
{
    char *end = NULL;
    errno = 0;
    long long v = text ? strtoll(text, &end, 10) : 0;
    if (!text || errno != 0 || end == text || *end != '\0' || v < 1 || v > max)
        return -1;
    *value = v;
    return 0;
}

static int parse_options(int argc, char **argv, options *opt)
{
    long long v = 0;
    *opt = (options){4000, 2, 0, NULL, NULL};
    for (int i = 1; i < argc; i += 2) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(arg, "--steps") == 0 && parse_count(val, 100000000, &v) == 0) {
            opt->steps = v;
        } else if (strcmp(arg, "--iterations") == 0 && parse_count(val, 100, &v) == 0) {
            opt->iterations = (int)v;
        } else if (strcmp(arg, "--threads") == 0 && parse_count(val, 256, &v) == 0) {
            opt->threads = (int)v;
        } else if (strcmp(arg, "--data") == 0 && val && val[0]) {
            opt->data_dir = val;
        } else if (strcmp(arg, "--checkpoint") == 0 && val && val[0]) {
            opt->checkpoint = val;
        } else {
            fprintf(stderr, "noisy_student: bad option or value: %s%s%s\n", arg, val ? " " : "", val ? val : "");
            usage(stderr);
            return -1;
        }
    }
    return 0;
}

static int print_progress(int64_t step, int64_t total, float loss, void *user)
{
    printf("  %s step %lld/%lld  loss %.3f\n", (const char *)user, (long long)step, (long long)total, (double)loss);
    fflush(stdout);
    return 0;
}

/* std aug (a 28x28 crop of the image padded by 2, a flip with p = 0.5),
 * then RandAugment(2, 9) when strong: the student's noise. */
static del_status make_augment(del_augment **out, uint64_t seed, int strong)
{
    del_status st = del_augment_new(out);
    if (st == DEL_OK)
        st = del_augment_set_seed(*out, seed);
    if (st == DEL_OK)
        st = del_augment_add_random_crop(*out, 28, 28, 2, 0);
    if (st == DEL_OK)
        st = del_augment_add_flip_h(*out, 0.5f);
    if (st == DEL_OK && strong)
        st = del_augment_add_randaugment(*out, 2, 9);
    return st;
}

/* The teacher: fmnist-cnn on L with std aug and the supervised trainer's
 * defaults (R1); its test accuracy into *accuracy. */
static del_status train_teacher(del_model **out, const del_dataset *labeled, const del_dataset *test,
                                int64_t steps, double *accuracy)
{
    del_trainer *trainer = NULL;
    del_augment *aug = NULL;
    del_status st = del_model_preset(out, "fmnist-cnn", 1, 28, 28, 10);
    if (st == DEL_OK)
        st = make_augment(&aug, 0, 0);
    if (st == DEL_OK)
        st = del_trainer_new_supervised(&trainer, *out, labeled);
    if (st == DEL_OK)
        st = del_trainer_set_augment(trainer, aug);
    if (st == DEL_OK)
        st = del_trainer_set_progress(trainer, print_progress, REPORT_EVERY, "teacher");
    if (st == DEL_OK)
        st = del_trainer_fit(trainer, steps);
    if (st == DEL_OK)
        st = del_trainer_evaluate(trainer, test, accuracy);
    del_trainer_free(trainer);
    del_augment_free(aug);
    return st;
}

int main(int argc, char **argv)
{
    options opt;
    if (parse_options(argc, argv, &opt) != 0)
        return 2;

    del_dataset *train = NULL, *test = NULL, *labeled = NULL, *unlabeled = NULL;
    del_model *teacher = NULL;
    del_augment *noise_l = NULL, *noise_u = NULL;
    del_noisy_student *ns = NULL;
    double accuracy = 0.0;
    int rc = 1;

    if (opt.threads > 0 && del_set_num_threads(opt.threads) != DEL_OK)
        goto fail;
    /* L: the first 100 training images of each class; U: the other 59,000,
     * their labels set to -1. */
    if (del_dataset_load_fashion_mnist(&train, opt.data_dir, DEL_SPLIT_TRAIN) != DEL_OK ||
        del_dataset_load_fashion_mnist(&test, opt.data_dir, DEL_SPLIT_TEST) != DEL_OK ||
        del_dataset_split_per_class(&labeled, &unlabeled, train, PER_CLASS) != DEL_OK)
        goto fail;

    /* At least 100 steps: a teacher of a few steps is too unsure to label
     * anything above the threshold. */
    const int64_t teacher_steps = opt.steps * 3 / 4 > 100 ? opt.steps * 3 / 4 : 100;
    printf("teacher: fmnist-cnn on L (%lld labels) with std aug, %lld steps\n", (long long)del_dataset_size(labeled),
           (long long)teacher_steps);
    if (train_teacher(&teacher, labeled, test, teacher_steps, &accuracy) != DEL_OK)
        goto fail;
    printf("teacher: %.2f%%\n", 100.0 * accuracy);

    /* The student's noise: its own pipelines for L and for the pseudo-labeled
     * pool; dropout is fmnist-cnn's own. The teacher labels U without noise. */
    if (make_augment(&noise_l, 1, 1) != DEL_OK || make_augment(&noise_u, 2, 1) != DEL_OK)
        goto fail;
    if (del_noisy_student_new(&ns, teacher, labeled, unlabeled) != DEL_OK ||
        del_noisy_student_set_iterations(ns, opt.iterations) != DEL_OK ||
        del_noisy_student_set_steps(ns, opt.steps) != DEL_OK ||
        del_noisy_student_set_batch_sizes(ns, 64, 192) != DEL_OK ||
        del_noisy_student_set_selection(ns, 0.3f, DEL_BALANCE_MEAN) != DEL_OK ||
        del_noisy_student_set_augment(ns, noise_l, noise_u) != DEL_OK)
        goto fail;
    /* Scored on the test set only to print each iteration's accuracy; a
     * real run would hold out a validation split. */
    if (del_noisy_student_set_validation(ns, test) != DEL_OK ||
        del_noisy_student_set_progress(ns, print_progress, REPORT_EVERY, "students") != DEL_OK)
        goto fail;
    if (opt.checkpoint && del_noisy_student_set_checkpoint_dir(ns, opt.checkpoint, 500) != DEL_OK)
        goto fail;
    printf("students: fmnist-cnn, %d iterations of %lld steps, 64 labeled + 192 pseudo-labeled per step\n",
           opt.iterations, (long long)opt.steps);
    if (del_noisy_student_run(ns) != DEL_OK)
        goto fail;
    for (int k = 1; k <= opt.iterations; k++) {
        int64_t kept = 0, pool = 0;
        if (del_noisy_student_stats(ns, k, &accuracy, &kept, &pool) != DEL_OK)
            goto fail;
        printf("student %d: %.2f%% (%lld of %lld unlabeled images kept, %lld after balancing)\n", k,
               100.0 * accuracy, (long long)kept, (long long)del_dataset_size(unlabeled), (long long)pool);
    }
    rc = 0;
    goto done;

fail:
    fprintf(stderr, "noisy_student: %s\n", del_last_error());
done:
    del_noisy_student_free(ns);
    del_augment_free(noise_l);
    del_augment_free(noise_u);
    del_model_free(teacher);
    del_dataset_free(unlabeled);
    del_dataset_free(labeled);
    del_dataset_free(test);
    del_dataset_free(train);
    return rc;
}
