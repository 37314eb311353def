/* Winograd F(4x4, 3x3) convolution for 3x3, stride 1, pad 1 layers.
 *
 * Each 4x4 block of outputs ("tile") comes from a 6x6 block of the padded
 * input d: y = A^T [ sum_ci (G g G^T) . (B^T d B) ] A (Lavin & Gray
 * 2016). The 36 products "." of a tile become 36 gemms over all tiles,
 * U[xi] (c_out x c_in) times V[xi] (c_in x tiles), with 4x fewer
 * multiplications than the direct convolution (36 per 16 outputs instead
 * of 9 per output).
 *
 * Layout. Images are taken 16 at a time ("group", padded with zero
 * images) and interleaved: every transform works on 16-float vectors,
 * one lane per image, so it vectorises without gathers. A group is cut
 * into chunks of whole tile rows; a chunk's V is [36][c_in][cols] and its
 * gemm output M [36][c_out][cols], cols = tile rows * tiles per row * 16,
 * kept near WG_TARGET_COLS so that they stay in L2.
 *
 * Determinism: a chunk writes only its own outputs, and the number and
 * shape of its gemms depend on the layer's shape only (never on the batch
 * size or the thread count), so results are bit-identical for any thread
 * count. An image's result never depends on the other images' values; it
 * may depend on its position in its group (OpenBLAS may round the columns
 * of a gemm differently by position), so on its index modulo 16.
 * Threads take fixed "slots" (own scratch buffers) of consecutive chunks.
 *
 * The backward-data pass of such a layer is the same computation: a
 * 3x3 pad-1 convolution of dy with the weights rotated by 180 degrees and
 * c_in / c_out swapped. The weight gradient (end of the file) shares its
 * sweep over the chunks.
 *
 * Accuracy: besides the c_in-term sums of the direct method, each output
 * carries the rounding of the two transforms (entries up to 8 in A and 5
 * in B); tests/unit/backend/test_backend_winograd.c checks every output
 * (and every weight-gradient entry) against the elementwise forward-error
 * bound of the whole computation. */
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif

#include "backend/cpu/cpu.h"
#include "backend/cpu/cpu_winograd.h"
#include "core/isa.h"
#include "core/threads.h"

/* The transform loops run 16 lanes of floats: one version per ISA level
 * (core/isa.h). Those are built only where nothing is contracted into an
 * FMA, so every version gives the same bits. The AVX2 version works on
 * 8-lane halves (bt6, at6, a4) and transposes in 8 x 8 blocks
 * (transpose16_to): with 16-lane vectors GCC moves the values through
 * general registers and the stack there, and takes the shuffles apart
 * into scalar moves (together half of an AVX2 resnet20 step). Each half
 * gets the same operations in the same order as the whole vector. */

#define L WG_LANES

/* One lane per image of a group; every buffer holding vectors is 64-byte
 * aligned and vectors sit at multiples of L floats. */
typedef float vec __attribute__((vector_size(L * sizeof(float))));
typedef int ivec __attribute__((vector_size(L * sizeof(int))));

/* In-place transpose of the 16 x 16 matrix r[row][lane]: four stages,
 * each swapping one bit of the row index with the same bit of the lane
 * index through two-vector shuffles. */
static inline void transpose16(vec *r)
{
    static const ivec lo1 = {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30};
    static const ivec hi1 = {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31};
    static const ivec lo2 = {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29};
    static const ivec hi2 = {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31};
    static const ivec lo4 = {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27};
    static const ivec hi4 = {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31};
    static const ivec lo8 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
    static const ivec hi8 = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
#define WG_STAGE(S, LO, HI)                                    \
    for (int i_ = 0; i_ < 16; i_++)                            \
        if (!(i_ & (S))) {                                     \
            vec a_ = r[i_], b_ = r[i_ + (S)];                  \
            r[i_] = __builtin_shuffle(a_, b_, LO);             \
            r[i_ + (S)] = __builtin_shuffle(a_, b_, HI);       \
        }
    WG_STAGE(1, lo1, hi1)
    WG_STAGE(2, lo2, hi2)
    WG_STAGE(4, lo4, hi4)
    WG_STAGE(8, lo8, hi8)
#undef WG_STAGE
}

typedef float vec8 __attribute__((vector_size(8 * sizeof(float))));
typedef int ivec8 __attribute__((vector_size(8 * sizeof(int))));

/* dst[k * ds + i] = src[i * ss + k] for i, k < 8; src and dst 32-byte
 * aligned, the strides multiples of 8. Three stages of eight two-vector
 * shuffles that AVX2 has as single instructions: unpack (pairs of rows),
 * 64-bit shuffle (quads of rows), 128-bit permute (the halves). */
