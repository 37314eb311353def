/* FMNIST-1k demo (`make demo`): data-efficient learning with 1,000 labels.
 *
 * Fashion-MNIST's first 100 training images of each class are the labeled
 * set L (1,000 images); the other 59,000 training images are used without
 * their labels (U); the 10,000 test images score. Three stages:
 *
 *   1. the supervised baseline, recipe R0 of the reference benchmark
 *      (docs/benchmarks.md): fmnist-cnn, 3,000 steps of 64 images of L,
 *      no augmentation, SGD with Nesterov momentum 0.9, weight decay 5e-4,
 *      lr 0.05 cosine to 0, inputs x/255 normalised (mean 0.2860, std 0.3530);
 *   2. consistency training from the unlabeled images (FixMatch, SPEC §1.7),
 *      starting from the baseline's weights, 4,500 steps by default: each
 *      step 64 images of L (a pad-2 random crop and a flip) and 1 x 64 =
 *      64 of U, each seen weakly (crop + flip) and strongly (crop + flip +
 *      RandAugment(2, 10) + cutout 14); the model's prediction on the weak
 *      view, where its top probability is >= 0.95, is the label the strong
 *      view learns; SGD as stage 1 (lr 0.05 cosine to 0 over the stage);
 *      the moving average of the weights (EMA) is the model kept;
 *   3. Noisy Student (SPEC §1.6) from stage 2's model, one iteration of
 *      1,500 steps by default: the teacher labels U without noise (its
 *      softmax; rows below 0.3 dropped, classes balanced to the mean count),
 *      and a student that starts from the teacher's weights trains on 64
 *      images of L and 192 of the pseudo-labeled pool a step (lr 0.03 cosine
 *      to 0), both noised by crop + flip + RandAugment(2, 9) and the model's
 *      dropout; with more iterations each student teaches the next.
 *
 * Each stage reports progress with an ETA and the test accuracy every
 * --eval-every steps (stage 3: after each iteration), only for the learning
 * curve: nothing is chosen on the test set. The run ends with a table
 * (labels used, each stage's test accuracy and time) and writes, in --out DIR:
 *   learning_curve.png  test accuracy against training steps, all stages;
 *   augmentations.png   the first image of each class in L, each with
 *                       three weak and four strong views as stage 2 sees
 *                       them.
 *
 *   fmnist1k_demo [--steps N] [--unlabeled-steps N] [--student-iterations K]
 *                 [--student-steps N] [--eval-every N] [--threads N]
 *                 [--seed S] [--data DIR] [--out DIR] */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "del.h"
#include "del/io.h"

#define BATCH 64
#define LR 0.05f
#define MOMENTUM 0.9f
#define WEIGHT_DECAY 5e-4f
#define MEAN 0.2860f
#define STD 0.3530f
#define PER_CLASS 100

#define MU 1              /* unlabeled images per labeled one in stage 2 */
#define FIX_LR 0.05f      /* as R0 (0.03: 0.24 points lower, bench/logs/demo) */
#define THRESHOLD 0.95f   /* tau */
#define EMA_DECAY 0.99f   /* a short stage: an average over ~100 steps */
#define WEAK_SEED 1000003 /* the pipelines' seeds, as the benchmark's R8 */
#define STRONG_SEED 2000003
#define NS_POOL_BATCH 192 /* pseudo-labeled images per step in stage 3 */
#define NS_LR 0.03f       /* each student starts from its teacher */
#define NS_THRESHOLD 0.3f /* the teacher's top probability a row needs */
#define NS_MAGNITUDE 9    /* RandAugment(2, 9), as the benchmark's R5 */
#define NS_SEED 3000017   /* the students' pipelines and batch orders */
#define REDRAW_EVERY 10   /* steps between progress redraws on a terminal */

typedef struct options {
    int64_t steps, unlabeled_steps, student_steps, eval_every;
    int student_iterations;
    int threads; /* 0: the library's default */
    uint64_t seed;
    const char *data_dir, *out_dir;
} options;

/* One point of the learning curve: the test accuracy after `step` steps
 * of the whole run (stage 1's steps, then stage 2's, then stage 3's), made
 * in stage `stage` (0, 1, 2). */
typedef struct point {
    int64_t step;
    double accuracy;
    int stage;
} point;

typedef struct curve {
    point *points;
    int n, cap;
} curve;

/* What the progress line needs. The ETA of the stages after this one is
 * this stage's time per image times their images, and its time per
 * evaluation times their evaluations. */
