# cshim — containerd runtime v2 shim for any OCI runtime CLI.
# Plain GNU make + pkg-config. Generated protobuf-c code lives in $(BUILD)/gen only.

VERSION     := 0.1.0
PREFIX      ?= /usr/local
DESTDIR     ?=
BUILD       ?= build
BIN         := containerd-shim-cshim-v2

CC          ?= cc
PKGS        := libprotobuf-c libevent libcjson libbsd libmd
PKG_CFLAGS   = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS     = $(shell pkg-config --libs $(PKGS))
OPT         ?= -O2 -g
SAN         ?=
WARN        := -Wall -Wextra -Werror
CFLAGS_ALL   = -std=gnu11 $(OPT) $(SAN) -D_GNU_SOURCE -DCSHIM_VERSION='"$(VERSION)"' \
	       -I$(BUILD)/gen -Isrc $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL  = $(SAN) $(LDFLAGS)
# The shim binary links libevent (core), protobuf-c, libbsd and libmd statically: containerd
# runs it three times per container (start, server, delete) with LD_LIBRARY_PATH set by its
# opt plugin, and each dynamic library costs ~25 failed path lookups and its relocations at
# every exec (docs/performance.md). LINK=dynamic links them all dynamically.
LINK        ?= static-libs
ifeq ($(LINK),dynamic)
BIN_LIBS     = $(PKG_LIBS)
else
BIN_LIBS     = -Wl,-Bstatic -lprotobuf-c -levent_core -lbsd -lmd -Wl,-Bdynamic \
	       $(shell pkg-config --libs libcjson)
endif

# Our protos plus the well-known types protoc-c does not ship.
WKT_DIR     := /usr/include
WKT         := google/protobuf/any.proto google/protobuf/empty.proto google/protobuf/timestamp.proto
PROTOS      := $(shell cd proto && find . -name '*.proto' | sed 's|^\./||' | sort)
GEN_C       := $(addprefix $(BUILD)/gen/,$(PROTOS:.proto=.pb-c.c) $(WKT:.proto=.pb-c.c))
GEN_H       := $(GEN_C:.c=.h)
GEN_O       := $(GEN_C:$(BUILD)/gen/%.c=$(BUILD)/obj/gen/%.o)

SRC         := $(sort $(wildcard src/*/*.c))
SRC_EXCLUDE ?=
LIB_SRC     := $(filter-out src/cli/main.c $(SRC_EXCLUDE),$(SRC))
LIB_O       := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
LIB         := $(BUILD)/libcshim.a

UNIT_SRC    := $(sort $(wildcard test/unit/test_*.c))
UNIT_BIN    := $(UNIT_SRC:test/unit/%.c=$(BUILD)/unit/%)

.PHONY: lint format include-cycles size-limits format-check all check unit unit-build e2e e2e-matrix conformance asan asan-unit fuzz fuzz-long fuzz-run install clean demo deps bench headers hog-check soak
.SECONDARY: $(GEN_C) $(GEN_H)

all: $(BUILD)/$(BIN)

$(BUILD)/gen/.stamp: $(addprefix proto/,$(PROTOS))
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen -Iproto $(PROTOS)
	protoc-c --c_out=$(BUILD)/gen -I$(WKT_DIR) $(WKT)
	@touch $@

$(GEN_C) $(GEN_H): $(BUILD)/gen/.stamp ;

# Generated code is not ours to lint: no -Werror there.
$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c $(BUILD)/gen/.stamp
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(OPT) $(SAN) -I$(BUILD)/gen $(PKG_CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: src/%.c $(BUILD)/gen/.stamp
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(LIB): $(LIB_O) $(GEN_O)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/$(BIN): $(BUILD)/obj/cli/main.o $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(BIN_LIBS)

$(BUILD)/unit/%: test/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS_ALL) -Itest/unit -MMD -MP -o $@ $< $(LIB) $(LDFLAGS_ALL) $(PKG_LIBS) $(shell pkg-config --libs cmocka)

unit-build: $(UNIT_BIN)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# Each header must compile on its own.
headers: $(BUILD)/gen/.stamp
	@set -e; for h in src/*/*.h; do echo "#include \"$${h#src/}\"" | \
	  $(CC) $(WARN) $(CFLAGS_ALL) -x c -fsyntax-only -; done

e2e: all
	/usr/bin/python3 -m pytest -q test/e2e $(PYTEST_ARGS)

# The core e2e subset against Debian's containerd 1.7 and 2.x (fetched, not installed); the
# whole suite runs against the system's 1.6 in `make e2e`.
E2E_MATRIX  ?= 1.7 2.x
e2e-matrix: all
	scripts/fetch-containerd
	@set -e; for v in $(E2E_MATRIX); do echo "== containerd $$v (core)"; \
	  CSHIM_E2E_CONTAINERD=$$v /usr/bin/python3 -m pytest -q -m core test/e2e $(PYTEST_ARGS); done

# Differential conformance: every scenario against the stock shim and cshim (runc, crun).
conformance: all
	/usr/bin/python3 -m pytest -q test/conformance $(PYTEST_ARGS)

ASAN_MAKE    = $(MAKE) BUILD=build-asan OPT='-O1 -g -fno-omit-frame-pointer' \
	  SAN='-fsanitize=address,undefined -fno-sanitize-recover=undefined'

asan:
	$(ASAN_MAKE) all

asan-unit:
	$(ASAN_MAKE) unit

# The unit suite (plain and sanitized) and the e2e suite HOG_RUNS times (5) under one busy loop
# per CPU; any failure fails (scripts/hog-check, test/e2e/README.md). Not part of check.
hog-check: all unit-build
	$(ASAN_MAKE) all unit-build
	scripts/hog-check

# One grouped shim through SOAK_EXECS execs (10000) and SOAK_LIFECYCLES container lifecycles
# (1000): its RSS, PSS, fds and bundle file count must stay flat (scripts/soak). Not in check.
soak: all
	scripts/soak

# libFuzzer targets (clang), one per parser (test/fuzz/README.md). `make fuzz` (part of check)
# runs each for FUZZ_SECONDS from its committed seeds, test/fuzz/corpus/<target>; new inputs
# go to a scratch corpus, $(BUILD)/fuzz/scratch/<target>, emptied first: the committed seeds
# never change. `make fuzz-long` runs each for FUZZ_LONG_SECONDS and keeps its corpus across
# runs in $(BUILD)/fuzz/long/<target>. FUZZ_TARGETS picks some: FUZZ_TARGETS='fuzz_stats'.
FUZZ_SRC    := $(sort $(wildcard test/fuzz/fuzz_*.c))
FUZZ_NAMES  := $(FUZZ_SRC:test/fuzz/%.c=%)
FUZZ_TARGETS ?= $(FUZZ_NAMES)
FUZZ_BIN    := $(FUZZ_NAMES:%=$(BUILD)/fuzz/%)
FUZZ_SECONDS ?= 5
FUZZ_LONG_SECONDS ?= 3600
FUZZ_WORK   ?= scratch
FUZZ_FRESH  ?= 1
FUZZ_FLAGS  := -max_len=65536 -timeout=30

$(BUILD)/fuzz/%: test/fuzz/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS_ALL) -fsanitize=fuzzer -o $@ $< $(LIB) $(LDFLAGS_ALL) $(PKG_LIBS)

fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang OPT='-O1 -g -fno-omit-frame-pointer' \
	  SAN='-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=undefined' fuzz-run

fuzz-long:
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_LONG_SECONDS) FUZZ_WORK=long FUZZ_FRESH=0

