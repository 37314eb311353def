/* Writes the seed corpora of the model-loader fuzz targets:
 *   DIR/model_load/    whole model files: small valid models of every layer
 *                      type and one with heads, and damaged copies
 *                      (truncated, flipped bytes, a future version, lying
 *                      sizes)
 *   DIR/model_payload/ the uncompressed payloads of the valid models
 * usage: make_corpus DIR (the directories must exist). tests/fuzz/build.sh
 * builds and runs it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "del.h"

static const char *const specs[] = {
    "input 1 2 2",
    "input 1 1 3; flatten; linear 2",
    "input 1 4 4; flatten; linear 5 bias=0; relu; dropout 0.5; linear 3",
    "input 1 5 5; conv2d 2 k=3 p=1; batchnorm; relu; maxpool 2; flatten; linear 2",
    "input 2 6 5; conv2d 3 k=2 s=2 bias=0; batchnorm eps=1e-3 momentum=0.5; maxpool 1 s=2; flatten; "
    "batchnorm; linear 2 bias=0",
};

/* The backbone and heads (name, spec) of the headed seed: a relu right
 * after the backbone's batchnorm, two heads of different depths. */
static const char *const heads_backbone = "input 1 4 4; conv2d 2 k=3 p=1; batchnorm";
static const char *const heads_specs[][2] = {
    {"old", "relu; flatten; linear 3"},
    {"new.v2", "maxpool 2; flatten; linear 4 bias=0; relu; linear 2"},
};

static void put_file(const char *dir, const char *sub, const char *name, const void *data, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "make_corpus: cannot write %s\n", path);
        exit(1);
    }
}

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void fix_header_crc(uint8_t *f)
{
    put_le(f + 36, crc32(0L, f, 36), 4);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    const size_t n_specs = sizeof specs / sizeof specs[0];
    for (size_t i = 0; i <= n_specs; i++) {
        del_model *m = NULL;
        void *buf = NULL;
        size_t n = 0;
        /* the last seed is the model with heads */
        del_status st = del_model_from_spec(&m, i < n_specs ? specs[i] : heads_backbone);
        for (size_t h = 0; i == n_specs && h < sizeof heads_specs / sizeof heads_specs[0] && st == DEL_OK; h++)
            st = del_model_add_head(m, heads_specs[h][0], heads_specs[h][1]);
        if (st != DEL_OK || del_model_save_buffer(m, &buf, &n) != DEL_OK) {
            fprintf(stderr, "make_corpus: %s\n", del_last_error());
            return 1;
        }
        uint8_t *f = buf;
        char name[64];
        snprintf(name, sizeof name, "valid_%zu.delm", i);
        put_file(dir, "model_load", name, f, n);

        /* the payload, for the payload target */
        uint64_t rawlen = 0;
        for (int k = 7; k >= 0; k--)
            rawlen = rawlen << 8 | f[24 + k];
        /* the payload target reads the format version from a first byte */
        uint8_t *raw = malloc(rawlen + 1);
        uLongf got = (uLongf)rawlen;
        if (!raw || uncompress(raw + 1, &got, f + 40, (uLong)(n - 40)) != Z_OK || got != rawlen) {
            fprintf(stderr, "make_corpus: cannot decompress model %zu\n", i);
            return 1;
        }
        raw[0] = f[4];
        snprintf(name, sizeof name, "payload_%zu.bin", i);
        put_file(dir, "model_payload", name, raw, (size_t)rawlen + 1);
        free(raw);

        if (i != 3) {
            del_buffer_free(buf);
            del_model_free(m);
            continue;
        }
        /* damaged copies of one model */
        put_file(dir, "model_load", "truncated_header.delm", f, 20);
        put_file(dir, "model_load", "truncated_payload.delm", f, n - 7);
        f[n / 2] ^= 0x40;
        put_file(dir, "model_load", "flipped_payload.delm", f, n);
        f[n / 2] ^= 0x40;
        f[20] ^= 0x01;
        put_file(dir, "model_load", "flipped_header.delm", f, n);
        f[20] ^= 0x01;
        put_le(f + 4, 4, 4);
        fix_header_crc(f);
        put_file(dir, "model_load", "future_version.delm", f, n);
        put_le(f + 4, 1, 4);
        put_le(f + 24, (uint64_t)1 << 40, 8);
        fix_header_crc(f);
        put_file(dir, "model_load", "huge_size.delm", f, n);
        put_file(dir, "model_load", "bad_magic.delm", "DELX\1\0\0\0", 8);
        del_buffer_free(buf);
        del_model_free(m);
    }
    return 0;
}