typedef struct progress {
    int tty;
    const char *stage;
    int stage_index;     /* 0, 1, 2 */
    int64_t done, total; /* steps of this stage before the current fit; the stage's steps */
    double start;        /* when the stage started */
    double eval_s;       /* seconds of this stage's test evaluations so far */
    int64_t evals_left;  /* evaluations still to come in this stage */
    double last_loss;
    int images;           /* per step */
    int64_t eval_every;   /* steps between evaluations */
    int64_t later_images; /* the training images of the stages after this one */
    int64_t later_evals;  /* and their evaluations */
    /* Stage 3 only: the run, its steps per iteration, the iterations whose
     * test accuracy was printed, and the learning curve to add them to. */
    const del_noisy_student *ns;
    int64_t iteration_steps;
    int reported;
    struct curve *curve;
    int64_t offset;
} progress;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fmnist1k_demo [--steps N] [--unlabeled-steps N] "
            "[--student-iterations K] [--student-steps N]\n"
            "                     [--eval-every N] [--threads N] [--seed S] [--data DIR] [--out DIR]\n"
            "  --steps N               supervised baseline steps (default 3000)\n"
            "  --unlabeled-steps N     FixMatch steps from the unlabeled images "
            "(default 4500; 0: none)\n"
            "  --student-iterations K  Noisy Student iterations after FixMatch "
            "(default 1; 0: none)\n"
            "  --student-steps N       training steps of each student (default 1500)\n"
            "  --eval-every N          steps between test evaluations of the "
            "learning curve (default 250)\n"
            "  --threads N             compute threads (default: all CPUs)\n"
            "  --seed S                seed of weights, batch order and pipelines "
            "(default 0)\n"
            "  --data DIR              Fashion-MNIST directory (default %s)\n"
            "  --out DIR               where the PNGs go (default .; created if "
            "missing)\n",
            DEL_FASHION_MNIST_DIR);
}

/* Parses an unsigned decimal number in [min, max]; 0 on success. */
static int parse_number(const char *text, unsigned long long min, unsigned long long max, unsigned long long *value)
{
    char *end = NULL;
    errno = 0;
    if (!text || text[0] == '-' || text[0] == '\0')
        return -1;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *value = v;
    return 0;
}

static int parse_options(int argc, char **argv, options *opt)
{
    *opt = (options){.steps = 3000,
                     .unlabeled_steps = 4500,
                     .student_iterations = 1,
                     .student_steps = 1500,
                     .eval_every = 250,
                     .out_dir = "."};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long long v = 0;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(arg, "--steps") == 0 && parse_number(val, 1, 100000000, &v) == 0) {
            opt->steps = (int64_t)v;
        } else if (strcmp(arg, "--unlabeled-steps") == 0 && parse_number(val, 0, 100000000, &v) == 0) {
            opt->unlabeled_steps = (int64_t)v;
        } else if (strcmp(arg, "--student-iterations") == 0 && parse_number(val, 0, 100, &v) == 0) {
            opt->student_iterations = (int)v;
        } else if (strcmp(arg, "--student-steps") == 0 && parse_number(val, 1, 100000000, &v) == 0) {
            opt->student_steps = (int64_t)v;
        } else if (strcmp(arg, "--eval-every") == 0 && parse_number(val, 1, 100000000, &v) == 0) {
            opt->eval_every = (int64_t)v;
        } else if (strcmp(arg, "--threads") == 0 && parse_number(val, 1, 256, &v) == 0) {
            opt->threads = (int)v;
        } else if (strcmp(arg, "--seed") == 0 && parse_number(val, 0, UINT64_MAX, &v) == 0) {
            opt->seed = (uint64_t)v;
        } else if (strcmp(arg, "--data") == 0 && val && val[0]) {
            opt->data_dir = val;
        } else if (strcmp(arg, "--out") == 0 && val && val[0]) {
            opt->out_dir = val;
        } else {
            fprintf(stderr, "fmnist1k_demo: bad option or value: %s%s%s\n", arg, val ? " " : "", val ? val : "");
            usage(stderr);
            return -1;
        }
        i++;
    }
    return 0;
}

/* m:ss, or h:mm:ss from an hour. */
static void format_duration(char *buf, size_t size, double seconds)
{
    long s = seconds > 0 ? (long)(seconds + 0.5) : 0;
    if (s >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, size, "%ld:%02ld", s / 60, s % 60);
}

/* Prints "[stage] step s/n  loss L  img/s  ETA stage (all)". */
static void print_progress(const progress *p, int64_t step, int newline)
{
    /* Training and evaluation are timed apart: the ETA adds the
     * evaluations to come at the mean time of those so far. */
    int64_t evals_done = (p->total + p->eval_every - 1) / p->eval_every - p->evals_left;
    double per_eval = evals_done > 0 ? p->eval_s / (double)evals_done : 0.0;
    double per_step = step > 0 ? (now_seconds() - p->start - p->eval_s) / (double)step : 0.0;
    double stage_left = per_step * (double)(p->total - step) + per_eval * (double)p->evals_left;
    double later = per_step * (double)p->later_images / p->images + per_eval * (double)p->later_evals;
    char eta[32], all[32];
    format_duration(eta, sizeof eta, stage_left);
    format_duration(all, sizeof all, stage_left + later);
    fprintf(stderr, "%s[%s] step %lld/%lld  loss %.3f  %.0f img/s  ETA %s (all %s)%s", p->tty && !newline ? "\r" : "",
            p->stage, (long long)step, (long long)p->total, p->last_loss, per_step > 0 ? p->images / per_step : 0.0,
            eta, all, newline || !p->tty ? "\n" : "  ");
    fflush(stderr);
}

