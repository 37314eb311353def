/* Internal to src/train/: the shared training loop's record, its data
 * streams, and the objective table every technique plugs into.
 *
 * A trainer is a loop (loop.c: fit, step, progress, non-finite checks,
 * the optimizer), up to DEL_NSTREAMS data streams (streams.c: each its own
 * dataset rows, batch order, batch size, pipeline, prefetched slots), the
 * settings (trainer_settings.c), checkpoints (trainer_checkpoint.c) and
 * one objective: a table of functions (the layer and backend tables'
 * style) with its own state blob, which turns a step's batches into
 * losses and gradients. The supervised trainer is one short objective
 * (supervised.c). */
#ifndef DEL_TRAIN_TRAINER_INTERNAL_H
#define DEL_TRAIN_TRAINER_INTERNAL_H

#include "del.h"
#include "prefetch.h"

#define MAX_CHANNELS 3 /* of the images a trainer normalises */

/* The data streams a step can draw from. */
enum {
    DEL_STREAM_L = 0, /* labeled images */
    DEL_STREAM_U = 1, /* unlabeled (or pseudo-labeled) images */
    DEL_NSTREAMS = 2
};

/* A place in a stream's batch order: the epoch and the next position in
 * its permutation (pool_n: the epoch is used up). */
typedef struct order_cursor {
    int64_t epoch;
    int64_t pos;
} order_cursor;

/* One prepared batch of one stream. */
typedef struct batch_slot {
    del_tensor *x;
    del_tensor *y;      /* i32 [batch] labels, without a pipeline (NULL in an unlabeled stream) */
    del_tensor *soft;   /* f32 [batch, outputs] soft labels, with one (NULL in an unlabeled stream) */
    del_tensor *x2;     /* the second view of the same images (the stream's aug2), or NULL */
    int64_t *idx;       /* dataset rows */
    int64_t *epochs;    /* the epoch each image was drawn in */
    order_cursor after; /* the stream's order once this batch is drawn */
} batch_slot;

/* A data stream: batches of `batch` rows of `data` drawn without
 * replacement from `pool`, a fresh permutation each epoch keyed by (seed,
 * epoch, order_key). */
typedef struct train_stream {
    const del_dataset *data; /* NULL: the stream is not used */
    int labeled;             /* 1: its rows are labeled images, whose labels the batches carry */
    uint64_t order_key;
    int64_t *pool;           /* dataset rows the stream draws from */
    int64_t pool_n;
    int64_t *perm;           /* permutation of epoch perm_epoch, as positions in pool */
    int64_t perm_epoch;      /* -1: none yet */
    order_cursor order;      /* after the last finished step */
    order_cursor draw;       /* the producer's, during a fit */
    int batch;
    del_augment *aug;        /* borrowed; NULL: images as they are */
    del_augment *aug2;       /* borrowed; non-NULL: each slot also gets a second view, x2 */
    batch_slot slots[DEL_PREFETCH_MAX_SLOTS];
    int nslots;              /* allocated, for slot_batch images with slot_soft labels */
    int slot_batch, slot_soft, slot_view2;
} train_stream;

/* The trainer's settings, each checked by its setter. A checkpoint's
 * settings are checked on a copy (del_trainer_load_checkpoint) and applied
 * only when every one of them passed. */
typedef struct train_settings {
    int use_adamw; /* else SGD; the adam_* fields are set with it */
    float lr, momentum, weight_decay;
    int nesterov;
    float adam_lr, beta1, beta2, adam_eps, adam_weight_decay;
    del_schedule schedule;
    int64_t step_size;
    float gamma;
    int64_t warmup;
    float clip_norm;
    float smoothing;
    float mean[MAX_CHANNELS], std[MAX_CHANNELS];
    int64_t total_steps; /* 0: a fresh optimizer per fit */
    del_nonfinite nonfinite;
} train_settings;

/* A live teacher's distillation term (teacher.c): the distillation
 * objective's, or one attached to a trainer of a labeled head
 * (del_trainer_add_teacher: supervised, fine-tuning, LwF). With stored soft
 * labels (a distillation trainer without a live teacher) only the
 * settings and the scratch are used. */
typedef struct teacher_term {
    del_model *teacher;   /* borrowed; NULL: stored soft labels */
    float temperature;
    float kd_weight, ce_weight;
    int t2;               /* 1: the T² factor (Hinton's), 0: without it */
    int training;         /* 1: the teacher's batchnorm and dropout in training mode */
    int norm;             /* 1: the teacher has its own normalisation */
    float t_mean[MAX_CHANNELS], t_std[MAX_CHANNELS];
    del_tensor *tx;       /* the batch as the teacher sees it */
    del_tensor *tlogits;  /* the teacher's logits (or stored probabilities) of the batch */
    del_tensor *g_kd, *g_ce; /* d loss / d student logits of each term */
} teacher_term;

