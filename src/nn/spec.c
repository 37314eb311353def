/* Spec strings ("input 1 28 28; flatten; linear 10") and named presets.
 * Each layer's syntax is a row of a table: its positional numbers and its
 * key=value options, each bound to a field of del_layer_cfg. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "nn/model_internal.h"

#define SPEC_FUNC "del_model_from_spec"
#define SPEC_MAX_TOKENS 16
#define SPEC_MAX_FIELDS 4

typedef struct spec_field {
    const char *name; /* positional: shown in messages; option: the key */
    int is_float;
    size_t offset;    /* into del_layer_cfg */
} spec_field;

typedef struct spec_layer {
    const char *name;
    const del_layer_ops *ops;
    del_layer_cfg defaults;
    int n_pos;
    spec_field pos[SPEC_MAX_FIELDS];
    int n_opt;
    spec_field opt[SPEC_MAX_FIELDS];
} spec_layer;

#define INT_FIELD(n, f) {n, 0, offsetof(del_layer_cfg, f)}
#define FLOAT_FIELD(n, f) {n, 1, offsetof(del_layer_cfg, f)}

static const spec_layer spec_layers[] = {
    {"conv2d", &del_layer_conv2d, {.kernel = 3, .stride = 1, .pad = 0, .bias = 1},
     1, {INT_FIELD("OUT", out)},
     4, {INT_FIELD("k", kernel), INT_FIELD("s", stride), INT_FIELD("p", pad), INT_FIELD("bias", bias)}},
    {"linear", &del_layer_linear, {.bias = 1}, 1, {INT_FIELD("OUT", out)}, 1, {INT_FIELD("bias", bias)}},
    {"batchnorm", &del_layer_batchnorm, {.eps = 1e-5f, .momentum = 0.1f}, 0, {{0}},
     2, {FLOAT_FIELD("eps", eps), FLOAT_FIELD("momentum", momentum)}},
    {"relu", &del_layer_relu, {0}, 0, {{0}}, 0, {{0}}},
    {"flatten", &del_layer_flatten, {0}, 0, {{0}}, 0, {{0}}},
    /* stride 0 stands for "same as the kernel", filled in after parsing. */
    {"maxpool", &del_layer_maxpool, {.stride = 0}, 1, {INT_FIELD("K", kernel)}, 1, {INT_FIELD("s", stride)}},
    {"dropout", &del_layer_dropout, {0}, 1, {FLOAT_FIELD("P", p)}, 0, {{0}}},
    {"avgpool", &del_layer_avgpool, {.stride = 0}, 1, {INT_FIELD("K", kernel)}, 1, {INT_FIELD("s", stride)}},
    {"gap", &del_layer_global_avgpool, {0}, 0, {{0}}, 0, {{0}}},
    {"residual", &del_layer_residual, {.stride = 1, .survival = 1.0f}, 1, {INT_FIELD("OUT", out)},
     2, {INT_FIELD("s", stride), FLOAT_FIELD("survival", survival)}},
};

#define N_SPEC_LAYERS ((int)(sizeof spec_layers / sizeof spec_layers[0]))

/* One item of the spec being parsed, for messages. */
typedef struct spec_item {
    const char *func; /* the public entry parsing it */
    int number;       /* 1-based among non-empty items */
    const char *text; /* into the caller's string */
    int len;
} spec_item;

__attribute__((format(printf, 3, 4))) static del_status item_error(del_status st, const spec_item *it,
                                                                   const char *fmt, ...)
{
    char detail[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    int shown = it->len > 60 ? 60 : it->len;
    return del_error(st, "%s: item %d '%.*s%s': %s", it->func, it->number, shown, it->text,
                     shown < it->len ? "..." : "", detail);
}

static int parse_int(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE || v < INT_MIN || v > INT_MAX)
        return 0;
    *out = (int)v;
    return 1;
}