static int on_progress(int64_t step, int64_t total, float loss, void *user)
{
    progress *p = user;
    (void)total;
    p->last_loss = (double)loss;
    if (p->tty)
        print_progress(p, p->done + step, 0);
    return 0;
}

static int curve_add(curve *c, int64_t step, double accuracy, int stage)
{
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 64;
        point *grown = realloc(c->points, (size_t)cap * sizeof *grown);
        if (!grown)
            return -1;
        c->points = grown;
        c->cap = cap;
    }
    c->points[c->n++] = (point){step, accuracy, stage};
    return 0;
}

/* Prints the test accuracy of stage 3's finished iterations not printed
 * yet (from the run's statistics) and adds them to the curve. */
static int report_iterations(progress *p, int finished)
{
    for (; p->reported < finished; p->reported++) {
        double accuracy = 0.0;
        int64_t kept = 0, pool = 0;
        if (del_noisy_student_stats(p->ns, p->reported + 1, &accuracy, &kept, &pool) != DEL_OK ||
            curve_add(p->curve, p->offset + (p->reported + 1) * p->iteration_steps, accuracy, 2) != 0)
            return -1;
        if (p->tty)
            fputc('\r', stderr);
        print_progress(p, (p->reported + 1) * p->iteration_steps, 1);
        fprintf(stderr, "    test accuracy of student %d: %.2f%% (%lld pseudo-labels kept, pool %lld)\n",
                p->reported + 1, 100.0 * accuracy, (long long)kept, (long long)pool);
    }
    return 0;
}

/* Stage 3's progress: step counts over the iterations; an iteration is
 * finished once a step of the next one is reported. */
static int on_student_progress(int64_t step, int64_t total, float loss, void *user)
{
    progress *p = user;
    (void)total;
    p->last_loss = (double)loss;
    if (report_iterations(p, (int)((step - 1) / p->iteration_steps)) != 0)
        return 1;
    if (p->tty)
        print_progress(p, step, 0);
    return 0;
}

/* Trains p->total steps in fits of eval_every (the trainer's total steps
 * make them one run: one schedule, one optimizer), scoring the test set
 * after each for the curve, whose steps start at offset. */
static del_status train_stage(del_trainer *trainer, const del_dataset *test, progress *p, int64_t offset, curve *c,
                              double *accuracy)
{
    del_status st = del_trainer_set_total_steps(trainer, p->total);
    if (st != DEL_OK)
        return st;
    p->start = now_seconds();
    p->eval_s = 0.0;
    p->evals_left = (p->total + p->eval_every - 1) / p->eval_every;
    for (p->done = 0; p->done < p->total;) {
        int64_t n = p->total - p->done < p->eval_every ? p->total - p->done : p->eval_every;
        if ((st = del_trainer_fit(trainer, n)) != DEL_OK)
            return st;
        double t = now_seconds();
        if ((st = del_trainer_evaluate(trainer, test, accuracy)) != DEL_OK)
            return st;
        p->eval_s += now_seconds() - t;
        p->evals_left--;
        p->done += n;
        if (curve_add(c, offset + p->done, *accuracy, p->stage_index) != 0)
            return DEL_ENOMEM;
        if (p->tty)
            fputc('\r', stderr);
        print_progress(p, p->done, 1);
        fprintf(stderr, "    test accuracy after %lld steps: %.2f%%\n", (long long)p->done, 100.0 * *accuracy);
    }
    return DEL_OK;
}

/* ---- Pictures ---- */

typedef struct canvas {
    uint8_t *px; /* RGB, row-major */
    int width, height;
} canvas;

static void put_pixel(canvas *cv, int x, int y, const uint8_t rgb[3])
{
    if (x < 0 || y < 0 || x >= cv->width || y >= cv->height)
        return;
    memcpy(cv->px + ((size_t)y * (size_t)cv->width + (size_t)x) * 3, rgb, 3);
}

static void fill_rect(canvas *cv, int x0, int y0, int w, int h, const uint8_t rgb[3])
{
    for (int y = y0; y < y0 + h; y++)
        for (int x = x0; x < x0 + w; x++)
            put_pixel(cv, x, y, rgb);
}

/* A line `thick` pixels wide (Bresenham, a square brush); dash > 0 draws
 * dash pixels on, dash off. */
static void draw_line(canvas *cv, int x0, int y0, int x1, int y1, int thick, int dash, const uint8_t rgb[3])
{
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy;
    for (int k = 0;; k++) {
        if (dash <= 0 || (k / dash) % 2 == 0)
            fill_rect(cv, x0 - thick / 2, y0 - thick / 2, thick, thick, rgb);
        if (x0 == x1 && y0 == y1)
            break;
        int e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            err += dx;
            y0 += sy;
        }
    }
}

