/* libdel — optimizers and trainers.
 *
 * Threading: an optimizer or trainer is used by one thread at a time, and
 * so is the model it updates while it works. During del_trainer_fit the
 * trainer also runs one internal prefetch thread of its own (see
 * del_trainer_set_prefetch) that reads the dataset and the augmentation
 * pipeline; it never calls user code. */
#ifndef DEL_TRAIN_H
#define DEL_TRAIN_H

#include "common.h"
#include "tensor.h"
#include "data.h"
#include "model.h"
#include "augment.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Learning-rate schedules, t = steps taken since the warm-up ended (see
 * del_optimizer_set_warmup), T = total_steps minus the warm-up steps. */
typedef enum del_schedule {
    DEL_SCHEDULE_CONSTANT = 0, /* lr stays at the base value */
    DEL_SCHEDULE_COSINE = 1,   /* lr_t = final + (base - final) * (1 + cos(pi * t / T)) / 2 */
    DEL_SCHEDULE_STEP = 2      /* lr_t = base * gamma^floor(t / step_size), as torch's StepLR
                                  (set with del_optimizer_set_step_schedule) */
} del_schedule;

typedef struct del_optimizer del_optimizer;

/* Optimizers follow the model's parameter groups (del_model_freeze,
 * del_model_set_lr_mult): each step updates only the parameters of
 * trainable layers, each with the step's lr times its layer's multiplier;
 * frozen parameters, their state (momentum, Adam moments) and their weight
 * decay are left alone, and gradient clipping measures the trainable
 * gradients only. The groups are read at every step, so freezing,
 * unfreezing or changing multipliers applies from the next step; a layer
 * unfrozen after it was frozen at creation starts from zero state (for SGD
 * exactly torch's first step; AdamW's bias correction counts this
 * optimizer's steps). */

/* Creates an SGD optimizer over all parameters of model (which must outlive
 * it), as PyTorch's torch.optim.SGD. Once layers with parameters are added
 * to the model, or a head is replaced or removed, del_optimizer_step fails:
 * make a new optimizer then.
 *   g = grad + weight_decay * p;  v = momentum * v + g  (v = g at step 0);
 *   p -= lr * (nesterov ? g + momentum * v : v).
 * Errors: DEL_EINVAL (NULL argument, model without parameters, lr <= 0,
 * momentum outside [0, 1), weight_decay < 0, nesterov with momentum 0),
 * DEL_ENOMEM. */
DEL_API del_status del_optimizer_new_sgd(del_optimizer **out, del_model *model, float lr, float momentum, float weight_decay, int nesterov);

/* Creates an AdamW optimizer over all parameters of model (same rules as
 * del_optimizer_new_sgd), as PyTorch's torch.optim.AdamW (amsgrad off):
 * at step t = 1, 2, ...
 *   p *= 1 - lr * weight_decay;  m = beta1 * m + (1 - beta1) * g;
 *   v = beta2 * v + (1 - beta2) * g^2;
 *   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
 * Errors: DEL_EINVAL (NULL argument, model without parameters, lr <= 0,
 * beta1 or beta2 outside [0, 1), eps <= 0, weight_decay < 0), DEL_ENOMEM. */
DEL_API del_status del_optimizer_new_adamw(del_optimizer **out, del_model *model, float lr, float beta1, float beta2, float eps, float weight_decay);

/* Frees opt. del_optimizer_free(NULL) is a no-op. */
DEL_API void del_optimizer_free(del_optimizer *opt);

/* Sets the learning-rate schedule over total_steps steps (warm-up
 * included), ending at final_lr (ignored for DEL_SCHEDULE_CONSTANT). After
 * total_steps the lr stays at final_lr. DEL_SCHEDULE_STEP has its own
 * setter. Errors: DEL_EINVAL (NULL opt, unknown kind or
 * DEL_SCHEDULE_STEP, total_steps < 1, final_lr < 0). */
DEL_API del_status del_optimizer_set_schedule(del_optimizer *opt, del_schedule kind, int64_t total_steps, float final_lr);

/* Selects DEL_SCHEDULE_STEP: the lr is multiplied by gamma every step_size
 * steps (counted after the warm-up) and never stops decaying.
 * Errors: DEL_EINVAL (NULL opt, step_size < 1, gamma <= 0 or not finite). */
DEL_API del_status del_optimizer_set_step_schedule(del_optimizer *opt, int64_t step_size, float gamma);

/* Linear warm-up over the first warmup_steps steps: step t (0-based) uses
 * base * (t + 1) / warmup_steps, so the last warm-up step uses the full
 * base lr; the schedule then runs over the remaining steps. 0 (the
 * default) turns it off. Errors: DEL_EINVAL (NULL opt, warmup_steps < 0). */
DEL_API del_status del_optimizer_set_warmup(del_optimizer *opt, int64_t warmup_steps);

/* Clips gradients by their global norm inside each step, as
 * torch.nn.utils.clip_grad_norm_: norm = the L2 norm over all gradients
 * (summed in double, in parameter order); if max_norm / (norm + 1e-6) < 1
 * the step uses the gradients times that factor. The model's gradients
 * are not modified. Non-finite gradients are not repaired. max_norm 0 (the
 * default) turns clipping off.
 * Errors: DEL_EINVAL (NULL opt, max_norm < 0 or not finite). */
DEL_API del_status del_optimizer_set_clip_norm(del_optimizer *opt, float max_norm);

/* The global gradient norm measured by the last step, before clipping
 * (what clip_grad_norm_ returns); 0 if clipping is off, before the first
 * step, or if opt is NULL. */
DEL_API double del_optimizer_grad_norm(const del_optimizer *opt);

/* Applies one update from the model's current gradients with the learning
 * rate of the current step, then advances the step. Gradients are left as
 * they are. Errors: DEL_EINVAL (NULL opt), DEL_ESTATE (since the
 * optimizer was made, layers with parameters were added to the model, or
 * its layers were removed or replaced, e.g. a head: the message says
 * which; make a new optimizer). */
DEL_API del_status del_optimizer_step(del_optimizer *opt);

/* The learning rate the next step will use (0 if opt is NULL). */
DEL_API float del_optimizer_lr(const del_optimizer *opt);

/* Steps taken so far (0 if opt is NULL). */
DEL_API int64_t del_optimizer_steps(const del_optimizer *opt);

typedef struct del_trainer del_trainer;

/* Progress callback: called on the thread that runs del_trainer_fit, after
 * step `step` (1-based) of `total`, with the mean training loss of the
 * steps since the previous call. Return 0 to go on, non-zero to stop
 * (del_trainer_fit then returns DEL_ECANCELED, with the model as it is
 * after that step). */
typedef int (*del_progress_fn)(int64_t step, int64_t total, float loss, void *user);

/* Creates a supervised trainer: minibatch SGD (or AdamW) with softmax
 * cross-entropy on the labeled images of `labeled` (images labeled -1 are
 * skipped), on the images as they are or through an augmentation pipeline
 * (del_trainer_set_augment).
 * model and labeled are borrowed and must outlive the trainer.
 * Defaults (FMNIST-1k, SPEC §5): batch 64, SGD with lr 0.05, momentum 0.9,
 * Nesterov, weight decay 5e-4, cosine schedule to 0 over each fit, no
 * warm-up, no clipping, no label smoothing, seed 0, normalisation mean
 * 0.2860 / std 0.3530 for every channel.
 * Batches are drawn without replacement from a fresh permutation each
 * epoch (derived from the seed and the epoch), continuing across fits.
 * Errors: DEL_EINVAL (NULL argument, the dataset has no labeled image, its
 * image shape differs from the model's input, a label >= the model's
 * number of outputs), DEL_ENOMEM. */
DEL_API del_status del_trainer_new_supervised(del_trainer **out, del_model *model, const del_dataset *labeled);

/* Frees trainer. del_trainer_free(NULL) is a no-op. */
DEL_API void del_trainer_free(del_trainer *trainer);

/* Transfer learning (SPEC §1.2): how much of a pre-trained model trains. */
typedef enum del_finetune_mode {
    DEL_FINETUNE_LINEAR_PROBE = 0, /* only the new head; the backbone frozen (its batchnorm on running statistics) */
    DEL_FINETUNE_FULL = 1          /* everything, the backbone at a learning-rate multiplier (default 0.1) */
} del_finetune_mode;