static inline __attribute__((always_inline)) void transpose8(const float *src, size_t ss, float *dst, size_t ds)
{
    static const ivec8 unlo = {0, 8, 1, 9, 4, 12, 5, 13}, unhi = {2, 10, 3, 11, 6, 14, 7, 15};
    static const ivec8 shlo = {0, 1, 8, 9, 4, 5, 12, 13}, shhi = {2, 3, 10, 11, 6, 7, 14, 15};
    static const ivec8 pelo = {0, 1, 2, 3, 8, 9, 10, 11}, pehi = {4, 5, 6, 7, 12, 13, 14, 15};
    vec8 a[8], b[8], c[8];
    for (int i = 0; i < 8; i++)
        a[i] = *(const vec8 *)(src + (size_t)i * ss);
    /* b[2p] = rows 2p, 2p+1 at columns 0 1 | 4 5, b[2p+1] at 2 3 | 6 7 */
    for (int p = 0; p < 4; p++) {
        b[2 * p] = __builtin_shuffle(a[2 * p], a[2 * p + 1], unlo);
        b[2 * p + 1] = __builtin_shuffle(a[2 * p], a[2 * p + 1], unhi);
    }
    /* c[4q + k] = rows 4q..4q+3 at column k | k + 4 */
    for (int q = 0; q < 2; q++)
        for (int k = 0; k < 2; k++) {
            c[4 * q + 2 * k] = __builtin_shuffle(b[4 * q + k], b[4 * q + 2 + k], shlo);
            c[4 * q + 2 * k + 1] = __builtin_shuffle(b[4 * q + k], b[4 * q + 2 + k], shhi);
        }
    for (int k = 0; k < 4; k++) {
        *(vec8 *)(dst + (size_t)k * ds) = __builtin_shuffle(c[k], c[4 + k], pelo);
        *(vec8 *)(dst + (size_t)(k + 4) * ds) = __builtin_shuffle(c[k], c[4 + k], pehi);
    }
}

/* The transpose of the 16 x 16 matrix r[row][lane]: at AVX2 into t, as
 * four 8 x 8 blocks, otherwise in place (transpose16). Returns where the
 * result is. */
static inline __attribute__((always_inline)) vec *transpose16_to(del_isa level, vec *r, vec *t)
{
    if (level != DEL_ISA_AVX2) {
        transpose16(r);
        return r;
    }
    for (int bi = 0; bi < 2; bi++)
        for (int bj = 0; bj < 2; bj++)
            transpose8((const float *)&r[8 * bi] + 8 * bj, L, (float *)&t[8 * bj] + 8 * bi, L);
    return t;
}

#define WG_SLOTS 8
#define WG_TARGET_COLS 128

int del_cpu_wg_applies(const del_conv2d_shape *s)
{
    return s->kernel == 3 && s->stride == 1 && s->pad == 1 && s->h_out == s->h_in && s->w_out == s->w_in &&
           s->c_in >= WG_MIN_CHANNELS && s->c_out >= WG_MIN_CHANNELS;
}

typedef struct wg_geom {
    int n, ci, co, h, w;
    int tr, tc;       /* tiles per column, per row */
    int rows;         /* tile rows per chunk (divides tr) */
    int chunks;       /* chunks per group */
    int groups, items;
    int dw;           /* interleaved input row length (columns): 4*tc + 2 */
    int dwr;          /* dw rounded up to 16: the row stride of D and R */
    size_t cols;      /* gemm columns of a chunk: rows * tc * L */
    size_t v, m, d, total; /* per-slot offsets and size, floats */
} wg_geom;

static size_t round16(size_t n)
{
    return (n + 15) / 16 * 16;
}

static wg_geom geom_of(int n, int ci, int co, int h, int w)
{
    wg_geom g = {.n = n, .ci = ci, .co = co, .h = h, .w = w};
    g.tr = (h + 3) / 4;
    g.tc = (w + 3) / 4;
    g.rows = 1;
    for (int r = 1; r <= g.tr; r++)
        if (g.tr % r == 0 && (size_t)r * g.tc * L <= WG_TARGET_COLS)
            g.rows = r;
    g.chunks = g.tr / g.rows;
    g.groups = (n + L - 1) / L;
    g.items = g.groups * g.chunks;
    g.dw = 4 * g.tc + 2;
    g.dwr = (g.dw + 15) / 16 * 16;
    g.cols = (size_t)g.rows * g.tc * L;
    g.v = 0;
    g.m = g.v + round16((size_t)36 * ci * g.cols);
    g.d = g.m + round16((size_t)36 * co * g.cols);
    g.total = g.d + (size_t)2 * 6 * g.dwr * L + (size_t)L * g.dwr; /* D, R, the staging rows */
    return g;
}

static size_t u_floats(int ci, int co)
{
    return round16((size_t)36 * ci * co);
}

static int slots_of(const wg_geom *g)
{
    return g->items < WG_SLOTS ? g->items : WG_SLOTS;
}

/* ---- weight transform: U[xi][o][i] = (G g G^T)[xi] for the 3x3 kernel g of (o, i) ---- */

static const double wg_G[6][3] = {
    {1.0 / 4, 0, 0},
    {-1.0 / 6, -1.0 / 6, -1.0 / 6},
    {-1.0 / 6, 1.0 / 6, -1.0 / 6},
    {1.0 / 24, 1.0 / 12, 1.0 / 6},
    {1.0 / 24, -1.0 / 12, 1.0 / 6},
    {0, 0, 1},
};

/* flip: the kernel of (o, i) is w[i][o] rotated by 180 degrees (the
 * backward-data pass); otherwise w[o][i]. w is [c_out][c_in][3][3] of the
 * layer in both cases; co/ci here are the output/input channels of this
 * Winograd convolution. */