/* A 3 x 5 pixel font: five rows of three bits (4 = left column). */
static const struct glyph {
    char c;
    uint8_t rows[5];
} font[] = {
    {'0', {7, 5, 5, 5, 7}}, {'1', {2, 6, 2, 2, 7}}, {'2', {7, 1, 7, 4, 7}}, {'3', {7, 1, 3, 1, 7}},
    {'4', {5, 5, 7, 1, 1}}, {'5', {7, 4, 7, 1, 7}}, {'6', {7, 4, 7, 5, 7}}, {'7', {7, 1, 1, 2, 2}},
    {'8', {7, 5, 7, 5, 7}}, {'9', {7, 5, 7, 1, 7}}, {'.', {0, 0, 0, 0, 2}}, {',', {0, 0, 0, 2, 4}},
    {'-', {0, 0, 7, 0, 0}}, {'+', {0, 2, 7, 2, 0}}, {':', {0, 2, 0, 2, 0}}, {'A', {2, 5, 7, 5, 5}},
    {'B', {6, 5, 6, 5, 6}}, {'C', {3, 4, 4, 4, 3}}, {'D', {6, 5, 5, 5, 6}}, {'E', {7, 4, 6, 4, 7}},
    {'F', {7, 4, 6, 4, 4}}, {'G', {3, 4, 5, 5, 3}}, {'H', {5, 5, 7, 5, 5}}, {'I', {7, 2, 2, 2, 7}},
    {'J', {1, 1, 1, 5, 2}}, {'K', {5, 5, 6, 5, 5}}, {'L', {4, 4, 4, 4, 7}}, {'M', {5, 7, 7, 5, 5}},
    {'N', {6, 5, 5, 5, 5}}, {'O', {2, 5, 5, 5, 2}}, {'P', {6, 5, 6, 4, 4}}, {'Q', {2, 5, 5, 6, 3}},
    {'R', {6, 5, 6, 5, 5}}, {'S', {3, 4, 2, 1, 6}}, {'T', {7, 2, 2, 2, 2}}, {'U', {5, 5, 5, 5, 7}},
    {'V', {5, 5, 5, 5, 2}}, {'W', {5, 5, 7, 7, 5}}, {'X', {5, 5, 2, 5, 5}}, {'Y', {5, 5, 2, 2, 2}},
    {'Z', {7, 1, 2, 4, 7}},
};

#define GLYPH_SCALE 2
#define GLYPH_ADVANCE (4 * GLYPH_SCALE)

/* Draws text (upper case; unknown characters are blanks) from (x, y), its
 * top left corner. */
static void draw_text(canvas *cv, int x, int y, const char *text, const uint8_t rgb[3])
{
    for (; *text; text++, x += GLYPH_ADVANCE)
        for (size_t g = 0; g < sizeof font / sizeof font[0]; g++) {
            if (font[g].c != *text)
                continue;
            for (int r = 0; r < 5; r++)
                for (int col = 0; col < 3; col++)
                    if (font[g].rows[r] & (4 >> col))
                        fill_rect(cv, x + col * GLYPH_SCALE, y + r * GLYPH_SCALE, GLYPH_SCALE, GLYPH_SCALE, rgb);
        }
}

static int text_width(const char *text)
{
    return (int)strlen(text) * GLYPH_ADVANCE - GLYPH_SCALE;
}

static del_status write_canvas(const canvas *cv, const char *path)
{
    del_tensor *img = NULL;
    const int64_t shape[3] = {cv->height, cv->width, 3};
    del_status st = del_tensor_new(&img, DEL_DTYPE_U8, 3, shape);
    if (st == DEL_OK)
        st = del_tensor_copy_from(img, cv->px, (size_t)cv->width * (size_t)cv->height * 3);
    if (st == DEL_OK)
        st = del_image_write_png(img, path);
    del_tensor_free(img);
    return st;
}

/* The learning curve: test accuracy (%) against steps, stage 1 in blue,
 * stage 2 in orange, stage 3 in green, a dashed line where a stage starts
 * (at the last point of the stage before: every stage ends with one). */
static del_status write_curve(const curve *c, const char *path)
{
    static const uint8_t white[3] = {255, 255, 255}, black[3] = {0, 0, 0}, grid[3] = {225, 225, 225},
                         grey[3] = {140, 140, 140};
    static const uint8_t colours[3][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}};
    static const char *const legend[3] = {"SUPERVISED, 1,000 LABELS", "+ FIXMATCH", "+ NOISY STUDENT"};
    enum { W = 720, H = 420, LEFT = 70, RIGHT = 24, TOP = 48, BOTTOM = 56 };
    canvas cv = {malloc((size_t)W * H * 3), W, H};
    if (!cv.px)
        return DEL_ENOMEM;
    fill_rect(&cv, 0, 0, W, H, white);

    double lo = 100.0, hi = 0.0;
    int64_t last = c->n ? c->points[c->n - 1].step : 1;
    for (int i = 0; i < c->n; i++) {
        lo = fmin(lo, 100.0 * c->points[i].accuracy);
        hi = fmax(hi, 100.0 * c->points[i].accuracy);
    }
    int y_step = hi - lo > 30.0 ? 10 : hi - lo > 8.0 ? 5 : 1;
    int y_lo = (int)floor(lo / y_step) * y_step, y_hi = (int)ceil(hi / y_step + 1e-9) * y_step;
    if (y_hi == y_lo)
        y_hi = y_lo + y_step;
    const int pw = W - LEFT - RIGHT, ph = H - TOP - BOTTOM;
