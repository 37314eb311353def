/* Trains fmnist-cnn and resnet20 a few steps on seeded random batches and
 * saves them; runs the pixel/warp ops over seeded random images; writes all
 * to OUTDIR for cmp between builds / ISA levels. */
#include <del.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CK(e) do { del_status s_ = (e); if (s_) { fprintf(stderr, "%s: %s\n", #e, del_last_error()); exit(1); } } while (0)

static uint64_t sm(uint64_t *s) { uint64_t z = (*s += 0x9e3779b97f4a7c15ULL); z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL; z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL; return z ^ (z >> 31); }
static double u01(uint64_t *s) { return ((double)(sm(s) >> 11) + 0.5) / 9007199254740992.0; }

static void train(const char *preset, int c, int h, int w, int steps, int batch, const char *out)
{
    del_model *m; del_optimizer *opt; del_tensor *x, *y, *g;
    int64_t xs[4] = {batch, c, h, w}, ys[1] = {batch}, gs[2] = {batch, 10};
    uint64_t rng = 42;
    CK(del_model_preset(&m, preset, c, h, w, 10));
    CK(del_model_init(m, 7));
    CK(del_tensor_new(&x, DEL_DTYPE_F32, 4, xs));
    CK(del_tensor_new(&y, DEL_DTYPE_I32, 1, ys));
    CK(del_tensor_new(&g, DEL_DTYPE_F32, 2, gs));
    CK(del_optimizer_new_sgd(&opt, m, 0.05f, 0.9f, 5e-4f, 1));
    CK(del_model_set_training(m, 1));
    for (int s = 0; s < steps; s++) {
        float *xd = del_tensor_data(x);
        for (int64_t i = 0; i < del_tensor_numel(x); i++) xd[i] = (float)(sqrt(-2 * log(u01(&rng))) * cos(6.283185307 * u01(&rng)));
        int32_t *l = del_tensor_data(y);
        for (int i = 0; i < batch; i++) l[i] = (int32_t)(sm(&rng) % 10);
        float loss;
        CK(del_model_zero_grad(m));
        CK(del_model_forward(m, x));
        CK(del_loss_cross_entropy(del_model_output(m), y, &loss, g));
        CK(del_model_backward(m, g));
        CK(del_optimizer_step(opt));
        fprintf(stderr, "%s step %d loss %.9g\n", preset, s, loss);
    }
    CK(del_model_save(m, out));
    del_tensor_free(x); del_tensor_free(y); del_tensor_free(g); del_optimizer_free(opt); del_model_free(m);
}

static void augment(const char *out)
{
    FILE *f = fopen(out, "wb");
    uint64_t rng = 9;
    for (int img = 0; img < 24; img++) {
        int c = img % 3 == 0 ? 1 : 3, h = 17 + img * 5, w = 23 + img * 7;
        int64_t sh[3] = {h, w, c};
        del_tensor *src, *dst;
        CK(del_tensor_new(&src, DEL_DTYPE_U8, 3, sh));
        CK(del_tensor_new(&dst, DEL_DTYPE_U8, 3, sh));
        uint8_t *p = del_tensor_data(src);
        for (int64_t i = 0; i < del_tensor_numel(src); i++) p[i] = (uint8_t)(img % 4 == 1 ? 40 + sm(&rng) % 100 : sm(&rng));
        size_t n = (size_t)del_tensor_numel(src);
#define OUT fwrite(del_tensor_data(dst), 1, n, f)
        float fac = (float)(u01(&rng) * 2.0);
        CK(del_image_brightness(dst, src, fac)); OUT;
        CK(del_image_contrast(dst, src, fac)); OUT;
        if (c == 3) { CK(del_image_color(dst, src, fac)); OUT; }
        CK(del_image_sharpness(dst, src, fac)); OUT;
        CK(del_image_posterize(dst, src, 1 + img % 8)); OUT;
        CK(del_image_solarize(dst, src, (float)(sm(&rng) % 256))); OUT;
        CK(del_image_autocontrast(dst, src)); OUT;
        CK(del_image_equalize(dst, src)); OUT;
        CK(del_image_brightness_add(dst, src, (int)(sm(&rng) % 201) - 100)); OUT;
        for (int ip = 0; ip < 2; ip++) {
            del_interp in = ip ? DEL_INTERP_BILINEAR : DEL_INTERP_NEAREST;
            CK(del_image_rotate(dst, src, (float)(u01(&rng) * 60 - 30), in, 128)); OUT;
            CK(del_image_shear_x(dst, src, (float)(u01(&rng) - 0.5), in, 0)); OUT;
            CK(del_image_shear_y(dst, src, (float)(u01(&rng) - 0.5), in, 0)); OUT;
        }
        del_tensor_free(src); del_tensor_free(dst);
    }
    fclose(f);
}

int main(int argc, char **argv)
{
    char p[512];
    const char *dir = argv[1];
    int steps = argc > 2 ? atoi(argv[2]) : 8;
    CK(del_set_num_threads(1));
    snprintf(p, sizeof p, "%s/aug.bin", dir); augment(p);
    snprintf(p, sizeof p, "%s/fmnist.delm", dir); train("fmnist-cnn", 1, 28, 28, steps, 128, p);
    snprintf(p, sizeof p, "%s/resnet20.delm", dir); train("resnet20", 3, 32, 32, steps, 128, p);
    snprintf(p, sizeof p, "%s/resnet20_b37.delm", dir); train("resnet20", 3, 32, 32, 2, 37, p);
    return 0;
}