typedef struct wt_job {
    int co, ci, flip;
    const float *w;
    float *u;
} wt_job;

/* Output channels [begin, end): each (o, i) writes its own 36 entries of u,
 * so any split gives the same bits. Blocks of input channels go through
 * the two products together (one lane per channel, the same double
 * expressions for each). */
#define WT_BLOCK 64
static void transform_weights_range(void *ctx, int64_t begin, int64_t end)
{
    const wt_job *j = ctx;
    int co = j->co, ci = j->ci, flip = j->flip;
    const float *w = j->w;
    float *u = j->u;
    for (int o = (int)begin; o < (int)end; o++)
        for (int i0 = 0; i0 < ci; i0 += WT_BLOCK) {
            int nb = ci - i0 < WT_BLOCK ? ci - i0 : WT_BLOCK;
            double g[3][3][WT_BLOCK], t[6][3][WT_BLOCK];
            for (int b = 0; b < nb; b++) {
                int i = i0 + b;
                const float *k = flip ? w + ((size_t)i * co + o) * 9 : w + ((size_t)o * ci + i) * 9;
                for (int a = 0; a < 3; a++)
                    for (int c = 0; c < 3; c++)
                        g[a][c][b] = flip ? k[(2 - a) * 3 + (2 - c)] : k[a * 3 + c];
            }
            for (int r = 0; r < 6; r++)
                for (int c = 0; c < 3; c++)
                    for (int b = 0; b < nb; b++)
                        t[r][c][b] = wg_G[r][0] * g[0][c][b] + wg_G[r][1] * g[1][c][b] + wg_G[r][2] * g[2][c][b];
            for (int r = 0; r < 6; r++)
                for (int c = 0; c < 6; c++) {
                    float *dst = u + ((size_t)(r * 6 + c) * co + o) * ci + i0;
                    for (int b = 0; b < nb; b++)
                        dst[b] = (float)(t[r][0][b] * wg_G[c][0] + t[r][1][b] * wg_G[c][1] + t[r][2][b] * wg_G[c][2]);
                }
        }
}

/* In parallel over output channels: run serially it was ~2.5% of a
 * 1-thread resnet20 training step (the weights change every step), all of
 * it with the other threads idle. */
static void transform_weights(int co, int ci, const float *w, int flip, float *u)
{
    wt_job j = {.co = co, .ci = ci, .flip = flip, .w = w, .u = u};
    del_parallel_for(co, transform_weights_range, &j);
}

/* ---- input transform ---- */

/* B^T: the six outputs r[0..5] of d[0..5]. */
#define WG_BT(d0, d1, d2, d3, d4, d5, r, rs)                    \
    do {                                                        \
        (r)[0] = 4.0f * (d0) - 5.0f * (d2) + (d4);              \
        (r)[(rs)] = -4.0f * ((d1) + (d2)) + ((d3) + (d4));      \
        (r)[2 * (rs)] = 4.0f * ((d1) - (d2)) + ((d4) - (d3));   \
        (r)[3 * (rs)] = 2.0f * ((d3) - (d1)) + ((d4) - (d2));   \
        (r)[4 * (rs)] = 2.0f * ((d1) - (d3)) + ((d4) - (d2));   \
        (r)[5 * (rs)] = 4.0f * (d1) - 5.0f * (d3) + (d5);       \
    } while (0)

/* WG_BT of p[0], p[ps], ..., p[5 ps] into r[0], r[rs], ..., r[5 rs]
 * (strides in vectors). At AVX2 one 8-lane half after the other: GCC
 * moves whole 16-lane vector values through general registers and the
 * stack there. The same holds for at6 and a4. */
static inline __attribute__((always_inline)) void bt6(del_isa level, const vec *p, size_t ps, vec *r, size_t rs)
{
    if (level == DEL_ISA_AVX2) {
        for (int h = 0; h < 2; h++) {
            const vec8 *q = (const vec8 *)p + h;
            vec8 *o = (vec8 *)r + h;
            vec8 d0 = q[0], d1 = q[2 * ps], d2 = q[4 * ps], d3 = q[6 * ps], d4 = q[8 * ps], d5 = q[10 * ps];
            WG_BT(d0, d1, d2, d3, d4, d5, o, 2 * rs);
        }
        return;
    }
    vec d0 = p[0], d1 = p[ps], d2 = p[2 * ps], d3 = p[3 * ps], d4 = p[4 * ps], d5 = p[5 * ps];
    WG_BT(d0, d1, d2, d3, d4, d5, r, rs);
}

typedef struct wg_job {
    wg_geom g;
    const float *x, *u;
    const float *in_scale, *in_shift; /* x's affine map and relu, or NULL */
    float *y;
    void *ws;
    /* weight gradient only: the output gradient (g.co channels) */
    const float *dy;
    /* epilogue (forward only): y = (acc + bias) * scale + shift, relu, 2x2 pool */
    const float *bias, *scale, *shift;
    int relu, pool;
} wg_job;

/* Gathers input rows [r0, r0 + 6) (padded coordinates) of channel c of the
 * group's images into D[6][dwr][L] (zero outside the image and for missing
 * images): each image's row is staged with its zero border, then 16 x 16
 * blocks (8 x 8 at AVX2) are transposed into lanes. */