/* Creates a fine-tuning trainer: model (a pre-trained model, e.g. from
 * del_model_load of a file another program saved) gets a new classifier
 * for num_classes classes, then trains on the labeled images of labeled
 * (labels 0..num_classes-1) as the supervised trainer does, with all its
 * settings and defaults. The model is changed here, as a PyTorch user
 * replaces model.fc: a model without heads has its last layer (which must
 * be linear) split off as a head called "head" (del_model_split_head);
 * then the first head is replaced by "linear num_classes"
 * (del_model_replace_head: fresh weights from the model's seed). A probe
 * freezes the backbone (del_model_freeze: no gradients below the head,
 * batchnorm on its running statistics); full fine-tuning sets the
 * backbone's learning-rate multiplier (del_trainer_set_backbone_lr_mult)
 * and may first train the head alone (del_trainer_set_head_warmup). The
 * groups stay set on the model after training. model and labeled are
 * borrowed and must outlive the trainer.
 * Errors: DEL_EINVAL (NULL argument, mode unknown, num_classes < 1, a
 * label >= num_classes, images that do not fit the model, a model without
 * heads whose last layer is not linear or is its only layer) with the
 * model unchanged; DEL_ENOMEM (the model may then have its classifier
 * split off as a head). */
DEL_API del_status del_trainer_new_finetune(del_trainer **out, del_model *model, const del_dataset *labeled, int num_classes, del_finetune_mode mode);

/* The learning-rate multiplier of the backbone in full fine-tuning (mult
 * finite > 0, default 0.1: torchvision's "backbone at 0.1x the head"),
 * set on the model's groups at once. Errors: DEL_EINVAL (NULL trainer,
 * not a fine-tuning trainer, a linear probe, mult out of range),
 * DEL_ESTATE (during a fit). */
DEL_API del_status del_trainer_set_backbone_lr_mult(del_trainer *trainer, float mult);

/* Full fine-tuning and LwF: the first `steps` steps (counted from the
 * trainer's creation or seed, across fits) train the new head alone on a
 * frozen backbone (and, for LwF, a frozen old head and no distillation
 * term), then the whole model trains (0: no warm-up, the default).
 * Errors: DEL_EINVAL (NULL trainer, not a fine-tuning or LwF trainer,
 * steps < 0, a warm-up on a linear probe), DEL_ESTATE (during a fit). */
DEL_API del_status del_trainer_set_head_warmup(del_trainer *trainer, int64_t steps);

/* Creates a knowledge-distillation trainer (SPEC §1.3, Hinton et al.
 * 2015): student learns from teacher's temperature-softened outputs on
 * every image of a step (a batch of labeled, of the unlabeled transfer
 * set, or one of each) and from the hard labels of the labeled ones:
 *   loss = w_kd * mean over the step's images of T^2 KL(softmax_T(t) || softmax_T(s))
 *        + w_ce * CE(labels, s) over the labeled images
 * (del_loss_distill; w_kd = alpha, w_ce = 1 - alpha; defaults T = 4,
 * alpha = 0.9, T^2 on). labeled (its labeled images) or transfer (all its
 * images, labels unused) may be NULL, not both: alpha = 1 with transfer
 * alone trains on unlabeled images only. Batches: 64 from each stream
 * (del_trainer_set_batch_size, del_trainer_set_unlabeled_batch_size). The
 * teacher sees exactly the student's augmented batch (the labeled
 * stream's del_trainer_set_augment, the transfer stream's
 * del_trainer_set_augment_unlabeled), normalised with its own mean and std
 * when del_trainer_set_teacher_normalize gave them, and runs in evaluation
 * mode (del_trainer_set_teacher_training for its batchnorm in training
 * mode); it is never updated. Student and teacher may differ in
 * architecture but take the same images and give the same classes. The
 * models and datasets are borrowed and must outlive the trainer; the
 * teacher must not be used elsewhere during a fit. teacher NULL distils
 * from stored soft labels instead: each dataset given must carry the
 * teacher's probabilities (del_dataset_set_soft_labels, e.g. a tensor
 * file of del_model_predict's softmax), softened at T as
 * softmax(log p / T) (DEL_DISTILL_TEACHER_PROBS); a pipeline's image
 * steps then change the images, not their stored rows, and CutMix/MixUp
 * mix the hard labels only. All other settings are
 * the supervised trainer's (label smoothing and CutMix/MixUp apply to the
 * hard-label term; the teacher sees the mixed images).
 * Errors: DEL_EINVAL (NULL out or student, both datasets NULL,
 * teacher == student, images or class counts that differ, no teacher and
 * a dataset without soft labels of the student's classes, a label the
 * student has no output for, images that do not fit), DEL_ENOMEM. */
DEL_API del_status del_trainer_new_distill(del_trainer **out, del_model *student, del_model *teacher, const del_dataset *labeled, const del_dataset *transfer);

/* Adds a live teacher to a supervised, fine-tuning or LwF trainer
 * (composition: fine-tune + KD, LwF + a distillation teacher, KD with any
 * pipeline): the loss of the head the trainer trains on labels (the model's
 * output; LwF's new head) becomes
 *   alpha * T^2 KL(softmax_T(teacher) || softmax_T(head)) + (1 - alpha) * CE(labels, head)
 * (each the mean over the labeled batch; LwF adds its old-head term to
 * it), the teacher seeing exactly the batch the model sees (augmented,
 * CutMix/MixUp-mixed; the CE term takes the mixed, label-smoothed labels).
 * As for a distillation trainer, the teacher runs in evaluation mode, is
 * never updated, may differ in architecture, and del_trainer_set_distill_alpha,
 * _weights, _t2, del_trainer_set_teacher_training and _normalize change
 * the term (del_trainer_set_temperature too, except on an LwF trainer,
 * where it sets LwF's own T). temperature finite > 0 (Hinton: 4), alpha in
 * [0, 1]. teacher is borrowed, must outlive the trainer and not be used
 * elsewhere during a fit. Checkpoints record the term (and the teacher
 * when its batchnorm trains); a trainer with a teacher loads only
 * checkpoints of one with a teacher, and the other way round.
 * Errors: DEL_EINVAL (NULL trainer or teacher, a distillation trainer,
 * a trainer that has a teacher already, teacher the trained model, a
 * teacher whose images or class count differ from the trained head's,
 * temperature or alpha out of range), DEL_ESTATE (during a fit),
 * DEL_ENOMEM. */
DEL_API del_status del_trainer_add_teacher(del_trainer *trainer, del_model *teacher, float temperature, float alpha);

/* alpha in [0, 1]: w_kd = alpha, w_ce = 1 - alpha (default 0.9), for a
 * distillation trainer or a trainer given a teacher (del_trainer_add_teacher).
 * Errors: DEL_EINVAL (NULL trainer, neither such trainer, alpha out
 * of range), DEL_ESTATE (during a fit). */
DEL_API del_status del_trainer_set_distill_alpha(del_trainer *trainer, float alpha);

/* The two weights independently (finite, >= 0, not both 0), as
 * torchdistill's and timm's separate loss factors.
 * Errors: as del_trainer_set_distill_alpha. */
DEL_API del_status del_trainer_set_distill_weights(del_trainer *trainer, float kd_weight, float ce_weight);

/* The temperature T (finite > 0) of a distillation trainer (default 4),
 * of an LwF trainer's old-head term (default 2), or of the teacher given to
 * another trainer (del_trainer_add_teacher).
 * Errors: as del_trainer_set_distill_alpha (none of these trainers). */
DEL_API del_status del_trainer_set_temperature(del_trainer *trainer, float temperature);

/* on = 1 (default): the KL term is multiplied by T^2 (Hinton: keeps the
 * gradient's scale independent of T); 0: without it (as Avalanche's and
 * FACIL's LwF). For distillation trainers, LwF's old-head term, and a
 * teacher given to another trainer (del_trainer_add_teacher).
 * Errors: as del_trainer_set_distill_alpha (none of these trainers, on not
 * 0 or 1). */
