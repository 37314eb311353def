# libdel — build, test, install.
#   make            lib/libdel.so.$(VERSION), lib/libdel.a
#   make check      install missing packages, build, run every test
#   make demo       install missing packages, build, train fmnist-cnn on FMNIST-1k (R0)
#   make install PREFIX=/usr/local DESTDIR=   make uninstall

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
OPT ?= -O2
SAN ?=
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror
BLAS_CFLAGS := $(shell $(PKG_CONFIG) --cflags openblas 2>/dev/null)
BLAS_LIBS := $(shell $(PKG_CONFIG) --libs openblas 2>/dev/null || echo -lopenblas)
CFLAGS_LIB := -std=c11 $(OPT) -g $(WARN) -fPIC -fvisibility=hidden -D_GNU_SOURCE \
              -DDEL_BUILDING_LIBRARY -Iinclude -Isrc $(SAN)
LIBS := $(BLAS_LIBS) -lz -lpthread -lm
BUILD := build$(if $(SAN),-san)

SRCS := $(sort $(wildcard src/*/*.c src/*/*/*.c))
OBJS := $(SRCS:%.c=$(BUILD)/%.o)
BACKEND_OBJS := $(filter $(BUILD)/src/backend/%,$(OBJS))

SHARED := lib/libdel.so.$(VERSION)
STATIC := lib/$(if $(SAN),libdel-san.a,libdel.a)

all: $(SHARED) $(STATIC)

$(BUILD)/src/backend/%.o: CFLAGS_EXTRA = $(BLAS_CFLAGS)
$(BUILD)/%.o: %.c $(wildcard include/*.h include/del/*.h src/*/*.h src/*/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_LIB) $(CFLAGS_EXTRA) -c $< -o $@

$(SHARED): $(OBJS) libdel.map
	@mkdir -p lib
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=libdel.map -o $@ $(OBJS) $(LIBS) $(SAN)
	ln -sf libdel.so.$(VERSION) lib/$(SONAME)
	ln -sf $(SONAME) lib/libdel.so

$(STATIC): $(OBJS)
	@mkdir -p lib
	rm -f $@
	ar rcs $@ $(OBJS)

# ---- tests: each tests/unit/<module>/test_*.c is one Check program ----
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS := $(shell $(PKG_CONFIG) --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm)
TEST_SRCS := $(sort $(wildcard tests/unit/*/test_*.c))
TEST_BINS := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
CFLAGS_TEST := -std=c11 $(OPT) -g -Wall -Wextra -Werror -D_GNU_SOURCE -Iinclude -Isrc -Itests/unit $(SAN)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/testutil.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_TEST) $(CHECK_CFLAGS) $< -o $@ $(STATIC) $(CHECK_LIBS) $(LIBS) $(SAN)

test-c: $(TEST_BINS)
	@set -e; for t in $(TEST_BINS); do echo "== $$t"; DEL_TEST_DATA=tests/data $$t; done

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

clean:
	rm -rf build build-san lib

.PHONY: all test-c examples clean

-include bench/bench.mk