static inline __attribute__((always_inline)) void gather_rows(del_isa level, const wg_job *j, int first, int c,
                                                              int r0, float *restrict dbuf, float *restrict stage)
{
    const wg_geom *g = &j->g;
    size_t plane = (size_t)g->h * g->w, img = (size_t)g->ci * plane;
    int nl = g->n - first < L ? g->n - first : L;
    for (int k = 0; k < 6; k++) {
        int ih = r0 + k - 1;
        vec *drow = (vec *)dbuf + (size_t)k * g->dwr;
        if (ih < 0 || ih >= g->h) {
            memset(drow, 0, (size_t)g->dwr * sizeof(vec));
            continue;
        }
        for (int lane = 0; lane < L; lane++) {
            float *st = stage + (size_t)lane * g->dwr;
            if (lane >= nl) {
                memset(st, 0, (size_t)g->dwr * sizeof(float));
                continue;
            }
            const float *src = j->x + (size_t)(first + lane) * img + (size_t)c * plane + (size_t)ih * g->w;
            /* the same row of the next channel, read next: the lanes' planes
             * are far apart, too many streams for the hardware prefetcher */
            if (c + 1 < g->ci)
                for (int q = 0; q < g->w; q += 16)
                    __builtin_prefetch(src + plane + q);
            st[0] = 0.0f;
            if (j->in_scale) {
                /* plane_affine's float expressions (cpu_norm.c) */
                float a = j->in_scale[c], b = j->in_shift[c];
                for (int q = 0; q < g->w; q++)
                    st[1 + q] = del_cpu_relu(src[q] * a + b);
            } else {
                memcpy(st + 1, src, (size_t)g->w * sizeof(float));
            }
            memset(st + 1 + g->w, 0, (size_t)(g->dwr - 1 - g->w) * sizeof(float));
        }
        if (level == DEL_ISA_AVX2) {
            /* straight from the staging rows: 8 lanes x 8 columns a block */
            for (int blk = 0; blk < g->dwr; blk += 8)
                for (int h = 0; h < 2; h++)
                    transpose8(stage + (size_t)8 * h * g->dwr + blk, g->dwr, (float *)(drow + blk) + 8 * h, L);
            continue;
        }
        for (int blk = 0; blk < g->dwr; blk += 16) {
            vec r[16];
            for (int lane = 0; lane < L; lane++)
                r[lane] = *(const vec *)(stage + (size_t)lane * g->dwr + blk);
            transpose16(r);
            for (int q = 0; q < 16; q++)
                drow[blk + q] = r[q];
        }
    }
}

/* A = AT^T: the six outputs z[0..5] of the four y[0..3], vectors of type T. */
#define WG_A(T, y0, y1, y2, y3, z, zs)                         \
    do {                                                       \
        T e02_ = (y0) + (y2), o13_ = (y1) + (y3);              \
        T e4_ = (y0) + 4.0f * (y2), o8_ = 2.0f * (y1) + 8.0f * (y3); \
        (z)[0] = (y0);                                         \
        (z)[(zs)] = e02_ + o13_;                               \
        (z)[2 * (zs)] = e02_ - o13_;                           \
        (z)[3 * (zs)] = e4_ + o8_;                             \
        (z)[4 * (zs)] = e4_ - o8_;                             \
        (z)[5 * (zs)] = (y3);                                  \
    } while (0)

/* WG_A of p[0], p[ps], p[2 ps], p[3 ps] into z[0], z[zs], ..., z[5 zs]
 * (strides in vectors); at AVX2 by halves (bt6). */
static inline __attribute__((always_inline)) void a4(del_isa level, const vec *p, size_t ps, vec *z, size_t zs)
{
    if (level == DEL_ISA_AVX2) {
        for (int h = 0; h < 2; h++) {
            const vec8 *q = (const vec8 *)p + h;
            vec8 y0 = q[0], y1 = q[2 * ps], y2 = q[4 * ps], y3 = q[6 * ps];
            WG_A(vec8, y0, y1, y2, y3, (vec8 *)z + h, 2 * zs);
        }
        return;
    }
    WG_A(vec, p[0], p[ps], p[2 * ps], p[3 * ps], z, zs);
}

/* Z = A Y A^T of one tile from y[a*ys + b] (all lanes) to dst[(i*6 + jj) * zs] */
static inline __attribute__((always_inline)) void a_transform(del_isa level, const vec *y, size_t ys, vec *dst,
                                                              size_t zs)
{
    vec tmp[6][4];
    for (int b = 0; b < 4; b++)
        a4(level, y + b, ys, &tmp[0][b], 4);
    for (int i = 0; i < 6; i++)
        a4(level, tmp[i], 1, dst + (size_t)(i * 6) * zs, zs);
}

/* V[xi][c][t*L + lane] for the tiles of one chunk: for each channel, tile
 * row by tile row, vertical B^T over whole interleaved rows, then the
 * horizontal B^T per tile. With zbuf (the backward pass, where the input
 * is dy) also Z = A dy A^T of the weight gradient, in the same layout, from
 * the gathered rows 1-4: each tile's 4x4 block of dy, already in lanes. */