/* What an objective's step gets: the model and, per stream it asked for,
 * the step's batch (NULL for the others). */
typedef struct train_step_in {
    del_model *model;
    const batch_slot *in[DEL_NSTREAMS];
    int64_t step;  /* 1-based, since the trainer was made or its seed set */
} train_step_in;

/* A technique. Entries marked optional may be NULL; test_objectives walks
 * every table and rejects a missing required entry. */
typedef struct del_objective {
    /* Its name: checkpoints' trainer record, messages. */
    const char *name;
    /* 1u << DEL_STREAM_*: the streams it can use; the loop feeds each step
     * those the constructor set up (at least one). */
    unsigned streams;
    /* Size of its state blob, zeroed and owned by the trainer. */
    size_t state_size;
    /* Required. Sets up the state once the trainer's model and streams are
     * in place; on failure release is still called. */
    del_status (*init)(void *state, del_trainer *tr, const char *fn);
    /* Optional. Frees what init and later calls allocated in the state. */
    void (*release)(void *state);
    /* Optional. Runs at the start of every fit (or del_trainer_step), in
     * training mode, before the first batch is used. */
    del_status (*begin_fit)(void *state, del_trainer *tr, int64_t steps, const char *fn);
    /* Required. Forward passes, losses and backward for one step: adds the
     * gradients into del_model_grads (zeroed by the loop) and writes the
     * step's total loss; the loop checks it, the gradients and the
     * statistics, and steps the optimizer. */
    del_status (*step)(void *state, del_trainer *tr, const train_step_in *in, float *loss, const char *fn);
    /* Optional. Adds the technique's own state to a checkpoint being
     * written (fields named after it, its tensors and models). */
    del_status (*save)(const void *state, const del_trainer *tr, del_checkpoint *ck, const char *fn);
    /* Optional. Checks a checkpoint's record of that state and takes it;
     * runs after every other check of del_trainer_load_checkpoint and
     * leaves the state unchanged when it fails. */
    del_status (*load)(void *state, del_trainer *tr, const del_checkpoint *ck, const char *fn);
} del_objective;

struct del_trainer {
    const del_objective *obj;
    void *state; /* obj->state_size bytes */
    del_model *model;
    int channels, height, width; /* of the model's input, and every stream's images */
    int num_outputs;             /* of the head the trainer trains on labels */
    char task_head[32];          /* that head's name; empty: the model's first head */

    train_stream streams[DEL_NSTREAMS];
    int64_t steps_done; /* since creation or set_seed: the next batch number */
    int prefetch;

    del_augment *aug_unlabeled; /* stored for the unlabeled stream */

    train_settings set;
    uint64_t seed;
    del_optimizer *opt; /* kept across fits when total_steps > 0; NULL before the first */
    int64_t opt_params; /* the model's parameter count when opt was made */

    del_progress_fn progress;
    int64_t every;
    void *user;

    int fitting; /* setters refuse to change a running fit */
    double wait_s, step_s; /* of the last or current fit: waiting for batches, computing steps */

    teacher_term *teacher; /* attached by del_trainer_add_teacher; NULL: none */

    /* An exponential moving average of the weights, updated after every
     * step and scored by del_trainer_evaluate (del_trainer_set_ema). */
    del_model *ema;
    float ema_decay;

    /* Non-finite steps: the model's buffers and parameters as they were
     * before the current step, restored when it goes non-finite. */
    int64_t skipped; /* steps skipped since creation or set_seed */
    float *saved_buffers, *saved_params;
    int64_t saved_nbuf, saved_nparams;
};

/* ---- loop.c ---- */

/* A trainer for obj on model (its input and output shape checked: a
 * vector of class scores), with the default settings and no stream yet;
 * the caller adds streams (del_stream_init) and then calls
 * del_trainer_start, which runs obj->init. */
del_status del_trainer_create(del_trainer **out, const del_objective *obj, del_model *model, const char *fn);

/* st itself, except that DEL_ENOMEM from a call the trainer made is
 * reported under fn's name, the callee's message kept as the reason. */
del_status del_trainer_own_enomem(del_status st, const char *fn);

/* Runs the objective's init once the streams are set; on failure the
 * caller frees the trainer. */
del_status del_trainer_start(del_trainer *tr, const char *fn);

/* *t as an f32 [rows, cols] tensor: kept when it has that shape, else
 * made anew (the old one kept on failure). For objectives' scratch. */
del_status del_trainer_ensure_matrix(del_tensor **t, int64_t rows, int64_t cols);

/* *t as a tensor of like's dtype and shape, kept when it has them. */
del_status del_trainer_ensure_like(del_tensor **t, const del_tensor *like);

