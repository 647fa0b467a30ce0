# Fuzz targets: every fuzz/fuzz_*.c is one target (TARGET), built for every
# engine from its own compile of the core sources:
#   build/libfuzzer/TARGET    clang -fsanitize=fuzzer,address,undefined
#   build/afl/TARGET          afl-clang-fast, persistent mode, shared-memory cases
#   build/afl-asan/TARGET     the same with AFL_USE_ASAN=1 AFL_USE_UBSAN=1
#   build/afl-cmplog/TARGET   the same with AFL_LLVM_CMPLOG=1
#   build/replay/TARGET       gcc, replay main (FILE|DIR..., --trace)
#   build/replay-asan/TARGET  clang ASan+UBSan replay main
#   build/cov/TARGET          clang source-based coverage replay main
#   build/encode/TARGET       text trace -> input bytes (make corpus)
#   build/mutator/TARGET.so   AFL++ custom mutator (structure-aware; fuzz_pt, fuzz_slots)
# Make targets: fuzz-build (libFuzzer, AFL++ and replays), fuzz-build-libfuzzer,
# fuzz-build-afl, fuzz-build-replay, fuzz-build-cov, corpus.
# A target that needs more than core (fuzz_kvm) lists its extra sources in
# FUZZ_EXTRA_SRCS_<target> (.c or .S, compiled per variant) and libraries in
# FUZZ_LDLIBS_<target>, set before this file is included.

# fuzz_trace runs the text-trace interpreter itself.
FUZZ_EXTRA_SRCS_fuzz_trace := fuzz/trace.c

FUZZ_SRCS    := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_TARGETS := $(patsubst fuzz/%.c,%,$(FUZZ_SRCS))
# Targets with an encoder, seed traces and a kvmpt-trace round trip.
FUZZ_CODEC_TARGETS := $(filter fuzz_pt fuzz_slots,$(FUZZ_TARGETS))

AFL_CC := $(shell command -v afl-clang-fast 2>/dev/null)

# The oracle (shadow, checkers) is compiled without coverage feedback in the
# libFuzzer build: edges and comparisons in it only slow the engine down and
# steer nothing (bench/fuzz-speed measures it). FUZZ_ORACLE_COV=1 keeps it
# instrumented.
FUZZ_ORACLE_SRCS := core/shadow.c core/check.c core/check_slots.c

FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

FZ_CC_libfuzzer     := $(CLANG)
FZ_CFLAGS_libfuzzer  = -O1 -DPT_DEBUG -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION $(FUZZ_SAN) $(FZ_COV_libfuzzer)
FZ_COV_libfuzzer    := -fsanitize=fuzzer-no-link
FZ_LD_libfuzzer     := $(CLANG) -fsanitize=fuzzer $(FUZZ_SAN)
FZ_DRIVER_libfuzzer := fuzz/driver_libfuzzer.c

# AFL++'s instrumentation ignores no_sanitize("coverage"): the oracle is kept
# out of it with a deny list instead (AFL_LLVM_DENYLIST): the core oracle
# sources and the functions of each target's oracle section (between
# FUZZ_ORACLE_BEGIN and FUZZ_ORACLE_END, fuzzer.h). Its edges steer nothing and
# were a third of the plain build's instructions on a fuzz_pt corpus (callgrind).
# FUZZ_ORACLE_COV=1 keeps them instrumented here too.
FZ_AFL_DENYLIST := $(B)/afl-denylist.txt
ifneq ($(FUZZ_ORACLE_COV),1)
FZ_AFL_DENY := AFL_LLVM_DENYLIST=$(abspath $(FZ_AFL_DENYLIST))
endif
$(FZ_AFL_DENYLIST): fuzz/build.mk $(FUZZ_SRCS)
	@mkdir -p $(@D)
	@{ for s in $(FUZZ_ORACLE_SRCS); do echo "src: $$s"; done; \
	   awk '/^FUZZ_ORACLE_BEGIN/ { p = 1 } /^FUZZ_ORACLE_END/ { p = 0 } \
		p && /^[a-z].*[a-z_0-9]+\(/ && !/;$$/ { s = $$0; sub(/\(.*/, "", s); n = split(s, w, /[ *]+/); print "fun: " w[n] }' \
		$(FUZZ_SRCS); } >$@.tmp
	@cmp -s $@.tmp $@ && rm $@.tmp || mv $@.tmp $@

FZ_ENV_afl          := AFL_QUIET=1 $(FZ_AFL_DENY)
FZ_PRE_afl          := $(FZ_AFL_DENYLIST)
FZ_PRE_afl-asan     := $(FZ_AFL_DENYLIST)
FZ_PRE_afl-cmplog   := $(FZ_AFL_DENYLIST)
FZ_CC_afl           := $(AFL_CC)
FZ_CFLAGS_afl       := -O2 -DPT_DEBUG -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
FZ_LD_afl           := $(AFL_CC)
FZ_DRIVER_afl       := fuzz/driver_afl.c

