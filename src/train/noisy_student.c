/* Noisy Student self-training (SPEC §1.6, Xie et al. 2020): iterations of
 * teacher labels the unlabeled set without noise -> the labels are
 * filtered and balanced -> a noised student trains on labeled images and
 * the pseudo-labeled pool -> the student is the next teacher.
 *
 * A student trains on a pseudo-label trainer whose targets are the pool's
 * stored soft labels (del_pseudo_label_use_stored), so the loop, streams,
 * prefetch and checkpoints are the trainers'. The run's own state is in
 * files of a checkpoint directory: run.ckpt (what the run is: settings
 * and digests of the teacher, the data and the students' architectures),
 * iteration-K.ckpt (a finished iteration: its student and figures) and
 * training-K.ckpt (the trainer of an unfinished one). Each is written
 * atomically, and every iteration is a pure function of its teacher and
 * the settings, so starting again after a kill anywhere redoes at most the
 * steps since the last file and ends with the same bytes. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "del.h"
#include "train_error.h"
#include "trainer_internal.h"

#define MAX_ITERATIONS 100
#define DEFAULT_ITERATIONS 2
#define DEFAULT_STEPS 4000
#define DEFAULT_BATCH_L 64
#define DEFAULT_BATCH_P 192
#define DEFAULT_THRESHOLD 0.3f

typedef struct iteration_stats {
    int64_t correct, judged; /* on the validation split (judged 0: none) */
    int64_t kept, pool;
} iteration_stats;

struct del_noisy_student {
    del_model *teacher;               /* borrowed: iteration 1's teacher */
    const del_dataset *labeled, *unlabeled, *validation;
    int channels, height, width, classes;
    int iterations;
    int64_t steps;
    int batch_l, batch_p;
    float threshold;
    int64_t per_class;
    int hard;
    float smoothing;
    int init_from_teacher;
    del_model *arch[MAX_ITERATIONS + 1]; /* [0]: every iteration's; [k]: iteration k's; NULL: the teacher's */
    del_augment *aug_l, *aug_p;
    train_settings set;               /* SGD and normalisation, checked by the trainers' checks */
    uint64_t seed;
    char *dir;
    int64_t ckpt_every;
    del_progress_fn progress;
    int64_t every;
    void *user;
    int running, done;
    int finished;                     /* iterations done */
    int teacher_scored;               /* stats[0] is set */
    del_model *current;               /* owned: the last finished student */
    iteration_stats stats[MAX_ITERATIONS + 1];
};

/* ---- selection ---- */

typedef struct ranked {
    int64_t row;
    float top;
} ranked;

/* Higher top probability first, then the lower row. */
static int by_confidence(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->top != y->top)
        return x->top > y->top ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

static int argmax(const float *p, int k)
{
    int best = 0;
    for (int c = 1; c < k; c++)
        best = p[c] > p[best] ? c : best;
    return best;
}

/* del_select_pseudo_labels, and the count of rows the threshold kept. */
static del_status select_rows(int64_t **out, int64_t *n, int64_t *kept_out, const del_tensor *probs, float threshold,
                              int64_t per_class, const char *fn)
{
    const int64_t rows = del_tensor_dim(probs, 0);
    const int k = (int)del_tensor_dim(probs, 1);
    const float *p = del_tensor_data((del_tensor *)probs);
    *out = NULL;
    *n = 0;
    /* One pass: each kept row (in row order) with its class and top
     * probability, and the kept count of each class. */
    ranked *kept = malloc((size_t)(rows > 0 ? rows : 1) * sizeof *kept);
    int *cls = malloc((size_t)(rows > 0 ? rows : 1) * sizeof *cls);
    int64_t *start = calloc((size_t)k + 1, sizeof *start);
    del_status st = kept && cls && start ? DEL_OK : train_error(DEL_ENOMEM, "%s: out of memory for %lld rows", fn,
                                                                 (long long)rows);
    int64_t nk = 0;
    for (int64_t i = 0; st == DEL_OK && i < rows; i++) {
        const float *pi = p + i * k;
        for (int c = 0; c < k && st == DEL_OK; c++)
            if (isnan(pi[c]))
                st = train_error(DEL_EINVAL, "%s: 'probs' row %lld has a NaN probability (class %d)", fn, (long long)i,
                                 c);
        const int c = argmax(pi, k);
        if (st == DEL_OK && pi[c] >= threshold) {
            cls[nk] = c;
            kept[nk++] = (ranked){i, pi[c]};
            start[c + 1]++;
        }
    }
    int64_t target = per_class, total = 0;
    if (st == DEL_OK) {
        int present = 0;
        for (int c = 0; c < k; c++)
            present += start[c + 1] > 0;
        if (per_class == DEL_BALANCE_MEAN)
            target = present > 0 ? (int64_t)llround((double)nk / (double)present) : 0;
        total = per_class == 0 ? nk : target * present;
        for (int c = 0; c < k; c++)
            start[c + 1] += start[c];
    }
    int64_t *idx = NULL;
    ranked *by_class = NULL;
    if (st == DEL_OK && total > 0) {
        idx = malloc((size_t)total * sizeof *idx);
        by_class = per_class == 0 ? NULL : malloc((size_t)nk * sizeof *by_class);
        if (!idx || (per_class != 0 && !by_class))
            st = train_error(DEL_ENOMEM, "%s: out of memory for %lld pseudo-labels", fn, (long long)total);
    }
    if (st == DEL_OK && total > 0 && per_class == 0) {
        for (int64_t j = 0; j < nk; j++)
            idx[j] = kept[j].row;
    } else if (st == DEL_OK && total > 0) {
        /* Grouped by class (a counting sort, row order within each), each
         * class most confident first; a short class cycles through its
         * rows in that order until it has target. */
        int64_t m = 0;
        int64_t *next = malloc((size_t)k * sizeof *next);
        if (!next) {
            st = train_error(DEL_ENOMEM, "%s: out of memory for %d classes", fn, k);
        } else {
            memcpy(next, start, (size_t)k * sizeof *next);
            for (int64_t j = 0; j < nk; j++)
                by_class[next[cls[j]]++] = kept[j];
            free(next);
            for (int c = 0; c < k; c++) {
                ranked *rc = by_class + start[c];
                const int64_t nc = start[c + 1] - start[c];
                if (nc == 0)
                    continue;
                qsort(rc, (size_t)nc, sizeof *rc, by_confidence);
                for (int64_t j = 0; j < target; j++)
                    idx[m++] = rc[j % nc].row;
            }
        }
    }
    free(kept);
    free(cls);
    free(start);
    free(by_class);
    if (st != DEL_OK) {
        free(idx);
        return st;
    }
    *kept_out = nk;
    *out = idx;
    *n = total;
    return DEL_OK;
}