fuzz-run: $(FUZZ_BIN)
	@set -e; for n in $(FUZZ_TARGETS); do t=$(BUILD)/fuzz/$$n; w=$(BUILD)/fuzz/$(FUZZ_WORK)/$$n; \
	  seeds=test/fuzz/corpus/$$n; [ -d $$seeds ] || seeds=; \
	  if [ "$(FUZZ_FRESH)" = 1 ]; then rm -rf $$w; fi; mkdir -p $$w; \
	  echo "== $$n ($(FUZZ_SECONDS) s)"; \
	  $$t -max_total_time=$(FUZZ_SECONDS) $(FUZZ_FLAGS) -artifact_prefix=$(BUILD)/fuzz/$$n- \
	    $$w $$seeds > $$t.log 2>&1 || { tail -n 40 $$t.log; exit 1; }; \
	  grep -E '^#[0-9]+[[:space:]]+DONE' $$t.log | tail -n 1; done

deps:
	scripts/install-deps

# The layout's rules: no include cycle between the folders of src/, no file over 600 lines nor
# function over 45, and every source formatted by .clang-format (`make format` applies it).
FORMAT_SRC   = $(wildcard src/*/*.[ch] test/unit/*.[ch] test/fuzz/*.c)
lint: include-cycles size-limits format-check

include-cycles:
	scripts/include-cycles

size-limits:
	scripts/size-limits

format-check:
	@clang-format --dry-run -Werror $(FORMAT_SRC)

format:
	@clang-format -i $(FORMAT_SRC)

# The one test command: deps, the layout's rules (lint), unit tests (plain and sanitized), fuzz targets from their seeds,
# end-to-end tests with the plain shim and again with the sanitized one (CSHIM_E2E_ASAN, see
# test/e2e/conftest.py), the core e2e subset on containerd 1.7 and 2.x, the CRI test on every
# containerd, and the differential conformance suite against the stock shim.
check: deps
	$(MAKE) lint
	$(MAKE) all headers
	$(MAKE) unit
	$(MAKE) asan asan-unit
	$(MAKE) fuzz
	$(MAKE) e2e
	CSHIM_E2E_ASAN=1 $(MAKE) e2e
	$(MAKE) e2e-matrix
	$(MAKE) cri
	$(MAKE) conformance

demo: deps
	$(MAKE) all
	scripts/demo

# One command: both shims under runc and crun (scripts/bench), then the shim's own share of an
# exec from its log (scripts/exec-share). BENCH_QUICK=1 for a small run, N=<runs> to set N.
bench: all
	scripts/bench $(BENCH_ARGS)
	scripts/exec-share

# The Kubernetes path: the CRI plugin of containerd 1.6 (system), 1.7 and 2.1 (unpacked from
# Debian trixie/sid, not installed) driving cshim; stubs from Debian's k8s.io/cri-api proto.
DEBIAN_DIR  := build/debian
CRI_PROTO   := $(DEBIAN_DIR)/trixie/golang-github-kubernetes-cri-api-dev/usr/share/gocode/src/k8s.io/cri-api/pkg/apis/runtime/v1/api.proto

.PHONY: cri cri-deps
cri-deps:
	scripts/fetch-containerd
	scripts/fetch-debian trixie golang-github-kubernetes-cri-api-dev $(DEBIAN_DIR)/trixie
	scripts/cri-stubs $(CRI_PROTO) build/cri-api

cri: all cri-deps
	/usr/bin/python3 -m pytest -q test/cri $(PYTEST_ARGS)

install: all
	install -D -m 0755 $(BUILD)/$(BIN) $(DESTDIR)$(PREFIX)/bin/$(BIN)
	install -D -m 0644 docs/$(BIN).8 $(DESTDIR)$(PREFIX)/share/man/man8/$(BIN).8

clean:
	rm -rf build build-asan build-fuzz

-include $(wildcard $(BUILD)/obj/*/*.d $(BUILD)/unit/*.d)