/* A constructor's last part: del_trainer_start when st is DEL_OK, then
 * *out = tr; on any failure tr is freed and st returned (under fn's name
 * when out of memory). */
del_status del_trainer_finish(del_trainer **out, del_trainer *tr, del_status st, const char *fn);

/* For the setters of a technique: *state is tr's objective state when tr
 * runs objective a or b (b may be NULL); else DEL_EINVAL "'setting' does
 * not apply to a ... trainer". DEL_ESTATE during a fit. */
del_status del_trainer_state_of(del_trainer *tr, const del_objective *a, const del_objective *b, void **state,
                                const char *setting, const char *fn);

/* The checks of a constructor that gives model a new task's head before
 * it makes the trainer: num_classes >= 1, labeled's images fit the model,
 * every label below num_classes. */
del_status del_check_new_task(const del_model *model, const del_dataset *labeled, int num_classes, const char *fn);

/* The class count of a model whose output is one vector of scores per
 * image; 0 for any other model. */
int del_model_classes(const del_model *model);

/* For the drivers over trainers (Noisy Student, the policy search): ds
 * (called arg in messages) has c x h x w images, the input of the model
 * called model_arg; and, for del_check_labeled_set, a labeled image and no
 * label at or above that model's `classes` outputs. DEL_EINVAL otherwise. */
del_status del_check_images_fit(const del_dataset *ds, const char *arg, int c, int h, int w, const char *model_arg,
                                const char *fn);
del_status del_check_labeled_set(const del_dataset *ds, const char *arg, int classes, const char *model_arg,
                                 const char *fn);

/* A new optimizer for `steps` steps (a fit's, or the run's total) of
 * model, from the settings s. */
del_status del_trainer_make_optimizer(del_model *model, const train_settings *s, int64_t steps,
                                      del_optimizer **out);

/* ---- streams.c ---- */

/* Sets stream s to draw from the rows of data that `labeled` selects
 * (1: labels >= 0, 0: every row), with batch size min(batch, rows).
 * Refuses images that do not match the model's input, and a pool with no
 * row. Errors: DEL_EINVAL (the message names `arg`), DEL_ENOMEM. */
del_status del_stream_init(del_trainer *tr, int s, const del_dataset *data, int labeled, int batch, const char *arg,
                           const char *fn);
void del_stream_release(train_stream *st);

/* Makes n slots in every used stream for its batch size, with soft labels
 * when it has a pipeline; slots that fit are kept. */
del_status del_streams_ensure_slots(del_trainer *tr, int n, const char *fn);

/* The prefetcher's fill: draws and prepares slot `slot` of every stream
 * the objective uses, for global step `step`. */
del_status del_streams_fill(void *ctx, int slot, int64_t step);

/* Back to the start of the batch order (a new seed). */
void del_streams_rewind(del_trainer *tr);

/* Checks that aug runs on the trainer's images and keeps their size. */
del_status del_stream_check_pipeline(const del_trainer *tr, const del_augment *aug, const char *func,
                                     const char *arg);

/* ---- trainer_checkpoint.c ---- */

/* A required field of a trainer record: DEL_EFORMAT ("corrupt, lacks
 * key") when ck has no such field of that type. For the objectives' load. */
del_status del_trainer_read_i64(const del_checkpoint *ck, const char *key, int64_t *v, const char *fn);
del_status del_trainer_read_f32(const del_checkpoint *ck, const char *key, float *v, const char *fn);

/* ---- trainer_settings.c ---- */

/* DEL_ESTATE while a fit runs (the setters' first check), DEL_EINVAL for
 * a NULL trainer. */
del_status del_trainer_check_settable(const del_trainer *tr, const char *func);

/* The defaults of every trainer (include/del/train.h). */
void del_settings_defaults(train_settings *s);

/* The settings checks: each checks its values and writes them into s, or
 * leaves s as it was and returns DEL_EINVAL with a message starting with
 * fn. */
del_status del_settings_sgd(train_settings *s, float lr, float momentum, float weight_decay, int nesterov,
                            const char *fn);
del_status del_settings_adamw(train_settings *s, float lr, float beta1, float beta2, float eps, float weight_decay,
                              const char *fn);
del_status del_settings_schedule(train_settings *s, del_schedule kind, const char *fn);
del_status del_settings_step_schedule(train_settings *s, int64_t step_size, float gamma, const char *fn);
del_status del_settings_warmup(train_settings *s, int64_t warmup_steps, const char *fn);
del_status del_settings_clip_norm(train_settings *s, float max_norm, const char *fn);
del_status del_settings_label_smoothing(train_settings *s, float smoothing, const char *fn);
del_status del_settings_total_steps(train_settings *s, int64_t total_steps, const char *fn);
del_status del_settings_normalize(train_settings *s, const float *mean, const float *std, int channels,
                                  const char *fn);