#define PX(step) (LEFT + (int)((double)(step)*pw / (double)last + 0.5))
#define PY(pct) (TOP + ph - (int)(((pct)-y_lo) * ph / (double)(y_hi - y_lo) + 0.5))
    char label[48];
    for (int v = y_lo; v <= y_hi; v += y_step) {
        draw_line(&cv, LEFT, PY(v), LEFT + pw, PY(v), 1, 0, grid);
        snprintf(label, sizeof label, "%d", v);
        draw_text(&cv, LEFT - 8 - text_width(label), PY(v) - 5, label, black);
    }
    /* Ticks 1, 2, 10, 20, 100, 200, ... steps apart: at most 8 intervals. */
    int64_t x_step = 1, decade = 1;
    while (last / x_step > 8) {
        if (x_step == decade) {
            x_step = 2 * decade;
        } else {
            decade *= 10;
            x_step = decade;
        }
    }
    for (int64_t s = 0; s <= last; s += x_step) {
        draw_line(&cv, PX(s), TOP + ph, PX(s), TOP + ph + 5, 1, 0, black);
        snprintf(label, sizeof label, "%lld", (long long)s);
        draw_text(&cv, PX(s) - text_width(label) / 2, TOP + ph + 10, label, black);
    }
    draw_line(&cv, LEFT, TOP, LEFT, TOP + ph, 1, 0, black);
    draw_line(&cv, LEFT, TOP + ph, LEFT + pw, TOP + ph, 1, 0, black);
    for (int i = 1; i < c->n; i++)
        if (c->points[i].stage != c->points[i - 1].stage)
            draw_line(&cv, PX(c->points[i - 1].step), TOP, PX(c->points[i - 1].step), TOP + ph, 1, 6, grey);
    for (int i = 1; i < c->n; i++)
        draw_line(&cv, PX(c->points[i - 1].step), PY(100.0 * c->points[i - 1].accuracy), PX(c->points[i].step),
                  PY(100.0 * c->points[i].accuracy), 3, 0, colours[c->points[i].stage]);
    for (int i = 0; i < c->n; i++)
        fill_rect(&cv, PX(c->points[i].step) - 3, PY(100.0 * c->points[i].accuracy) - 3, 7, 7,
                  colours[c->points[i].stage]);
#undef PX
#undef PY
    draw_text(&cv, LEFT, 12, "FMNIST-1K: TEST ACCURACY, PER CENT, AGAINST TRAINING STEPS", black);
    int shown[3] = {1, 0, 0}, x = LEFT;
    for (int i = 0; i < c->n; i++)
        shown[c->points[i].stage] = 1;
    for (int k = 0; k < 3; k++) {
        if (!shown[k])
            continue;
        fill_rect(&cv, x, 30, 10, 10, colours[k]);
        draw_text(&cv, x + 16, 30, legend[k], black);
        x += 16 + text_width(legend[k]) + 24;
    }
    draw_text(&cv, LEFT + pw / 2 - text_width("STEPS") / 2, H - 20, "STEPS", black);

    del_status st = write_canvas(&cv, path);
    free(cv.px);
    return st;
}

/* The first image of each class in L, each followed by three weak and four
 * strong views, enlarged three times: one row per class. */
