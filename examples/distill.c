/* Knowledge-distillation tutorial (docs/tutorials/distill.md): SPEC §5 R6
 * on Fashion-MNIST.
 *
 * A teacher, fmnist-cnn trained on all 60,000 training labels (or loaded
 * with --teacher), is distilled into a small student, the MLP
 * 784-256-10, on FMNIST-1k: its 1,000 labeled images L plus the 59,000
 * others as an unlabeled transfer set U (T = 4, alpha = 0.9). For
 * comparison the same MLP is trained on L alone. Prints the test accuracy
 * of the teacher and of both students.
 *
 *   distill [--steps N] [--teacher-steps N] [--threads N] [--data DIR]
 *           [--teacher FILE] [--save FILE] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <del.h>

#define PER_CLASS 100   /* FMNIST-1k */
#define TEMPERATURE 4.0f
#define ALPHA 0.9f
#define REPORT_EVERY 500

typedef struct options {
    int64_t steps, teacher_steps;
    int threads;
    const char *data_dir, *teacher, *save;
} options;

static void usage(FILE *f)
{
    fprintf(f, "usage: distill [--steps N] [--teacher-steps N] [--threads N] [--data DIR]\n"
               "               [--teacher FILE] [--save FILE]\n"
               "  --steps N           steps of each student (default 3000)\n"
               "  --teacher-steps N   steps of the teacher on all 60,000 labels (default: 5/4 of --steps,\n"
               "                      3750 = 4 epochs as R6)\n"
               "  --threads N         compute threads (default: all CPUs)\n"
               "  --data DIR          Fashion-MNIST directory (default %s)\n"
               "  --teacher FILE      load the teacher (a 10-class model) instead of training it\n"
               "  --save FILE         save the teacher there\n",
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
    *opt = (options){3000, 0, 0, NULL, NULL, NULL};
    for (int i = 1; i < argc; i += 2) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(arg, "--steps") == 0 && parse_count(val, 100000000, &v) == 0) {
            opt->steps = v;
        } else if (strcmp(arg, "--teacher-steps") == 0 && parse_count(val, 100000000, &v) == 0) {
            opt->teacher_steps = v;
        } else if (strcmp(arg, "--threads") == 0 && parse_count(val, 256, &v) == 0) {
            opt->threads = (int)v;
        } else if (strcmp(arg, "--data") == 0 && val && val[0]) {
            opt->data_dir = val;
        } else if (strcmp(arg, "--teacher") == 0 && val && val[0]) {
            opt->teacher = val;
        } else if (strcmp(arg, "--save") == 0 && val && val[0]) {
            opt->save = val;
        } else {
            fprintf(stderr, "distill: bad option or value: %s%s%s\n", arg, val ? " " : "", val ? val : "");
            usage(stderr);
            return -1;
        }
    }
    if (opt->teacher_steps == 0)
        opt->teacher_steps = opt->steps + opt->steps / 4;
    return 0;
}

static int print_progress(int64_t step, int64_t total, float loss, void *user)
{
    printf("  %s step %lld/%lld  loss %.3f\n", (const char *)user, (long long)step, (long long)total, (double)loss);
    fflush(stdout);
    return 0;
}

/* The teacher: fmnist-cnn trained on every label of train with the
 * supervised trainer's defaults (SPEC §5). */
static del_status train_teacher(del_model **out, const del_dataset *train, int64_t steps)
{
    del_trainer *trainer = NULL;
    del_status st = del_model_preset(out, "fmnist-cnn", 1, 28, 28, 10);
    if (st == DEL_OK)
        st = del_trainer_new_supervised(&trainer, *out, train);
    if (st == DEL_OK)
        st = del_trainer_set_progress(trainer, print_progress, REPORT_EVERY, "teacher");
    if (st == DEL_OK)
        st = del_trainer_fit(trainer, steps);
    del_trainer_free(trainer);
    return st;
}

/* The student, the MLP 784-256-10, trained on labeled alone (teacher
 * NULL) or distilled from teacher on labeled plus the transfer set. */
