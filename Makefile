# libdel — build, test, install.
#   make            lib/libdel.so.$(VERSION), lib/libdel.a (make -j2 works)
#   make check      install missing packages, build, run every test (C, Python,
#                   install, exported symbols, header, bindings up to date)
#   make demo       install missing packages, build, train fmnist-cnn on FMNIST-1k (R0)
#   make install PREFIX=/usr/local DESTDIR=   make uninstall
#   make check-isa  C tests once per SIMD level the CPU has (DEL_CPU_ISA)
#   make randaugment-search  RandAugment (N, M) grid search on FMNIST-1k (SEARCH_ARGS)
#   make sanitize   C tests under ASan + UBSan (build-san/)
#   make valgrind   C tests under valgrind
#   make python-gen regenerate bindings/python/libdel/_ffi.py from include/del.h
#   make deps       install the missing Debian packages (scripts/deps.sh); the
#                   build targets stop at once, naming them, while some are missing

VERSION_MAJOR := 0
VERSION_MINOR := 1
VERSION_PATCH := 0
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)
SONAME := libdel.so.$(VERSION_MAJOR)

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DESTDIR ?=

CC ?= cc
PKG_CONFIG ?= pkg-config

# ---- the Debian packages, checked before anything is built ----
# A build goal on a machine without them stops here with their names
# (scripts/deps.sh --check: one dpkg-query, silent when all is there)
# instead of failing in the compiler. deps, check and demo install them
# first and build in a sub-make, which checks; the others here need none.
# DEPS_CHECK=no skips the check (packages installed some other way).
NO_DEPS_GOALS := deps check demo clean uninstall python-gen check-python-gen
DEPS_CHECK ?= yes
ifeq ($(DEPS_CHECK),yes)
ifneq ($(filter-out $(NO_DEPS_GOALS),$(or $(MAKECMDGOALS),all)),)
ifneq ($(shell scripts/deps.sh --check && echo ok),ok)
$(error run 'make deps' to install them (apt-get, as root or with sudo), then make again)
endif
# Sub-makes (sanitize, the install test) need not check again.
export DEPS_CHECK := done
endif
endif

OPT ?= -O2
SAN ?=
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror
BLAS_CFLAGS := $(shell $(PKG_CONFIG) --cflags openblas 2>/dev/null)
BLAS_LIBS := $(shell $(PKG_CONFIG) --libs openblas 2>/dev/null || echo -lopenblas)
CFLAGS_BASE := -std=c11 $(OPT) -g $(WARN) -fPIC -fvisibility=hidden -D_GNU_SOURCE \
               -DDEL_BUILDING_LIBRARY -Iinclude $(SAN)
CFLAGS_LIB = $(CFLAGS_BASE) $(CFLAGS_INCLUDE)
# The trainers use the public API only (Lua's lauxlib test): src/train/ sees
# include/ and its own folder, not the rest of src/.
CFLAGS_INCLUDE = -Isrc
LIBS := $(BLAS_LIBS) -lz -lpthread -lm
BUILD := build$(if $(SAN),-san)

SRCS := $(sort $(wildcard src/*/*.c src/*/*/*.c))
OBJS := $(SRCS:%.c=$(BUILD)/%.o)
BACKEND_OBJS := $(filter $(BUILD)/src/backend/%,$(OBJS))

SHARED := lib/libdel.so.$(VERSION)
STATIC := lib/$(if $(SAN),libdel-san.a,libdel.a)

all: $(SHARED) $(STATIC)

$(BUILD)/src/backend/%.o: CFLAGS_EXTRA = $(BLAS_CFLAGS)
$(BUILD)/src/train/%.o: CFLAGS_INCLUDE = -Isrc/train
$(BUILD)/%.o: %.c $(wildcard include/*.h include/del/*.h src/*/*.h src/*/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_LIB) $(CFLAGS_EXTRA) -c $< -o $@

$(SHARED): $(OBJS) libdel.map
	@mkdir -p lib
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=libdel.map -o $@.tmp $(OBJS) $(LIBS) $(SAN)
	mv -f $@.tmp $@
	ln -sf libdel.so.$(VERSION) lib/$(SONAME)
	ln -sf $(SONAME) lib/libdel.so

# Both libraries are written under a temporary name and renamed, so a
# program linking at that moment never sees a half-written file.
$(STATIC): $(OBJS)
	@mkdir -p lib
	rm -f $@.tmp
	ar rcs $@.tmp $(OBJS)
	mv -f $@.tmp $@

# ---- tests: each tests/unit/<module>/test_*.c is one Check program ----
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS := $(shell $(PKG_CONFIG) --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm)
TEST_SRCS := $(sort $(wildcard tests/unit/*/test_*.c))
TEST_BINS := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
CFLAGS_TEST := -std=c11 $(OPT) -g -Wall -Wextra -Werror -D_GNU_SOURCE -Iinclude -Isrc -Itests/unit $(SAN)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/testutil.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_TEST) $(CHECK_CFLAGS) $< $(ALLOC_FAIL_LINK) -o $@ $(STATIC) $(CHECK_LIBS) $(LIBS) $(SAN)

