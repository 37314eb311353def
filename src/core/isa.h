/* Internal: which SIMD version of a kernel runs (DEL_CPU_ISA).
 *
 * A kernel that gains from wider vectors is written once, as an
 * always-inlined body, and compiled into one version per ISA level by
 * DEL_ISA_VERSIONS; its callers call DEL_ISA_PICK(name)(args), which
 * takes the version of del_isa_level(). So every level can be run (and
 * tested) on a machine that has the highest one.
 *
 *     DEL_ISA_BODY void scale_body(float *x, size_t n, float a) { ... }
 *     DEL_ISA_VERSIONS(scale, (float *x, size_t n, float a), (x, n, a))
 *     ...
 *     DEL_ISA_PICK(scale)(x, n, 2.0f);
 *
 * The AVX2 and AVX-512 levels are x86-64-v3 and -v4, both with FMA: they
 * are built only in ISO C mode, where GCC's default -ffp-contract=off
 * never fuses a multiply and an add, so that the versions of a kernel
 * round alike (the augmentation blends must match Pillow bit for bit).
 * Elsewhere (clang, which contracts; other CPUs; GNU C mode) only the
 * generic version exists and DEL_ISA_PICK takes it. */
#ifndef DEL_CORE_ISA_H
#define DEL_CORE_ISA_H

typedef enum del_isa {
    DEL_ISA_GENERIC = 0, /* the build's baseline (SSE2 on x86-64) */
    DEL_ISA_AVX2 = 1,    /* x86-64-v3: AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE */
    DEL_ISA_AVX512 = 2   /* x86-64-v4: v3 + AVX-512 F, BW, CD, DQ, VL */
} del_isa;

/* The level in use: the best the CPU (and OS) supports among the levels
 * this build has, capped by the environment variable DEL_CPU_ISA, which
 * is read once. Thread-safe. */
del_isa del_isa_level(void);

/* The best level the CPU supports among those this build has; not capped. */
del_isa del_isa_best(void);

/* "generic", "avx2" or "avx512". */
const char *del_isa_name(del_isa level);

/* 1 if the AVX-512 level is in use and the CPU also has AVX-512 VBMI. */
int del_isa_has_avx512vbmi(void);

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__STRICT_ANSI__) && \
    !defined(DEL_NO_ISA_VERSIONS)
#define DEL_ISA_MULTI 1
#else
#define DEL_ISA_MULTI 0
#endif

/* A kernel body: inlined into each version, so compiled for its ISA. */
#define DEL_ISA_BODY static inline __attribute__((always_inline))

#if DEL_ISA_MULTI
#define DEL_ISA_TARGET_AVX512 __attribute__((target("arch=x86-64-v4")))
#define DEL_ISA_TARGET_AVX2 __attribute__((target("arch=x86-64-v3")))

/* name##_avx512, name##_avx2 and name##_generic, each calling
 * name##_body (void kernels). params: the parenthesised parameter list;
 * args: the parenthesised argument list that forwards them. */
#define DEL_ISA_VERSIONS(name, params, args)                                 \
    DEL_ISA_TARGET_AVX512 static void name##_avx512 params { name##_body args; } \
    DEL_ISA_TARGET_AVX2 static void name##_avx2 params { name##_body args; }     \
    static void name##_generic params { name##_body args; }

/* The same for kernels that return a value of type ret. */
#define DEL_ISA_VERSIONS_RET(ret, name, params, args)                               \
    DEL_ISA_TARGET_AVX512 static ret name##_avx512 params { return name##_body args; } \
    DEL_ISA_TARGET_AVX2 static ret name##_avx2 params { return name##_body args; }     \
    static ret name##_generic params { return name##_body args; }

/* Like DEL_ISA_VERSIONS, for a body whose first parameter is the
 * version's level (a constant once inlined), for a kernel that takes
 * another shape at some level (cpu_winograd.c: 8-lane halves at AVX2,
 * where GCC moves 16-lane vectors through the stack and takes their
 * shuffles apart into scalar moves). Void kernels. */
#define DEL_ISA_VERSIONS_LEVEL(name, params, args)                                                       \
    DEL_ISA_TARGET_AVX512 static void name##_avx512 params { name##_body(DEL_ISA_AVX512, DEL_ISA_UNPAREN args); } \
    DEL_ISA_TARGET_AVX2 static void name##_avx2 params { name##_body(DEL_ISA_AVX2, DEL_ISA_UNPAREN args); }       \
    static void name##_generic params { name##_body(DEL_ISA_GENERIC, DEL_ISA_UNPAREN args); }

/* The version of name for the level in use. */
#define DEL_ISA_PICK(name)                                                                      \
    (del_isa_level() == DEL_ISA_AVX512 ? name##_avx512                                          \
                                        : del_isa_level() == DEL_ISA_AVX2 ? name##_avx2 : name##_generic)
#else
#define DEL_ISA_VERSIONS(name, params, args) \
    static void name##_generic params { name##_body args; }
#define DEL_ISA_VERSIONS_RET(ret, name, params, args) \
    static ret name##_generic params { return name##_body args; }
#define DEL_ISA_VERSIONS_LEVEL(name, params, args) \
    static void name##_generic params { name##_body(DEL_ISA_GENERIC, DEL_ISA_UNPAREN args); }
#define DEL_ISA_PICK(name) name##_generic
#endif

/* (a, b) -> a, b */
#define DEL_ISA_UNPAREN(...) __VA_ARGS__

#endif
