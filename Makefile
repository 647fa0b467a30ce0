# kvmpt: one non-recursive Makefile. Every variant builds into build/<variant>/.
#   make            kvmpt-trace and kvmrt (release) under build/ (the goal `all`)
#   make check      every test, ends with "N passed, N failed"
#   make fuzz       the main job: a bounded fuzzing campaign (FUZZ_TIME, FUZZ_ENGINE)
#   make bench      benchmarks (figures, not tests)
#   make help       every target, one line each
# Fragments kvmrt/build.mk and fuzz/build.mk are included, not run recursively.

# The variant rules below come first in the file; plain `make` builds `all`.
.DEFAULT_GOAL := all

CC      ?= cc
CLANG   ?= clang
SHELL   := /bin/bash
B       := build

# Bind every symbol at load: a lazy PLT resolution inside the fault path
# (a signal handler) saves the whole xsave area on a small stack.
LDFLAGS := -Wl,-z,now
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wvla
BASE    := -std=c11 -D_GNU_SOURCE -g -MMD -MP -Icore $(WARN)

CFLAGS_debug   := -O0 -DPT_DEBUG
CFLAGS_release := -O2 -DNDEBUG
CFLAGS_asan    := -O1 -DPT_DEBUG -fsanitize=address -fno-omit-frame-pointer
CFLAGS_ubsan   := -O1 -DPT_DEBUG -fsanitize=undefined -fno-sanitize-recover=all
CFLAGS_asubsan := -O1 -DPT_DEBUG -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
CFLAGS_tsan    := -O1 -DPT_DEBUG -fsanitize=thread
CFLAGS_stack   := -O2 -DNDEBUG -fstack-usage -fcallgraph-info=su
CFLAGS_cov     := -O0 -DPT_DEBUG -fprofile-instr-generate -fcoverage-mapping
CFLAGS_clang   := -O2 -DPT_DEBUG

# Which compiler builds each variant (gcc where it can, clang where the
# sanitizer or tool needs it).
CC_debug   := $(CC)
CC_release := $(CC)
CC_asan    := $(CLANG)
CC_ubsan   := $(CLANG)
CC_asubsan := $(CLANG)
CC_tsan    := $(CLANG)
CC_stack   := gcc
CC_cov     := $(CLANG)
CC_clang   := $(CLANG)
VARIANTS   := debug release asan ubsan asubsan tsan stack cov clang

CORE_SRCS := \
	core/pool.c \
	core/pt.c \
	core/shadow.c \
	core/check.c \
	core/physmap.c \
	core/slots.c \
	core/check_slots.c \
	core/tlb.c

TRACE_SRCS := \
	fuzz/trace.c \
	fuzz/trace_main.c

# obj(variant, sources)
obj = $(patsubst %.c,$(B)/$(1)/%.o,$(2))

define variant_rules
$(B)/$(1)/%.o: %.c | deps-stamp
	@mkdir -p $$(@D)
	$$(CC_$(1)) $$(BASE) $$(CFLAGS_$(1)) $$(EXTRA_CFLAGS) -c $$< -o $$@
$(B)/$(1)/libkvmpt.a: $$(call obj,$(1),$$(CORE_SRCS))
	@rm -f $$@
	ar rcs $$@ $$^
$(B)/$(1)/kvmpt-trace: $$(call obj,$(1),$$(TRACE_SRCS)) $(B)/$(1)/libkvmpt.a
	$$(CC_$(1)) $$(CFLAGS_$(1)) $$(LDFLAGS) $$^ -o $$@ -lpthread
endef
$(foreach v,$(VARIANTS),$(eval $(call variant_rules,$(v))))

.SECONDARY:
.PHONY: all check bench clean deps help
all: $(B)/kvmpt-trace $(B)/kvmrt

$(B)/kvmpt-trace: $(B)/release/kvmpt-trace
	cp $< $@

# Dependencies: ci/deps installs what is missing (as root) or says what to run.
deps-stamp: $(B)/.deps
$(B)/.deps: ci/deps
	@mkdir -p $(B)
	ci/deps
	@touch $@
deps: $(B)/.deps

include core/tests/build.mk
include kvmrt/build.mk
include fuzz/build.mk
include ci/campaign.mk
include bench/build.mk

# Every test: a command per line in TESTS (added by the fragments).
check: $(CHECK_DEPS)
	@ci/run-tests $(TESTS)

clean:
	rm -rf $(B)

# One line per target (ci/tests/test-make checks every line names a target).
help:
	@echo 'make                  build/kvmpt-trace and build/kvmrt (release; same as make all)'
	@echo 'make check            every test; the last line is "N passed, N failed"'
	@echo 'make fuzz             a fuzzing campaign: FUZZ_TIME=180 FUZZ_ENGINE=afl|libfuzzer FUZZ_TARGETS= FUZZ_JOBS='
	@echo 'make triage           triage a campaign'"'"'s crashes into crashes/ (CAMPAIGN=campaigns/latest)'
	@echo 'make coverage         llvm-cov report of corpus, crashes and a campaign (CAMPAIGN=campaigns/latest)'
	@echo 'make corpus-min       merge a campaign'"'"'s new inputs into corpus/ (CAMPAIGN=campaigns/latest)'
	@echo 'make corpus           regenerate corpus/T/ seeds from corpus/src/ traces'
	@echo 'make fuzz-build       build every fuzz target (libFuzzer, AFL++, replay)'
	@echo 'make bisect           first bad commit of a crashes/ entry (ENTRY=crashes/T/slug GOOD= BAD=)'
	@echo 'make oss-fuzz-local   run .clusterfuzzlite/build.sh here for every engine/sanitizer'
	@echo 'make bench            benchmarks (figures, not tests)'
	@echo 'make bench-kvm        kvmrt exit / MMIO / #PF round trips (needs /dev/kvm)'
	@echo 'make deps             install missing packages (ci/deps; as root)'
	@echo 'make clean            remove build/'
	@echo 'make help             this list'

-include $(shell find $(B) -name '*.d' 2>/dev/null)
