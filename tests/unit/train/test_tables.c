/* The function tables the library dispatches through: every objective,
 * every layer type and the CPU backend have each required entry, so a
 * technique, layer or backend op added without one fails here rather than
 * at its first call. */
#include <string.h>

#include "backend/backend.h"
#include "nn/layer.h"
#include "testutil.h"
#include "train/trainer_internal.h"

START_TEST(test_every_objective_has_its_required_entries)
{
    int n = 0;
    for (const del_objective *const *o = del_objectives; *o; o++, n++) {
        const del_objective *obj = *o;
        ck_assert_msg(obj->name && obj->name[0], "objective %d has no name", n);
        ck_assert_msg(obj->init != NULL, "objective '%s' has no init", obj->name);
        ck_assert_msg(obj->step != NULL, "objective '%s' has no step", obj->name);
        ck_assert_msg(obj->streams != 0 && (obj->streams >> DEL_NSTREAMS) == 0,
                      "objective '%s' asks for streams 0x%x", obj->name, obj->streams);
        for (const del_objective *const *p = del_objectives; p != o; p++)
            ck_assert_msg(strcmp((*p)->name, obj->name) != 0, "two objectives are called '%s'", obj->name);
    }
    ck_assert_int_ge(n, 1);
    ck_assert_ptr_eq(del_objectives[0], &del_objective_supervised);
}
END_TEST

START_TEST(test_every_layer_type_has_its_required_entries)
{
    int n = 0;
    for (const del_layer_ops *const *t = del_layer_types; *t; t++, n++) {
        const del_layer_ops *ops = *t;
        ck_assert_msg(ops->name && ops->name[0], "layer type %d has no name", n);
        ck_assert_msg(ops->setup != NULL, "layer '%s' has no setup", ops->name);
        ck_assert_msg(ops->forward != NULL, "layer '%s' has no forward", ops->name);
        ck_assert_msg(ops->backward != NULL, "layer '%s' has no backward", ops->name);
        ck_assert_ptr_eq(del_layer_find(ops->name), ops);
    }
    ck_assert_int_eq(n, 10);
}
END_TEST

START_TEST(test_the_cpu_backend_sets_every_entry)
{
    /* Every entry of the backend table is required (backend.h): its name,
     * then function pointers only (its _Static_assert pins the count). */
    const del_backend *b = del_backend_get();
    ck_assert_ptr_nonnull(b);
    ck_assert_msg(b->name && b->name[0], "the backend has no name");
    enum { N = (sizeof(del_backend) - sizeof(const char *)) / sizeof(void (*)(void)) };
    void (*entries[N])(void);
    memcpy(entries, (const char *)b + sizeof(const char *), sizeof entries);
    for (int i = 0; i < N; i++)
        ck_assert_msg(entries[i] != NULL, "backend entry %d (after the name) is NULL", i);
}
END_TEST

static Suite *tables_suite(void)
{
    Suite *s = suite_create("tables");
    TCase *tc = tcase_create("small");
    tcase_add_test(tc, test_every_objective_has_its_required_entries);
    tcase_add_test(tc, test_every_layer_type_has_its_required_entries);
    tcase_add_test(tc, test_the_cpu_backend_sets_every_entry);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(tables_suite());
}