FZ_ENV_afl-asan     := AFL_QUIET=1 AFL_USE_ASAN=1 AFL_USE_UBSAN=1 $(FZ_AFL_DENY)
FZ_CC_afl-asan      := $(AFL_CC)
FZ_CFLAGS_afl-asan  := -O1 -DPT_DEBUG -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -fno-omit-frame-pointer
FZ_LD_afl-asan      := $(AFL_CC)
FZ_DRIVER_afl-asan  := fuzz/driver_afl.c

FZ_ENV_afl-cmplog   := AFL_QUIET=1 AFL_LLVM_CMPLOG=1 $(FZ_AFL_DENY)
FZ_CC_afl-cmplog    := $(AFL_CC)
FZ_CFLAGS_afl-cmplog := -O2 -DPT_DEBUG -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
FZ_LD_afl-cmplog    := $(AFL_CC)
FZ_DRIVER_afl-cmplog := fuzz/driver_afl.c

FZ_CC_replay        := gcc
FZ_CFLAGS_replay    := -O1 -DPT_DEBUG
FZ_LD_replay        := gcc
FZ_DRIVER_replay    := fuzz/driver_replay.c

FZ_CC_replay-asan     := $(CLANG)
FZ_CFLAGS_replay-asan := -O1 -DPT_DEBUG $(FUZZ_SAN)
FZ_LD_replay-asan     := $(CLANG) $(FUZZ_SAN)
FZ_DRIVER_replay-asan := fuzz/driver_replay.c

# fuzz_slots with a reader thread under ThreadSanitizer: the only way a
# publication-order bug in the lock-free slot index shows (make check
# replays the corpus through it; engines do not run TSan).
FZ_CC_replay-tsan     := $(CLANG)
FZ_CFLAGS_replay-tsan := -O1 -DPT_DEBUG -DFUZZ_SLOTS_READER -fsanitize=thread
FZ_LD_replay-tsan     := $(CLANG) -fsanitize=thread
FZ_DRIVER_replay-tsan := fuzz/driver_replay.c

# build/cov/ objects come from the top Makefile's cov variant rules.
FZ_LD_cov           := $(CLANG) -fprofile-instr-generate -fcoverage-mapping
FZ_DRIVER_cov       := fuzz/driver_replay.c

FZ_LD_encode        := gcc
FZ_DRIVER_encode    := fuzz/encode.c

FUZZ_OWN_VARIANTS := libfuzzer afl afl-asan afl-cmplog replay replay-asan replay-tsan encode
FZ_CC_encode      := gcc
FZ_CFLAGS_encode  := -O1

# Object rules of the variants this file owns (cov is the top Makefile's).
define fuzz_obj_rules
$(B)/$(1)/%.o: %.c | deps-stamp $(FZ_PRE_$(1))
	@mkdir -p $$(@D)
	$$(FZ_ENV_$(1)) $$(FZ_CC_$(1)) $$(BASE) -Ifuzz $$(FZ_CFLAGS_$(1)) -c $$< -o $$@
$(B)/$(1)/%.o: %.S | deps-stamp $(FZ_PRE_$(1))
	@mkdir -p $$(@D)
	$$(FZ_ENV_$(1)) $$(FZ_CC_$(1)) $$(BASE) -Ifuzz $$(FZ_CFLAGS_$(1)) -c $$< -o $$@
endef
$(foreach v,$(FUZZ_OWN_VARIANTS),$(eval $(call fuzz_obj_rules,$(v))))

# The oracle runs without ASan in the libFuzzer build (UBSan stays): it
# reads the pool (mmap'd pages, where ASan has no redzones) and the shadow,
# the engine under test keeps every check, and the oracle's ASan checks cost
# 5-15% of the CPU per input (paired replays). The replay-asan build (make check) still runs
# the oracle under ASan. FUZZ_ORACLE_ASAN=1 puts it back.
ifneq ($(FUZZ_ORACLE_ASAN),1)
$(call obj,libfuzzer,$(FUZZ_ORACLE_SRCS)): FUZZ_SAN := -fsanitize=undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
$(call obj,libfuzzer,$(FUZZ_SRCS)): FZ_CFLAGS_libfuzzer += -DFUZZ_ORACLE_NOASAN
endif
ifneq ($(FUZZ_ORACLE_COV),1)
$(call obj,libfuzzer,$(FUZZ_ORACLE_SRCS)): FZ_COV_libfuzzer :=
else
FZ_COV_libfuzzer += -DFUZZ_ORACLE_COV
endif

