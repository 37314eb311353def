/* Saving files, for every writer on the shared crash-safe layer
 * (src/io/format.c): model files, checkpoints (plain and the trainer's),
 * PNGs and tensor files. A save through a symbolic link replaces the link's target and
 * keeps the link; an empty path is refused before anything is created;
 * temporary files of killed writers are removed by the next save, those of
 * running writers kept; a message after a long path keeps the system's
 * reason. */
#include <signal.h>
#include <sys/wait.h>

#include "model_file_util.h"

/* ---- the writers ---- */

static del_model *w_model;
static del_tensor *w_image;
static del_dataset *w_data;
static del_trainer *w_trainer;

static del_status save_model(const char *path)
{
    return del_model_save(w_model, path);
}

static del_status save_checkpoint(const char *path)
{
    return del_checkpoint_save(path, w_model, NULL);
}

static del_status save_trainer_checkpoint(const char *path)
{
    return del_trainer_save_checkpoint(w_trainer, path);
}

static del_status save_png(const char *path)
{
    return del_image_write_png(w_image, path);
}

static del_status save_tensor(const char *path)
{
    return del_tensor_save(w_image, path);
}

typedef struct writer {
    const char *func;
    del_status (*save)(const char *path);
    char magic[5]; /* the first bytes of what it writes */
} writer;

static const writer writers[] = {
    {"del_model_save", save_model, "DELM"},
    {"del_checkpoint_save", save_checkpoint, "DELC"},
    {"del_trainer_save_checkpoint", save_trainer_checkpoint, "DELC"},
    {"del_image_write_png", save_png, "\x89PNG"},
    {"del_tensor_save", save_tensor, "DELT"},
};
enum { N_WRITERS = sizeof writers / sizeof writers[0] };

static void writers_setup(void)
{
    ck_assert_del_ok(del_model_from_spec(&w_model, "input 1 4 4; flatten; linear 3"));
    const int64_t shape[3] = {2, 3, 1};
    ck_assert_del_ok(del_tensor_new(&w_image, DEL_DTYPE_U8, 3, shape));
    uint8_t px[6 * 16];
    int32_t labels[6];
    for (int i = 0; i < 6; i++) {
        labels[i] = i % 3;
        for (int p = 0; p < 16; p++)
            px[i * 16 + p] = (uint8_t)(i * 40 + p);
    }
    ck_assert_del_ok(del_dataset_from_arrays(&w_data, px, labels, 6, 4, 4, 1));
    ck_assert_del_ok(del_trainer_new_supervised(&w_trainer, w_model, w_data));
    make_tmpdir();
}

static void writers_teardown(void)
{
    test_remove_tree(tmpdir);
    del_trainer_free(w_trainer);
    del_dataset_free(w_data);
    del_tensor_free(w_image);
    del_model_free(w_model);
}

static void path_in(char *buf, size_t size, const char *name)
{
    ck_assert_int_lt(snprintf(buf, size, "%s/%s", tmpdir, name), (int)size);
}

static void make_link(const char *target, const char *name)
{
    char link[256];
    path_in(link, sizeof link, name);
    ck_assert_int_eq(symlink(target, link), 0);
}

/* The link at name (under tmpdir) is still a link to target. */
static void assert_link(const char *name, const char *target)
{
    char link[256], got[256];
    path_in(link, sizeof link, name);
    struct stat sb;
    ck_assert_int_eq(lstat(link, &sb), 0);
    ck_assert_msg(S_ISLNK(sb.st_mode), "%s is no longer a symbolic link", name);
    ssize_t n = readlink(link, got, sizeof got - 1);
    ck_assert_int_gt(n, 0);
    got[n] = '\0';
    ck_assert_str_eq(got, target);
}

/* The regular file at name (under tmpdir) starts with w's magic. */
static void assert_written_by(const writer *w, const char *name)
{
    char path[256];
    path_in(path, sizeof path, name);
    struct stat sb;
    ck_assert_int_eq(lstat(path, &sb), 0);
    ck_assert_msg(S_ISREG(sb.st_mode), "%s: %s is not a regular file", w->func, name);
    size_t n = 0;
    uint8_t *b = read_file(path, &n);
    ck_assert_msg(n > 4 && memcmp(b, w->magic, 4) == 0, "%s: %s holds something else", w->func, name);
    free(b);
}

/* ---- symbolic links ---- */

START_TEST(test_save_through_a_link_replaces_its_target_and_keeps_the_link)
{
    const writer *w = &writers[_i];
    char real[256];
    path_in(real, sizeof real, "real.bin");
    write_file(real, "old", 3);
    make_link("real.bin", "link.bin");
    char link[256];
    path_in(link, sizeof link, "link.bin");
    ck_assert_del_ok(w->save(link));
    assert_link("link.bin", "real.bin");
    assert_written_by(w, "real.bin");
    ck_assert_int_eq(count_entries(tmpdir, ".tmp."), 0);
    ck_assert_int_eq(count_entries(tmpdir, ""), 4); /* ., .., real.bin, link.bin */
}
END_TEST