DEL_ISA_BODY void input_transform_body(del_isa level, const wg_job *j, int first, int tr0, float *restrict v,
                                       float *restrict dbuf, float *restrict zbuf)
{
    const wg_geom *g = &j->g;
    size_t rowlen = (size_t)g->dwr * L;
    float *rbuf = dbuf + 6 * rowlen, *stage = rbuf + 6 * rowlen;
    size_t xs = (size_t)g->ci * g->cols / L; /* vectors between consecutive xi */
    for (int c = 0; c < g->ci; c++)
        for (int rr = 0; rr < g->rows; rr++) {
            gather_rows(level, j, first, c, 4 * (tr0 + rr), dbuf, stage);
            const vec *d = (const vec *)dbuf;
            size_t ds = (size_t)g->dwr;
            if (zbuf)
                for (int t = 0; t < g->tc; t++)
                    a_transform(level, d + ds + 4 * t + 1, ds,
                                (vec *)zbuf + (size_t)c * (g->cols / L) + (size_t)rr * g->tc + t, xs);
            /* vertical: rbuf row i = sum_k BT[i][k] dbuf row k */
            vec *r = (vec *)rbuf;
            for (int q = 0; q < g->dw; q++)
                bt6(level, d + q, ds, r + q, ds);
            /* horizontal, per tile: V[i*6 + jj] = sum_l BT[jj][l] rbuf[i][4t + l] */
            for (int i = 0; i < 6; i++)
                for (int t = 0; t < g->tc; t++) {
                    const vec *e = r + (size_t)i * g->dwr + 4 * t;
                    size_t col = (size_t)rr * g->tc + t;
                    vec *dst = (vec *)v + ((size_t)(i * 6) * g->ci + c) * (g->cols / L) + col;
                    bt6(level, e, 1, dst, xs);
                }
        }
}
DEL_ISA_VERSIONS_LEVEL(input_transform,
                       (const wg_job *j, int first, int tr0, float *restrict v, float *restrict dbuf,
                        float *restrict zbuf),
                       (j, first, tr0, v, dbuf, zbuf))

/* ---- output transform ---- */

/* A^T: the four outputs o[0..3] of m[0..5], vectors of type T. */
#define WG_AT(T, m0, m1, m2, m3, m4, m5, o, os)                \
    do {                                                       \
        T s12_ = (m1) + (m2), d12_ = (m1) - (m2);              \
        T s34_ = (m3) + (m4), d34_ = (m3) - (m4);              \
        (o)[0] = (m0) + s12_ + s34_;                           \
        (o)[(os)] = d12_ + 2.0f * d34_;                        \
        (o)[2 * (os)] = s12_ + 4.0f * s34_;                    \
        (o)[3 * (os)] = d12_ + 8.0f * d34_ + (m5);             \
    } while (0)

/* WG_AT of p[0], p[ps], ..., p[5 ps] into o[0], o[os], o[2 os], o[3 os]
 * (strides in vectors); at AVX2 by halves (bt6). */
static inline __attribute__((always_inline)) void at6(del_isa level, const vec *p, size_t ps, vec *o, size_t os)
{
    if (level == DEL_ISA_AVX2) {
        for (int h = 0; h < 2; h++) {
            const vec8 *q = (const vec8 *)p + h;
            vec8 m0 = q[0], m1 = q[2 * ps], m2 = q[4 * ps], m3 = q[6 * ps], m4 = q[8 * ps], m5 = q[10 * ps];
            WG_AT(vec8, m0, m1, m2, m3, m4, m5, (vec8 *)o + h, 2 * os);
        }
        return;
    }
    vec m0 = p[0], m1 = p[ps], m2 = p[2 * ps], m3 = p[3 * ps], m4 = p[4 * ps], m5 = p[5 * ps];
    WG_AT(vec, m0, m1, m2, m3, m4, m5, o, os);
}

/* o = o + bias, then * scale + shift if affine, then max(., 0) if relu,
 * with the float expressions of cpu_conv.c's epilogue */
static inline void epilogue(float *restrict o, int len, float bias, int affine, float scale, float shift, int relu)
{
    if (!affine && !relu) {
        for (int p = 0; p < len; p++)
            o[p] = o[p] + bias;
        return;
    }
    if (!affine)
        scale = 1.0f, shift = 0.0f;
    if (relu)
        for (int p = 0; p < len; p++)
            o[p] = del_cpu_relu((o[p] + bias) * scale + shift);
    else
        for (int p = 0; p < len; p++)
            o[p] = (o[p] + bias) * scale + shift;
}

/* The outputs of one chunk from M: per output channel and tile, A^T m A,
 * the epilogue, the pooling, then each lane to its image. */
