# vmk: hand-written Makefile. Objects go out of tree under $(BUILD)/.
#   make            build everything (after scripts/deps)
#   make check      install deps, build, run unit + integration tests
#   make demo       install deps, build, run the two-host lab demo
#   make asan       the same tests under AddressSanitizer + UBSan (build-asan/)
#   make bench      run the benchmarks in bench/
#   make format-check / make format

BUILD    ?= build
CC       ?= gcc
SAN      ?=
CFLAGS   ?= -O2 -g
WFLAGS   := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers -Wno-format-truncation
CPPFLAGS := -I. -Ilib -I$(BUILD)/gen -MMD -MP
ALLCFLAGS = $(WFLAGS) $(CFLAGS) $(SAN) $(CPPFLAGS)
LDLIBS_COMMON := -lnng -lprotobuf-c -llz4 -lpthread
LDFLAGS  ?=

GEN_DIR   := $(BUILD)/gen
OBJ_DIR   := $(BUILD)/obj
BIN_DIR   := $(BUILD)/bin
TEST_DIR  := $(BUILD)/tests
BENCH_DIR := $(BUILD)/bench

PROTOS     := $(wildcard proto/*.proto)
PROTO_C    := $(patsubst proto/%.proto,$(GEN_DIR)/%.pb-c.c,$(PROTOS))
PROTO_H    := $(PROTO_C:.c=.h)

LIB_SRCS    := $(wildcard lib/*.c)
HOSTD_SRCS  := $(filter-out hostd/main.c,$(wildcard hostd/*.c))
VMKCTL_SRCS := $(filter-out vmkctl/main.c,$(wildcard vmkctl/*.c))
VMM_SRCS    := $(filter-out vmm/main.c,$(wildcard vmm/*.c)) $(wildcard migrate/*.c) $(wildcard replica/*.c)

obj = $(patsubst %.c,$(OBJ_DIR)/%.o,$(1))

LIBVMK    := $(BUILD)/libvmk.a
LIBHOSTD  := $(BUILD)/libhostd.a
LIBVMKCTL := $(BUILD)/libvmkctl.a
LIBVMM    := $(BUILD)/libvmm.a

HOSTD_LIBS  := -lconfig -lcrypt -lssl -lcrypto $(LDLIBS_COMMON)
VMKCTL_LIBS := -lssl -lcrypto $(LDLIBS_COMMON)
VMX_LIBS    := -lconfig $(LDLIBS_COMMON)

TEST_SRCS  := $(wildcard tests/test_*.c)
TESTS      := $(patsubst tests/%.c,$(TEST_DIR)/%,$(TEST_SRCS))
BENCH_SRCS := $(wildcard bench/*.c)
BENCHES    := $(patsubst bench/%.c,$(BENCH_DIR)/%,$(BENCH_SRCS))

PROGS := $(BIN_DIR)/hostd $(BIN_DIR)/vmkctl $(BIN_DIR)/vmx

# ---- micro guests (guest/): freestanding PVH ELF, see guest/boot.S ----
GUEST_DIR    := $(BUILD)/guest
GUEST_SRCS   := $(wildcard guest/*.c) $(wildcard guest/*.S)
GUEST_OBJS   := $(patsubst guest/%,$(GUEST_DIR)/obj/%.o,$(GUEST_SRCS))
GUEST_ELF    := $(GUEST_DIR)/vmk-guest.elf
GUEST_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -ffreestanding -fno-pic -fno-pie \
	-fno-stack-protector -mno-red-zone -fno-asynchronous-unwind-tables -mcmodel=small \
	-fno-builtin -fcf-protection=none -mgeneral-regs-only -MMD -MP

.PHONY: all deps check check-unit check-integration demo linux-smoke asan bench fuzz format format-check clean
.DEFAULT_GOAL := all
# keep objects of tests and benches (make would delete them as intermediates)
.SECONDARY:

all: $(PROGS) $(TESTS) $(BENCHES) $(BUILD)/vmkctl.bash-completion $(GUEST_ELF)

deps:
	@scripts/deps

# ---- generated protobuf-c code ----
$(GEN_DIR)/%.pb-c.c $(GEN_DIR)/%.pb-c.h: proto/%.proto
	@mkdir -p $(GEN_DIR)
	protoc-c --proto_path=proto --c_out=$(GEN_DIR) $<

# every object may include generated headers
$(OBJ_DIR)/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -c $< -o $@

$(OBJ_DIR)/gen/%.o: $(GEN_DIR)/%.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -c $< -o $@

$(LIBVMK): $(call obj,$(LIB_SRCS)) $(patsubst $(GEN_DIR)/%.c,$(OBJ_DIR)/gen/%.o,$(PROTO_C))
	@rm -f $@
	ar rcs $@ $^

$(LIBHOSTD): $(call obj,$(HOSTD_SRCS))
	@rm -f $@
	ar rcs $@ $^

$(LIBVMKCTL): $(call obj,$(VMKCTL_SRCS))
	@rm -f $@
	ar rcs $@ $^

$(LIBVMM): $(call obj,$(VMM_SRCS))
	@rm -f $@
	ar rcs $@ $^

$(BIN_DIR)/hostd: $(call obj,hostd/main.c) $(LIBHOSTD) $(LIBVMM) $(LIBVMK)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $(LDFLAGS) $^ $(HOSTD_LIBS) -o $@

$(BIN_DIR)/vmkctl: $(call obj,vmkctl/main.c) $(LIBVMKCTL) $(LIBVMK)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $(LDFLAGS) $^ $(VMKCTL_LIBS) -o $@

$(BIN_DIR)/vmx: $(call obj,vmm/main.c) $(LIBVMM) $(LIBVMK)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $(LDFLAGS) $^ $(VMX_LIBS) -o $@

$(BUILD)/vmkctl.bash-completion: $(BIN_DIR)/vmkctl
	$< --generate-completion bash > $@

$(GUEST_DIR)/obj/%.c.o: guest/%.c
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -c $< -o $@

$(GUEST_DIR)/obj/%.S.o: guest/%.S
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -c $< -o $@

$(GUEST_ELF): $(GUEST_OBJS) guest/link.ld
	$(CC) -nostdlib -static -no-pie -Wl,-T,guest/link.ld -Wl,--build-id=none \
		-Wl,-z,max-page-size=4096 -Wl,--no-warn-rwx-segments $(GUEST_OBJS) -o $@

# unit tests link every library; the linker takes only what a test uses
$(TEST_DIR)/%: $(call obj,tests/%.c) $(LIBHOSTD) $(LIBVMKCTL) $(LIBVMM) $(LIBVMK)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $(LDFLAGS) $^ -lcmocka $(HOSTD_LIBS) -o $@

$(BENCH_DIR)/%: $(call obj,bench/%.c) $(LIBHOSTD) $(LIBVMKCTL) $(LIBVMM) $(LIBVMK)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $(LDFLAGS) $^ $(HOSTD_LIBS) -lm -o $@

# ---- the two commands of the README ----
check: deps
	@$(MAKE) --no-print-directory all
	@tests/run --build $(BUILD)

check-unit: all
	@tests/run --build $(BUILD) --unit-only

demo: deps
	@$(MAKE) --no-print-directory all
	@integration/demo --build $(BUILD)

# a Linux kernel booted in vmx (bzImage protocol); not in check: KVM
# here runs CPL 0 code about 5000x slower (docs/vmx.md)
linux-smoke: deps
	@$(MAKE) --no-print-directory all
	@integration/linux_smoke --build $(BUILD) $(LINUX_SMOKE_ARGS)

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan \
		SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
		CFLAGS="-O1 -g" all
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		tests/run --build build-asan

bench: deps
	@$(MAKE) --no-print-directory all
	@for b in $(BENCHES); do echo "== $$b"; $$b || exit 1; done

# libFuzzer targets (clang from Debian's clang package): fuzz/fuzz_<name>.c
FUZZ_SRCS := $(wildcard fuzz/fuzz_*.c)
FUZZ_SECONDS ?= 60
fuzz: deps
	@command -v clang >/dev/null || { echo "make fuzz: needs clang (apt-get install clang)"; exit 1; }
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang \
		WFLAGS="$(WFLAGS) -Wno-unknown-warning-option" \
		SAN="-fsanitize=fuzzer-no-link,address,undefined" CFLAGS="-O1 -g" \
		build-fuzz/libhostd.a build-fuzz/libvmkctl.a build-fuzz/libvmm.a build-fuzz/libvmk.a
	@mkdir -p build-fuzz/fuzz
	@for f in $(FUZZ_SRCS); do n=$$(basename $$f .c); \
		clang $(WFLAGS) -Wno-unknown-warning-option -O1 -g -fsanitize=fuzzer,address,undefined -I. -Ilib -Ibuild-fuzz/gen \
		  $$f build-fuzz/libhostd.a build-fuzz/libvmkctl.a build-fuzz/libvmm.a build-fuzz/libvmk.a \
		  $(HOSTD_LIBS) -o build-fuzz/fuzz/$$n || exit 1; \
		mkdir -p build-fuzz/corpus/$$n; \
		echo "== $$n ($(FUZZ_SECONDS) s)"; \
		build-fuzz/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) build-fuzz/corpus/$$n tests/corpus/$$n || exit 1; \
	done

FORMAT_SRCS = $(wildcard */*.c */*.h)
format:
	clang-format -i $(FORMAT_SRCS)

format-check: deps
	@clang-format --dry-run --Werror $(FORMAT_SRCS) && echo "format-check: ok"

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