static int parse_float(const char *s, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

static del_status parse_field(const spec_field *f, const char *text, del_layer_cfg *cfg,
                              const spec_item *it)
{
    char *dst = (char *)cfg + f->offset;
    if (f->is_float) {
        float v;
        if (!parse_float(text, &v))
            return item_error(DEL_EFORMAT, it, "expected a number for %s, got '%s'", f->name, text);
        memcpy(dst, &v, sizeof v);
    } else {
        int v;
        float as_float;
        if (!parse_int(text, &v))
            return item_error(DEL_EFORMAT, it, "expected %s for %s, got '%s'",
                              parse_float(text, &as_float) ? "an integer" : "a number", f->name, text);
        memcpy(dst, &v, sizeof v);
    }
    return DEL_OK;
}

static void list_options(const spec_layer *sl, char *out, size_t size)
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < sl->n_opt && len < size; i++)
        len += (size_t)snprintf(out + len, size - len, "%s%s", i ? ", " : "", sl->opt[i].name);
    if (sl->n_opt == 0)
        snprintf(out, size, "none");
}

/* Re-words the failure of an add call so it names the item. */
static del_status rephrase(del_status st, const spec_item *it)
{
    char msg[DEL_ERROR_MSG_SIZE];
    snprintf(msg, sizeof msg, "%s", del_last_error());
    const char *detail = msg;
    const char *colon = strstr(msg, ": ");
    if (colon && strncmp(msg, "del_", 4) == 0)
        detail = colon + 2;
    return item_error(st, it, "%s", detail);
}

static del_status parse_layer(del_model *m, const spec_layer *sl, char **tok, int ntok, const spec_item *it)
{
    del_layer_cfg cfg = sl->defaults;
    int npos = 0;
    unsigned seen = 0;
    for (int t = 1; t < ntok; t++) {
        char *eq = strchr(tok[t], '=');
        if (!eq) {
            if (npos >= sl->n_pos)
                return item_error(DEL_EFORMAT, it, "unexpected '%s' (%s takes %d number%s)", tok[t],
                                  sl->name, sl->n_pos, sl->n_pos == 1 ? "" : "s");
            del_status st = parse_field(&sl->pos[npos++], tok[t], &cfg, it);
            if (st != DEL_OK)
                return st;
            continue;
        }
        *eq = '\0';
        int k = 0;
        while (k < sl->n_opt && strcmp(sl->opt[k].name, tok[t]) != 0)
            k++;
        if (k == sl->n_opt) {
            char opts[64];
            list_options(sl, opts, sizeof opts);
            return item_error(DEL_EFORMAT, it, "unknown option '%s' (%s takes: %s)", tok[t], sl->name,
                              opts);
        }
        if (seen & (1u << k))
            return item_error(DEL_EFORMAT, it, "option '%s' given twice", tok[t]);
        seen |= 1u << k;
        del_status st = parse_field(&sl->opt[k], eq + 1, &cfg, it);
        if (st != DEL_OK)
            return st;
    }
    if (npos < sl->n_pos)
        return item_error(DEL_EFORMAT, it, "expected a number for %s", sl->pos[npos].name);
    if ((sl->ops == &del_layer_maxpool || sl->ops == &del_layer_avgpool) && !(seen & 1u))
        cfg.stride = cfg.kernel;
    del_status st = del_model_add_layer(m, sl->ops, &cfg, it->func);
    return st == DEL_OK ? st : rephrase(st, it);
}

static del_status parse_input(del_model **out, char **tok, int ntok, const spec_item *it)
{
    static const char *const names[3] = {"C", "H", "W"};
    int v[3];
    if (ntok > 4)
        return item_error(DEL_EFORMAT, it, "unexpected '%s' (input takes C H W)", tok[4]);
    for (int i = 0; i < 3; i++) {
        if (i + 1 >= ntok)
            return item_error(DEL_EFORMAT, it, "expected a number for %s", names[i]);
        if (!parse_int(tok[i + 1], &v[i]))
            return item_error(DEL_EFORMAT, it, "expected a number for %s, got '%s'", names[i],
                              tok[i + 1]);
    }
    del_status st = del_model_new(out, v[0], v[1], v[2]);
    return st == DEL_OK ? st : rephrase(st, it);
}