DEL_API del_status del_trainer_set_distill_t2(del_trainer *trainer, int on);

/* training = 1 runs the teacher in training mode (batch statistics, which
 * update its running statistics, and dropout); 0 (default): evaluation
 * mode. Errors: as del_trainer_set_distill_alpha; no live teacher. */
DEL_API del_status del_trainer_set_teacher_training(del_trainer *trainer, int training);

/* The teacher's own input normalisation (mean, std per channel, as
 * del_trainer_set_normalize), for a teacher trained on differently
 * normalised images; by default it sees the student's input.
 * Errors: as del_trainer_set_normalize; neither a distillation trainer nor
 * one given a teacher; no live teacher. */
DEL_API del_status del_trainer_set_teacher_normalize(del_trainer *trainer, const float *mean, const float *std, int channels);

/* Images per step of the unlabeled stream (the transfer set of a
 * distillation, default 64; a pseudo-label trainer's, default 256; at most
 * its size). Errors: DEL_EINVAL (NULL trainer, a trainer without that
 * stream, out of range), DEL_ESTATE (during a fit). */
DEL_API del_status del_trainer_set_unlabeled_batch_size(del_trainer *trainer, int batch_size);

/* Creates a Learning-without-Forgetting trainer (SPEC §1.4, Li & Hoiem
 * 2018): model (pre-trained on an old task) keeps its old head, gets a new
 * head "linear num_classes" called new_head, and trains on the new task's
 * labeled images (labels 0..num_classes-1) with
 *   loss = CE(labels, new head) + lambda * T^2 KL(softmax_T(Y_o) || softmax_T(old head))
 * where Y_o are the old head's outputs on the same images recorded from
 * the model as it is before the first step (evaluation mode, normalised
 * as for training, not augmented); T = 2 (del_trainer_set_temperature),
 * lambda = 1 (del_trainer_set_lwf_lambda). The T^2 factor is the seed's
 * (Avalanche and FACIL omit it: del_trainer_set_distill_t2(trainer, 0)). Everything trains (backbone, old and new
 * head) except during a warm-up (del_trainer_set_head_warmup: the first
 * steps train the new head alone, the distillation term off). A model
 * without heads has its last layer (linear) split off as the old head
 * called old_head; a model with heads must have old_head as its first
 * head. del_trainer_evaluate scores the new head;
 * del_trainer_evaluate_head(..., old_head, ...) the old task. Other
 * settings are the supervised trainer's. Checkpoints hold Y_o (or the
 * frozen original) and LwF's settings, so a run resumes bit for bit.
 * Errors: DEL_EINVAL (NULL argument, num_classes < 1, a label >=
 * num_classes, the same or too long head names, no first head called
 * old_head, a head called new_head already, a model without heads whose
 * last layer is not linear, images that do not fit) with the model
 * unchanged; DEL_ENOMEM. */
DEL_API del_status del_trainer_new_lwf(del_trainer **out, del_model *model, const del_dataset *labeled, const char *old_head, const char *new_head, int num_classes);

/* LwF's lambda (finite >= 0; default 1; 0 is plain fine-tuning of the
 * whole model with a new head). Errors: DEL_EINVAL (NULL trainer, not an
 * LwF trainer, out of range), DEL_ESTATE (during a fit). */
DEL_API del_status del_trainer_set_lwf_lambda(del_trainer *trainer, float lambda);

/* live = 1: instead of Y_o recorded once on the un-augmented images, a
 * frozen copy of the original model (del_model_clone, made before the
 * first step, in evaluation mode) runs on each step's batch, so the old
 * head is held to the original's outputs on the very augmented images the
 * model sees (SPEC §1.4's "or run a frozen copy on the same augmented
 * batch"); costs one more forward per step and a model's memory.
 * 0 (default): recorded. Errors: DEL_EINVAL (NULL trainer, not an LwF
 * trainer, live not 0 or 1), DEL_ESTATE (during a fit, or after the first
 * step). */
DEL_API del_status del_trainer_set_lwf_live_original(del_trainer *trainer, int live);

/* How the unlabeled batch of a pseudo-label step meets batchnorm. */
typedef enum del_pseudo_bn {
    DEL_PSEUDO_BN_JOINT = 0, /* one forward of labeled + unlabeled images: batch statistics of both (default) */
    DEL_PSEUDO_BN_FROZEN = 1 /* the unlabeled batch on its own after the labeled one, its batch statistics
                                used but the running statistics kept as the labeled pass left them
                                (USB's freeze_bn) */
} del_pseudo_bn;

/* Creates a pseudo-labeling trainer (SPEC §1.5, Lee 2013): each step
 * takes a batch of labeled's labeled images (64, del_trainer_set_batch_size)
 * and one of all of unlabeled's images (256,
 * del_trainer_set_unlabeled_batch_size; their labels are never read), each
 * stream with its own batch order and pipeline (del_trainer_set_augment,
 * del_trainer_set_augment_unlabeled). The unlabeled images are labeled by
 * the model's prediction on them in that step (training mode, the same
 * forward pass that is trained; the labels are constants): the argmax, or
 * with del_trainer_set_pseudo_label_soft the softmax as a soft target,
 * kept when its top probability is >= the threshold (default 0: all):
 *   loss = CE(labels, z_L) + alpha(t) * (1/N_U) sum over kept rows of CE(pseudo, z_U)
 * (the mean over the whole unlabeled batch, FixMatch's (mask * ce).mean()),
 * alpha(t) = 0 for t < T1, alpha_f (t - T1) / (T2 - T1) for T1 <= t < T2,
 * alpha_f after, t the steps taken before this one since the trainer was
 * made (or its seed set); defaults alpha_f = 3, T1 and T2 at 20 % and 60 %
 * of the run (its total steps when del_trainer_set_total_steps set them,
 * else up to the end of the fit). While alpha(t) = 0 the unlabeled batch is
 * not run (a step costs what a supervised one does). The labeled term is
 * the supervised trainer's (label smoothing, CutMix/MixUp, an added
 * teacher). Other settings are the supervised trainer's. model and the
 * datasets are borrowed and must outlive the trainer.
 * Errors: DEL_EINVAL (NULL argument, a label the model has no output for,
 * images of either set that do not fit the model, a set with no image),
 * DEL_ENOMEM. */
DEL_API del_status del_trainer_new_pseudo_label(del_trainer **out, del_model *model, const del_dataset *labeled, const del_dataset *unlabeled);

/* The ramp of alpha(t): t1 >= 0, t2 > t1 (steps), alpha_f finite >= 0.
 * Errors: DEL_EINVAL (NULL trainer, not a pseudo-label trainer, a value
 * out of range), DEL_ESTATE (during a fit). */
DEL_API del_status del_trainer_set_pseudo_label_ramp(del_trainer *trainer, int64_t t1, int64_t t2, float alpha_f);

/* The confidence threshold tau in [0, 1]: a pseudo-label is kept when the
 * model's top probability is >= tau (default 0: every one).
 * Errors: as del_trainer_set_pseudo_label_ramp. */
DEL_API del_status del_trainer_set_pseudo_label_threshold(del_trainer *trainer, float threshold);

/* soft = 1: the model's softmax is the target of a kept image (soft
 * cross-entropy); 0 (default): its argmax. Errors: as
 * del_trainer_set_pseudo_label_ramp (soft not 0 or 1). */
DEL_API del_status del_trainer_set_pseudo_label_soft(del_trainer *trainer, int soft);

/* The batchnorm treatment of the unlabeled batch (del_pseudo_bn). Errors:
 * as del_trainer_set_pseudo_label_ramp (an unknown mode). */
DEL_API del_status del_trainer_set_pseudo_label_bn(del_trainer *trainer, del_pseudo_bn mode);

/* The unlabeled set's true labels (n of them, one per image of
 * `unlabeled`, -1 for unknown), copied, for the log only: they never
 * train (a model trained with them shuffled is byte-identical).
 * del_trainer_pseudo_label_stats then reports the accuracy of the kept
 * pseudo-labels. labels NULL forgets them.
 * Errors: DEL_EINVAL (NULL trainer, not a pseudo-label trainer, n not the
 * set's size, a label outside -1..K-1), DEL_ESTATE (during a fit),
 * DEL_ENOMEM. */