DEL_ISA_BODY void output_transform_body(del_isa level, const wg_job *j, int first, int tr0,
                                        const float *restrict mbuf)
{
    const wg_geom *g = &j->g;
    int nl = g->n - first < L ? g->n - first : L;
    int affine = j->scale != NULL, post = j->bias || affine || j->relu;
    int ho = j->pool ? g->h / 2 : g->h, wo = j->pool ? g->w / 2 : g->w;
    size_t oplane = (size_t)ho * wo, oimg = (size_t)g->co * oplane, xs = (size_t)g->co * g->cols / L;
    float out[4][4][L] __attribute__((aligned(64)));
    vec outt[16];
    for (int c = 0; c < g->co; c++) {
        float b = j->bias ? j->bias[c] : 0.0f, sc = affine ? j->scale[c] : 1.0f, sh = affine ? j->shift[c] : 0.0f;
        for (int rr = 0; rr < g->rows; rr++)
            for (int t = 0; t < g->tc; t++) {
                const vec *m = (const vec *)mbuf + (size_t)c * (g->cols / L) + (size_t)rr * g->tc + t;
                vec tmp[4][6] __attribute__((aligned(64)));
                /* columns: tmp[a][jj] = sum_i AT[a][i] m[i*6 + jj] */
                for (int jj = 0; jj < 6; jj++)
                    at6(level, m + jj * xs, 6 * xs, &tmp[0][jj], 6);
                /* rows: out[a][bb] = sum_jj tmp[a][jj] AT[bb][jj] */
                for (int a = 0; a < 4; a++)
                    at6(level, tmp[a], 1, (vec *)&out[a][0][0], 1);
                if (post)
                    epilogue(&out[0][0][0], 16 * L, b, affine, sc, sh, j->relu);
                int oh0 = 4 * (tr0 + rr), ow0 = 4 * t;
                if (j->pool) {
                    float pooled[2][2][L];
                    for (int a = 0; a < 2; a++)
                        for (int bb = 0; bb < 2; bb++)
                            for (int p = 0; p < L; p++) {
                                float v0 = out[2 * a][2 * bb][p], v1 = out[2 * a][2 * bb + 1][p];
                                float v2 = out[2 * a + 1][2 * bb][p], v3 = out[2 * a + 1][2 * bb + 1][p];
                                float ab = del_cpu_pool_takes(v1, v0) ? v1 : v0;
                                float cd = del_cpu_pool_takes(v3, v2) ? v3 : v2;
                                pooled[a][bb][p] = del_cpu_pool_takes(cd, ab) ? cd : ab;
                            }
                    int ph0 = oh0 / 2, pw0 = ow0 / 2;
                    int nh = ho - ph0 < 2 ? ho - ph0 : 2, nw = wo - pw0 < 2 ? wo - pw0 : 2;
                    for (int lane = 0; lane < nl; lane++) {
                        float *dst = j->y + (size_t)(first + lane) * oimg + (size_t)c * oplane;
                        for (int a = 0; a < nh; a++)
                            for (int bb = 0; bb < nw; bb++)
                                dst[(size_t)(ph0 + a) * wo + pw0 + bb] = pooled[a][bb][lane];
                    }
                    continue;
                }
                int nh = g->h - oh0 < 4 ? g->h - oh0 : 4, nw = g->w - ow0 < 4 ? g->w - ow0 : 4;
                /* lanes to images: after the transpose, vector lane holds that image's 4 x 4 block */
                vec *r = transpose16_to(level, (vec *)&out[0][0][0], outt);
                for (int lane = 0; lane < nl; lane++) {
                    float *dst = j->y + (size_t)(first + lane) * oimg + (size_t)c * oplane + (size_t)oh0 * wo + ow0;
                    const float *blk = (const float *)&r[lane];
                    if (nw == 4)
                        for (int a = 0; a < nh; a++)
                            memcpy(dst + (size_t)a * wo, blk + 4 * a, 4 * sizeof(float));
                    else
                        for (int a = 0; a < nh; a++)
                            for (int bb = 0; bb < nw; bb++)
                                dst[(size_t)a * wo + bb] = blk[4 * a + bb];
                }
            }
    }
}
DEL_ISA_VERSIONS_LEVEL(output_transform, (const wg_job *j, int first, int tr0, const float *restrict mbuf),
                       (j, first, tr0, mbuf))