DEL_API del_status del_select_pseudo_labels(int64_t **out, int64_t *n, const del_tensor *probs, float threshold,
                                            int64_t per_class)
{
    static const char fn[] = "del_select_pseudo_labels";
    if (!out)
        return train_error_null(fn, "out");
    *out = NULL;
    if (!n)
        return train_error_null(fn, "n");
    *n = 0;
    if (!probs)
        return train_error_null(fn, "probs");
    if (del_tensor_dtype(probs) != DEL_DTYPE_F32 || del_tensor_ndim(probs) != 2 || del_tensor_dim(probs, 1) < 1)
        return train_error(DEL_EINVAL, "%s: 'probs' must be an f32 [N, K] tensor", fn);
    if (!(threshold >= 0.0f && threshold <= 1.0f))
        return train_error(DEL_EINVAL, "%s: 'threshold' must be in [0, 1], got %g", fn, (double)threshold);
    if (per_class < DEL_BALANCE_MEAN)
        return train_error(DEL_EINVAL, "%s: 'per_class' must be >= 0 or DEL_BALANCE_MEAN (-1), got %lld", fn,
                           (long long)per_class);
    int64_t kept = 0;
    return select_rows(out, n, &kept, probs, threshold, per_class, fn);
}

/* ---- the handle and its settings ---- */

static del_status check_images(const del_noisy_student *ns, const del_dataset *ds, const char *arg, const char *fn)
{
    return del_check_images_fit(ds, arg, ns->channels, ns->height, ns->width, "teacher", fn);
}

/* ds has a labeled image, and no label the teacher has no output for. */
static del_status check_labels(const del_noisy_student *ns, const del_dataset *ds, const char *arg, const char *fn)
{
    return del_check_labeled_set(ds, arg, ns->classes, "teacher", fn);
}

DEL_API del_status del_noisy_student_new(del_noisy_student **out, del_model *teacher, const del_dataset *labeled,
                                         const del_dataset *unlabeled)
{
    static const char fn[] = "del_noisy_student_new";
    if (!out)
        return train_error_null(fn, "out");
    *out = NULL;
    if (!teacher)
        return train_error_null(fn, "teacher");
    if (!labeled)
        return train_error_null(fn, "labeled");
    if (!unlabeled)
        return train_error_null(fn, "unlabeled");
    del_noisy_student probe = {0};
    del_status st = del_model_input_shape(teacher, &probe.channels, &probe.height, &probe.width);
    if (st != DEL_OK)
        return train_error_as(st, fn);
    probe.classes = del_model_classes(teacher);
    if (probe.classes < 2)
        return train_error(DEL_EINVAL, "%s: 'teacher' must give a vector of at least 2 class scores per image", fn);
    if (probe.channels > MAX_CHANNELS)
        return train_error(DEL_EINVAL, "%s: 'teacher' takes %d channels; at most %d are supported", fn,
                           probe.channels, MAX_CHANNELS);
    if ((st = check_images(&probe, labeled, "labeled", fn)) != DEL_OK ||
        (st = check_labels(&probe, labeled, "labeled", fn)) != DEL_OK ||
        (st = check_images(&probe, unlabeled, "unlabeled", fn)) != DEL_OK)
        return st;
    if (del_dataset_size(unlabeled) < 1)
        return train_error(DEL_EINVAL, "%s: 'unlabeled' has no image", fn);
    del_noisy_student *ns = calloc(1, sizeof *ns);
    if (!ns)
        return train_error(DEL_ENOMEM, "%s: out of memory", fn);
    *ns = probe;
    ns->teacher = teacher;
    ns->labeled = labeled;
    ns->unlabeled = unlabeled;
    ns->iterations = DEFAULT_ITERATIONS;
    ns->steps = DEFAULT_STEPS;
    ns->batch_l = DEFAULT_BATCH_L;
    ns->batch_p = DEFAULT_BATCH_P;
    ns->threshold = DEFAULT_THRESHOLD;
    ns->per_class = DEL_BALANCE_MEAN;
    del_settings_defaults(&ns->set);
    *out = ns;
    return DEL_OK;
}