DEL_API del_status del_trainer_set_unlabeled_truth(del_trainer *trainer, const int32_t *labels, int64_t n);

/* The current (or last) fit's pseudo-labels so far, e.g. from the
 * progress callback: *mask_rate the fraction of unlabeled images whose
 * pseudo-label was kept, *accuracy the fraction of kept ones equal to the
 * true label (del_trainer_set_unlabeled_truth), over *judged of them; NaN
 * when there is none (before T1, without the truth). Any output may be
 * NULL. Errors: DEL_EINVAL (NULL trainer, not a pseudo-label trainer). */
DEL_API del_status del_trainer_pseudo_label_stats(const del_trainer *trainer, double *mask_rate, double *accuracy, int64_t *judged);

/* Creates a consistency-training trainer (SPEC §1.7, FixMatch: Sohn et al.
 * 2020): each step takes a batch of labeled's labeled images (64,
 * del_trainer_set_batch_size; its pipeline del_trainer_set_augment) and
 * mu times as many of unlabeled's images (mu = 7:
 * del_trainer_set_unlabeled_ratio, or del_trainer_set_unlabeled_batch_size),
 * each of those seen twice: through `weak` (e.g. crop + flip) and through
 * `strong` (e.g. RandAugment + cutout), two views of the same image. The
 * model's softmax on the weak view gives the pseudo-label (its argmax, a
 * constant), kept when its top probability is >= tau (0.95,
 * del_trainer_set_consistency_threshold; FlexMatch's per-class thresholds
 * with del_trainer_set_flexmatch), and the strong view is trained on it:
 *   loss = CE(labels, z_L) + lambda_u * (1/N_U) sum over kept rows of CE(pseudo, z_strong)
 * (lambda_u = 1, del_trainer_set_consistency_weight; the mean over the whole
 * unlabeled batch, FixMatch's (mask * ce).mean()). The labeled batch and both
 * views go through the model in one forward pass (batchnorm statistics of
 * all of them, as FixMatch's code); the weak rows get no gradient. The
 * trainer keeps an EMA of the weights (decay 0.999, del_trainer_set_ema),
 * which del_trainer_evaluate scores (del_trainer_ema_model gives it). The
 * labeled term is the supervised trainer's (label smoothing, mixing
 * pipelines, an added teacher). weak is the unlabeled stream's pipeline
 * (del_trainer_set_augment_unlabeled replaces it). model, the datasets and
 * pipelines are borrowed and must outlive the trainer.
 * Errors: DEL_EINVAL (NULL argument, a label the model has no output for,
 * images that do not fit the model, a pipeline that changes the image
 * size, more than 1024 classes), DEL_ENOMEM. */
DEL_API del_status del_trainer_new_consistency(del_trainer **out, del_model *model, const del_dataset *labeled, const del_dataset *unlabeled, del_augment *weak, del_augment *strong);

/* tau in [0, 1] (default 0.95). Errors: DEL_EINVAL (NULL trainer, not a
 * consistency trainer, out of range), DEL_ESTATE (during a fit). */
DEL_API del_status del_trainer_set_consistency_threshold(del_trainer *trainer, float threshold);

/* lambda_u, finite >= 0 (default 1). Errors: as
 * del_trainer_set_consistency_threshold. */
DEL_API del_status del_trainer_set_consistency_weight(del_trainer *trainer, float weight);

/* on = 1: FlexMatch's flexible thresholds (Zhang et al. 2021, with its
 * threshold warm-up): class c's threshold is tau * b_c / (2 - b_c), b_c =
 * s_c / max(max_c s_c, unused), s_c the unlabeled images whose last
 * prediction above tau was c, unused those never predicted above tau
 * (counted over the whole unlabeled set, kept in checkpoints). 0
 * (default): tau for every class. Errors: as
 * del_trainer_set_consistency_threshold (on not 0 or 1). */
DEL_API del_status del_trainer_set_flexmatch(del_trainer *trainer, int on);

/* The unlabeled batch as mu times the labeled batch as it is now (mu >=
 * 1; default 7). Errors: as del_trainer_set_consistency_threshold (mu < 1,
 * more images than the unlabeled set has). */
DEL_API del_status del_trainer_set_unlabeled_ratio(del_trainer *trainer, int mu);

/* The fraction of unlabeled images whose pseudo-label was kept in the
 * current (or last) fit so far (NaN before any). Errors: DEL_EINVAL (NULL
 * trainer, not a consistency trainer). */
DEL_API del_status del_trainer_consistency_stats(const del_trainer *trainer, double *mask_rate);

/* Keeps an exponential moving average of the model's weights, updated
 * after every step (del_model_ema_update: ema = decay * ema + (1 - decay)
 * * model; batchnorm statistics copied), starting from the model as it is
 * now; del_trainer_evaluate and del_trainer_evaluate_head then score the
 * average. decay in [0, 1); 0 stops and frees it. Consistency trainers
 * keep one (0.999) from the start; others none. Checkpoints hold it.
 * Errors: DEL_EINVAL (NULL trainer, decay out of range), DEL_ESTATE
 * (during a fit), DEL_ENOMEM. */
DEL_API del_status del_trainer_set_ema(del_trainer *trainer, float decay);

/* The trainer's moving average of the weights (borrowed: valid until the
 * trainer is freed or del_trainer_set_ema(trainer, 0)), or NULL without
 * one. Save it with del_model_save, predict with it, or clone it. */
DEL_API del_model *del_trainer_ema_model(const del_trainer *trainer);

/* Setters. Each returns DEL_EINVAL for a NULL trainer or a value out of
 * range (named in the message), DEL_ESTATE if called during a fit. */
/* batch_size >= 1 (at most the number of labeled images). */
DEL_API del_status del_trainer_set_batch_size(del_trainer *trainer, int batch_size);
/* The optimizer of a fit comes from the settings below. By default (total
 * steps 0, see del_trainer_set_total_steps) each fit makes a fresh one: its
 * state (momentum, Adam moments), the schedule and the warm-up start again
 * at every fit, over that fit's steps. With total steps set, the first fit
 * makes one for the whole run and later fits continue it. Every optimizer
 * setter (set_sgd, set_adamw, set_schedule, set_step_schedule, set_warmup,
 * set_clip_norm, set_total_steps) drops a kept optimizer: the next fit
 * starts a new one. */
/* Selects SGD with these settings, as del_optimizer_new_sgd (nesterov 0/1);
 * also switches back from AdamW. */
DEL_API del_status del_trainer_set_sgd(del_trainer *trainer, float lr, float momentum, float weight_decay, int nesterov);
/* Selects AdamW with these settings, as del_optimizer_new_adamw (torch's
 * defaults are lr 1e-3, betas 0.9 / 0.999, eps 1e-8, weight_decay 1e-2);
 * del_trainer_set_sgd switches back. */
DEL_API del_status del_trainer_set_adamw(del_trainer *trainer, float lr, float beta1, float beta2, float eps, float weight_decay);
/* Schedule over each fit's steps (or the total steps when set): constant,
 * cosine (to 0 at the fit's, or the run's, last step) or step (the settings of del_trainer_set_step_schedule, by default
 * gamma 0.1 every 1000 steps). */
DEL_API del_status del_trainer_set_schedule(del_trainer *trainer, del_schedule kind);
/* Selects DEL_SCHEDULE_STEP: the lr is multiplied by gamma every step_size
 * steps of a fit, counted after its warm-up (step_size >= 1, gamma a finite
 * value > 0). */
DEL_API del_status del_trainer_set_step_schedule(del_trainer *trainer, int64_t step_size, float gamma);
/* Linear warm-up over the first warmup_steps steps of each fit (of the run
 * when total steps are set), as del_optimizer_set_warmup (>= 0; 0, the
 * default, turns it off); a cosine schedule then runs over the remaining
 * steps. */
DEL_API del_status del_trainer_set_warmup(del_trainer *trainer, int64_t warmup_steps);
/* Clips each step's gradients by their global norm, as
 * del_optimizer_set_clip_norm (max_norm >= 0; 0, the default, turns it off). */
