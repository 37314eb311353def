/* The ISA level of the SIMD kernels: what the CPU has, capped by
 * DEL_CPU_ISA, decided once per process. */
#include "core/isa.h"

#include <pthread.h>
#include <stdlib.h>
#include <strings.h>

#include "del/common.h"

static const char *const g_names[] = {"generic", "avx2", "avx512"};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static del_isa g_best, g_level;
static int g_vbmi;

static void isa_init(void)
{
    g_best = DEL_ISA_GENERIC;
#if DEL_ISA_MULTI
    /* libgcc's checks include the OS's support of the wider registers */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4"))
        g_best = DEL_ISA_AVX512;
    else if (__builtin_cpu_supports("x86-64-v3"))
        g_best = DEL_ISA_AVX2;
    g_vbmi = __builtin_cpu_supports("avx512vbmi");
#endif
    g_level = g_best;
    const char *want = getenv("DEL_CPU_ISA");
    for (int i = 0; want && i < (int)(sizeof g_names / sizeof g_names[0]); i++)
        if (strcasecmp(want, g_names[i]) == 0 && (del_isa)i < g_best)
            g_level = (del_isa)i;
    g_vbmi = g_vbmi && g_level == DEL_ISA_AVX512;
}

del_isa del_isa_level(void)
{
    pthread_once(&g_once, isa_init);
    return g_level;
}

del_isa del_isa_best(void)
{
    pthread_once(&g_once, isa_init);
    return g_best;
}

const char *del_isa_name(del_isa level)
{
    return g_names[level];
}

int del_isa_has_avx512vbmi(void)
{
    pthread_once(&g_once, isa_init);
    return g_vbmi;
}

const char *del_cpu_isa(void)
{
    return del_isa_name(del_isa_level());
}