START_TEST(test_save_follows_a_chain_of_relative_and_absolute_links)
{
    const writer *w = &writers[_i];
    char dir[256], abs_target[256];
    path_in(dir, sizeof dir, "a");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    path_in(dir, sizeof dir, "b");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    path_in(dir, sizeof dir, "b/c");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    path_in(abs_target, sizeof abs_target, "b/c/real.bin");
    write_file(abs_target, "old", 3);
    /* a/first -> ../b/second (relative to a/) -> c/third (relative to b/)
     * -> <tmpdir>/b/c/real.bin (absolute) */
    make_link("../b/second", "a/first");
    make_link("c/third", "b/second");
    make_link(abs_target, "b/c/third");
    char first[256];
    path_in(first, sizeof first, "a/first");
    ck_assert_del_ok(w->save(first));
    assert_link("a/first", "../b/second");
    assert_link("b/second", "c/third");
    assert_link("b/c/third", abs_target);
    assert_written_by(w, "b/c/real.bin");
    ck_assert_int_eq(count_entries(dir, ""), 4); /* ., .., third, real.bin: no temporary file */
}
END_TEST

START_TEST(test_save_through_a_dangling_link_creates_its_target)
{
    const writer *w = &writers[_i];
    make_link("new.bin", "link.bin");
    char link[256];
    path_in(link, sizeof link, "link.bin");
    ck_assert_del_ok(w->save(link));
    assert_link("link.bin", "new.bin");
    assert_written_by(w, "new.bin");
    ck_assert_int_eq(count_entries(tmpdir, ""), 4);
}
END_TEST

START_TEST(test_save_through_a_loop_of_links_is_eio_and_writes_nothing)
{
    const writer *w = &writers[_i];
    make_link("b", "a");
    make_link("a", "b");
    char a[256];
    path_in(a, sizeof a, "a");
    ck_assert_del_err(w->save(a), DEL_EIO, strerror(ELOOP));
    ck_assert_str_eq(del_last_error() + strlen(del_last_error()) - strlen(strerror(ELOOP)), strerror(ELOOP));
    assert_link("a", "b");
    assert_link("b", "a");
    ck_assert_int_eq(count_entries(tmpdir, ""), 4);
}
END_TEST

/* ---- empty path ---- */

START_TEST(test_empty_path_is_einval_and_creates_nothing)
{
    const writer *w = &writers[_i];
    char cwd[4096];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(tmpdir), 0);
    del_status st = w->save("");
    char msg[512];
    snprintf(msg, sizeof msg, "%s", del_last_error());
    ck_assert_int_eq(chdir(cwd), 0);
    ck_assert_msg(st == DEL_EINVAL, "%s(\"\") -> %d (%s)", w->func, (int)st, msg);
    char want[128];
    snprintf(want, sizeof want, "%s: 'path' is empty", w->func);
    ck_assert_msg(strncmp(msg, want, strlen(want)) == 0, "message '%s' is not '%s...'", msg, want);
    ck_assert_int_eq(count_entries(tmpdir, ""), 2); /* . and .. */
}
END_TEST

/* ---- temporary files of killed writers ---- */

/* The pid of a process that has ended (and been reaped). */
static pid_t dead_pid(void)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(0);
    ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
    return pid;
}

static void make_temp(const char *fmt, long pid)
{
    char name[128], path[256];
    snprintf(name, sizeof name, fmt, pid);
    path_in(path, sizeof path, name);
    write_file(path, "partial", 7);
}

static int exists(const char *fmt, long pid)
{
    char name[128], path[256];
    snprintf(name, sizeof name, fmt, pid);
    path_in(path, sizeof path, name);
    return access(path, F_OK) == 0;
}