DEL_API del_status del_trainer_set_clip_norm(del_trainer *trainer, float max_norm);
/* Label smoothing s in [0, 1) (default 0). With hard labels the loss is
 * del_loss_cross_entropy_smooth, i.e. targets (1 - s) onehot + s / K. With a
 * pipeline (soft labels) each target row t becomes (1 - s) t + s / K
 * (rounded to f32) before del_loss_soft_cross_entropy, so both paths agree
 * up to rounding; s = 0 changes nothing. */
DEL_API del_status del_trainer_set_label_smoothing(del_trainer *trainer, float smoothing);
/* Trains one run of total_steps steps over several fits (>= 0; 0, the
 * default, gives every fit a fresh optimizer): the first fit makes the
 * optimizer with its schedule and warm-up over total_steps, later fits
 * continue its state, step count and learning rate, so fit(a) then fit(b)
 * gives bit for bit the weights of fit(a + b). Steps past total_steps use
 * the schedule's last value: final lr 0 for cosine (the weights stay as
 * they are), the base lr for constant; the step schedule never stops
 * decaying. Calling it, even with the same value, drops the kept optimizer,
 * so that the next fit starts a new run. A kept optimizer needs the model's
 * parameter count unchanged (a fit fails with DEL_ESTATE otherwise). */
DEL_API del_status del_trainer_set_total_steps(del_trainer *trainer, int64_t total_steps);
/* Per-channel mean and std (channels must equal the dataset's; std > 0). */
DEL_API del_status del_trainer_set_normalize(del_trainer *trainer, const float *mean, const float *std, int channels);
/* Seed of the batch order (restarts the order at epoch 0). Dropout draws
 * from the model's own stream, seeded by del_model_init. */
DEL_API del_status del_trainer_set_seed(del_trainer *trainer, uint64_t seed);
/* Progress callback every `every` steps (>= 1) and after the last step;
 * fn NULL removes it. */
DEL_API del_status del_trainer_set_progress(del_trainer *trainer, del_progress_fn fn, int64_t every, void *user);

/* Augments the labeled batches with aug (borrowed: it must outlive the
 * trainer or be removed, and must be neither changed nor used elsewhere
 * while a fit runs, since the prefetch thread reads it); NULL removes it.
 * Each step's batch is del_augment_batch(aug, labeled, indices, batch,
 * epoch, step) except that each image's stream is keyed by the epoch that
 * image was drawn in (a batch that runs past the end of an epoch holds
 * images of two epochs): image i gets (seed, its epoch, indices[i]), the
 * batch steps (seed, epoch of the first image, step), where step is the
 * number of steps taken since the trainer was made or its seed set
 * (0-based, continuing across fits).
 * With a pipeline the loss is always del_loss_soft_cross_entropy on the
 * pipeline's soft labels: mixed by CutMix/MixUp steps, one-hot otherwise,
 * where it equals the hard cross-entropy bit for bit (label smoothing, if
 * set, applies to these labels: see del_trainer_set_label_smoothing). The
 * pipeline's random streams come from its own seed (del_augment_set_seed),
 * not the trainer's. Evaluation never augments.
 * Errors: DEL_EINVAL (NULL trainer; the pipeline cannot run on the
 * dataset's images, or its output size differs from the model's input:
 * the message gives both; checked again when a fit starts), DEL_ESTATE
 * (during a fit). */
DEL_API del_status del_trainer_set_augment(del_trainer *trainer, del_augment *aug);

/* Sets the pipeline for unlabeled batches (borrowed, same rules as
 * del_trainer_set_augment; NULL removes it), for the semi-supervised
 * trainers. The supervised trainer stores and checks it but never uses it.
 * Errors: as del_trainer_set_augment. */
DEL_API del_status del_trainer_set_augment_unlabeled(del_trainer *trainer, del_augment *aug);

/* Prepares up to `depth` (0..4; default 2) batches ahead of the training
 * step, reading and augmenting them on a producer thread that each fit
 * starts and joins before it returns (also on error or cancel); depth 0
 * builds each batch on the fitting thread. The weights are bit-identical
 * whatever the depth. Costs depth + 1 batch buffers.
 * Errors: DEL_EINVAL (NULL trainer, depth out of range), DEL_ESTATE
 * (during a fit). */
DEL_API del_status del_trainer_set_prefetch(del_trainer *trainer, int depth);

/* What a fit does with a step that goes non-finite: a NaN or infinite
 * loss, or a NaN or infinite gradient (checked before the update), or
 * parameters made non-finite by the update itself. */
typedef enum del_nonfinite {
    DEL_NONFINITE_STOP = 0, /* the fit stops with DEL_ENUMERIC (the default) */
    DEL_NONFINITE_SKIP = 1  /* the step is skipped and counted; the fit goes on */
} del_nonfinite;

/* Sets what del_trainer_fit does with a non-finite step (see
 * del_nonfinite). Either way the model is left as it was before that step:
 * its parameters and batchnorm running statistics are restored and the
 * optimizer does not step (the batch is used up, and dropout's random
 * stream has moved on). A skipped step still counts as a step of the fit
 * and of the schedule; del_trainer_skipped_steps counts them, and the
 * progress callback's mean loss leaves them out (NaN if every step since
 * the previous call was skipped). An update that makes finite parameters
 * non-finite (a learning rate so large that the weights overflow) always
 * stops the fit, with the parameters restored, since the optimizer's
 * momentum is then non-finite too.
 * Errors: DEL_EINVAL (NULL trainer, unknown policy), DEL_ESTATE (during a
 * fit). */
DEL_API del_status del_trainer_set_nonfinite(del_trainer *trainer, del_nonfinite policy);

/* The number of steps skipped as non-finite (DEL_NONFINITE_SKIP) since the
 * trainer was made or its seed set; saved in checkpoints. It may be read
 * from the progress callback. 0 if trainer is NULL. */
DEL_API int64_t del_trainer_skipped_steps(const del_trainer *trainer);

/* Trains for `steps` steps (>= 1) in training mode, leaving the model in
 * evaluation mode. The same seed and settings give bit-identical weights
 * whatever the thread count and prefetch depth. A canceled fit keeps the
 * batch order where the last finished step left it, whatever was
 * prefetched. The progress callback runs on the calling thread, never on
 * the prefetch thread.
 * A step whose loss or gradient is not finite stops the fit with
 * DEL_ENUMERIC, the model left as it was before that step (or is skipped:
 * del_trainer_set_nonfinite); the message names the step and what went
 * non-finite (the loss, or the first layer whose gradient or updated
 * parameters are not finite).
 * Errors: DEL_EINVAL (NULL trainer, steps < 1, the pipeline's output no
 * longer fits the model), DEL_ESTATE (called from its own progress
 * callback; the kept optimizer no longer fits the model), DEL_ECANCELED
 * (the callback stopped it), DEL_ENUMERIC (a non-finite step, see above),
 * DEL_ENOMEM; a failure of the pipeline is returned with its message. */
DEL_API del_status del_trainer_fit(del_trainer *trainer, int64_t steps);

/* Where the wall time of the last (or the current) del_trainer_fit went:
 * *data_wait_s, seconds the fitting thread waited for its batches (with
 * the prefetch thread, the part of the data loading and augmentation that
 * the steps did not hide; with del_trainer_set_prefetch(trainer, 0), all
 * of it), and *step_s, seconds of the steps themselves (forward, losses,
 * backward, optimizer, checks). data_wait / (data_wait + step) near 0
 * means the pipeline keeps up. Measured with a monotonic clock; they never
 * change results. 0 before any fit. Either pointer may be NULL.
 * Errors: DEL_EINVAL (NULL trainer). */
DEL_API del_status del_trainer_fit_times(const del_trainer *trainer, double *data_wait_s, double *step_s);

/* One training step outside a fit, for a hand-written loop around the
 * trainer (evaluate, checkpoint, change a setting between steps): draws
 * the next batch on the calling thread and trains on it exactly as step
 * k of a fit would, so del_trainer_step called n times equals
 * del_trainer_fit(trainer, n) bit for bit. Steps continue one run, so
 * del_trainer_set_total_steps must be set (it gives the schedule's
 * length). *loss receives the step's training loss (NaN for a step
 * skipped as non-finite). The model is left in the mode it was in.
 * Errors: DEL_EINVAL (NULL argument), DEL_ESTATE (no total steps set,
 * during a fit, the kept optimizer no longer fits the model), DEL_ENUMERIC
 * (a non-finite step, as del_trainer_fit), DEL_ENOMEM; a failure of the
 * pipeline is returned with its message. */