DEL_API void del_noisy_student_free(del_noisy_student *ns)
{
    if (!ns)
        return;
    for (int k = 0; k <= MAX_ITERATIONS; k++)
        del_model_free(ns->arch[k]);
    del_model_free(ns->current);
    free(ns->dir);
    free(ns);
}

/* The setters' first check. */
static del_status settable(const del_noisy_student *ns, const char *fn)
{
    if (!ns)
        return train_error_null(fn, "ns");
    if (ns->running)
        return train_error(DEL_ESTATE, "%s: the run is in progress", fn);
    return DEL_OK;
}

DEL_API del_status del_noisy_student_set_iterations(del_noisy_student *ns, int iterations)
{
    static const char fn[] = "del_noisy_student_set_iterations";
    del_status st = settable(ns, fn);
    if (st != DEL_OK)
        return st;
    if (iterations < 1 || iterations > MAX_ITERATIONS)
        return train_error(DEL_EINVAL, "%s: 'iterations' must be in 1..%d, got %d", fn, MAX_ITERATIONS, iterations);
    for (int k = iterations + 1; k <= MAX_ITERATIONS; k++)
        if (ns->arch[k])
            return train_error(DEL_EINVAL, "%s: iteration %d has a student of its own (del_noisy_student_set_student); "
                               "remove it first", fn, k);
    ns->iterations = iterations;
    return DEL_OK;
}

DEL_API del_status del_noisy_student_set_steps(del_noisy_student *ns, int64_t steps)
{
    static const char fn[] = "del_noisy_student_set_steps";
    del_status st = settable(ns, fn);
    if (st != DEL_OK)
        return st;
    if (steps < 1)
        return train_error(DEL_EINVAL, "%s: 'steps' must be >= 1, got %lld", fn, (long long)steps);
    ns->steps = steps;
    return DEL_OK;
}

DEL_API del_status del_noisy_student_set_batch_sizes(del_noisy_student *ns, int labeled, int pseudo)
{
    static const char fn[] = "del_noisy_student_set_batch_sizes";
    del_status st = settable(ns, fn);
    if (st != DEL_OK)
        return st;
    if (labeled < 1)
        return train_error(DEL_EINVAL, "%s: 'labeled' must be >= 1, got %d", fn, labeled);
    if (pseudo < 1)
        return train_error(DEL_EINVAL, "%s: 'pseudo' must be >= 1, got %d", fn, pseudo);
    ns->batch_l = labeled;
    ns->batch_p = pseudo;
    return DEL_OK;
}

DEL_API del_status del_noisy_student_set_selection(del_noisy_student *ns, float threshold, int64_t per_class)
{
    static const char fn[] = "del_noisy_student_set_selection";
    del_status st = settable(ns, fn);
    if (st != DEL_OK)
        return st;
    if (!(threshold >= 0.0f && threshold <= 1.0f))
        return train_error(DEL_EINVAL, "%s: 'threshold' must be in [0, 1], got %g", fn, (double)threshold);
    if (per_class < DEL_BALANCE_MEAN)
        return train_error(DEL_EINVAL, "%s: 'per_class' must be >= 0 or DEL_BALANCE_MEAN (-1), got %lld", fn,
                           (long long)per_class);
    ns->threshold = threshold;
    ns->per_class = per_class;
    return DEL_OK;
}

DEL_API del_status del_noisy_student_set_hard(del_noisy_student *ns, int hard, float smoothing)
{
    static const char fn[] = "del_noisy_student_set_hard";
    del_status st = settable(ns, fn);
    if (st != DEL_OK)
        return st;
    if (hard != 0 && hard != 1)
        return train_error(DEL_EINVAL, "%s: 'hard' must be 0 or 1, got %d", fn, hard);
    if (!(smoothing >= 0.0f && smoothing < 1.0f))
        return train_error(DEL_EINVAL, "%s: 'smoothing' must be in [0, 1), got %g", fn, (double)smoothing);
    ns->hard = hard;
    ns->smoothing = hard ? smoothing : 0.0f;
    return DEL_OK;
}

DEL_API del_status del_noisy_student_set_student(del_noisy_student *ns, int iteration, const del_model *model)
{
    static const char fn[] = "del_noisy_student_set_student";
    del_status st = settable(ns, fn);
    if (st != DEL_OK)
        return st;
    if (iteration < 0 || iteration > ns->iterations)
        return train_error(DEL_EINVAL, "%s: 'iteration' must be in 0..%d (0: every iteration), got %d", fn,
                           ns->iterations, iteration);
    del_model *copy = NULL;
    if (model) {
        int c = 0, h = 0, w = 0;
        if ((st = del_model_input_shape(model, &c, &h, &w)) != DEL_OK)
            return train_error_as(st, fn);
        if (c != ns->channels || h != ns->height || w != ns->width)
            return train_error(DEL_EINVAL, "%s: 'model' takes %d x %d x %d images (C x H x W), the teacher %d x %d x %d",
                               fn, c, h, w, ns->channels, ns->height, ns->width);
        const int classes = del_model_classes(model);
        if (classes != ns->classes)
            return train_error(DEL_EINVAL, "%s: 'model' gives %d class scores, the teacher %d", fn, classes,
                               ns->classes);
        if ((st = del_model_clone(&copy, model)) != DEL_OK)
            return train_error_as(st, fn);
    }
    del_model_free(ns->arch[iteration]);
    ns->arch[iteration] = copy;
    return DEL_OK;
}

