/* RandAugment policy search (Cubuk et al. 2020, §3): a grid of (N, M),
 * each cell a fresh supervised training on the labeled set minus a
 * stratified validation split, scored on that split. Built on the public
 * trainer, dataset and augmentation calls only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "del.h"
#include "train_error.h"
#include "trainer_internal.h"

#define MAX_GRID 64
#define MAX_N 14
#define MAX_M 30

struct del_policy_search {
    del_model *arch;            /* owned copy of the architecture */
    const del_dataset *labeled; /* borrowed */
    int classes;
    int n[MAX_GRID], m[MAX_GRID];
    int n_count, m_count;
    double accuracy[MAX_GRID * MAX_GRID];
    int per_class;
    int64_t steps;
    int pad;
    float flip;
    uint64_t seed;
    train_settings set;         /* the normalisation */
    int channels;
    del_progress_fn progress;
    int64_t every;
    void *user;
    int running, ran;
};

DEL_API del_status del_policy_search_new(del_policy_search **out, const del_model *model, const del_dataset *labeled)
{
    static const char fn[] = "del_policy_search_new";
    if (!out)
        return train_error_null(fn, "out");
    *out = NULL;
    if (!model)
        return train_error_null(fn, "model");
    if (!labeled)
        return train_error_null(fn, "labeled");
    int c = 0, h = 0, w = 0;
    del_status st = del_model_input_shape(model, &c, &h, &w);
    if (st != DEL_OK)
        return train_error_as(st, fn);
    if ((st = del_check_images_fit(labeled, "labeled", c, h, w, "model", fn)) != DEL_OK)
        return st;
    if (c > MAX_CHANNELS)
        return train_error(DEL_EINVAL, "%s: 'model' takes %d channels; at most %d are supported", fn, c, MAX_CHANNELS);
    const int classes = del_model_classes(model);
    if (classes < 2)
        return train_error(DEL_EINVAL, "%s: 'model' must give a vector of at least 2 class scores per image", fn);
    if ((st = del_check_labeled_set(labeled, "labeled", classes, "model", fn)) != DEL_OK)
        return st;
    del_policy_search *s = calloc(1, sizeof *s);
    if (!s)
        return train_error(DEL_ENOMEM, "%s: out of memory", fn);
    if ((st = del_model_clone(&s->arch, model)) != DEL_OK) {
        free(s);
        return train_error_as(st, fn);
    }
    s->labeled = labeled;
    s->classes = classes;
    s->channels = c;
    const int n[3] = {1, 2, 3}, m[3] = {5, 9, 13};
    memcpy(s->n, n, sizeof n);
    memcpy(s->m, m, sizeof m);
    s->n_count = s->m_count = 3;
    s->per_class = 20;
    s->steps = 1000;
    s->pad = 2;
    s->flip = 0.5f;
    del_settings_defaults(&s->set);
    for (int i = 0; i < MAX_GRID * MAX_GRID; i++)
        s->accuracy[i] = NAN;
    *out = s;
    return DEL_OK;
}

DEL_API void del_policy_search_free(del_policy_search *s)
{
    if (!s)
        return;
    del_model_free(s->arch);
    free(s);
}

static del_status settable(const del_policy_search *s, const char *fn)
{
    if (!s)
        return train_error_null(fn, "s");
    if (s->running)
        return train_error(DEL_ESTATE, "%s: the search is running", fn);
    if (s->ran)
        return train_error(DEL_ESTATE, "%s: the search has run; make a new one", fn);
    return DEL_OK;
}

DEL_API del_status del_policy_search_set_grid(del_policy_search *s, const int *n, int n_count, const int *m,
                                              int m_count)
{
    static const char fn[] = "del_policy_search_set_grid";
    del_status st = settable(s, fn);
    if (st != DEL_OK)
        return st;
    if (!n)
        return train_error_null(fn, "n");
    if (!m)
        return train_error_null(fn, "m");
    if (n_count < 1 || n_count > MAX_GRID)
        return train_error(DEL_EINVAL, "%s: 'n_count' must be in 1..%d, got %d", fn, MAX_GRID, n_count);
    if (m_count < 1 || m_count > MAX_GRID)
        return train_error(DEL_EINVAL, "%s: 'm_count' must be in 1..%d, got %d", fn, MAX_GRID, m_count);
    for (int i = 0; i < n_count; i++)
        if (n[i] < 0 || n[i] > MAX_N)
            return train_error(DEL_EINVAL, "%s: 'n[%d]' is %d: N must be in 0..%d", fn, i, n[i], MAX_N);
    for (int i = 0; i < m_count; i++)
        if (m[i] < 0 || m[i] > MAX_M)
            return train_error(DEL_EINVAL, "%s: 'm[%d]' is %d: M must be in 0..%d", fn, i, m[i], MAX_M);
    memcpy(s->n, n, (size_t)n_count * sizeof *n);
    memcpy(s->m, m, (size_t)m_count * sizeof *m);
    s->n_count = n_count;
    s->m_count = m_count;
    return DEL_OK;
}