# The engine keeps edge coverage but not comparison tracing: its compares are
# against masks and table bounds, not input magic (the harness decodes
# operands from boundary tables, and is traced), and tracing every compare of
# the walker cost more than half of all time (bench/fuzz-speed).
FUZZ_ENGINE_SRCS := $(filter-out $(FUZZ_ORACLE_SRCS),$(CORE_SRCS))
ifneq ($(FUZZ_ENGINE_CMP),1)
$(call obj,libfuzzer,$(FUZZ_ENGINE_SRCS)): FZ_COV_libfuzzer := -fsanitize=fuzzer-no-link -fno-sanitize-coverage=trace-cmp
endif

fz_objs = $(patsubst %.S,$(B)/$(1)/%.o,$(patsubst %.c,$(B)/$(1)/%.o,$(2)))

# The structure-aware mutator (fuzz/mutator.c) for the targets that describe
# their byte format (fuzz_describe): linked into their libFuzzer build
# (LLVMFuzzerCustomMutator/CustomCrossOver; FUZZ_MUTATOR=bytes at run time
# turns it off) and built as an AFL++ custom mutator library
# build/mutator/T.so (AFL_CUSTOM_MUTATOR_LIBRARY). Its own code steers
# nothing: no coverage feedback.
FUZZ_MUTATOR_TARGETS := $(filter fuzz_pt fuzz_slots,$(FUZZ_TARGETS))
FZ_MUTATOR_SRC_libfuzzer = $(if $(filter $(1),$(FUZZ_MUTATOR_TARGETS)),fuzz/mutator.c)
$(call obj,libfuzzer,fuzz/mutator.c): FZ_COV_libfuzzer :=

# build/mutator/T.so: plain gcc, position-independent, only the afl_custom_*
# symbols exported (the target's decoder and the core it links come along).
FZ_MUT_CFLAGS := -O2 -fPIC -fvisibility=hidden -DFUZZ_MUTATOR_AFL
$(B)/mutator/%.o: %.c | deps-stamp
	@mkdir -p $(@D)
	gcc $(BASE) -Ifuzz $(FZ_MUT_CFLAGS) -c $< -o $@
define fuzz_mutator_so
$(B)/mutator/$(1).so: $(call obj,mutator,fuzz/mutator.c fuzz/$(1).c $(CORE_SRCS))
	@mkdir -p $$(@D)
	gcc -shared $(LDFLAGS) $$^ -o $$@ -lpthread
endef
$(foreach t,$(FUZZ_MUTATOR_TARGETS),$(eval $(call fuzz_mutator_so,$(t))))
FUZZ_MUTATOR_LIBS := $(foreach t,$(FUZZ_MUTATOR_TARGETS),$(B)/mutator/$(t).so)

# fuzz_link(variant, target)
define fuzz_link
$(B)/$(1)/$(2): $(call fz_objs,$(1),fuzz/$(2).c $(FZ_DRIVER_$(1)) $(CORE_SRCS) $(FUZZ_EXTRA_SRCS_$(2)) $(if $(filter libfuzzer,$(1)),$(call FZ_MUTATOR_SRC_libfuzzer,$(2))))
	@mkdir -p $$(@D)
	$$(FZ_ENV_$(1)) $$(FZ_LD_$(1)) $$^ -o $$@ $$(FUZZ_LDLIBS_$(2)) -lpthread
endef
$(foreach v,libfuzzer afl afl-asan afl-cmplog replay replay-asan cov,\
  $(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_link,$(v),$(t)))))
$(foreach t,$(FUZZ_CODEC_TARGETS),$(eval $(call fuzz_link,encode,$(t))))
$(eval $(call fuzz_link,replay-tsan,fuzz_slots))

FUZZ_BIN = $(foreach t,$(FUZZ_TARGETS),$(B)/$(1)/$(t))

.PHONY: fuzz-build fuzz-build-libfuzzer fuzz-build-afl fuzz-build-replay fuzz-build-cov
fuzz-build-libfuzzer: $(call FUZZ_BIN,libfuzzer)
fuzz-build-replay: $(call FUZZ_BIN,replay) $(call FUZZ_BIN,replay-asan) $(B)/replay-tsan/fuzz_slots
fuzz-build-cov: $(call FUZZ_BIN,cov)
ifneq ($(AFL_CC),)
fuzz-build-afl: $(call FUZZ_BIN,afl) $(call FUZZ_BIN,afl-asan) $(call FUZZ_BIN,afl-cmplog) $(FUZZ_MUTATOR_LIBS)
else
fuzz-build-afl:
	@echo "fuzz-build-afl: afl-clang-fast not found (install afl++, see ci/deps): AFL++ builds skipped"