# Allocation-failure injection (tests/unit/alloc_fail.h): a test program
# whose source includes alloc_fail.h is linked with alloc_fail.c and the
# allocator wrapped, so that it can make the n-th allocation fail.
ALLOC_FAIL_FUNCS := malloc calloc realloc aligned_alloc posix_memalign strdup strndup free
ALLOC_FAIL_SRCS := $(shell grep -l 'include "alloc_fail.h"' $(TEST_SRCS) /dev/null)
ALLOC_FAIL_BINS := $(ALLOC_FAIL_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
$(ALLOC_FAIL_BINS): ALLOC_FAIL_LINK = tests/unit/alloc_fail.c $(ALLOC_FAIL_FUNCS:%=-Wl,--wrap=%)
$(ALLOC_FAIL_BINS): tests/unit/alloc_fail.c tests/unit/alloc_fail.h

test-c: $(TEST_BINS)
	@set -e; for t in $(TEST_BINS); do echo "== $$t"; DEL_TEST_DATA=tests/data $$t; done

# The C tests once per SIMD level this machine has (DEL_CPU_ISA, see
# del_cpu_isa): a level is run when the library, asked for it, takes it.
ISA_LEVELS := avx512 avx2 generic
check-isa: $(TEST_BINS)
	@set -e; for isa in $(ISA_LEVELS); do \
	  got=$$(DEL_CPU_ISA=$$isa $(BUILD)/tests/core/test_isa --print-isa | cut -d' ' -f1); \
	  if [ "$$got" != "$$isa" ]; then echo "== check-isa: $$isa not supported here (takes $$got), skipped"; continue; fi; \
	  echo "== check-isa: DEL_CPU_ISA=$$isa"; \
	  DEL_CPU_ISA=$$isa $(MAKE) --no-print-directory test-c; \
	done

# ---- examples and benchmarks (linked against the shared library) ----
EXAMPLE_BINS := $(patsubst examples/%.c,build/examples/%,$(wildcard examples/*.c))
BENCH_BINS := $(patsubst bench/%.c,build/bench/%,$(wildcard bench/*.c))
build/examples/% build/bench/%: CFLAGS_APP = -std=c11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Iinclude
build/examples/%: examples/%.c $(SHARED)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_APP) $< -o $@ -Llib -ldel -Wl,-rpath,'$$ORIGIN/../../lib' -lm
build/bench/%: bench/%.c $(SHARED)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_APP) $(BLAS_CFLAGS) $< -o $@ -Llib -ldel -Wl,-rpath,'$$ORIGIN/../../lib' $(BLAS_LIBS) -lm

examples: $(EXAMPLE_BINS)

# The tutorials' C programs (docs/tutorials/), each run to its end with a few
# steps on one thread. They need Fashion-MNIST, as the C tests do
# ($DEL_FMNIST_DIR or Debian's dataset-fashion-mnist).
TUTORIAL_BINS := build/examples/finetune build/examples/distill build/examples/lwf \
                 build/examples/pseudo_label build/examples/consistency build/examples/noisy_student
test-examples: $(TUTORIAL_BINS)
	@set -e; for e in $(TUTORIAL_BINS); do echo "== $$e --steps 5"; \
	  $$e --steps 5 --threads 1 $${DEL_FMNIST_DIR:+--data "$$DEL_FMNIST_DIR"}; done

# The demo in its quick mode: the table and both PNGs (tests/demo/test_demo.py).
test-demo: build/examples/fmnist1k_demo
	$(PYTHON) tests/demo/test_demo.py build/examples/fmnist1k_demo $${DEL_FMNIST_DIR:+"$$DEL_FMNIST_DIR"}

# ---- set-up and the aggregate targets ----
# deps runs first, then a sub-make: the pkg-config queries at the top of this
# file must see the packages deps may just have installed.
deps:
	scripts/deps.sh

check: deps
	@$(MAKE) --no-print-directory --output-sync=target check-all

check-all: all examples test-examples test-demo check-isa test-python test-install test-abi check-python-gen
	@echo "make check: all tests passed"

# RandAugment policy search on FMNIST-1k (the paper's grid over N and M);
# SEARCH_ARGS passes options, e.g. SEARCH_ARGS="--n 1,2 --m 5,9 --steps 500".
SEARCH_ARGS ?=
randaugment-search: deps
	@$(MAKE) --no-print-directory build/examples/randaugment_search
	build/examples/randaugment_search $(SEARCH_ARGS)

# DEMO_ARGS passes options, e.g. make demo DEMO_ARGS="--steps 300 --unlabeled-steps 50 --student-steps 100"
# (a quick run); DEMO_OUT is where its PNGs go.
DEMO_ARGS ?=
DEMO_OUT ?= build/demo
demo: deps
	@$(MAKE) --no-print-directory build/examples/fmnist1k_demo
	build/examples/fmnist1k_demo --out $(DEMO_OUT) $(DEMO_ARGS)

# ---- Python bindings ----
# Both interpreters when present: the default python3 (perhaps without numpy)
# and Debian's, which has numpy, so the no-numpy and numpy paths both run.
# NUMPY_PYTHON must have numpy (python3-numpy, a test dependency): it runs
# with DEL_TEST_NUMPY=1, where the numpy tests fail rather than skip without
# it; test-python fails when it is not there at all. NUMPY_PYTHON= (empty)
# runs the tests without a numpy interpreter.
PYTHON ?= python3
NUMPY_PYTHON ?= /usr/bin/python3
PYTHONS ?= $(PYTHON) $(NUMPY_PYTHON)
FFI := bindings/python/libdel/_ffi.py

python-gen:
	$(PYTHON) bindings/python/gen_ffi.py --output $(FFI)

check-python-gen:
	@tmp=$$(mktemp); \
	$(PYTHON) bindings/python/gen_ffi.py --output $$tmp || { rm -f $$tmp; exit 1; }; \
	if diff -u $(FFI) $$tmp; then rm -f $$tmp; echo "bindings: $(FFI) is up to date"; \
	else rm -f $$tmp; echo "bindings: $(FFI) is stale; run 'make python-gen'" >&2; exit 1; fi

REALPATH_PY := 'import os, sys; print(os.path.realpath(sys.executable))'

test-python: $(SHARED)
	@set -e; seen=; ran=0; numpy_real=; \
	if [ -n "$(NUMPY_PYTHON)" ]; then \
	  numpy_real=$$($(NUMPY_PYTHON) -c $(REALPATH_PY) 2>/dev/null) || { \
	    echo "test-python: no $(NUMPY_PYTHON) (NUMPY_PYTHON, the interpreter with numpy);" \
	         "run 'make deps', or set NUMPY_PYTHON= to test without numpy" >&2; exit 1; }; fi; \
	for py in $(PYTHONS); do \
	  exe=$$(command -v $$py 2>/dev/null) || continue; \
	  real=$$($$exe -c $(REALPATH_PY) 2>/dev/null) || continue; \
	  case " $$seen " in *" $$real "*) continue;; esac; seen="$$seen $$real"; \
	  if ! $$exe -c 'import sys; sys.exit(sys.version_info < (3, 8))'; then \
	    echo "== skipping $$exe (Python < 3.8)"; continue; fi; \
	  need=0; note=; case "$$real" in "$$numpy_real") need=1; note=", numpy required";; esac; \
	  echo "== Python tests with $$exe ($$($$exe -V 2>&1)$$note)"; \
	  DEL_TEST_NUMPY=$$need PYTHONPATH=$(CURDIR)/bindings/python LIBDEL_PATH=$(CURDIR)/lib/$(SONAME) \
	    $$exe -m unittest discover -s tests/python -t tests/python; \
	  ran=1; \
	done; \
	test $$ran = 1 || { echo "test-python: no Python >= 3.8 found" >&2; exit 1; }

# ---- installation ----
# libdir in the .pc is written relative to ${prefix} when it lies under it,
# so a relocated tree stays usable.
PC_LIBDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCLUDEDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))

build/libdel.pc: pkgconfig/libdel.pc.in Makefile FORCE
	@mkdir -p build
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(PC_LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(PC_INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

install: $(SHARED) lib/libdel.a build/libdel.pc
	install -d $(DESTDIR)$(INCLUDEDIR)/del $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 644 include/del.h $(DESTDIR)$(INCLUDEDIR)/del.h
	install -m 644 $(wildcard include/del/*.h) $(DESTDIR)$(INCLUDEDIR)/del/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/libdel.so.$(VERSION)
	ln -sf libdel.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libdel.so
	install -m 644 lib/libdel.a $(DESTDIR)$(LIBDIR)/libdel.a
	install -m 644 build/libdel.pc $(DESTDIR)$(LIBDIR)/pkgconfig/libdel.pc

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/del.h $(addprefix $(DESTDIR)$(INCLUDEDIR)/del/,$(notdir $(wildcard include/del/*.h)))
	-rmdir $(DESTDIR)$(INCLUDEDIR)/del 2>/dev/null
	rm -f $(DESTDIR)$(LIBDIR)/libdel.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	      $(DESTDIR)$(LIBDIR)/libdel.so $(DESTDIR)$(LIBDIR)/libdel.a \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/libdel.pc

test-install: $(SHARED) lib/libdel.a
	MAKE="$(MAKE)" CC="$(CC)" tests/install/run.sh

# ---- ABI: exported symbols and the public header on its own ----
HDR_FLAGS := -Wall -Wextra -pedantic -Werror -Iinclude

test-abi: $(SHARED)
	tests/abi/check_symbols.sh $(SHARED) include
	@mkdir -p build/tests/abi
	$(CC) -std=c11 $(HDR_FLAGS) tests/abi/header_test.c -o build/tests/abi/header_test_c \
	    -Llib -ldel -Wl,-rpath,'$$ORIGIN/../../../lib'
	build/tests/abi/header_test_c
	@if command -v $(CXX) >/dev/null 2>&1; then \
	  echo "$(CXX) -x c++ -std=c++11 $(HDR_FLAGS) tests/abi/header_test.c"; \
	  $(CXX) -x c++ -std=c++11 $(HDR_FLAGS) tests/abi/header_test.c -o build/tests/abi/header_test_cxx \
	      -Llib -ldel -Wl,-rpath,'$$ORIGIN/../../../lib' && build/tests/abi/header_test_cxx; \
	else echo "test-abi: no C++ compiler, C++ header check skipped"; fi

# ---- the C tests under sanitizers and valgrind ----
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer

sanitize:
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    $(MAKE) --no-print-directory SAN="$(SAN_FLAGS)" test-c

# Test cases restricted under valgrind, as program:case (Check's
# CK_RUN_CASE; Check 0.15 has no way to exclude a case). train/test_supervised's
# fashion_mnist case trains real models for hundreds of steps: more than ten
# minutes under valgrind's ~50x slowdown. Its "small" case still runs here and
# `make sanitize` covers the whole program. The same holds for
# train/test_train_augment and train/test_train_optim.
VALGRIND_ONLY ?= train/test_supervised:small train/test_train_augment:small train/test_train_optim:small train/test_checkpoint:small
VALGRIND := valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect -q

valgrind: $(TEST_BINS)
	@set -e; for t in $(TEST_BINS); do \
	  only=; for e in $(VALGRIND_ONLY); do \
	    case "$$t" in */$${e%%:*}) only=$${e#*:};; esac; done; \
	  echo "== valgrind $$t$${only:+ (case $$only only)}"; \
	  env CK_FORK=no DEL_TEST_DATA=tests/data $${only:+CK_RUN_CASE=$$only} $(VALGRIND) $$t; \
	done

clean:
	rm -rf build build-san lib

FORCE:

.PHONY: all test-c check-isa randaugment-search examples test-examples test-demo clean deps check check-all demo python-gen check-python-gen \
        test-python install uninstall test-install test-abi sanitize valgrind FORCE

-include bench/bench.mk
