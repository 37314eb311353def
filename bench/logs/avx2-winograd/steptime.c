/* ms per training step (batch 128, 1 thread): medians over blocks of the
 * thread CPU time and of the wall time. usage: steptime MODEL BLOCKS STEPS */
#include <del.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CK(e) do { del_status s_ = (e); if (s_) { fprintf(stderr, "%s: %s\n", #e, del_last_error()); exit(1); } } while (0)
static uint64_t sm(uint64_t *s) { uint64_t z = (*s += 0x9e3779b97f4a7c15ULL); z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL; z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL; return z ^ (z >> 31); }
static double u01(uint64_t *s) { return ((double)(sm(s) >> 11) + 0.5) / 9007199254740992.0; }
static double clk(clockid_t c) { struct timespec t; clock_gettime(c, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
static double med(double *v, int n) { qsort(v, n, sizeof *v, cmpd); return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]); }

int main(int argc, char **argv)
{
    const char *preset = argv[1];
    int blocks = atoi(argv[2]), steps = atoi(argv[3]), batch = 128;
    int c = strcmp(preset, "resnet20") == 0 ? 3 : 1, hw = c == 3 ? 32 : 28;
    del_model *m; del_optimizer *opt; del_tensor *x, *y, *g;
    int64_t xs[4] = {batch, c, hw, hw}, ys[1] = {batch}, gs[2] = {batch, 10};
    uint64_t rng = 1;
    CK(del_set_num_threads(1));
    CK(del_model_preset(&m, preset, c, hw, hw, 10));
    CK(del_model_init(m, 1));
    CK(del_tensor_new(&x, DEL_DTYPE_F32, 4, xs));
    CK(del_tensor_new(&y, DEL_DTYPE_I32, 1, ys));
    CK(del_tensor_new(&g, DEL_DTYPE_F32, 2, gs));
    float *xd = del_tensor_data(x);
    for (int64_t i = 0; i < del_tensor_numel(x); i++) xd[i] = (float)(sqrt(-2 * log(u01(&rng))) * cos(6.283185307 * u01(&rng)));
    int32_t *l = del_tensor_data(y);
    for (int i = 0; i < batch; i++) l[i] = (int32_t)(sm(&rng) % 10);
    CK(del_optimizer_new_sgd(&opt, m, 0.05f, 0.9f, 5e-4f, 1));
    CK(del_model_set_training(m, 1));
    double cpu[256], wall[256];
    for (int b = -1; b < blocks; b++) {
        double c0 = clk(CLOCK_THREAD_CPUTIME_ID), w0 = clk(CLOCK_MONOTONIC);
        for (int s = 0; s < (b < 0 ? 2 : steps); s++) {
            float loss;
            CK(del_model_zero_grad(m));
            CK(del_model_forward(m, x));
            CK(del_loss_cross_entropy(del_model_output(m), y, &loss, g));
            CK(del_model_backward(m, g));
            CK(del_optimizer_step(opt));
        }
        if (b >= 0) {
            cpu[b] = (clk(CLOCK_THREAD_CPUTIME_ID) - c0) * 1e3 / steps;
            wall[b] = (clk(CLOCK_MONOTONIC) - w0) * 1e3 / steps;
        }
    }
    printf("%s isa=%s cpu_ms=%.1f wall_ms=%.1f\n", preset, getenv("DEL_CPU_ISA") ? getenv("DEL_CPU_ISA") : "-", med(cpu, blocks), med(wall, blocks));
    return 0;
}