START_TEST(test_save_removes_temp_files_of_dead_writers_of_the_same_file_only)
{
    const writer *w = &writers[_i];
    long dead = dead_pid(), self = getpid();
    pid_t live = fork(); /* another writer, still running */
    ck_assert_int_ge(live, 0);
    if (live == 0) {
        pause();
        _exit(0);
    }
    make_temp("m.bin.tmp.%ld.abc123", dead);
    make_temp("m.bin.tmp.%ld.XyZ789", dead);
    make_temp("m.bin.tmp.%ld.abc123", (long)live);
    make_temp("m.bin.tmp.%ld.abc123", self);       /* another thread of this process */
    make_temp("other.bin.tmp.%ld.abc123", dead);   /* another file's */
    make_temp("m.bin.tmp.%ld.abc12", dead);        /* not a temporary file's name */
    make_temp("m.bin.tmp.%ld.abc123.bak", dead);
    make_temp("m.bin.tmp.abc123", 0);              /* an older libdel's: no pid to judge by */
    char path[256];
    path_in(path, sizeof path, "m.bin");
    ck_assert_del_ok(w->save(path));
    ck_assert_msg(!exists("m.bin.tmp.%ld.abc123", dead), "%s kept a dead writer's file", w->func);
    ck_assert(!exists("m.bin.tmp.%ld.XyZ789", dead));
    ck_assert_msg(exists("m.bin.tmp.%ld.abc123", (long)live), "%s removed a running writer's file", w->func);
    ck_assert(exists("m.bin.tmp.%ld.abc123", self));
    ck_assert(exists("other.bin.tmp.%ld.abc123", dead));
    ck_assert(exists("m.bin.tmp.%ld.abc12", dead));
    ck_assert(exists("m.bin.tmp.%ld.abc123.bak", dead));
    ck_assert(exists("m.bin.tmp.abc123", 0));
    ck_assert_int_eq(count_entries(tmpdir, ""), 2 + 1 + 6);
    assert_written_by(w, "m.bin");
    kill(live, SIGKILL);
    waitpid(live, NULL, 0);
}
END_TEST

START_TEST(test_save_through_a_link_cleans_up_beside_the_target)
{
    const writer *w = &writers[_i];
    char dir[256];
    path_in(dir, sizeof dir, "d");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    long dead = dead_pid();
    make_temp("d/m.bin.tmp.%ld.abc123", dead);
    make_temp("link.tmp.%ld.abc123", dead); /* the link's name, not the file's */
    make_link("d/m.bin", "link");
    char link[256];
    path_in(link, sizeof link, "link");
    ck_assert_del_ok(w->save(link));
    ck_assert(!exists("d/m.bin.tmp.%ld.abc123", dead));
    ck_assert(exists("link.tmp.%ld.abc123", dead));
    assert_written_by(w, "d/m.bin");
}
END_TEST

/* ---- long paths ---- */

START_TEST(test_message_after_a_long_path_ends_with_the_reason)
{
    const writer *w = &writers[_i];
    char path[4200];
    size_t n = (size_t)snprintf(path, sizeof path, "%s/missing", tmpdir);
    while (n < 3900) {
        path[n++] = '/';
        memset(path + n, 'd', 200);
        n += 200;
    }
    snprintf(path + n, sizeof path - n, "/m.bin");
    ck_assert_uint_gt(strlen(path), 3900);
    del_status st = w->save(path);
    const char *msg = del_last_error(), *why = strerror(ENOENT);
    ck_assert_msg(st == DEL_EIO, "%s -> %d (%s)", w->func, (int)st, msg);
    ck_assert_msg(strncmp(msg, w->func, strlen(w->func)) == 0, "'%.80s...' does not name %s", msg, w->func);
    size_t len = strlen(msg);
    ck_assert_msg(len > strlen(why) && strcmp(msg + len - strlen(why), why) == 0,
                  "%s: the message (%zu bytes) does not end with '%s': '...%s'", w->func, len, why,
                  len > 80 ? msg + len - 80 : msg);
    ck_assert_ptr_nonnull(strstr(msg, path)); /* whole, not cut */
}
END_TEST

static Suite *file_save_suite(void)
{
    Suite *s = suite_create("file_save");
    TCase *tc = tcase_create("writers");
    tcase_add_checked_fixture(tc, writers_setup, writers_teardown);
    tcase_add_loop_test(tc, test_save_through_a_link_replaces_its_target_and_keeps_the_link, 0, N_WRITERS);
    tcase_add_loop_test(tc, test_save_follows_a_chain_of_relative_and_absolute_links, 0, N_WRITERS);
    tcase_add_loop_test(tc, test_save_through_a_dangling_link_creates_its_target, 0, N_WRITERS);
    tcase_add_loop_test(tc, test_save_through_a_loop_of_links_is_eio_and_writes_nothing, 0, N_WRITERS);
    tcase_add_loop_test(tc, test_empty_path_is_einval_and_creates_nothing, 0, N_WRITERS);
    tcase_add_loop_test(tc, test_save_removes_temp_files_of_dead_writers_of_the_same_file_only, 0, N_WRITERS);
    tcase_add_loop_test(tc, test_save_through_a_link_cleans_up_beside_the_target, 0, N_WRITERS);
    tcase_add_loop_test(tc, test_message_after_a_long_path_ends_with_the_reason, 0, N_WRITERS);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(file_save_suite());
}