/* Every class of the labeled set keeps a training image after the
 * first per_class of each are held out. */
static del_status check_split(const del_policy_search *s, int per_class, const char *fn)
{
    int64_t *count = calloc((size_t)s->classes, sizeof *count);
    if (!count)
        return train_error(DEL_ENOMEM, "%s: out of memory", fn);
    const int64_t size = del_dataset_size(s->labeled);
    const int32_t *y = del_dataset_labels(s->labeled);
    for (int64_t i = 0; i < size; i++)
        if (y[i] >= 0)
            count[y[i]]++;
    del_status st = DEL_OK;
    for (int c = 0; c < s->classes && st == DEL_OK; c++)
        if (count[c] > 0 && count[c] <= per_class)
            st = train_error(DEL_EINVAL, "%s: class %d has %lld labeled images: holding out %d leaves none to train on",
                             fn, c, (long long)count[c], per_class);
    free(count);
    return st;
}

DEL_API del_status del_policy_search_set_validation(del_policy_search *s, int per_class)
{
    static const char fn[] = "del_policy_search_set_validation";
    del_status st = settable(s, fn);
    if (st != DEL_OK)
        return st;
    if (per_class < 1)
        return train_error(DEL_EINVAL, "%s: 'per_class' must be >= 1, got %d", fn, per_class);
    if ((st = check_split(s, per_class, fn)) != DEL_OK)
        return st;
    s->per_class = per_class;
    return DEL_OK;
}

DEL_API del_status del_policy_search_set_steps(del_policy_search *s, int64_t steps)
{
    static const char fn[] = "del_policy_search_set_steps";
    del_status st = settable(s, fn);
    if (st != DEL_OK)
        return st;
    if (steps < 1)
        return train_error(DEL_EINVAL, "%s: 'steps' must be >= 1, got %lld", fn, (long long)steps);
    s->steps = steps;
    return DEL_OK;
}

DEL_API del_status del_policy_search_set_crop_flip(del_policy_search *s, int pad, float flip_p)
{
    static const char fn[] = "del_policy_search_set_crop_flip";
    del_status st = settable(s, fn);
    if (st != DEL_OK)
        return st;
    if (pad < -1)
        return train_error(DEL_EINVAL, "%s: 'pad' must be >= 0, or -1 for no crop, got %d", fn, pad);
    if (!(flip_p >= 0.0f && flip_p <= 1.0f))
        return train_error(DEL_EINVAL, "%s: 'flip_p' must be in [0, 1], got %g", fn, (double)flip_p);
    s->pad = pad;
    s->flip = flip_p;
    return DEL_OK;
}

DEL_API del_status del_policy_search_set_seed(del_policy_search *s, uint64_t seed)
{
    static const char fn[] = "del_policy_search_set_seed";
    del_status st = settable(s, fn);
    if (st != DEL_OK)
        return st;
    s->seed = seed;
    return DEL_OK;
}

DEL_API del_status del_policy_search_set_normalize(del_policy_search *s, const float *mean, const float *std,
                                                   int channels)
{
    static const char fn[] = "del_policy_search_set_normalize";
    del_status st = settable(s, fn);
    if (st != DEL_OK)
        return st;
    return del_settings_normalize_for(s->channels, &s->set, mean, std, channels, fn);
}

DEL_API del_status del_policy_search_set_progress(del_policy_search *s, del_progress_fn fn_, int64_t every,
                                                  void *user)
{
    static const char fn[] = "del_policy_search_set_progress";
    if (!s)
        return train_error_null(fn, "s");
    if (s->running)
        return train_error(DEL_ESTATE, "%s: the search is running", fn);
    if (fn_ && every < 1)
        return train_error(DEL_EINVAL, "%s: 'every' must be >= 1, got %lld", fn, (long long)every);
    s->progress = fn_;
    s->every = every;
    s->user = user;
    return DEL_OK;
}

DEL_API int del_policy_search_num_cells(const del_policy_search *s)
{
    return s ? s->n_count * s->m_count : 0;
}

DEL_API del_status del_policy_search_cell(const del_policy_search *s, int i, int *n, int *m, double *accuracy)
{
    static const char fn[] = "del_policy_search_cell";
    if (!s)
        return train_error_null(fn, "s");
    const int cells = s->n_count * s->m_count;
    if (i < 0 || i >= cells)
        return train_error(DEL_EINVAL, "%s: 'i' must be in 0..%d, got %d", fn, cells - 1, i);
    if (n)
        *n = s->n[i / s->m_count];
    if (m)
        *m = s->m[i % s->m_count];
    if (accuracy)
        *accuracy = s->accuracy[i];
    return DEL_OK;
}