DEL_API del_status del_trainer_step(del_trainer *trainer, float *loss);

/* Saves the trainer's run to path (a checkpoint file: docs/file-format.md)
 * so that a trainer made again with the same model architecture, dataset
 * and pipelines continues it bit for bit (del_trainer_load_checkpoint).
 * Stored: the model's parameters, batchnorm statistics, random stream
 * (dropout, stochastic depth) and parameter groups; the kept optimizer (see
 * del_trainer_set_total_steps), if any, whole; the trainer's settings
 * (batch size, optimizer, schedule, warm-up, clipping, total steps, label
 * smoothing, normalisation, seed) and its place in each stream's batch
 * order and step count; the technique's own part (fine-tuning's mode,
 * multiplier and warm-up; distillation's temperature, weights, T^2 and
 * teacher settings, and the teacher when its batchnorm trains; LwF's
 * settings and its recorded old-head outputs or frozen original). The
 * checkpoint is format 1 when that is all a supervised trainer needs,
 * format 2 otherwise (docs/file-format.md). Not stored: the dataset, the
 * live teacher of a distillation (kept unchanged), the augmentation pipelines (their own
 * seeds), the progress callback, the prefetch depth (which never changes
 * results) and the model's training/evaluation mode.
 * It may be called from the progress callback during a fit (the natural
 * "every N steps"), with total steps set: it then saves the run as it is
 * after that callback's step. Written to a temporary file and renamed, as
 * del_model_save.
 * A model with a NaN or infinite parameter or statistic is refused (the
 * run diverged: resuming it is pointless); del_model_save_flags keeps such
 * a model for inspection.
 * Errors: DEL_EINVAL (NULL argument, empty path), DEL_ESTATE (called
 * during a fit without total steps set: that fit's optimizer is not kept;
 * or the kept optimizer no longer fits the model), DEL_ENUMERIC (a
 * non-finite parameter or statistic: the message names the layer),
 * DEL_EIO (cannot write path: the message names it), DEL_ENOMEM. */
DEL_API del_status del_trainer_save_checkpoint(del_trainer *trainer, const char *path);

/* Loads a checkpoint saved by del_trainer_save_checkpoint into trainer,
 * which must have been made with a model of the same architecture and the
 * same dataset, and have an augmentation pipeline exactly when the saved
 * one had (set it first, with the same settings and seed). Restores
 * everything del_trainer_save_checkpoint lists, replacing the trainer's
 * settings and any kept optimizer. All or nothing: on any error the
 * trainer and its model are unchanged.
 * Errors: DEL_EINVAL (NULL argument; a checkpoint without a trainer record
 * (from del_checkpoint_save), of another trainer, another architecture
 * (the message names the first difference), another dataset (a different
 * number or order of labeled images or labels), or a pipeline present in
 * one and not the other), DEL_ESTATE (during a fit), DEL_EIO (cannot read
 * path), DEL_EFORMAT (not a checkpoint, a model file, written by a newer
 * libdel, truncated, checksum mismatch, corrupt: the message says which),
 * DEL_ENOMEM. */
DEL_API del_status del_trainer_load_checkpoint(del_trainer *trainer, const char *path);

/* Top-1 accuracy (0..1) of the model, in evaluation mode, on the labeled
 * images of test, normalised as for training: of the head the trainer
 * trains (the model's first head, or the new head of del_trainer_new_lwf).
 * Errors: DEL_EINVAL (NULL argument, image shape differs, no labeled
 * image, a label the model has no output for), DEL_ENUMERIC (the model's
 * outputs are not finite for an image: a diverged model has no accuracy),
 * DEL_ENOMEM. */
DEL_API del_status del_trainer_evaluate(del_trainer *trainer, const del_dataset *test, double *accuracy);

/* del_trainer_evaluate of the model's head called head (its output's
 * argmax against the labels of test): e.g. the old task's head of a
 * Learning-without-Forgetting model on the old task's test images.
 * Errors: as del_trainer_evaluate; DEL_EINVAL (NULL head, no head called
 * head, a label the head has no output for). */
DEL_API del_status del_trainer_evaluate_head(del_trainer *trainer, const del_dataset *test, const char *head, double *accuracy);

/* ---- Noisy Student (SPEC §1.6, Xie et al. 2020) ----
 * Self-training in iterations: the teacher labels the unlabeled set
 * without noise (del_model_predict, evaluation mode, softmax at T = 1);
 * images whose top probability is below a threshold (0.3) are dropped and
 * the rest balanced per class (del_select_pseudo_labels); a student, noised
 * by its augmentation pipelines and by its own dropout and stochastic depth,
 * trains on the labeled images and the pseudo-labeled pool together:
 *   loss = CE(labels, z_L) + (1/N_P) sum over the pool batch of CE(target, z_P)
 * the targets the teacher's probabilities (soft, the default) or its
 * argmax one-hot, label-smoothed (del_noisy_student_set_hard), both
 * batches through the model in one joint batch (batchnorm over both). The
 * student then becomes the teacher of the next iteration (an iteration
 * whose teacher is sure of no image trains its student on the labeled
 * images alone: its pool is 0 in del_noisy_student_stats). Every iteration
 * is checkpointed when a directory is given: a run killed at any point
 * (SIGKILL included) and started again with the same arguments continues
 * where it stopped and ends with a model byte-identical to an uninterrupted
 * run's. */
typedef struct del_noisy_student del_noisy_student;

/* Selects and balances pseudo-labels: probs is an f32 [N, K] tensor of
 * probabilities (a teacher's del_model_predict softmax), each row's class
 * its argmax (the first of equal values). Row i is kept when its top
 * probability is >= threshold. With per_class > 0 each class is then
 * brought to exactly per_class rows: a class with more keeps its per_class
 * most confident (higher top probability first, the lower row first among
 * equals); a class with fewer (but at least one) keeps every row and
 * repeats them, most confident first, until it has per_class (each row
 * floor(per_class / n) or one time more); a class with none stays empty.
 * per_class 0: no balancing (every kept row once). per_class
 * DEL_BALANCE_MEAN (-1): per_class = the mean count of kept rows over the
 * classes that have one (rounded to nearest). *out receives the selected
 * row indices (classes in order 0..K-1, each class's rows most confident
 * first; without balancing, kept rows in row order), *n their count;
 * free *out with del_buffer_free. *out is NULL and *n 0 when nothing is
 * kept (DEL_OK).
 * Errors: DEL_EINVAL (NULL argument, probs not f32 [N, K], threshold
 * outside [0, 1], per_class < -1, a NaN probability), DEL_ENOMEM. */
#define DEL_BALANCE_MEAN -1
DEL_API del_status del_select_pseudo_labels(int64_t **out, int64_t *n, const del_tensor *probs, float threshold, int64_t per_class);

/* Creates a Noisy Student run from a trained teacher (borrowed: it is
 * only read, and the first iteration's student is made from it), the
 * labeled images (labels >= 0) and the unlabeled set (every image, labels
 * unused). Defaults (R5 of docs/benchmarks.md): 2 iterations of 4000 steps;
 * batches 64 labeled + 192 pseudo-labeled; soft targets; threshold 0.3;
 * balanced to the mean count per class (DEL_BALANCE_MEAN); each student of
 * the teacher's architecture, initialised from scratch
 * (del_model_init(student, seed + iteration)); the supervised trainer's
 * optimizer defaults (SGD 0.05, Nesterov, momentum 0.9, weight decay 5e-4,
 * cosine over the iteration) and normalisation (0.2860 / 0.3530); no
 * augmentation; seed 0; no checkpoints. All three arguments are borrowed
 * and must outlive the run.
 * Errors: DEL_EINVAL (NULL argument; the teacher's output not a vector of
 * at least 2 class scores; labeled without a labeled image, a label the
 * teacher has no output for; images of labeled or unlabeled shaped other
 * than the teacher's input; an empty unlabeled set), DEL_ENOMEM. */