endif
fuzz-build: fuzz-build-libfuzzer fuzz-build-afl fuzz-build-replay

# Seeds: corpus/<target>/<name> from corpus/src/<target>/<name>.trace.
FUZZ_SEED_SRCS := $(foreach t,$(FUZZ_CODEC_TARGETS),$(wildcard corpus/src/$(t)/*.trace))
FUZZ_SEED_FILES := $(foreach s,$(FUZZ_SEED_SRCS),$(patsubst corpus/src/%.trace,corpus/%,$(s)))

corpus: $(FUZZ_SEED_FILES)
	@for t in $(FUZZ_CODEC_TARGETS); do \
		for s in corpus/$$t/*; do \
			[ -f "$$s" ] || continue; \
			[ -f "corpus/src/$$t/$${s##*/}.trace" ] || echo "corpus: $$s has no trace in corpus/src/$$t (from a campaign?)"; \
		done; \
	done

define fuzz_seed_rule
corpus/$(1)/%: corpus/src/$(1)/%.trace $(B)/encode/$(1)
	@mkdir -p $$(@D)
	$(B)/encode/$(1) $$< $$@
endef
$(foreach t,$(FUZZ_CODEC_TARGETS),$(eval $(call fuzz_seed_rule,$(t))))

# Tests: one executable per check, generated with the target name baked in
# (ci/run-tests runs argument-less commands).
FUZZ_SMOKE_TIME ?= 8
FUZZ_TEST_DIR := $(B)/fuzz-tests

$(FUZZ_TEST_DIR)/replay-%: fuzz/tests/replay.sh fuzz/build.mk
	@mkdir -p $(@D)
	@printf '#!/bin/sh\nexec fuzz/tests/replay.sh %s\n' $* >$@ && chmod +x $@
$(FUZZ_TEST_DIR)/trace-%: fuzz/tests/trace.sh fuzz/build.mk
	@mkdir -p $(@D)
	@printf '#!/bin/sh\nexec fuzz/tests/trace.sh %s\n' $* >$@ && chmod +x $@
$(FUZZ_TEST_DIR)/smoke-%: fuzz/tests/smoke.sh fuzz/build.mk
	@mkdir -p $(@D)
	@printf '#!/bin/sh\nexec fuzz/tests/smoke.sh %s %s\n' $* $(FUZZ_SMOKE_TIME) >$@ && chmod +x $@
$(FUZZ_TEST_DIR)/codec: fuzz/tests/codec.sh fuzz/build.mk
	@mkdir -p $(@D)
	@printf '#!/bin/sh\nexec fuzz/tests/codec.sh %s\n' "$(FUZZ_CODEC_TARGETS)" >$@ && chmod +x $@

$(FUZZ_TEST_DIR)/replay-tsan-fuzz_slots: fuzz/build.mk
	@mkdir -p $(@D)
	@printf '#!/bin/sh\n# fuzz_slots corpus and crashes with a concurrent reader, under ThreadSanitizer\nTSAN_OPTIONS="halt_on_error=1 exitcode=66 $$TSAN_OPTIONS" exec $(B)/replay-tsan/fuzz_slots --quiet corpus/fuzz_slots $$(ls -d crashes/fuzz_slots 2>/dev/null)\n' >$@ && chmod +x $@

FUZZ_TESTS := \
	$(FUZZ_TEST_DIR)/replay-tsan-fuzz_slots \
	$(foreach t,$(FUZZ_TARGETS),$(FUZZ_TEST_DIR)/replay-$(t)) \
	$(foreach t,$(FUZZ_CODEC_TARGETS),$(FUZZ_TEST_DIR)/trace-$(t)) \
	$(FUZZ_TEST_DIR)/codec \
	$(foreach t,$(FUZZ_TARGETS),$(FUZZ_TEST_DIR)/smoke-$(t))

TESTS += $(FUZZ_TESTS)
CHECK_DEPS += $(FUZZ_TESTS) $(B)/replay-tsan/fuzz_slots \
	$(call FUZZ_BIN,replay-asan) $(call FUZZ_BIN,replay) $(call FUZZ_BIN,libfuzzer) \
	$(foreach t,$(FUZZ_CODEC_TARGETS),$(B)/encode/$(t)) $(B)/kvmpt-trace

# kvmpt-trace's reader against hostile input (directories, /dev/zero, long
# lines, NUL bytes), release and ASan+UBSan, under memory and time limits.
# Valid traces scale: 65,537 and 1M single-page maps, the 64 GiB pool, a
# 512 GiB map of 4 KiB pages checked with progress, in bounded memory.
TESTS += fuzz/tests/trace-input.sh fuzz/tests/trace-scale.sh
CHECK_DEPS += $(B)/release/kvmpt-trace $(B)/asubsan/kvmpt-trace