DEL_API del_status del_policy_search_best(const del_policy_search *s, int *n, int *m, double *accuracy)
{
    static const char fn[] = "del_policy_search_best";
    if (!s)
        return train_error_null(fn, "s");
    int best = -1;
    for (int i = 0; i < s->n_count * s->m_count; i++)
        if (!isnan(s->accuracy[i]) && (best < 0 || s->accuracy[i] > s->accuracy[best]))
            best = i;
    if (best < 0)
        return train_error(DEL_ESTATE, "%s: no cell has been scored yet", fn);
    return del_policy_search_cell(s, best, n, m, accuracy);
}

/* The split: the first per_class labeled images of each class validate,
 * the other labeled images train. */
static del_status split(const del_policy_search *s, del_dataset **train, del_dataset **val, const char *fn)
{
    const int64_t size = del_dataset_size(s->labeled);
    const int32_t *y = del_dataset_labels(s->labeled);
    int64_t *ti = malloc((size_t)size * sizeof *ti), *vi = malloc((size_t)size * sizeof *vi);
    int *seen = calloc((size_t)s->classes, sizeof *seen);
    del_status st = DEL_OK;
    if (!ti || !vi || !seen)
        st = train_error(DEL_ENOMEM, "%s: out of memory", fn);
    int64_t nt = 0, nv = 0;
    for (int64_t i = 0; st == DEL_OK && i < size; i++) {
        if (y[i] < 0)
            continue;
        if (seen[y[i]]++ < s->per_class)
            vi[nv++] = i;
        else
            ti[nt++] = i;
    }
    if (st == DEL_OK)
        st = del_dataset_subset(train, s->labeled, ti, nt);
    if (st == DEL_OK && (st = del_dataset_subset(val, s->labeled, vi, nv)) != DEL_OK) {
        del_dataset_free(*train);
        *train = NULL;
    }
    free(ti);
    free(vi);
    free(seen);
    return st;
}

typedef struct cell_progress {
    const del_policy_search *s;
    int cell;
} cell_progress;

static int on_progress(int64_t step, int64_t total, float loss, void *user)
{
    (void)total;
    const cell_progress *c = user;
    const del_policy_search *s = c->s;
    const int64_t cells = (int64_t)s->n_count * s->m_count;
    return s->progress((int64_t)c->cell * s->steps + step, cells * s->steps, loss, s->user);
}

/* Cell i: a fresh model trained on train with its pipeline, scored on val. */
static del_status run_cell(del_policy_search *s, int i, const del_dataset *train, const del_dataset *val)
{
    int n = 0, m = 0;
    del_policy_search_cell(s, i, &n, &m, NULL);
    del_model *model = NULL;
    del_augment *aug = NULL;
    del_trainer *tr = NULL;
    del_status st = del_model_clone(&model, s->arch);
    if (st == DEL_OK)
        st = del_model_init(model, s->seed);
    if (st == DEL_OK)
        st = del_augment_new(&aug);
    if (st == DEL_OK)
        st = del_augment_set_seed(aug, s->seed);
    if (st == DEL_OK && s->pad >= 0)
        st = del_augment_add_random_crop(aug, del_dataset_height(train), del_dataset_width(train), s->pad, 0);
    if (st == DEL_OK && s->flip > 0.0f)
        st = del_augment_add_flip_h(aug, s->flip);
    if (st == DEL_OK && n > 0)
        st = del_augment_add_randaugment(aug, n, m);
    if (st == DEL_OK)
        st = del_trainer_new_supervised(&tr, model, train);
    if (st == DEL_OK && del_augment_num_steps(aug) > 0)
        st = del_trainer_set_augment(tr, aug);
    if (st == DEL_OK)
        st = del_trainer_set_normalize(tr, s->set.mean, s->set.std, s->channels);
    if (st == DEL_OK)
        st = del_trainer_set_seed(tr, s->seed);
    cell_progress ctx = {s, i};
    if (st == DEL_OK && s->progress)
        st = del_trainer_set_progress(tr, on_progress, s->every, &ctx);
    if (st == DEL_OK)
        st = del_trainer_fit(tr, s->steps);
    double accuracy = NAN;
    if (st == DEL_OK)
        st = del_trainer_evaluate(tr, val, &accuracy);
    if (st == DEL_OK)
        s->accuracy[i] = accuracy;
    del_trainer_free(tr);
    del_augment_free(aug);
    del_model_free(model);
    return st;
}

DEL_API del_status del_policy_search_run(del_policy_search *s)
{
    static const char fn[] = "del_policy_search_run";
    del_status st = settable(s, fn);
    if (st != DEL_OK)
        return st;
    if ((st = check_split(s, s->per_class, fn)) != DEL_OK)
        return st;
    del_dataset *train = NULL, *val = NULL;
    if ((st = split(s, &train, &val, fn)) != DEL_OK)
        return train_error_as(st, fn);
    s->running = 1;
    for (int i = 0; st == DEL_OK && i < s->n_count * s->m_count; i++)
        st = run_cell(s, i, train, val);
    s->running = 0;
    s->ran = 1;
    del_dataset_free(train);
    del_dataset_free(val);
    return st == DEL_ECANCELED ? st : train_error_as(st, fn);
}
