"""The ctypes generator: deterministic, up to date, loud on what it cannot express."""

import ctypes
import importlib.util
import os
import re
import tempfile
import unittest

import _util

spec = importlib.util.spec_from_file_location(
    "gen_ffi", os.path.join(_util.BINDINGS, "gen_ffi.py"))
gen_ffi = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen_ffi)

HEADER = os.path.join(_util.ROOT, "include", "del.h")
COMMITTED = os.path.join(_util.BINDINGS, "libdel", "_ffi.py")

GOOD = """#ifndef T_H
#define T_H
#include <stdint.h>
#define DEL_T_COUNT 3
#define DEL_T_NAME "x"
#if defined(DEL_BUILDING_LIBRARY)
#define DEL_API __attribute__((visibility("default")))
#else
#define DEL_API
#endif
#ifdef __cplusplus
extern "C" {
#endif
typedef enum del_color { DEL_COLOR_RED = 0, /* a comment */ DEL_COLOR_BLUE, DEL_COLOR_X = -4 } del_color;
typedef struct del_thing del_thing;
typedef int (*del_visit_fn)(const del_thing *t, void *user);
DEL_API del_color del_thing_color(const del_thing *t,
                                  int64_t index,
                                  const char *name);
DEL_API void del_thing_free(del_thing *t);
DEL_API int del_thing_new(del_thing **out, float *data, del_visit_fn fn, void *user);
#ifdef __cplusplus
}
#endif
#endif
"""


def generate(text):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.h")
        with open(path, "w") as f:
            f.write(text)
        model = gen_ffi.parse(path)
        return gen_ffi.render(model, "t.h")


def load(source):
    namespace = {}
    exec(compile(source, "<generated>", "exec"), namespace)
    return namespace


class TestGenerator(unittest.TestCase):
    def test_committed_bindings_match_a_fresh_generation(self):
        fresh = gen_ffi.render(gen_ffi.parse(HEADER), "include/del.h")
        with open(COMMITTED, encoding="utf-8") as f:
            self.assertEqual(f.read(), fresh, "run `make python-gen`")

    def test_generation_is_deterministic(self):
        self.assertEqual(gen_ffi.render(gen_ffi.parse(HEADER), "include/del.h"),
                         gen_ffi.render(gen_ffi.parse(HEADER), "include/del.h"))

    def test_every_api_function_of_the_header_is_declared(self):
        # A crude independent scan: DEL_API followed by a return type and name.
        with open(HEADER) as f:
            umbrella = f.read()
        declared = set()
        for inc in re.findall(r'#include "(del/[\w.]+)"', umbrella):
            with open(os.path.join(os.path.dirname(HEADER), inc)) as f:
                text = re.sub(r"/\*.*?\*/", " ", f.read(), flags=re.S)
            declared.update(re.findall(r"^DEL_API\s[^;(]*?(\w+)\s*\(", text, flags=re.M))
        ns = load(gen_ffi.render(gen_ffi.parse(HEADER), "include/del.h"))
        self.assertGreater(len(declared), 10)
        self.assertEqual(set(ns["FUNCTIONS"]), declared)
        self.assertEqual(ns["DEL_OK"], 0)

    def test_small_header_maps_every_construct(self):
        ns = load(generate(GOOD))
        self.assertEqual((ns["DEL_T_COUNT"], ns["DEL_T_NAME"]), (3, "x"))
        self.assertEqual((ns["DEL_COLOR_RED"], ns["DEL_COLOR_BLUE"], ns["DEL_COLOR_X"]),
                         (0, 1, -4))
        self.assertEqual(ns["OPAQUE_TYPES"], ("del_thing",))
        restype, params = ns["FUNCTIONS"]["del_thing_color"]
        self.assertIs(restype, ctypes.c_int)
        self.assertEqual([p[1] for p in params], ["t", "index", "name"])
        self.assertEqual([p[0] for p in params],
                         [ctypes.c_void_p, ctypes.c_int64, ctypes.c_char_p])
        restype, params = ns["FUNCTIONS"]["del_thing_new"]
        self.assertEqual(params[0][0], ctypes.POINTER(ctypes.c_void_p))
        self.assertEqual(params[1][0], ctypes.POINTER(ctypes.c_float))
        self.assertIs(params[2][0], ns["del_visit_fn"])
        self.assertIsNone(ns["FUNCTIONS"]["del_thing_free"][0])
        self.assertIn("del_thing_free", ns["FUNCTIONS"])

    def test_unknown_type_fails_loudly(self):
        bad = GOOD.replace("int64_t index", "struct timeval index")
        with self.assertRaisesRegex(gen_ffi.GenError, "unknown type"):
            generate(bad)

    def test_public_struct_fails(self):
        bad = GOOD.replace("typedef struct del_thing del_thing;",
                           "typedef struct del_thing { int a; } del_thing;")
        with self.assertRaisesRegex(gen_ffi.GenError, "structs are not allowed"):
            generate(bad)

    def test_function_like_macro_fails(self):
        bad = GOOD.replace("#define DEL_T_COUNT 3", "#define DEL_T_SQUARE(x) ((x) * (x))")
        with self.assertRaisesRegex(gen_ffi.GenError, "function-like macro"):
            generate(bad)

    def test_varargs_fail(self):
        bad = GOOD.replace("DEL_API void del_thing_free(del_thing *t);",
                           "DEL_API void del_thing_log(const char *fmt, ...);")
        with self.assertRaisesRegex(gen_ffi.GenError, "not expressible"):
            generate(bad)

    def test_missing_library_function_is_reported_by_bind(self):
        ns = load(generate(GOOD))

        class Empty:
            pass

        with self.assertRaisesRegex(AttributeError, "del_thing_color"):
            ns["bind"](Empty())

    def test_command_line_writes_the_output_file(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "ffi.py")
            self.assertEqual(gen_ffi.main(["--header", HEADER, "--output", out]), 0)
            with open(out) as f, open(COMMITTED) as g:
                self.assertEqual(f.read(), g.read())


if __name__ == "__main__":
    unittest.main()