static float *ws_base(void *ws)
{
    return (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
}

/* One chunk of a convolution; zbuf as in input_transform. */
static void run_item(const wg_job *j, float *base, int item, float *zbuf)
{
    const wg_geom *g = &j->g;
    int group = item / g->chunks, tr0 = (item % g->chunks) * g->rows, first = group * L;
    float *v = base + g->v, *m = base + g->m;
    DEL_ISA_PICK(input_transform)(j, first, tr0, v, base + g->d, zbuf);
    for (int xi = 0; xi < 36; xi++)
        del_cpu_sgemm(0, 0, g->co, (int)g->cols, g->ci, 1.0f, j->u + (size_t)xi * g->co * g->ci, g->ci,
                      v + (size_t)xi * g->ci * g->cols, (int)g->cols, 0.0f, m + (size_t)xi * g->co * g->cols,
                      (int)g->cols);
    DEL_ISA_PICK(output_transform)(j, first, tr0, m);
}

static void wg_slots(void *ctx, int64_t begin, int64_t end)
{
    const wg_job *j = ctx;
    int slots = slots_of(&j->g), q = j->g.items / slots, r = j->g.items % slots;
    float *base0 = ws_base(j->ws) + u_floats(j->g.ci, j->g.co);
    for (int64_t slot = begin; slot < end; slot++) {
        int s = (int)slot, lo = s * q + (s < r ? s : r), hi = lo + q + (s < r ? 1 : 0);
        for (int item = lo; item < hi; item++)
            run_item(j, base0 + (size_t)s * j->g.total, item, NULL);
    }
}

static void wg_run(wg_job *j)
{
    del_parallel_for(slots_of(&j->g), wg_slots, j);
}

void del_cpu_wg_forward(const del_conv2d_shape *s, wg_input in, const float *w, const float *bias,
                        const float *scale, const float *shift, int relu, int pool, float *y, void *ws)
{
    wg_job j = {.g = geom_of(s->n, s->c_in, s->c_out, s->h_in, s->w_in), .x = in.x, .in_scale = in.scale,
                .in_shift = in.shift, .y = y, .ws = ws,
                .bias = bias, .scale = scale, .shift = shift, .relu = relu != 0, .pool = pool != 0};
    float *u = ws_base(ws);
    transform_weights(s->c_out, s->c_in, w, 0, u);
    j.u = u;
    wg_run(&j);
}


/* ---- weight gradient ----
 *
 * With U = G g G^T and y = A^T [sum_ci U . V] A per tile, the gradient of
 * U is dU[xi] = sum over tiles of Z[xi] V[xi]^T with Z = A dy A^T (the 4x4
 * output-gradient block taken to 6x6), and dg = G^T dU G. So the 36 gemms
 * Z[xi] (c_out x cols) times V[xi]^T (cols x c_in) of each chunk add into
 * its slot's dU; the slots' dU are summed in slot order and taken back to
 * 3x3 kernels once. Tile outputs past the image and missing images have a
 * zero dy, so they add nothing. */

/* Z[xi][c][t*L + lane] for the tiles of one chunk: each lane's 4x4 block
 * of dy, transposed into lanes, then A on its columns and rows. Only when
 * no input gradient is wanted; otherwise input_transform makes Z from the
 * dy rows it gathers anyway. */
DEL_ISA_BODY void dy_transform_body(del_isa level, const wg_job *j, int first, int tr0, float *restrict zbuf)
{
    const wg_geom *g = &j->g;
    int nl = g->n - first < L ? g->n - first : L;
    size_t plane = (size_t)g->h * g->w, img = (size_t)g->co * plane, xs = (size_t)g->co * g->cols / L;
    for (int c = 0; c < g->co; c++)
        for (int rr = 0; rr < g->rows; rr++) {
            int oh0 = 4 * (tr0 + rr);
            int nh = g->h - oh0 < 4 ? g->h - oh0 : 4;
            for (int t = 0; t < g->tc; t++) {
                int ow0 = 4 * t, nw = g->w - ow0 < 4 ? g->w - ow0 : 4;
                vec r[16] __attribute__((aligned(64))), rt[16];
                for (int lane = 0; lane < L; lane++) {
                    float *blk = (float *)&r[lane];
                    if (lane >= nl) {
                        memset(blk, 0, sizeof(vec));
                        continue;
                    }
                    const float *src = j->dy + (size_t)(first + lane) * img + (size_t)c * plane +
                                       (size_t)oh0 * g->w + ow0;
                    if (nh == 4 && nw == 4) {
                        for (int a = 0; a < 4; a++)
                            memcpy(blk + 4 * a, src + (size_t)a * g->w, 4 * sizeof(float));
                        continue;
                    }
                    memset(blk, 0, sizeof(vec));
                    for (int a = 0; a < nh; a++)
                        for (int b = 0; b < nw; b++)
                            blk[4 * a + b] = src[(size_t)a * g->w + b];
                }
                /* transposed: [a*4 + b] = dy[a][b] of every lane */
                a_transform(level, transpose16_to(level, r, rt), 4,
                            (vec *)zbuf + (size_t)c * (g->cols / L) + (size_t)rr * g->tc + t, xs);
            }
        }
}
DEL_ISA_VERSIONS_LEVEL(dy_transform, (const wg_job *j, int first, int tr0, float *restrict zbuf),
                       (j, first, tr0, zbuf))

/* The backward pass runs both gradients chunk by chunk: the input gradient
 * as a convolution of dy (geometry b: c_out -> c_in), whose gathered dy
 * rows also give Z, then the input transform of x (geometry f) and the
 * gemms into the slot's partial dU. A slot holds b's V, M and staging rows,
 * then V of x, Z and dU. Both geometries have the same chunks and items. */
typedef struct bw_slot {
    size_t vx, z, du, total;
} bw_slot;

static bw_slot bw_slot_of(const wg_geom *b, const wg_geom *f)
{
    bw_slot l;
    l.vx = b->total;
    l.z = l.vx + round16((size_t)36 * f->ci * f->cols);
    l.du = l.z + round16((size_t)36 * f->co * f->cols);
    l.total = l.du + u_floats(f->ci, f->co);
    return l;
}

typedef struct wb_job {
    wg_job d; /* input gradient: x = dy, y = dx, u = the rotated weights */
    wg_job f; /* weight gradient: x = x, dy = dy */
    bw_slot l;
    int want_dx, want_dw;
    float *dw;
} wb_job;

static float *bw_slot_base(const wb_job *b, int slot)
{
    return ws_base(b->d.ws) + u_floats(b->f.g.ci, b->f.g.co) + (size_t)slot * b->l.total;
}

static void backward_slots(void *ctx, int64_t begin, int64_t end)
{
    const wb_job *b = ctx;
    const wg_geom *g = &b->f.g;
    int slots = slots_of(g), q = g->items / slots, r = g->items % slots;
    for (int64_t slot = begin; slot < end; slot++) {
        int s = (int)slot, lo = s * q + (s < r ? s : r), hi = lo + q + (s < r ? 1 : 0);
        float *base = bw_slot_base(b, s), *v = base + b->l.vx, *z = base + b->l.z, *du = base + b->l.du;
        if (b->want_dw)
            memset(du, 0, (size_t)36 * g->co * g->ci * sizeof(float));
        for (int item = lo; item < hi; item++) {
            int group = item / g->chunks, tr0 = (item % g->chunks) * g->rows, first = group * L;
            if (b->want_dx)
                run_item(&b->d, base, item, b->want_dw ? z : NULL);
            else
                DEL_ISA_PICK(dy_transform)(&b->f, first, tr0, z);
            if (!b->want_dw)
                continue;
            DEL_ISA_PICK(input_transform)(&b->f, first, tr0, v, base + b->d.g.d, NULL);
            for (int xi = 0; xi < 36; xi++)
                del_cpu_sgemm(0, 1, g->co, g->ci, (int)g->cols, 1.0f, z + (size_t)xi * g->co * g->cols,
                              (int)g->cols, v + (size_t)xi * g->ci * g->cols, (int)g->cols, 1.0f,
                              du + (size_t)xi * g->co * g->ci, g->ci);
        }
    }
}

/* Output channels [begin, end): dw[o][i] += G^T (sum over slots of dU) G,
 * the slots added in slot order, in double; blocks of input channels
 * together, one lane per channel. */
static void wgrad_reduce(void *ctx, int64_t begin, int64_t end)
{
    const wb_job *b = ctx;
    const wg_geom *g = &b->f.g;
    int slots = slots_of(g), ci = g->ci;
    for (int o = (int)begin; o < (int)end; o++)
        for (int i0 = 0; i0 < ci; i0 += WT_BLOCK) {
            int nb = ci - i0 < WT_BLOCK ? ci - i0 : WT_BLOCK;
            double du[36][WT_BLOCK], t[3][6][WT_BLOCK];
            for (int xi = 0; xi < 36; xi++)
                for (int q = 0; q < nb; q++)
                    du[xi][q] = 0.0;
            for (int s = 0; s < slots; s++) {
                const float *src = bw_slot_base(b, s) + b->l.du;
                for (int xi = 0; xi < 36; xi++) {
                    const float *row = src + ((size_t)xi * g->co + o) * ci + i0;
                    for (int q = 0; q < nb; q++)
                        du[xi][q] += row[q];
                }
            }
            for (int a = 0; a < 3; a++)
                for (int c = 0; c < 6; c++)
                    for (int q = 0; q < nb; q++)
                        t[a][c][q] = wg_G[0][a] * du[c][q] + wg_G[1][a] * du[6 + c][q] + wg_G[2][a] * du[12 + c][q] +
                                     wg_G[3][a] * du[18 + c][q] + wg_G[4][a] * du[24 + c][q] +
                                     wg_G[5][a] * du[30 + c][q];
            for (int a = 0; a < 3; a++)
                for (int bb = 0; bb < 3; bb++)
                    for (int q = 0; q < nb; q++) {
                        double v = 0.0;
                        for (int c = 0; c < 6; c++)
                            v += t[a][c][q] * wg_G[c][bb];
                        b->dw[((size_t)o * ci + i0 + q) * 9 + a * 3 + bb] += (float)v;
                    }
        }
}

void del_cpu_wg_backward(const del_conv2d_shape *s, wg_input in, const float *w, const float *dy, float *dx,
                         float *dw, void *ws)
{
    wb_job b = {.d = {.g = geom_of(s->n, s->c_out, s->c_in, s->h_in, s->w_in), .x = dy, .y = dx, .ws = ws},
                .f = {.g = geom_of(s->n, s->c_in, s->c_out, s->h_in, s->w_in), .x = in.x, .in_scale = in.scale,
                      .in_shift = in.shift, .dy = dy, .ws = ws},
                .want_dx = dx != NULL, .want_dw = dw != NULL, .dw = dw};
    if (!dx && !dw)
        return;
    b.l = bw_slot_of(&b.d.g, &b.f.g);
    if (dx) {
        float *u = ws_base(ws);
        transform_weights(s->c_in, s->c_out, w, 1, u);
        b.d.u = u;
    }
    del_parallel_for(slots_of(&b.f.g), backward_slots, &b);
    if (dw)
        del_parallel_for(s->c_out, wgrad_reduce, &b);
}

/* The larger of the two passes: forward (c_in -> c_out) and backward (see
 * bw_slot_of), after the transformed weights. */
size_t del_cpu_wg_workspace(const del_conv2d_shape *s)
{
    if (!del_cpu_wg_applies(s))
        return 0;
    wg_geom f = geom_of(s->n, s->c_in, s->c_out, s->h_in, s->w_in);
    wg_geom b = geom_of(s->n, s->c_out, s->c_in, s->h_in, s->w_in);
    size_t fs = (size_t)slots_of(&f) * f.total, bs = (size_t)slots_of(&f) * bw_slot_of(&b, &f).total;
    return (u_floats(s->c_in, s->c_out) + (fs > bs ? fs : bs)) * sizeof(float) + 64;
}
