/* Times del_trainer_fit of a preset on seeded random data: img/s of the
 * whole fit (batch 128), after a 3-step warm-up fit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "del.h"
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
int main(int argc, char **argv)
{
    const char *preset = argv[1]; int threads = atoi(argv[2]); int steps = atoi(argv[3]);
    int c = 1, h = 28, w = 28;
    if (strcmp(preset, "resnet20") == 0) { c = 3; h = 32; w = 32; }
    const int n = 1024;
    uint8_t *img = malloc((size_t)n * h * w * c); int32_t *lab = malloc(n * sizeof *lab);
    uint64_t s = 12345;
    for (size_t i = 0; i < (size_t)n * h * w * c; i++) { s = s * 6364136223846793005ULL + 1442695040888963407ULL; img[i] = (uint8_t)(s >> 56); }
    for (int i = 0; i < n; i++) lab[i] = i % 10;
    del_set_num_threads(threads);
    del_dataset *ds = NULL; del_model *m = NULL; del_trainer *tr = NULL;
    if (del_dataset_from_arrays(&ds, img, lab, n, h, w, c) || del_model_preset(&m, preset, c, h, w, 10) ||
        del_model_init(m, 7) || del_trainer_new_supervised(&tr, m, ds) || del_trainer_set_batch_size(tr, 128) ||
        del_trainer_fit(tr, 3)) { fprintf(stderr, "%s\n", del_last_error()); return 1; }
    double t0 = now();
    if (del_trainer_fit(tr, steps)) { fprintf(stderr, "%s\n", del_last_error()); return 1; }
    double dt = now() - t0;
    printf("%.1f\n", steps * 128 / dt);
    return 0;
}