static del_status unknown_layer(const spec_item *it, const char *name)
{
    char names[160] = "input";
    size_t len = strlen(names);
    for (int i = 0; i < N_SPEC_LAYERS && len < sizeof names; i++)
        len += (size_t)snprintf(names + len, sizeof names - len, ", %s", spec_layers[i].name);
    return item_error(DEL_EFORMAT, it, "unknown layer '%s' (expected one of %s)", name, names);
}

/* Splits item text in place into whitespace-separated tokens. */
static int tokenize(char *s, char **tok)
{
    int n = 0;
    while (*s) {
        while (*s && isspace((unsigned char)*s))
            *s++ = '\0';
        if (!*s)
            break;
        if (n == SPEC_MAX_TOKENS)
            return -1;
        tok[n++] = s;
        while (*s && !isspace((unsigned char)*s))
            s++;
    }
    return n;
}

/* Parses spec into *m: with with_input, the first item is "input C H W"
 * and creates *m; without, *m exists and gets the layers appended. */
static del_status parse_spec(del_model **m, const char *spec, const char *func, int with_input)
{
    size_t total = strlen(spec);
    char *copy = malloc(total + 1);
    if (!copy)
        return del_error(DEL_ENOMEM, "%s: out of memory", func);
    memcpy(copy, spec, total + 1);

    del_status st = DEL_OK;
    spec_item it = {func, 0, NULL, 0};
    size_t pos = 0;
    while (pos < total) {
        size_t end = pos;
        while (end < total && spec[end] != ';' && spec[end] != '\n')
            end++;
        /* Trim for messages; the copy is tokenised. */
        size_t a = pos, b = end;
        while (a < b && isspace((unsigned char)spec[a]))
            a++;
        while (b > a && isspace((unsigned char)spec[b - 1]))
            b--;
        copy[end] = '\0';
        char *item_copy = copy + pos;
        pos = end + 1;
        if (a == b)
            continue;
        it.number++;
        it.text = spec + a;
        it.len = b - a > 1000 ? 1000 : (int)(b - a);
        char *tok[SPEC_MAX_TOKENS];
        int ntok = tokenize(item_copy, tok);
        if (ntok < 0) {
            st = item_error(DEL_EFORMAT, &it, "too many words (at most %d)", SPEC_MAX_TOKENS);
            goto cleanup;
        }
        if (strcmp(tok[0], "input") == 0) {
            if (!with_input) {
                st = item_error(DEL_EFORMAT, &it, "a head has no 'input' item (it reads the backbone's output)");
                goto cleanup;
            }
            if (*m) {
                st = item_error(DEL_EFORMAT, &it, "'input' may only be the first item");
                goto cleanup;
            }
            st = parse_input(m, tok, ntok, &it);
            if (st != DEL_OK)
                goto cleanup;
            continue;
        }
        int k = 0;
        while (k < N_SPEC_LAYERS && strcmp(spec_layers[k].name, tok[0]) != 0)
            k++;
        if (k == N_SPEC_LAYERS) {
            st = unknown_layer(&it, tok[0]);
            goto cleanup;
        }
        if (!*m) {
            st = item_error(DEL_EFORMAT, &it, "the first item must be 'input C H W'");
            goto cleanup;
        }
        st = parse_layer(*m, &spec_layers[k], tok, ntok, &it);
        if (st != DEL_OK)
            goto cleanup;
    }
    if (with_input && !*m)
        st = del_error(DEL_EFORMAT, "%s: empty spec: expected 'input C H W' first", func);
    else if (!with_input && it.number == 0)
        st = del_error(DEL_EFORMAT, "%s: empty spec: expected at least one layer (e.g. \"linear 10\")", func);
cleanup:
    free(copy);
    return st;
}

