# redlockd - plain Makefile. `make` builds everything into build/.
# Variables: BUILD (output dir), SAN=1 (ASan+UBSan build), PREFIX, DESTDIR.

CC      ?= gcc
BUILD   ?= build
PREFIX  ?= /usr/local
SONAME_MAJOR = 1
# The one version of redlockd: the daemon and redlock.pc are built from it;
# tests/integration/check_version.sh fails when a file that spells it out
# (man pages, debian/changelog, redlock.h, the Python and Node clients) disagrees.
VERSION = 0.1.0

PKGS       = hiredis libevent inih
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null)

# WERROR= (empty) turns warnings back into warnings, e.g. for a newer compiler.
WERROR ?= -Werror
WARNINGS = -Wall -Wextra $(WERROR) -Wstrict-prototypes -Wshadow -Wpointer-arith -Wformat=2
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -DREDLOCKD_VERSION='"$(VERSION)"' $(WARNINGS) $(CPPFLAGS) $(CFLAGS) \
             -fPIC -Iprotocol -Idaemon -Iclient-lib
# Only the tests' own objects see the test harness and check's flags.
TEST_CFLAGS = -Itests/lib $(CHECK_CFLAGS)
LDFLAGS ?=
ifeq ($(SAN),1)
  ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS    += -fsanitize=address,undefined
endif