static del_status write_augmentations(const del_dataset *labeled, del_augment *weak, del_augment *strong,
                                      const char *path)
{
    enum { ROWS = 10, COLS = 8, SCALE = 3, WEAK_VIEWS = 3 };
    const int h = del_dataset_height(labeled), w = del_dataset_width(labeled);
    const size_t img_bytes = (size_t)h * (size_t)w;
    const int64_t ishape[3] = {h, w, 1}, tshape[4] = {ROWS * COLS, (int64_t)h * SCALE, (int64_t)w * SCALE, 1};
    const int32_t *labels = del_dataset_labels(labeled);
    del_tensor *src = NULL, *dst = NULL, *tiles = NULL, *grid = NULL;
    int gh = 0, gw = 0;
    del_status st = DEL_OK;
    if ((st = del_tensor_new(&src, DEL_DTYPE_U8, 3, ishape)) != DEL_OK ||
        (st = del_tensor_new(&dst, DEL_DTYPE_U8, 3, ishape)) != DEL_OK ||
        (st = del_tensor_new(&tiles, DEL_DTYPE_U8, 4, tshape)) != DEL_OK)
        goto done;
    uint8_t *t = del_tensor_data(tiles);
    for (int row = 0; row < ROWS; row++) {
        int64_t index = 0;
        while (index < del_dataset_size(labeled) - 1 && labels[index] != row)
            index++;
        if ((st = del_tensor_copy_from(src, del_dataset_images(labeled) + (size_t)index * img_bytes, img_bytes)) !=
            DEL_OK)
            goto done;
        for (int col = 0; col < COLS; col++) {
            const uint8_t *px = del_tensor_data(src);
            if (col > 0) {
                del_augment *aug = col <= WEAK_VIEWS ? weak : strong;
                if ((st = del_augment_image(aug, dst, src, (uint64_t)col, index)) != DEL_OK)
                    goto done;
                px = del_tensor_data(dst);
            }
            uint8_t *tile = t + (size_t)(row * COLS + col) * img_bytes * SCALE * SCALE;
            for (int y = 0; y < h * SCALE; y++)
                for (int x = 0; x < w * SCALE; x++)
                    tile[(size_t)y * (size_t)(w * SCALE) + (size_t)x] =
                        px[(size_t)(y / SCALE) * (size_t)w + (size_t)(x / SCALE)];
        }
    }
    if ((st = del_image_grid_size(ROWS * COLS, h * SCALE, w * SCALE, COLS, 4, &gh, &gw)) != DEL_OK)
        goto done;
    const int64_t shape[3] = {gh, gw, 1};
    if ((st = del_tensor_new(&grid, DEL_DTYPE_U8, 3, shape)) != DEL_OK ||
        (st = del_image_grid(grid, tiles, COLS, 4, 255)) != DEL_OK)
        goto done;
    st = del_image_write_png(grid, path);
done:
    del_tensor_free(grid);
    del_tensor_free(tiles);
    del_tensor_free(dst);
    del_tensor_free(src);
    return st;
}

/* ---- The run ---- */

static del_status add_crop_flip(del_augment *aug)
{
    del_status st = del_augment_add_random_crop(aug, 28, 28, 2, 0);
    return st != DEL_OK ? st : del_augment_add_flip_h(aug, 0.5f);
}

/* The pipelines of stage 2: L's (crop + flip), the weak view (the same),
 * the strong view (crop + flip + RandAugment(2, 10) + cutout 14). */
static del_status make_pipelines(del_augment **aug_l, del_augment **weak, del_augment **strong, uint64_t seed)
{
    del_status st;
    if ((st = del_augment_new(aug_l)) != DEL_OK || (st = del_augment_set_seed(*aug_l, seed)) != DEL_OK ||
        (st = add_crop_flip(*aug_l)) != DEL_OK || (st = del_augment_new(weak)) != DEL_OK ||
        (st = del_augment_set_seed(*weak, seed + WEAK_SEED)) != DEL_OK || (st = add_crop_flip(*weak)) != DEL_OK ||
        (st = del_augment_new(strong)) != DEL_OK ||
        (st = del_augment_set_seed(*strong, seed + STRONG_SEED)) != DEL_OK || (st = add_crop_flip(*strong)) != DEL_OK ||
        (st = del_augment_add_randaugment(*strong, 2, 10)) != DEL_OK)
        return st;
    return del_augment_add_cutout(*strong, 1.0f, 14, 0);
}

/* Stage 3's noise from data, for the students' labeled and pseudo-labeled
 * images: crop + flip + RandAugment(2, 9), each its own seed. */
static del_status make_student_pipeline(del_augment **out, uint64_t seed)
{
    del_status st;
    if ((st = del_augment_new(out)) != DEL_OK || (st = del_augment_set_seed(*out, seed)) != DEL_OK ||
        (st = add_crop_flip(*out)) != DEL_OK)
        return st;
    return del_augment_add_randaugment(*out, 2, NS_MAGNITUDE);
}