DEL_API del_status del_model_from_spec(del_model **out, const char *spec)
{
    if (!out)
        return del_error_null(SPEC_FUNC, "out");
    *out = NULL;
    if (!spec)
        return del_error_null(SPEC_FUNC, "spec");
    del_model *m = NULL;
    del_status st = parse_spec(&m, spec, SPEC_FUNC, 1);
    if (st != DEL_OK) {
        del_model_free(m);
        return st;
    }
    *out = m;
    return DEL_OK;
}

del_status del_model_parse_layers(del_model *m, const char *spec, const char *func)
{
    return parse_spec(&m, spec, func, 0);
}

/* ---- presets ---- */

static del_status preset_fmnist_cnn(del_model *m, int num_classes, int k)
{
    (void)k;
    static const int widths[4] = {32, 32, 64, 64};
    del_status st = DEL_OK;
    for (int i = 0; i < 4 && st == DEL_OK; i++) {
        st = del_model_add_conv2d(m, widths[i], 3, 1, 1, 0);
        if (st == DEL_OK)
            st = del_model_add_batchnorm(m, 1e-5f, 0.1f);
        if (st == DEL_OK)
            st = del_model_add_relu(m);
        if (st == DEL_OK && i % 2 == 1)
            st = del_model_add_maxpool(m, 2, 2);
    }
    if (st == DEL_OK)
        st = del_model_add_flatten(m);
    if (st == DEL_OK)
        st = del_model_add_linear(m, 128, 1);
    if (st == DEL_OK)
        st = del_model_add_relu(m);
    if (st == DEL_OK)
        st = del_model_add_dropout(m, 0.5f);
    if (st == DEL_OK)
        st = del_model_add_linear(m, num_classes, 1);
    return st;
}

static del_status preset_mlp(del_model *m, int num_classes, int k)
{
    (void)k;
    del_status st = del_model_add_flatten(m);
    if (st == DEL_OK)
        st = del_model_add_linear(m, 256, 1);
    if (st == DEL_OK)
        st = del_model_add_relu(m);
    if (st == DEL_OK)
        st = del_model_add_linear(m, num_classes, 1);
    return st;
}

/* The CIFAR ResNet layout (He et al. 2016, section 4.2): conv3x3 16 (no
 * bias) BN ReLU, three stages of `blocks` residual blocks of widths w, 2w,
 * 4w with stride 2 at the first block of stages 2 and 3, global average
 * pooling, linear. Blocks that change the shape use a projection shortcut
 * (residual.c). */
static del_status cifar_resnet(del_model *m, int blocks, int width, int num_classes)
{
    del_status st = del_model_add_conv2d(m, 16, 3, 1, 1, 0);
    if (st == DEL_OK)
        st = del_model_add_batchnorm(m, 1e-5f, 0.1f);
    if (st == DEL_OK)
        st = del_model_add_relu(m);
    for (int stage = 0; stage < 3 && st == DEL_OK; stage++)
        for (int b = 0; b < blocks && st == DEL_OK; b++)
            st = del_model_add_residual(m, width << stage, stage > 0 && b == 0 ? 2 : 1, 1.0f);
    if (st == DEL_OK)
        st = del_model_add_global_avgpool(m);
    if (st == DEL_OK)
        st = del_model_add_linear(m, num_classes, 1);
    return st;
}

/* ResNet-20: depth 6n + 2 with n = 3 blocks per stage, widths 16/32/64. */
static del_status preset_resnet20(del_model *m, int num_classes, int k)
{
    (void)k;
    return cifar_resnet(m, 3, 16, num_classes);
}

/* WRN-16-k (Zagoruyko & Komodakis 2016): depth 16 = 6n + 4, n = 2 blocks
 * per stage, widths 16k/32k/64k. Built from the post-activation block of
 * the ResNets above, not the paper's pre-activation one, and without its
 * dropout. */
