/* The ISA level of the SIMD kernels: the CPU's best, capped by DEL_CPU_ISA.
 *
 * The level is decided once per process, so each case runs this program
 * again ("--print-isa", with the environment it needs) and reads what the
 * child decided: "LEVEL BEST". make check-isa uses the same option. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/isa.h"
#include "testutil.h"

static const char *g_self; /* argv[0] */

static const char *const k_names[] = {"generic", "avx2", "avx512"};

static int rank_of(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, k_names[i]) == 0)
            return i;
    ck_abort_msg("'%s' is not an ISA name", name);
    return -1;
}

/* Runs this program with DEL_CPU_ISA = value (unset if NULL) and stores the
 * ranks of the level and of the best level it reports. */
static void child_isa(const char *value, int *level, int *best)
{
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fd[1], STDOUT_FILENO);
        close(fd[0]);
        close(fd[1]);
        if (value)
            setenv("DEL_CPU_ISA", value, 1);
        else
            unsetenv("DEL_CPU_ISA");
        execl(g_self, g_self, "--print-isa", (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    char buf[64] = {0};
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(fd[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)r;
    close(fd[0]);
    int wstatus;
    ck_assert_int_eq(waitpid(pid, &wstatus, 0), pid);
    ck_assert_msg(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0, "%s --print-isa failed", g_self);
    char lv[16], bs[16];
    ck_assert_msg(sscanf(buf, "%15s %15s", lv, bs) == 2, "unexpected output '%s'", buf);
    *level = rank_of(lv);
    *best = rank_of(bs);
}

/* 1 if every flag of the space-separated list is a whole word of the
 * "flags" line of /proc/cpuinfo; -1 if that cannot be read. */
static int cpuinfo_has(const char *list)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return -1;
    static char line[8192];
    int found = -1;
    while (found < 0 && fgets(line, sizeof line, f))
        if (strncmp(line, "flags", 5) == 0)
            found = 1;
    fclose(f);
    if (found < 0)
        return -1;
    char want[256];
    snprintf(want, sizeof want, "%s", list);
    for (char *tok = strtok(want, " "); tok; tok = strtok(NULL, " ")) {
        size_t n = strlen(tok);
        const char *p = line;
        int hit = 0;
        while (!hit && (p = strstr(p, tok)) != NULL) {
            hit = p[-1] == ' ' && (p[n] == ' ' || p[n] == '\n');
            p += n;
        }
        if (!hit)
            return 0;
    }
    return 1;
}

static int min_rank(int a, int b)
{
    return a < b ? a : b;
}

START_TEST(test_isa_default_is_the_best_level)
{
    int level, best;
    child_isa(NULL, &level, &best);
    ck_assert_int_eq(level, best);
}
END_TEST

START_TEST(test_isa_env_caps_the_level_at_the_named_one)
{
    for (int cap = 0; cap < 3; cap++) {
        int level, best;
        child_isa(k_names[cap], &level, &best);
        ck_assert_msg(level == min_rank(cap, best), "DEL_CPU_ISA=%s gave %s (best %s)", k_names[cap], k_names[level],
                      k_names[best]);
    }
}
END_TEST

START_TEST(test_isa_env_ignores_case)
{
    int level, best;
    child_isa("Generic", &level, &best);
    ck_assert_int_eq(level, 0);
    child_isa("AVX2", &level, &best);
    ck_assert_int_eq(level, min_rank(1, best));
}
END_TEST

START_TEST(test_isa_unknown_env_value_gives_the_best_level)
{
    static const char *const bad[] = {"", "sse2", "avx", "avx2 ", "avx-512", "x86-64-v3", "2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int level, best;
        child_isa(bad[i], &level, &best);
        ck_assert_msg(level == best, "DEL_CPU_ISA='%s' gave %s, not the best %s", bad[i], k_names[level],
                      k_names[best]);
    }
}
END_TEST

/* The CPU's flags as the kernel reports them bound the level from above. */
START_TEST(test_isa_best_level_is_within_the_cpu_flags)
{
    int v4 = cpuinfo_has("avx512f avx512bw avx512cd avx512dq avx512vl avx2 fma bmi1 bmi2");
    int v3 = cpuinfo_has("avx2 fma bmi1 bmi2 f16c movbe abm");
    if (v4 < 0 || v3 < 0)
        return; /* no /proc/cpuinfo */
    int level, best;
    child_isa(NULL, &level, &best);
    int in_process[2] = {(int)del_isa_best(), best};
    for (int i = 0; i < 2; i++) {
        if (!v4)
            ck_assert_int_lt(in_process[i], 2);
        if (!v3)
            ck_assert_int_lt(in_process[i], 1);
    }
}
END_TEST

/* In this process too (make check-isa sets DEL_CPU_ISA for the whole run). */
START_TEST(test_cpu_isa_names_the_level_in_use)
{
    const char *name = del_cpu_isa();
    ck_assert_ptr_nonnull(name);
    ck_assert_str_eq(name, del_isa_name(del_isa_level()));
    int level = rank_of(name), best = (int)del_isa_best();
    ck_assert_int_le(level, best);
    const char *want = getenv("DEL_CPU_ISA");
    int cap = 2;
    for (int i = 0; want && i < 3; i++)
        if (strcasecmp(want, k_names[i]) == 0)
            cap = i;
    ck_assert_int_eq(level, min_rank(cap, best));
    ck_assert_int_eq(del_isa_has_avx512vbmi() && level != 2, 0);
}
END_TEST

static Suite *isa_suite(void)
{
    Suite *s = suite_create("isa");
    TCase *t = tcase_create("level");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_isa_default_is_the_best_level);
    tcase_add_test(t, test_isa_env_caps_the_level_at_the_named_one);
    tcase_add_test(t, test_isa_env_ignores_case);
    tcase_add_test(t, test_isa_unknown_env_value_gives_the_best_level);
    tcase_add_test(t, test_isa_best_level_is_within_the_cpu_flags);
    tcase_add_test(t, test_cpu_isa_names_the_level_in_use);
    suite_add_tcase(s, t);
    return s;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--print-isa") == 0) {
        printf("%s %s\n", del_cpu_isa(), del_isa_name(del_isa_best()));
        return 0;
    }
    g_self = argv[0];
    return test_run_suite(isa_suite());
}