del_status del_settings_nonfinite(train_settings *s, del_nonfinite policy, const char *fn);

/* del_settings_normalize with the public setters' argument checks (NULL
 * mean or std, channels other than image_channels, the images'). */
del_status del_settings_normalize_for(int image_channels, train_settings *s, const float *mean, const float *std,
                                      int channels, const char *fn);

/* ---- teacher.c ---- */

/* A teacher for tr's task head: another model than tr's, taking tr's
 * images and giving a vector of tr->num_outputs class scores. */
del_status del_teacher_check(const del_trainer *tr, const del_model *teacher, const char *fn);

/* The defaults of a term of teacher (may be NULL): T, kd and CE weights
 * as given, T² on, evaluation mode, the student's normalisation. */
void del_teacher_defaults(teacher_term *t, del_model *teacher, float temperature, float kd_weight);

/* Frees the term's scratch (not the teacher, which is borrowed). */
void del_teacher_release(teacher_term *t);

/* The teacher's logits of x (a batch normalised for tr's model) into
 * t->tlogits: x in the teacher's own normalisation when it has one, the
 * teacher in the term's mode. */
del_status del_teacher_logits(teacher_term *t, const del_trainer *tr, const del_tensor *x);

/* The cross-entropy of a labeled batch b on logits z (its mixed soft
 * labels, smoothed in place per the settings, or its hard labels with
 * label smoothing): loss and d loss / dz into grad ([n, K], made). */
del_status del_task_ce(const del_trainer *tr, const batch_slot *b, const del_tensor *z, float *loss,
                       del_tensor *grad);

/* The loss of the trained head's logits z on labeled batch b: del_task_ce,
 * and with a teacher attached, kd_w · T² KL(softmax_T(teacher) ‖
 * softmax_T(z)) (batch mean) + ce_w · CE on the same images. grad as
 * del_task_ce (a tensor of the caller's, [n, K]). */
del_status del_task_loss(del_trainer *tr, const batch_slot *b, const del_tensor *z, float *loss, del_tensor *grad);

/* A term's settings into ck, keys prefix_*; the teacher as model `model`
 * when its batchnorm trains. */
del_status del_teacher_save(const teacher_term *t, const char *prefix, const char *model, int channels,
                            del_checkpoint *ck);

/* Reads and checks a term's record (keys prefix_*) for the live term cur
 * into *out (settings only; scratch and teacher as cur's): DEL_EFORMAT out
 * of range, DEL_EINVAL when it needs a live teacher cur lacks or its
 * stored teacher does not fit cur's. Changes nothing. */
del_status del_teacher_read(teacher_term *out, const teacher_term *cur, const char *prefix, const char *model,
                            int channels, const del_checkpoint *ck, const char *fn);

/* Takes what del_teacher_read checked: the settings, and the teacher's
 * stored weights and statistics (cannot fail once checked). */
void del_teacher_take(teacher_term *t, const teacher_term *read, const char *model, const del_checkpoint *ck);

/* The attached teacher of a trainer (del_trainer_add_teacher), or
 * DEL_EINVAL naming the setting: "'setting' applies to a ... trainer only
 * with a teacher". DEL_ESTATE during a fit. */
del_status del_teacher_of(del_trainer *tr, teacher_term **t, const char *setting, const char *fn);

/* ---- the objectives ---- */

/* The supervised objective's state, which the objectives built on it
 * (fine-tuning) embed. */
typedef struct supervised_state {
    del_tensor *grad; /* d loss / d logits of the batch */
} supervised_state;

extern const del_objective del_objective_supervised;
extern const del_objective del_objective_finetune;
extern const del_objective del_objective_distill;
extern const del_objective del_objective_lwf;
extern const del_objective del_objective_pseudo_label;
extern const del_objective del_objective_consistency;

/* LwF's share of the settings it has in common with other techniques
 * (the values checked by the public setter). */
del_status del_lwf_set_temperature(del_trainer *tr, float temperature);
del_status del_lwf_set_warmup(del_trainer *tr, int64_t steps);
del_status del_lwf_set_t2(del_trainer *tr, int on);

/* The registry: every objective, NULL-terminated (objectives.c). */
extern const del_objective *const del_objectives[];

/* ---- pseudo_label.c ---- */

/* Turns a fresh pseudo-label trainer tr into Noisy Student's student
 * objective: the targets of the unlabeled stream are its dataset's stored
 * soft labels (K = the model's outputs), weighted by weight from the first
 * step, no ramp. DEL_EINVAL when the set has no such soft labels. */
del_status del_pseudo_label_use_stored(del_trainer *tr, float weight, const char *fn);

#endif