static del_status train_student(del_model *teacher, const del_dataset *labeled, const del_dataset *transfer,
                                const del_dataset *test, int64_t steps, double *accuracy)
{
    del_model *student = NULL;
    del_trainer *trainer = NULL;
    del_status st = del_model_preset(&student, "mlp", 1, 28, 28, 10);
    if (st == DEL_OK && !teacher)
        st = del_trainer_new_supervised(&trainer, student, labeled);
    if (st == DEL_OK && teacher)
        st = del_trainer_new_distill(&trainer, student, teacher, labeled, transfer);
    if (st == DEL_OK && teacher)
        st = del_trainer_set_temperature(trainer, TEMPERATURE);
    if (st == DEL_OK && teacher)
        st = del_trainer_set_distill_alpha(trainer, ALPHA); /* ALPHA * T^2 KL + (1 - ALPHA) * CE */
    if (st == DEL_OK)
        st = del_trainer_set_progress(trainer, print_progress, REPORT_EVERY, teacher ? "distilled" : "alone");
    if (st == DEL_OK)
        st = del_trainer_fit(trainer, steps);
    if (st == DEL_OK)
        st = del_trainer_evaluate(trainer, test, accuracy);
    del_trainer_free(trainer);
    del_model_free(student);
    return st;
}

int main(int argc, char **argv)
{
    options opt;
    if (parse_options(argc, argv, &opt) != 0)
        return 2;

    del_dataset *train = NULL, *test = NULL, *labeled = NULL, *unlabeled = NULL;
    del_model *teacher = NULL;
    del_trainer *scorer = NULL;
    double teacher_acc = 0.0, alone_acc = 0.0, distilled_acc = 0.0;
    int rc = 1;

    if (opt.threads > 0 && del_set_num_threads(opt.threads) != DEL_OK)
        goto fail;
    /* L: the first 100 training images of each class; U: the other 59,000,
     * their labels set to -1. */
    if (del_dataset_load_fashion_mnist(&train, opt.data_dir, DEL_SPLIT_TRAIN) != DEL_OK ||
        del_dataset_load_fashion_mnist(&test, opt.data_dir, DEL_SPLIT_TEST) != DEL_OK ||
        del_dataset_split_per_class(&labeled, &unlabeled, train, PER_CLASS) != DEL_OK)
        goto fail;

    if (opt.teacher) {
        if (del_model_load(&teacher, opt.teacher) != DEL_OK)
            goto fail;
        printf("teacher: %s\n", opt.teacher);
    } else {
        printf("training the teacher, fmnist-cnn, on all %lld labels, %lld steps\n",
               (long long)del_dataset_size(train), (long long)opt.teacher_steps);
        if (train_teacher(&teacher, train, opt.teacher_steps) != DEL_OK)
            goto fail;
    }
    if (opt.save && del_model_save(teacher, opt.save) != DEL_OK)
        goto fail;
    /* Any trainer scores a model; this one is never fitted. */
    if (del_trainer_new_supervised(&scorer, teacher, test) != DEL_OK ||
        del_trainer_evaluate(scorer, test, &teacher_acc) != DEL_OK)
        goto fail;
    printf("teacher: %.2f%%\n", 100.0 * teacher_acc);

    printf("students: mlp, %lld steps each\n", (long long)opt.steps);
    if (train_student(NULL, labeled, NULL, test, opt.steps, &alone_acc) != DEL_OK)
        goto fail;
    printf("student alone on L (%lld labels): %.2f%%\n", (long long)del_dataset_size(labeled), 100.0 * alone_acc);
    if (train_student(teacher, labeled, unlabeled, test, opt.steps, &distilled_acc) != DEL_OK)
        goto fail;
    printf("student distilled on L + U (T %.0f, alpha %.1f): %.2f%%\n", (double)TEMPERATURE, (double)ALPHA,
           100.0 * distilled_acc);
    rc = 0;
    goto done;

fail:
    fprintf(stderr, "distill: %s\n", del_last_error());
done:
    del_trainer_free(scorer);
    del_model_free(teacher);
    del_dataset_free(unlabeled);
    del_dataset_free(labeled);
    del_dataset_free(test);
    del_dataset_free(train);
    return rc;
}