DEL_API del_status del_noisy_student_set_init_from_teacher(del_noisy_student *ns, int on)
{
    static const char fn[] = "del_noisy_student_set_init_from_teacher";
    del_status st = settable(ns, fn);
    if (st != DEL_OK)
        return st;
    if (on != 0 && on != 1)
        return train_error(DEL_EINVAL, "%s: 'on' must be 0 or 1, got %d", fn, on);
    ns->init_from_teacher = on;
    return DEL_OK;
}

DEL_API del_status del_noisy_student_set_augment(del_noisy_student *ns, del_augment *labeled, del_augment *pseudo)
{
    static const char fn[] = "del_noisy_student_set_augment";
    del_status st = settable(ns, fn);
    if (st != DEL_OK)
        return st;
    ns->aug_l = labeled;
    ns->aug_p = pseudo;
    return DEL_OK;
}

DEL_API del_status del_noisy_student_set_sgd(del_noisy_student *ns, float lr, float momentum, float weight_decay,
                                             int nesterov)
{
    static const char fn[] = "del_noisy_student_set_sgd";
    del_status st = settable(ns, fn);
    return st != DEL_OK ? st : del_settings_sgd(&ns->set, lr, momentum, weight_decay, nesterov, fn);
}

DEL_API del_status del_noisy_student_set_normalize(del_noisy_student *ns, const float *mean, const float *std,
                                                   int channels)
{
    static const char fn[] = "del_noisy_student_set_normalize";
    del_status st = settable(ns, fn);
    if (st != DEL_OK)
        return st;
    return del_settings_normalize_for(ns->channels, &ns->set, mean, std, channels, fn);
}

DEL_API del_status del_noisy_student_set_seed(del_noisy_student *ns, uint64_t seed)
{
    static const char fn[] = "del_noisy_student_set_seed";
    del_status st = settable(ns, fn);
    if (st != DEL_OK)
        return st;
    ns->seed = seed;
    return DEL_OK;
}

DEL_API del_status del_noisy_student_set_validation(del_noisy_student *ns, const del_dataset *validation)
{
    static const char fn[] = "del_noisy_student_set_validation";
    del_status st = settable(ns, fn);
    if (st != DEL_OK)
        return st;
    if (validation && ((st = check_images(ns, validation, "validation", fn)) != DEL_OK ||
                       (st = check_labels(ns, validation, "validation", fn)) != DEL_OK))
        return st;
    ns->validation = validation;
    return DEL_OK;
}

DEL_API del_status del_noisy_student_set_checkpoint_dir(del_noisy_student *ns, const char *dir, int64_t every)
{
    static const char fn[] = "del_noisy_student_set_checkpoint_dir";
    del_status st = settable(ns, fn);
    if (st != DEL_OK)
        return st;
    if (dir && !*dir)
        return train_error(DEL_EINVAL, "%s: 'dir' is empty", fn);
    if (every < 0)
        return train_error(DEL_EINVAL, "%s: 'every' must be >= 0, got %lld", fn, (long long)every);
    char *copy = NULL;
    if (dir && !(copy = strdup(dir)))
        return train_error(DEL_ENOMEM, "%s: out of memory", fn);
    free(ns->dir);
    ns->dir = copy;
    ns->ckpt_every = every;
    return DEL_OK;
}

DEL_API del_status del_noisy_student_set_progress(del_noisy_student *ns, del_progress_fn fn_, int64_t every,
                                                  void *user)
{
    static const char fn[] = "del_noisy_student_set_progress";
    del_status st = settable(ns, fn);
    if (st != DEL_OK)
        return st;
    if (fn_ && every < 1)
        return train_error(DEL_EINVAL, "%s: 'every' must be >= 1, got %lld", fn, (long long)every);
    ns->progress = fn_;
    ns->every = every;
    ns->user = user;
    return DEL_OK;
}

DEL_API del_model *del_noisy_student_model(const del_noisy_student *ns)
{
    if (!ns)
        return NULL;
    return ns->current ? ns->current : ns->teacher;
}

DEL_API del_status del_noisy_student_stats(const del_noisy_student *ns, int iteration, double *val_accuracy,
                                           int64_t *kept, int64_t *pool)
{
    static const char fn[] = "del_noisy_student_stats";
    if (!ns)
        return train_error_null(fn, "ns");
    if (iteration < 0 || iteration > ns->iterations)
        return train_error(DEL_EINVAL, "%s: 'iteration' must be in 0..%d (0: the teacher), got %d", fn,
                           ns->iterations, iteration);
    if (iteration > ns->finished || (iteration == 0 && !ns->teacher_scored))
        return train_error(DEL_ESTATE, "%s: iteration %d has not finished", fn, iteration);
    const iteration_stats *s = &ns->stats[iteration];
    if (val_accuracy)
        *val_accuracy = s->judged > 0 ? (double)s->correct / (double)s->judged : NAN;
    if (kept)
        *kept = s->kept;
    if (pool)
        *pool = s->pool;
    return DEL_OK;
}