PROTO_SRC  = $(wildcard protocol/*.c)
DAEMON_SRC = $(filter-out daemon/main.c,$(wildcard daemon/*.c))
LIB_SRC    = client-lib/redlock.c
CLI_SRC    = client-lib/redlock_cli.c
HARNESS_SRC = tests/lib/harness.c
TESTUTIL_SRC = tests/lib/testutil.c
FAKEMASTER_SRC = tests/lib/fakemaster.c daemon/util.c
UNIT_SRC   = $(wildcard tests/unit/check_*.c)
INTEG_SRC  = $(wildcard tests/integration/check_*.c)
BENCH_SRC  = $(wildcard tests/bench/lockbench.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
PROTO_OBJ  = $(call obj,$(PROTO_SRC))
DAEMON_OBJ = $(call obj,$(DAEMON_SRC))
LIB_OBJ    = $(call obj,$(LIB_SRC))
HARNESS_OBJ = $(call obj,$(HARNESS_SRC))
TESTUTIL_OBJ = $(call obj,$(TESTUTIL_SRC))
FAKEMASTER_OBJ = $(call obj,$(FAKEMASTER_SRC))

UNIT_BIN  = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
INTEG_BIN = $(patsubst tests/integration/%.c,$(BUILD)/tests/%,$(INTEG_SRC))
BENCH_BIN = $(if $(BENCH_SRC),$(BUILD)/lockbench)

PROGRAMS = $(BUILD)/redlockd $(BUILD)/redlock $(BUILD)/libredlock.a \
           $(BUILD)/libredlock.so.$(SONAME_MAJOR) $(BENCH_BIN)

.PHONY: all deps deps-run check test-bin run bench clean format format-check check-asan check-valgrind \
        print-version
.DEFAULT_GOAL := all
all: $(PROGRAMS)

# Product objects (daemon, protocol, client library, CLI, examples): no test
# include path, no check flags.
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@
# Test objects (the shorter stem makes GNU make prefer this rule for tests/).
$(BUILD)/obj/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libproto.a: $(PROTO_OBJ)
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^
$(BUILD)/libdaemon.a: $(DAEMON_OBJ)
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^

$(BUILD)/redlockd: $(call obj,daemon/main.c) $(BUILD)/libdaemon.a $(BUILD)/libproto.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BUILD)/libredlock.a: $(LIB_OBJ) $(PROTO_OBJ)
	@rm -f $@; ar rcs $@ $^
# Only redlock_* is exported (client-lib/libredlock.map); the protocol code
# linked into it stays private.
$(BUILD)/libredlock.so.$(SONAME_MAJOR): $(LIB_OBJ) $(PROTO_OBJ) client-lib/libredlock.map
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libredlock.so.$(SONAME_MAJOR) \
	  -Wl,--version-script=client-lib/libredlock.map -o $@ $(LIB_OBJ) $(PROTO_OBJ)
	ln -sf libredlock.so.$(SONAME_MAJOR) $(BUILD)/libredlock.so

$(BUILD)/redlock: $(call obj,$(CLI_SRC)) $(BUILD)/libredlock.a
	$(CC) $(LDFLAGS) -o $@ $^

$(BUILD)/lockbench: $(call obj,$(BENCH_SRC)) $(BUILD)/libproto.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

# Unit tests link the daemon's modules (all but main.c) and the protocol.
$(BUILD)/tests/check_%: $(BUILD)/obj/tests/unit/check_%.o $(BUILD)/libdaemon.a $(BUILD)/libproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CHECK_LIBS) -lm

# Integration tests drive real processes through libredlock (and may stand
# a fake, hostile master next to the real ones: tests/lib/fakemaster.h).
# Integration tests that also link the daemon's modules (and so its
# packages): the differential test of memstore.c against the Lua scripts.
INTEG_DAEMON_BIN = $(BUILD)/tests/check_memstore_lua
$(filter-out $(INTEG_DAEMON_BIN),$(INTEG_BIN)): $(BUILD)/tests/%: $(BUILD)/obj/tests/integration/%.o $(HARNESS_OBJ) \
                                $(TESTUTIL_OBJ) $(FAKEMASTER_OBJ) $(BUILD)/libredlock.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) -lm -pthread
$(INTEG_DAEMON_BIN): $(BUILD)/tests/%: $(BUILD)/obj/tests/integration/%.o $(HARNESS_OBJ) $(BUILD)/libredlock.a \
                                       $(BUILD)/libdaemon.a $(BUILD)/libproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CHECK_LIBS) -lm -pthread

# Feature fragments (bench, install, fuzz, chaos, clients, examples): one file
# each. Included here, before the rules that use what they add to EXTRA_TEST_BIN.
include $(wildcard mk/*.mk)

test-bin: all $(UNIT_BIN) $(INTEG_BIN) $(EXTRA_TEST_BIN)

# Packages (scripts/deps.sh): deps for the tests, deps-run for building and running.
deps:
	@sh scripts/deps.sh test
deps-run:
	@sh scripts/deps.sh run

# The one command that passes the tests (installs what is missing first).
# Shell-script tests that run-tests.sh counts like check binaries.
SCRIPT_TESTS = tests/integration/check_install.sh tests/integration/check_version.sh \
               tests/integration/check_bench_smoke.sh \
               tests/integration/check_clients.sh tests/integration/check_run.sh

check: deps
	$(MAKE) test-bin
	BUILD=$(BUILD) sh scripts/run-tests.sh $(UNIT_BIN) $(INTEG_BIN) $(SCRIPT_TESTS)

check-asan: deps
	$(MAKE) BUILD=build-asan SAN=1 OPT=-O1 test-bin
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=32 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  BUILD=build-asan sh scripts/run-tests.sh $(patsubst $(BUILD)/%,build-asan/%,$(UNIT_BIN) $(INTEG_BIN))

check-valgrind: deps
	$(MAKE) test-bin
	BUILD=$(BUILD) REDLOCKD_WRAPPER="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --quiet" \
	  sh scripts/run-tests.sh $(UNIT_BIN) $(INTEG_BIN)

# Start three local Redis masters and redlockd in the foreground. Refuses (and
# touches nothing) when a port it needs is taken: pick others with
# RUN_PORT_BASE (masters on RUN_PORT_BASE..+2, default 7001) and RUN_DAEMON_PORT
# (redlockd's TCP port, default 7379).
RUN_PORT_BASE ?= 7001
RUN_DAEMON_PORT ?= 7379
run: deps-run
	$(MAKE) all
	BUILD=$(BUILD) RUN_PORT_BASE=$(RUN_PORT_BASE) RUN_DAEMON_PORT=$(RUN_DAEMON_PORT) sh scripts/run.sh

bench: deps-run
	$(MAKE) all
	sh scripts/bench.sh

print-version:
	@echo $(VERSION)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')
format-check:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