DEL_API del_status del_noisy_student_new(del_noisy_student **out, del_model *teacher, const del_dataset *labeled, const del_dataset *unlabeled);

/* Frees ns and the models it made. NULL is a no-op. */
DEL_API void del_noisy_student_free(del_noisy_student *ns);

/* The number of iterations (>= 1; default 2) and the training steps of
 * each student (>= 1; default 4000). Errors: DEL_EINVAL (NULL ns, out of
 * range), DEL_ESTATE (during del_noisy_student_run). */
DEL_API del_status del_noisy_student_set_iterations(del_noisy_student *ns, int iterations);
DEL_API del_status del_noisy_student_set_steps(del_noisy_student *ns, int64_t steps);

/* The images per step from the labeled set and from the pseudo-labeled
 * pool (each >= 1; defaults 64 and 192; a batch larger than its set is
 * cut to the set's size). Errors: as del_noisy_student_set_iterations. */
DEL_API del_status del_noisy_student_set_batch_sizes(del_noisy_student *ns, int labeled, int pseudo);

/* threshold in [0, 1] (default 0.3) and per_class (default
 * DEL_BALANCE_MEAN; 0: no balancing): as del_select_pseudo_labels.
 * Errors: as del_noisy_student_set_iterations. */
DEL_API del_status del_noisy_student_set_selection(del_noisy_student *ns, float threshold, int64_t per_class);

/* hard = 1: the targets are the teacher's argmax, one-hot with label
 * smoothing `smoothing` in [0, 1) (the paper: 0.1) spread over the K
 * classes, (1 - s) + s/K and s/K; 0 (default): its probabilities.
 * Errors: as del_noisy_student_set_iterations (hard not 0 or 1). */
DEL_API del_status del_noisy_student_set_hard(del_noisy_student *ns, int hard, float smoothing);

/* The student of iteration `iteration` (1-based; 0: every iteration
 * without one of its own) has model's architecture (copied; model is not
 * kept): equal to or larger than the teacher's, taking the same images and
 * giving the same classes. NULL goes back to the default (the previous
 * teacher's architecture). Its weights are a fresh initialisation, or the
 * teacher's (del_noisy_student_set_init_from_teacher).
 * Errors: DEL_EINVAL (NULL ns, iteration outside 0..iterations, a model
 * whose input shape or class count differs from the teacher's),
 * DEL_ESTATE (during a run), DEL_ENOMEM. */
DEL_API del_status del_noisy_student_set_student(del_noisy_student *ns, int iteration, const del_model *model);

/* on = 1: each student starts from its teacher's weights and batchnorm
 * statistics (their architectures must then be the same: the run fails
 * with DEL_EINVAL naming the iteration otherwise); 0 (default): from
 * scratch. Errors: as del_noisy_student_set_iterations (on not 0 or 1). */
DEL_API del_status del_noisy_student_set_init_from_teacher(del_noisy_student *ns, int on);

/* The student's noise from data: pipelines for its labeled and its
 * pseudo-labeled images (either NULL: none; borrowed, must outlive the
 * run; give the pool image steps only: a CutMix or MixUp step there would
 * mix the images and not their stored targets).
 * The teacher always sees the images as they are.
 * Errors: DEL_EINVAL (NULL ns), DEL_ESTATE (during a run). */
DEL_API del_status del_noisy_student_set_augment(del_noisy_student *ns, del_augment *labeled, del_augment *pseudo);

/* The students' SGD (as del_trainer_set_sgd; cosine to 0 over each
 * iteration) and the input normalisation of teacher and students (as
 * del_trainer_set_normalize), and the seed of the run (the students'
 * initialisation, batch orders and dropout).
 * Errors: as del_trainer_set_sgd / del_trainer_set_normalize, and
 * DEL_ESTATE during a run. */
DEL_API del_status del_noisy_student_set_sgd(del_noisy_student *ns, float lr, float momentum, float weight_decay, int nesterov);
DEL_API del_status del_noisy_student_set_normalize(del_noisy_student *ns, const float *mean, const float *std, int channels);
DEL_API del_status del_noisy_student_set_seed(del_noisy_student *ns, uint64_t seed);

/* A validation split (borrowed; labeled images of the teacher's input
 * shape): the teacher and each iteration's student are scored on it
 * (del_noisy_student_stats). NULL: none. Errors: DEL_EINVAL (NULL ns,
 * images of another shape, no labeled image, a label the teacher has no
 * output for), DEL_ESTATE (during a run). */
DEL_API del_status del_noisy_student_set_validation(del_noisy_student *ns, const del_dataset *validation);

/* Checkpoints in directory dir (made if missing, its parent must exist):
 * "run.ckpt" (the run's settings and a digest of the teacher and the data:
 * a directory of another run is refused), "iteration-K.ckpt" once
 * iteration K is done (its student and figures), and, every `every` steps
 * of a student's training (0: never), "training-K.ckpt" (the trainer's
 * checkpoint, removed when the iteration is done). Every file is written
 * to a temporary file and renamed. Started again with the same arguments,
 * del_noisy_student_run takes the finished iterations from their files and
 * continues the unfinished one from its last training checkpoint (or from
 * its start), which gives exactly the uninterrupted run's models. The
 * augmentation pipelines are not recorded: pass the same ones. dir NULL:
 * no checkpoints. Errors: DEL_EINVAL (NULL ns, empty dir, every < 0),
 * DEL_ESTATE (during a run), DEL_ENOMEM. */
DEL_API del_status del_noisy_student_set_checkpoint_dir(del_noisy_student *ns, const char *dir, int64_t every);

/* Progress of the whole run: fn(step, total, loss, user) after every
 * `every` steps of a student's training and after its last, step counting
 * over the iterations (iteration k's step s is (k-1) * steps + s, total =
 * iterations * steps); a non-zero return stops the run
 * (del_noisy_student_run returns DEL_ECANCELED; what was checkpointed
 * stays). fn NULL: none. Errors: DEL_EINVAL (NULL ns, every < 1 with fn),
 * DEL_ESTATE (during a run). */
DEL_API del_status del_noisy_student_set_progress(del_noisy_student *ns, del_progress_fn fn, int64_t every, void *user);

/* Runs (or, from its checkpoints, finishes) every iteration. The final
 * student is del_noisy_student_model; each iteration's figures are
 * del_noisy_student_stats. A finished run is not run again: a second call
 * returns DEL_ESTATE.
 * Threading: uses the library's compute threads and a trainer's prefetch
 * thread; the teacher and datasets must not be changed meanwhile.
 * Errors: DEL_EINVAL (a student that does not fit, see the setters; a
 * checkpoint directory of another run: the message names the first
 * difference; a pipeline whose output does not fit the students), DEL_ESTATE (run already),
 * DEL_ECANCELED (the progress callback stopped it), DEL_ENUMERIC (a
 * teacher with non-finite outputs, a diverged student), DEL_EIO and
 * DEL_EFORMAT (checkpoint files that cannot be written or read),
 * DEL_ENOMEM; the errors of the trainer. */
DEL_API del_status del_noisy_student_run(del_noisy_student *ns);

/* The last finished iteration's student (borrowed: owned by ns, valid
 * until it is freed), or the teacher before any iteration finished; NULL if
 * ns is NULL. */
DEL_API del_model *del_noisy_student_model(const del_noisy_student *ns);

/* The figures of iteration `iteration` (1-based; 0: the teacher): the
 * accuracy on the validation split (NaN without one), the images kept by
 * the threshold and the pool size after balancing (0 for the teacher).
 * Any output pointer may be NULL.
 * Errors: DEL_EINVAL (NULL ns, iteration outside 0..iterations),
 * DEL_ESTATE (that iteration has not finished). */
DEL_API del_status del_noisy_student_stats(const del_noisy_student *ns, int iteration, double *val_accuracy, int64_t *kept, int64_t *pool);