/* ---- the run ---- */

/* m's correct answers on the validation split. */
static del_status score(iteration_stats *s, del_noisy_student *ns, del_model *m)
{
    s->correct = s->judged = 0;
    if (!ns->validation)
        return DEL_OK;
    del_tensor *logits = NULL;
    del_status st = del_model_predict(&logits, m, NULL, ns->validation, ns->set.mean, ns->set.std, 1.0f, 0);
    if (st != DEL_OK)
        return st;
    const int64_t n = del_dataset_size(ns->validation);
    const int32_t *y = del_dataset_labels(ns->validation);
    const float *z = del_tensor_data(logits);
    for (int64_t i = 0; i < n; i++)
        if (y[i] >= 0) {
            s->judged++;
            s->correct += argmax(z + i * ns->classes, ns->classes) == y[i];
        }
    del_tensor_free(logits);
    return DEL_OK;
}

/* FNV-1a, 64 bits: the digests of run.ckpt. */
static uint64_t digest(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

#define DIGEST_START 0xcbf29ce484222325ull

static uint64_t dataset_digest(const del_dataset *ds)
{
    const int64_t n = del_dataset_size(ds);
    const size_t image = (size_t)del_dataset_channels(ds) * (size_t)del_dataset_height(ds) *
                         (size_t)del_dataset_width(ds);
    uint64_t h = digest(DIGEST_START, &n, sizeof n);
    h = digest(h, del_dataset_images(ds), (size_t)n * image);
    return digest(h, del_dataset_labels(ds), (size_t)n * sizeof(int32_t));
}

static del_status model_digest(uint64_t *h, const del_model *m)
{
    void *buf = NULL;
    size_t size = 0;
    del_status st = del_model_save_buffer_flags(m, &buf, &size, DEL_SAVE_ALLOW_NONFINITE);
    if (st != DEL_OK)
        return st;
    *h = digest(*h, buf, size);
    del_buffer_free(buf);
    return DEL_OK;
}

/* What the run is, as run.ckpt records it. */
static del_status run_record(del_checkpoint **out, const del_noisy_student *ns)
{
    uint64_t teacher = DIGEST_START, archs = DIGEST_START;
    del_status st = model_digest(&teacher, ns->teacher);
    for (int k = 0; st == DEL_OK && k <= ns->iterations; k++) {
        archs = digest(archs, &k, sizeof k);
        if (ns->arch[k])
            st = model_digest(&archs, ns->arch[k]);
    }
    del_checkpoint *ck = NULL;
    if (st == DEL_OK)
        st = del_checkpoint_new(&ck);
    if (st == DEL_OK)
        st = del_checkpoint_set_trainer(ck, "noisy_student");
    const struct {
        const char *key;
        int64_t v;
    } ints[] = {
        {"iterations", ns->iterations},
        {"steps", ns->steps},
        {"batch_labeled", ns->batch_l},
        {"batch_pseudo", ns->batch_p},
        {"per_class", ns->per_class},
        {"hard", ns->hard},
        {"init_from_teacher", ns->init_from_teacher},
        {"seed", (int64_t)ns->seed},
        {"nesterov", ns->set.nesterov},
        {"augment_labeled", ns->aug_l != NULL},
        {"augment_pseudo", ns->aug_p != NULL},
        {"teacher_digest", (int64_t)teacher},
        {"students_digest", (int64_t)archs},
        {"labeled_digest", (int64_t)dataset_digest(ns->labeled)},
        {"unlabeled_digest", (int64_t)dataset_digest(ns->unlabeled)},
    };
    for (size_t i = 0; st == DEL_OK && i < sizeof ints / sizeof ints[0]; i++)
        st = del_checkpoint_set_i64(ck, ints[i].key, ints[i].v);
    const struct {
        const char *key;
        float v;
    } floats[] = {
        {"threshold", ns->threshold}, {"smoothing", ns->smoothing}, {"lr", ns->set.lr},
        {"momentum", ns->set.momentum}, {"weight_decay", ns->set.weight_decay}, {"mean0", ns->set.mean[0]},
        {"mean1", ns->set.mean[1]},     {"mean2", ns->set.mean[2]},           {"std0", ns->set.std[0]},
        {"std1", ns->set.std[1]},       {"std2", ns->set.std[2]},
    };
    for (size_t i = 0; st == DEL_OK && i < sizeof floats / sizeof floats[0]; i++)
        st = del_checkpoint_set_f32(ck, floats[i].key, floats[i].v);
    if (st != DEL_OK) {
        del_checkpoint_free(ck);
        return st;
    }
    *out = ck;
    return DEL_OK;
}

/* The first field in which two run records differ, as a message. */
static int records_differ(const del_checkpoint *a, const del_checkpoint *b, char *why, size_t size)
{
    if (!del_checkpoint_trainer(b) || strcmp(del_checkpoint_trainer(b), "noisy_student") != 0) {
        snprintf(why, size, "it is not a Noisy Student run record");
        return 1;
    }
    const int n = del_checkpoint_num_fields(a);
    if (del_checkpoint_num_fields(b) != n) {
        snprintf(why, size, "it has %d fields, this run %d", del_checkpoint_num_fields(b), n);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        const char *key = del_checkpoint_field_name(a, i);
        const del_checkpoint_kind kind = del_checkpoint_field_kind(a, key);
        if (del_checkpoint_field_kind(b, key) != kind) {
            snprintf(why, size, "it lacks '%s'", key);
            return 1;
        }
        if (kind == DEL_CHECKPOINT_KIND_I64) {
            int64_t x = 0, y = 0;
            del_checkpoint_get_i64(a, key, &x);
            del_checkpoint_get_i64(b, key, &y);
            if (x != y) {
                snprintf(why, size, "'%s' is %lld there, %lld in this run", key, (long long)y, (long long)x);
                return 1;
            }
        } else {
            float x = 0.0f, y = 0.0f;
            del_checkpoint_get_f32(a, key, &x);
            del_checkpoint_get_f32(b, key, &y);
            if (memcmp(&x, &y, sizeof x) != 0) {
                snprintf(why, size, "'%s' is %g there, %g in this run", key, (double)y, (double)x);
                return 1;
            }
        }
    }
    return 0;
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* dir/name into buf (DEL_EINVAL when it does not fit). */
static del_status path_of(char *buf, size_t size, const char *dir, const char *name, int k, const char *fn)
{
    const int n = k > 0 ? snprintf(buf, size, "%s/%s-%d.ckpt", dir, name, k) : snprintf(buf, size, "%s/%s.ckpt", dir, name);
    if (n < 0 || (size_t)n >= size)
        return train_error(DEL_EINVAL, "%s: the checkpoint directory's path is too long", fn);
    return DEL_OK;
}

#define PATH_SIZE 4096

/* Makes the directory if missing; writes run.ckpt, or checks the one
 * there against this run. */
static del_status open_dir(del_noisy_student *ns, const char *fn)
{
    if (mkdir(ns->dir, 0777) != 0 && errno != EEXIST)
        return train_error(DEL_EIO, "%s: cannot make the checkpoint directory '%s': %s", fn, ns->dir,
                           strerror(errno));
    char path[PATH_SIZE];
    del_status st = path_of(path, sizeof path, ns->dir, "run", 0, fn);
    del_checkpoint *mine = NULL, *theirs = NULL;
    if (st == DEL_OK)
        st = run_record(&mine, ns);
    if (st != DEL_OK)
        return train_error_as(st, fn);
    if (!file_exists(path)) {
        st = del_checkpoint_write(mine, path);
        del_checkpoint_free(mine);
        return train_error_as(st, fn);
    }
    st = del_checkpoint_read(&theirs, path);
    if (st == DEL_OK) {
        char why[512];
        if (records_differ(mine, theirs, why, sizeof why))
            st = train_error(DEL_EINVAL, "%s: '%s' holds another run (%s): use another directory, or remove it to "
                             "start afresh", fn, ns->dir, why);
    } else {
        st = train_error_as(st, fn);
    }
    del_checkpoint_free(mine);
    del_checkpoint_free(theirs);
    return st;
}

/* The pool of iteration k: the kept, balanced images of the unlabeled set
 * with the teacher's targets as soft labels; *out NULL when the threshold
 * keeps none. */
static del_status make_pool(del_dataset **out, iteration_stats *s, del_noisy_student *ns, del_model *teacher,
                            const char *fn)
{
    del_tensor *probs = NULL, *targets = NULL;
    int64_t *idx = NULL, n = 0;
    del_dataset *pool = NULL;
    del_status st = del_model_predict(&probs, teacher, NULL, ns->unlabeled, ns->set.mean, ns->set.std, 1.0f, 1);
    if (st == DEL_OK)
        st = select_rows(&idx, &n, &s->kept, probs, ns->threshold, ns->per_class, fn);
    s->pool = n;
    *out = NULL;
    if (st != DEL_OK || n == 0) {
        /* No image kept: the student learns from the labeled images alone. */
        del_tensor_free(probs);
        return st;
    }
    const int kc = ns->classes;
    const int64_t shape[2] = {n, kc};
    if (st == DEL_OK)
        st = del_tensor_new(&targets, DEL_DTYPE_F32, 2, shape);
    if (st == DEL_OK) {
        const float *p = del_tensor_data(probs);
        float *t = del_tensor_data(targets);
        const float off = ns->smoothing / (float)kc, on = 1.0f - ns->smoothing + off;
        for (int64_t i = 0; i < n; i++) {
            const float *pi = p + idx[i] * kc;
            float *ti = t + i * kc;
            if (ns->hard) {
                const int c = argmax(pi, kc);
                for (int j = 0; j < kc; j++)
                    ti[j] = j == c ? on : off;
            } else {
                memcpy(ti, pi, (size_t)kc * sizeof *ti);
            }
        }
        st = del_dataset_subset(&pool, ns->unlabeled, idx, n);
    }
    if (st == DEL_OK)
        st = del_dataset_set_soft_labels(pool, targets);
    free(idx);
    del_tensor_free(probs);
    del_tensor_free(targets);
    if (st != DEL_OK) {
        del_dataset_free(pool);
        return st;
    }
    *out = pool;
    return DEL_OK;
}

/* Iteration k's student, fresh: its architecture, initialised from scratch
 * or with the teacher's weights. */
static del_status make_student(del_model **out, del_noisy_student *ns, del_model *teacher, int k, const char *fn)
{
    const del_model *arch = ns->arch[k] ? ns->arch[k] : ns->arch[0] ? ns->arch[0] : teacher;
    del_model *m = NULL;
    del_status st = del_model_clone(&m, arch);
    if (st == DEL_OK)
        st = del_model_init(m, ns->seed + (uint64_t)k);
    if (st == DEL_OK && ns->init_from_teacher && (st = del_model_copy_weights(m, teacher)) != DEL_OK) {
        char why[TRAIN_ERROR_SIZE];
        snprintf(why, sizeof why, "%s", del_last_error());
        st = train_error(DEL_EINVAL, "%s: iteration %d: the student cannot start from the teacher's weights (%s)",
                         fn, k, why);
    }
    if (st == DEL_OK)
        st = del_model_set_training(m, 1);
    if (st != DEL_OK) {
        del_model_free(m);
        return st;
    }
    *out = m;
    return DEL_OK;
}

/* The trainer's progress: the run's progress callback, and the training
 * checkpoints. */
typedef struct progress_ctx {
    del_noisy_student *ns;
    del_trainer *tr;
    int k;
    const char *path; /* training-K.ckpt, or NULL */
    del_status ckpt_status;
    double loss_sum;  /* since the last call of the run's callback */
    int64_t loss_count;
} progress_ctx;

/* Called after every step of a fit. */
static int on_progress(int64_t fit_step, int64_t fit_steps, float loss, void *user)
{
    (void)fit_step;
    (void)fit_steps;
    progress_ctx *c = user;
    del_noisy_student *ns = c->ns;
    /* The iteration's step: the trainer counts them from its creation, and
     * its checkpoint carries the count. */
    const int64_t step = c->tr->steps_done;
    if (isfinite(loss)) {
        c->loss_sum += loss;
        c->loss_count++;
    }
    if (c->path && ns->ckpt_every > 0 && step % ns->ckpt_every == 0 && step < ns->steps) {
        c->ckpt_status = del_trainer_save_checkpoint(c->tr, c->path);
        if (c->ckpt_status != DEL_OK)
            return 1;
    }
    if (ns->progress && (step % ns->every == 0 || step == ns->steps)) {
        const float mean = c->loss_count > 0 ? (float)(c->loss_sum / (double)c->loss_count) : NAN;
        c->loss_sum = 0.0;
        c->loss_count = 0;
        return ns->progress((int64_t)(c->k - 1) * ns->steps + step, (int64_t)ns->iterations * ns->steps, mean,
                            ns->user);
    }
    return 0;
}

static del_status configure(del_trainer *tr, del_noisy_student *ns, int k)
{
    const train_settings *s = &ns->set;
    const del_dataset *pool = tr->streams[DEL_STREAM_U].data; /* NULL: a supervised trainer */
    del_status st = pool ? del_pseudo_label_use_stored(tr, 1.0f, "del_noisy_student_run") : DEL_OK;
    if (st == DEL_OK) {
        const int64_t labeled = tr->streams[DEL_STREAM_L].pool_n;
        st = del_trainer_set_batch_size(tr, labeled < ns->batch_l ? (int)labeled : ns->batch_l);
    }
    if (st == DEL_OK && pool) {
        const int64_t n = del_dataset_size(pool);
        st = del_trainer_set_unlabeled_batch_size(tr, n < ns->batch_p ? (int)n : ns->batch_p);
    }
    if (st == DEL_OK)
        st = del_trainer_set_sgd(tr, s->lr, s->momentum, s->weight_decay, s->nesterov);
    if (st == DEL_OK)
        st = del_trainer_set_normalize(tr, s->mean, s->std, ns->channels);
    if (st == DEL_OK)
        st = del_trainer_set_seed(tr, ns->seed + (uint64_t)k);
    if (st == DEL_OK)
        st = del_trainer_set_total_steps(tr, ns->steps);
    if (st == DEL_OK && ns->aug_l)
        st = del_trainer_set_augment(tr, ns->aug_l);
    if (st == DEL_OK && ns->aug_p && pool)
        st = del_trainer_set_augment_unlabeled(tr, ns->aug_p);
    return st;
}

/* iteration-K.ckpt: the student and the iteration's figures. */
static del_status save_iteration(const del_model *student, const iteration_stats *s,
                                 const char *path)
{
    del_checkpoint *ck = NULL;
    del_status st = del_checkpoint_new(&ck);
    if (st == DEL_OK)
        st = del_checkpoint_set_trainer(ck, "noisy_student_iteration");
    if (st == DEL_OK)
        st = del_checkpoint_add_model(ck, "student", student);
    const int64_t v[4] = {s->correct, s->judged, s->kept, s->pool};
    const char *keys[4] = {"val_correct", "val_judged", "kept", "pool"};
    for (int i = 0; st == DEL_OK && i < 4; i++)
        st = del_checkpoint_set_i64(ck, keys[i], v[i]);
    if (st == DEL_OK)
        st = del_checkpoint_write(ck, path);
    del_checkpoint_free(ck);
    return st;
}

static del_status load_iteration(del_model **student, iteration_stats *s, const char *path, const char *fn)
{
    del_checkpoint *ck = NULL;
    del_status st = del_checkpoint_read(&ck, path);
    if (st == DEL_OK && (!del_checkpoint_trainer(ck) ||
                         strcmp(del_checkpoint_trainer(ck), "noisy_student_iteration") != 0))
        st = train_error(DEL_EFORMAT, "%s: '%s' is not a Noisy Student iteration checkpoint", fn, path);
    if (st == DEL_OK)
        st = del_checkpoint_get_model(student, ck, "student");
    int64_t *v[4] = {&s->correct, &s->judged, &s->kept, &s->pool};
    const char *keys[4] = {"val_correct", "val_judged", "kept", "pool"};
    for (int i = 0; st == DEL_OK && i < 4; i++)
        st = del_trainer_read_i64(ck, keys[i], v[i], fn);
    del_checkpoint_free(ck);
    if (st != DEL_OK) {
        del_model_free(*student);
        *student = NULL;
    }
    return st;
}

/* Trains iteration k's student from the current teacher (or finishes it
 * from its training checkpoint). */
static del_status run_iteration(del_noisy_student *ns, int k, const char *fn)
{
    del_model *teacher = ns->current ? ns->current : ns->teacher;
    char train_path[PATH_SIZE], iter_path[PATH_SIZE];
    del_status st = DEL_OK;
    if (ns->dir && ((st = path_of(train_path, sizeof train_path, ns->dir, "training", k, fn)) != DEL_OK ||
                    (st = path_of(iter_path, sizeof iter_path, ns->dir, "iteration", k, fn)) != DEL_OK))
        return st;
    iteration_stats s = {0};
    del_dataset *pool = NULL;
    del_model *student = NULL;
    del_trainer *tr = NULL;
    st = make_pool(&pool, &s, ns, teacher, fn);
    if (st == DEL_OK)
        st = make_student(&student, ns, teacher, k, fn);
    if (st == DEL_OK)
        st = pool ? del_trainer_new_pseudo_label(&tr, student, ns->labeled, pool)
                  : del_trainer_new_supervised(&tr, student, ns->labeled);
    if (st == DEL_OK)
        st = configure(tr, ns, k);
    if (st == DEL_OK && ns->dir && file_exists(train_path))
        st = del_trainer_load_checkpoint(tr, train_path);
    progress_ctx ctx = {ns, tr, k, ns->dir ? train_path : NULL, DEL_OK, 0.0, 0};
    if (st == DEL_OK)
        st = del_trainer_set_progress(tr, on_progress, 1, &ctx);
    if (st == DEL_OK && tr->steps_done < ns->steps) {
        st = del_trainer_fit(tr, ns->steps - tr->steps_done);
        if (st == DEL_ECANCELED && ctx.ckpt_status != DEL_OK)
            st = ctx.ckpt_status;
    }
    if (st == DEL_OK)
        st = del_model_set_training(student, 0);
    if (st == DEL_OK)
        st = score(&s, ns, student);
    if (st == DEL_OK && ns->dir)
        st = save_iteration(student, &s, iter_path);
    if (st == DEL_OK && ns->dir)
        remove(train_path);
    del_trainer_free(tr);
    del_dataset_free(pool);
    if (st != DEL_OK) {
        del_model_free(student);
        return st == DEL_ECANCELED ? st : train_error_as(st, fn);
    }
    del_model_free(ns->current);
    ns->current = student;
    ns->stats[k] = s;
    ns->finished = k;
    return DEL_OK;
}

DEL_API del_status del_noisy_student_run(del_noisy_student *ns)
{
    static const char fn[] = "del_noisy_student_run";
    del_status st = settable(ns, fn);
    if (st != DEL_OK)
        return st;
    if (ns->done)
        return train_error(DEL_ESTATE, "%s: the run has finished already", fn);
    ns->running = 1;
    if (ns->dir)
        st = open_dir(ns, fn);
    if (st == DEL_OK && !ns->teacher_scored && (st = train_error_as(score(&ns->stats[0], ns, ns->teacher), fn)) == DEL_OK)
        ns->teacher_scored = 1;
    for (int k = ns->finished + 1; st == DEL_OK && k <= ns->iterations; k++) {
        char path[PATH_SIZE];
        if (ns->dir && (st = path_of(path, sizeof path, ns->dir, "iteration", k, fn)) == DEL_OK && file_exists(path)) {
            del_model *student = NULL;
            iteration_stats s = {0};
            st = load_iteration(&student, &s, path, fn);
            if (st == DEL_OK)
                st = del_model_set_training(student, 0);
            if (st != DEL_OK) {
                del_model_free(student);
                break;
            }
            del_model_free(ns->current);
            ns->current = student;
            ns->stats[k] = s;
            ns->finished = k;
            if (path_of(path, sizeof path, ns->dir, "training", k, fn) == DEL_OK)
                remove(path); /* left by a kill between the two files */
            continue;
        }
        if (st == DEL_OK)
            st = run_iteration(ns, k, fn);
    }
    ns->running = 0;
    if (st == DEL_OK)
        ns->done = 1;
    return st;
}