static del_status preset_wrn16(del_model *m, int num_classes, int k)
{
    return cifar_resnet(m, 2, 16 * k, num_classes);
}

typedef struct preset {
    /* a family when kmax > 0: the name ends in "K", an integer in kmin..kmax */
    const char *name;
    del_status (*build)(del_model *m, int num_classes, int k);
    int kmin, kmax;
} preset;

static const preset presets[] = {
    {"fmnist-cnn", preset_fmnist_cnn, 0, 0},
    {"mlp", preset_mlp, 0, 0},
    {"resnet20", preset_resnet20, 0, 0},
    {"wrn-16-K", preset_wrn16, 1, 10},
};

#define N_PRESETS ((int)(sizeof presets / sizeof presets[0]))

/* 1 if name is preset p (*k receives a family's K), -1 if it is of p's
 * family with a bad K, 0 otherwise. */
static int preset_match(const preset *p, const char *name, int *k)
{
    *k = 0;
    if (p->kmax == 0)
        return strcmp(p->name, name) == 0;
    size_t plen = strlen(p->name) - 1;
    if (strncmp(p->name, name, plen) != 0)
        return 0;
    const char *digits = name + plen;
    size_t nd = strspn(digits, "0123456789");
    if (nd == 0 || nd > 3 || digits[nd] != '\0' || digits[0] == '0')
        return -1;
    *k = atoi(digits);
    return *k >= p->kmin && *k <= p->kmax ? 1 : -1;
}

DEL_API del_status del_model_preset(del_model **out, const char *name, int channels, int height,
                                    int width, int num_classes)
{
    if (!out)
        return del_error_null("del_model_preset", "out");
    *out = NULL;
    if (!name)
        return del_error_null("del_model_preset", "name");
    int k = 0, arg = 0, match = 0;
    while (k < N_PRESETS && (match = preset_match(&presets[k], name, &arg)) == 0)
        k++;
    if (match < 0)
        return del_error(DEL_EINVAL, "del_model_preset: 'name' %s needs K in %d..%d, got '%s'", presets[k].name,
                         presets[k].kmin, presets[k].kmax, name);
    if (k == N_PRESETS) {
        char names[160];
        size_t len = 0;
        names[0] = '\0';
        for (int i = 0; i < N_PRESETS && len < sizeof names; i++) {
            const preset *p = &presets[i];
            if (p->kmax > 0)
                len += (size_t)snprintf(names + len, sizeof names - len, "%s%s (K = %d..%d)", i ? ", " : "",
                                        p->name, p->kmin, p->kmax);
            else
                len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "", p->name);
        }
        return del_error(DEL_EINVAL, "del_model_preset: 'name' must be one of %s, got '%s'", names, name);
    }
    if (num_classes < 2)
        return del_error(DEL_EINVAL, "del_model_preset: 'num_classes' must be >= 2, got %d", num_classes);
    del_model *m = NULL;
    del_status st = del_model_new(&m, channels, height, width);
    char msg[DEL_ERROR_MSG_SIZE];
    if (st != DEL_OK) {
        snprintf(msg, sizeof msg, "%s", del_last_error());
        const char *colon = strstr(msg, ": ");
        return del_error(st, "del_model_preset: %s", colon ? colon + 2 : msg);
    }
    st = presets[k].build(m, num_classes, arg);
    if (st == DEL_ENOMEM) {
        del_model_free(m);
        return del_error(st, "del_model_preset: out of memory building '%s'", name);
    }
    if (st != DEL_OK) {
        snprintf(msg, sizeof msg, "%s", del_last_error());
        del_model_free(m);
        return del_error(st, "del_model_preset: '%s' does not fit input %dx%dx%d: %s", name, channels,
                         height, width, msg);
    }
    *out = m;
    return DEL_OK;
}