/* ---- RandAugment policy search (Cubuk et al. 2020) ----
 * The paper's procedure for picking RandAugment's (N, M): every cell of a
 * grid trains a fresh model on the labeled set minus a held-out
 * validation split and is scored on that split; the best cell (highest
 * validation accuracy, the first in grid order among equals) is the
 * policy. The validation split is the first per_class images of each
 * class in the labeled set's order (stratified, as FMNIST-1k's own split);
 * the others train. Each cell: the model's architecture initialised from
 * the seed, the supervised trainer's defaults (batch 64, SGD 0.05 Nesterov,
 * weight decay 5e-4, cosine, normalisation 0.2860 / 0.3530 unless set),
 * `steps` steps, the pipeline "random crop of the image padded by pad,
 * horizontal flip with p" (when set; default pad 2, p 0.5: SPEC's std aug)
 * followed by RandAugment(N, M) (N = 0: none), seeded with the seed. */
typedef struct del_policy_search del_policy_search;

/* Creates a search for model's architecture (copied; model is not kept) on
 * labeled (borrowed; labels >= 0 train or validate, -1 rows are skipped).
 * Defaults: N in {1, 2, 3}, M in {5, 9, 13}, 20 validation images per
 * class, 1000 steps per cell, crop pad 2 + flip 0.5, seed 0.
 * Errors: DEL_EINVAL (NULL argument; labeled with no labeled image, a
 * label the model has no output for, images other than the model's
 * input), DEL_ENOMEM. */
DEL_API del_status del_policy_search_new(del_policy_search **out, const del_model *model, const del_dataset *labeled);

/* Frees s. NULL is a no-op. */
DEL_API void del_policy_search_free(del_policy_search *s);

/* The grid: n_count values of N (each 0..14) times m_count values of M
 * (each 0..30), 1..64 of each; cells in order (n[0], m[0]), (n[0], m[1]),
 * ... Errors: DEL_EINVAL (NULL s, n or m; a count out of range; a value
 * out of range: the message names it), DEL_ESTATE (during a run, or after
 * one: make a new search). */
DEL_API del_status del_policy_search_set_grid(del_policy_search *s, const int *n, int n_count, const int *m, int m_count);

/* Validation images per class (>= 1; every class of the labeled set must
 * keep at least one training image), steps per cell (>= 1), the crop pad
 * (>= 0) and flip probability ([0, 1]) before RandAugment (pad -1: no crop,
 * flip 0: no flip), the seed, the normalisation (as
 * del_trainer_set_normalize). Errors: DEL_EINVAL (NULL s, out of range),
 * DEL_ESTATE (during or after a run). */
DEL_API del_status del_policy_search_set_validation(del_policy_search *s, int per_class);
DEL_API del_status del_policy_search_set_steps(del_policy_search *s, int64_t steps);
DEL_API del_status del_policy_search_set_crop_flip(del_policy_search *s, int pad, float flip_p);
DEL_API del_status del_policy_search_set_seed(del_policy_search *s, uint64_t seed);
DEL_API del_status del_policy_search_set_normalize(del_policy_search *s, const float *mean, const float *std, int channels);

/* Progress over the whole search: fn(step, total, loss, user) every
 * `every` steps of a cell's training and after its last, step counting over
 * the cells (cell i's step t is i * steps + t, total = cells * steps); a
 * non-zero return stops the search (DEL_ECANCELED; the finished cells keep
 * their accuracy). Errors: DEL_EINVAL (NULL s, every < 1 with fn),
 * DEL_ESTATE (during a run). */
DEL_API del_status del_policy_search_set_progress(del_policy_search *s, del_progress_fn fn, int64_t every, void *user);

/* Trains and scores every cell. Errors: DEL_EINVAL (a class with no
 * training image left after the validation split: the message names it),
 * DEL_ESTATE (run already), DEL_ECANCELED, DEL_ENUMERIC (a diverged cell),
 * DEL_ENOMEM; the errors of the trainer. */
DEL_API del_status del_policy_search_run(del_policy_search *s);

/* The number of cells (n_count * m_count), or 0 for NULL. */
DEL_API int del_policy_search_num_cells(const del_policy_search *s);

/* Cell i (0-based, grid order): its N, M and validation accuracy (NaN
 * before it was scored). Any output may be NULL. Errors: DEL_EINVAL (NULL
 * s, i out of range). */
DEL_API del_status del_policy_search_cell(const del_policy_search *s, int i, int *n, int *m, double *accuracy);

/* The best scored cell: highest validation accuracy, the first in grid
 * order among equals. Errors: DEL_EINVAL (NULL s), DEL_ESTATE (no cell
 * scored yet). */
DEL_API del_status del_policy_search_best(const del_policy_search *s, int *n, int *m, double *accuracy);

/* Checkpoints for hand-written training loops (as saving a PyTorch model's
 * and optimizer's state_dict together). A checkpoint file holds a whole
 * model file (parameters and batchnorm statistics) plus the model's random
 * stream and parameter groups (del_model_freeze, del_model_set_lr_mult) and,
 * optionally, an optimizer's whole state: its momentum or Adam buffers,
 * step count, hyper-parameters, schedule, warm-up and clipping settings.
 * Not stored: gradients and the training/evaluation mode.
 * These calls are written on the checkpoint record (del/checkpoint.h):
 * the model is stored as DEL_CHECKPOINT_MODEL ("model"), in format 1
 * (docs/file-format.md); a checkpoint holding more (several models,
 * tensors) is read with del_checkpoint_read.
 * Threading: reentrant; the model and optimizer must not be used by
 * another thread during the call. */

/* Saves model and opt (NULL: the model only) to path, written to a
 * temporary file beside it and renamed, as del_model_save (symbolic links
 * and temporary files left by killed writers are handled as there). A
 * model with a NaN or infinite parameter or batchnorm statistic is refused:
 * training cannot resume from it (del_model_save_flags with
 * DEL_SAVE_ALLOW_NONFINITE keeps such a model for inspection).
 * Errors: DEL_EINVAL (NULL path or model, empty path, opt made for another
 * model), DEL_ESTATE (the model's parameter count changed since opt was
 * made), DEL_ENUMERIC (a non-finite parameter or statistic: the message
 * names the first such layer), DEL_EIO (cannot write path: the message
 * names it and ends with the system's reason), DEL_ENOMEM. */
DEL_API del_status del_checkpoint_save(const char *path, const del_model *model, const del_optimizer *opt);

/* The checkpoint del_checkpoint_save would write, in memory: *out receives
 * its bytes (the same, byte for byte), *size their number. The caller
 * frees *out with del_buffer_free.
 * Errors: as del_checkpoint_save without DEL_EIO (NULL out or size is
 * DEL_EINVAL too); on error *out is NULL and *size 0. */
DEL_API del_status del_checkpoint_save_buffer(const del_model *model, const del_optimizer *opt, void **out,
                                              size_t *size);

/* Loads the checkpoint at path into model, which must have the same
 * architecture (input shape, layer types and settings), and into opt (NULL:
 * the optimizer state, if any, is ignored), which must have been made over
 * model and be of the kind saved (SGD or AdamW); its settings are replaced
 * by the saved ones. A checkpoint from del_trainer_save_checkpoint loads
 * too. All or nothing: on any error model and opt are unchanged.
 * Errors: DEL_EINVAL (NULL path or model; another architecture, opt of
 * another kind or over another model, opt given for a checkpoint without
 * optimizer state: the message names the difference; a checkpoint without
 * a model named "model"), DEL_EIO (cannot read
 * path), DEL_EFORMAT (not a checkpoint, a model file, written by a newer
 * libdel, truncated, checksum mismatch, corrupt: the message says which),
 * DEL_ENOMEM. */
DEL_API del_status del_checkpoint_load(const char *path, del_model *model, del_optimizer *opt);

/* Loads a checkpoint from the size bytes at data (a checkpoint file's
 * contents, e.g. from del_checkpoint_save_buffer; data may be NULL only if
 * size is 0) into model and opt, as del_checkpoint_load: the same checks,
 * all or nothing. The messages call the source '<buffer>'.
 * Errors: as del_checkpoint_load without DEL_EIO (NULL data with size > 0
 * is DEL_EINVAL). */
DEL_API del_status del_checkpoint_load_buffer(const void *data, size_t size, del_model *model, del_optimizer *opt);

#ifdef __cplusplus
}
#endif
#endif