/* Where path goes: dir/name. */
static int join_path(char *buf, size_t size, const char *dir, const char *name)
{
    int n = snprintf(buf, size, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

int main(int argc, char **argv)
{
    options opt;
    if (parse_options(argc, argv, &opt) != 0)
        return 2;
    if (mkdir(opt.out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "fmnist1k_demo: cannot create %s: %s\n", opt.out_dir, strerror(errno));
        return 1;
    }
    char curve_path[4096], grid_path[4096];
    if (join_path(curve_path, sizeof curve_path, opt.out_dir, "learning_curve.png") != 0 ||
        join_path(grid_path, sizeof grid_path, opt.out_dir, "augmentations.png") != 0) {
        fprintf(stderr, "fmnist1k_demo: --out is too long\n");
        return 2;
    }

    del_dataset *train = NULL, *test = NULL, *labeled = NULL, *unlabeled = NULL;
    del_model *model = NULL;
    del_trainer *trainer = NULL;
    del_augment *aug_l = NULL, *weak = NULL, *strong = NULL, *noise_l = NULL, *noise_p = NULL;
    del_noisy_student *ns = NULL;
    curve c = {0};
    double base_acc = 0.0, fix_acc = 0.0, ns_acc = 0.0, base_s = 0.0, fix_s = 0.0, ns_s = 0.0, mask_rate = 0.0;
    const int iterations = opt.student_iterations;
    const int64_t fix_images = opt.unlabeled_steps * BATCH * (1 + 2 * MU),
                  ns_images = iterations * opt.student_steps * (BATCH + NS_POOL_BATCH);
    const float mean[1] = {MEAN}, std[1] = {STD};
    int rc = 1;
    double start = now_seconds();

    if (opt.threads > 0 && del_set_num_threads(opt.threads) != DEL_OK)
        goto fail;
    if (del_dataset_load_fashion_mnist(&train, opt.data_dir, DEL_SPLIT_TRAIN) != DEL_OK ||
        del_dataset_load_fashion_mnist(&test, opt.data_dir, DEL_SPLIT_TEST) != DEL_OK ||
        del_dataset_split_per_class(&labeled, &unlabeled, train, PER_CLASS) != DEL_OK)
        goto fail;
    if (make_pipelines(&aug_l, &weak, &strong, opt.seed) != DEL_OK ||
        make_student_pipeline(&noise_l, opt.seed + NS_SEED) != DEL_OK ||
        make_student_pipeline(&noise_p, opt.seed + NS_SEED + 1) != DEL_OK ||
        write_augmentations(labeled, weak, strong, grid_path) != DEL_OK)
        goto fail;
    if (del_model_preset(&model, "fmnist-cnn", 1, 28, 28, 10) != DEL_OK || del_model_init(model, opt.seed) != DEL_OK)
        goto fail;

    printf("FMNIST-1k: fmnist-cnn (%lld parameters), %lld labeled / %lld "
           "unlabeled / %lld test images, "
           "%d threads, seed %llu\n",
           (long long)del_model_num_params(model), (long long)del_dataset_size(labeled),
           (long long)del_dataset_size(unlabeled), (long long)del_dataset_size(test), del_get_num_threads(),
           (unsigned long long)opt.seed);
    fflush(stdout);

    /* Stage 1: the supervised baseline (R0). */
    const int stages = 1 + (opt.unlabeled_steps > 0) + (iterations > 0);
    static const char *const names[3][3] = {{"supervised", "", ""},
                                            {"1/2 supervised", "2/2 FixMatch", "2/2 Noisy Student"},
                                            {"1/3 supervised", "2/3 FixMatch", "3/3 Noisy Student"}};
    progress prog = {.tty = isatty(STDERR_FILENO),
                     .stage = names[stages - 1][0],
                     .total = opt.steps,
                     .images = BATCH,
                     .eval_every = opt.eval_every,
                     .later_images = fix_images + ns_images,
                     .later_evals = (opt.unlabeled_steps + opt.eval_every - 1) / opt.eval_every + iterations};
    if (del_trainer_new_supervised(&trainer, model, labeled) != DEL_OK ||
        del_trainer_set_batch_size(trainer, BATCH) != DEL_OK ||
        del_trainer_set_sgd(trainer, LR, MOMENTUM, WEIGHT_DECAY, 1) != DEL_OK ||
        del_trainer_set_schedule(trainer, DEL_SCHEDULE_COSINE) != DEL_OK ||
        del_trainer_set_normalize(trainer, mean, std, 1) != DEL_OK ||
        del_trainer_set_seed(trainer, opt.seed) != DEL_OK ||
        del_trainer_set_progress(trainer, on_progress, REDRAW_EVERY, &prog) != DEL_OK)
        goto fail;
    double t0 = now_seconds();
    if (train_stage(trainer, test, &prog, 0, &c, &base_acc) != DEL_OK)
        goto fail;
    base_s = now_seconds() - t0;
    del_trainer_free(trainer);
    trainer = NULL;

    /* Stage 2: FixMatch from the baseline's weights. */
    del_model *teacher = model; /* of stage 3: the EMA of stage 2, or the baseline */
    if (opt.unlabeled_steps > 0) {
        prog = (progress){.tty = prog.tty,
                          .stage = names[stages - 1][1],
                          .stage_index = 1,
                          .total = opt.unlabeled_steps,
                          .images = BATCH * (1 + 2 * MU),
                          .eval_every = opt.eval_every,
                          .later_images = ns_images,
                          .later_evals = iterations};
        if (del_trainer_new_consistency(&trainer, model, labeled, unlabeled, weak, strong) != DEL_OK ||
            del_trainer_set_augment(trainer, aug_l) != DEL_OK || del_trainer_set_batch_size(trainer, BATCH) != DEL_OK ||
            del_trainer_set_unlabeled_ratio(trainer, MU) != DEL_OK ||
            del_trainer_set_sgd(trainer, FIX_LR, MOMENTUM, WEIGHT_DECAY, 1) != DEL_OK ||
            del_trainer_set_schedule(trainer, DEL_SCHEDULE_COSINE) != DEL_OK ||
            del_trainer_set_normalize(trainer, mean, std, 1) != DEL_OK ||
            del_trainer_set_seed(trainer, opt.seed) != DEL_OK ||
            del_trainer_set_consistency_threshold(trainer, THRESHOLD) != DEL_OK ||
            del_trainer_set_ema(trainer, EMA_DECAY) != DEL_OK ||
            del_trainer_set_progress(trainer, on_progress, REDRAW_EVERY, &prog) != DEL_OK)
            goto fail;
        t0 = now_seconds();
        if (train_stage(trainer, test, &prog, opt.steps, &c, &fix_acc) != DEL_OK ||
            del_trainer_consistency_stats(trainer, &mask_rate) != DEL_OK)
            goto fail;
        fix_s = now_seconds() - t0;
        teacher = del_trainer_ema_model(trainer);
    }

    /* Stage 3: Noisy Student from stage 2's model. */
    if (iterations > 0) {
        prog = (progress){.tty = prog.tty,
                          .stage = names[stages - 1][2],
                          .stage_index = 2,
                          .total = iterations * opt.student_steps,
                          .images = BATCH + NS_POOL_BATCH,
                          .eval_every = opt.student_steps,
                          .iteration_steps = opt.student_steps,
                          .curve = &c,
                          .offset = opt.steps + opt.unlabeled_steps};
        if (del_noisy_student_new(&ns, teacher, labeled, unlabeled) != DEL_OK ||
            del_noisy_student_set_iterations(ns, iterations) != DEL_OK ||
            del_noisy_student_set_steps(ns, opt.student_steps) != DEL_OK ||
            del_noisy_student_set_batch_sizes(ns, BATCH, NS_POOL_BATCH) != DEL_OK ||
            del_noisy_student_set_selection(ns, NS_THRESHOLD, DEL_BALANCE_MEAN) != DEL_OK ||
            del_noisy_student_set_init_from_teacher(ns, 1) != DEL_OK ||
            del_noisy_student_set_augment(ns, noise_l, noise_p) != DEL_OK ||
            del_noisy_student_set_sgd(ns, NS_LR, MOMENTUM, WEIGHT_DECAY, 1) != DEL_OK ||
            del_noisy_student_set_normalize(ns, mean, std, 1) != DEL_OK ||
            del_noisy_student_set_seed(ns, opt.seed) != DEL_OK ||
            del_noisy_student_set_validation(ns, test) != DEL_OK ||
            del_noisy_student_set_progress(ns, on_student_progress, REDRAW_EVERY, &prog) != DEL_OK)
            goto fail;
        prog.ns = ns;
        t0 = now_seconds();
        prog.start = t0;
        if (del_noisy_student_run(ns) != DEL_OK || report_iterations(&prog, iterations) != 0 ||
            del_noisy_student_stats(ns, iterations, &ns_acc, NULL, NULL) != DEL_OK)
            goto fail;
        ns_s = now_seconds() - t0;
    }

    if (write_curve(&c, curve_path) != DEL_OK)
        goto fail;

    printf("\n| stage | labels used | unlabeled images | steps | test accuracy | "
           "time |\n"
           "|---|---|---|---|---|---|\n");
    printf("| supervised baseline (R0) | %lld | 0 | %lld | %.2f %% | %.0f s |\n", (long long)del_dataset_size(labeled),
           (long long)opt.steps, 100.0 * base_acc, base_s);
    if (opt.unlabeled_steps > 0)
        printf("| + FixMatch from the baseline (EMA) | %lld | %lld | %lld | %.2f "
               "%% (%+.2f) | %.0f s |\n",
               (long long)del_dataset_size(labeled), (long long)del_dataset_size(unlabeled),
               (long long)opt.unlabeled_steps, 100.0 * fix_acc, 100.0 * (fix_acc - base_acc), fix_s);
    if (iterations > 0)
        printf("| + Noisy Student, %d iteration%s from the %s | %lld | %lld | %d x %lld | %.2f %% (%+.2f) | %.0f s |\n",
               iterations, iterations > 1 ? "s" : "", opt.unlabeled_steps > 0 ? "FixMatch model" : "baseline",
               (long long)del_dataset_size(labeled), (long long)del_dataset_size(unlabeled), iterations,
               (long long)opt.student_steps, 100.0 * ns_acc, 100.0 * (ns_acc - base_acc), ns_s);
    if (opt.unlabeled_steps > 0)
        printf("\npseudo-labels kept (top probability >= %.2f): %.1f %% of the "
               "unlabeled images seen\n",
               (double)THRESHOLD, 100.0 * mask_rate);
    printf("time in all: %.0f s (each stage's time includes its test evaluations "
           "for the curve)\n",
           now_seconds() - start);
    printf("wrote %s and %s\n", curve_path, grid_path);
    rc = 0;
    goto done;

fail:
    fprintf(stderr, "fmnist1k_demo: %s\n", del_last_error());
done:
    del_noisy_student_free(ns);
    del_trainer_free(trainer);
    del_augment_free(noise_l);
    del_augment_free(noise_p);
    del_augment_free(aug_l);
    del_augment_free(weak);
    del_augment_free(strong);
    del_model_free(model);
    del_dataset_free(unlabeled);
    del_dataset_free(labeled);
    del_dataset_free(test);
    del_dataset_free(train);
    free(c.points);
    return rc;
}
