# kvmrt: the KVM runtime library, the kvmrt command, its tests and benchmark.
#   build/kvmrt                        the command (release)
#   build/<variant>/libkvmrt.a         the runtime, for fuzz/fuzz_kvm.c and tools
#   build/debug/kvmrt/tests/test_*     tests (debug: assertions on; not ASan,
#                                      whose shadow mappings and malloc would
#                                      defeat the signal-handler allocation guard)
#   build/clang/kvmrt/tests/test_sigfault  -O2 with assertions: its stack
#                                      budget is an optimised build's, as for
#                                      core/tests/fault_path
#   make bench-kvm                     exit / MMIO / #PF round-trip medians
KVMRT_LIB_SRCS := \
	kvmrt/kvm.c \
	kvmrt/vcpu.c \
	kvmrt/kvmrt.c \
	kvmrt/shootdown.c \
	kvmrt/scenarios.c
KVMRT_ASM_SRCS := \
	kvmrt/guest.S

# fuzz/fuzz_kvm.c (built by fuzz/build.mk, included after this file) needs
# the runtime's sources compiled in each fuzz variant.
FUZZ_EXTRA_SRCS_fuzz_kvm := $(KVMRT_LIB_SRCS:kvmrt/scenarios.c=) $(KVMRT_ASM_SRCS)

kvmrt_objs = $(call obj,$(1),$(KVMRT_LIB_SRCS)) $(patsubst %.S,$(B)/$(1)/%.o,$(KVMRT_ASM_SRCS))

define kvmrt_rules
$(B)/$(1)/kvmrt/%.o: kvmrt/%.S | deps-stamp
	@mkdir -p $$(@D)
	$$(CC_$(1)) $$(BASE) $$(CFLAGS_$(1)) $$(EXTRA_CFLAGS) -c $$< -o $$@
$(B)/$(1)/libkvmrt.a: $$(call kvmrt_objs,$(1))
	@rm -f $$@
	ar rcs $$@ $$^
$(B)/$(1)/kvmrt/kvmrt: $(B)/$(1)/kvmrt/main.o $(B)/$(1)/libkvmrt.a $(B)/$(1)/libkvmpt.a
	$$(CC_$(1)) $$(CFLAGS_$(1)) $$(LDFLAGS) $$^ -o $$@ -lpthread
$(B)/$(1)/kvmrt/kvmrt-bench: $(B)/$(1)/kvmrt/bench.o $(B)/$(1)/libkvmrt.a $(B)/$(1)/libkvmpt.a
	$$(CC_$(1)) $$(CFLAGS_$(1)) $$^ -o $$@ -lpthread
$(B)/$(1)/kvmrt/tests/%: $(B)/$(1)/kvmrt/tests/%.o $(B)/$(1)/core/tests/t.o $(B)/$(1)/libkvmrt.a $(B)/$(1)/libkvmpt.a
	$$(CC_$(1)) $$(CFLAGS_$(1)) $$(LDFLAGS) $$^ -o $$@ -lpthread
endef
$(foreach v,$(VARIANTS),$(eval $(call kvmrt_rules,$(v))))

$(B)/kvmrt: $(B)/release/kvmrt/kvmrt
	cp $< $@
all: $(B)/kvmrt

KVMRT_TEST_SRCS := $(sort $(wildcard kvmrt/tests/test_*.c))
KVMRT_TESTS := $(patsubst kvmrt/tests/%.c,$(B)/debug/kvmrt/tests/%,$(filter-out kvmrt/tests/test_sigfault.c,$(KVMRT_TEST_SRCS))) \
	$(B)/clang/kvmrt/tests/test_sigfault
# The command's interface (last line, exit statuses) is tested through the
# release binary by a script.
TESTS += $(KVMRT_TESTS) kvmrt/tests/cli.sh
CHECK_DEPS += $(KVMRT_TESTS) $(B)/kvmrt

# Without /dev/kvm kvmrt-bench prints its SKIP line and exits 77: make bench
# goes on to the fuzz targets' figures; any other failure stops it.
.PHONY: bench-kvm
bench-kvm: $(B)/release/kvmrt/kvmrt-bench
	@$(B)/release/kvmrt/kvmrt-bench; rc=$$?; [ $$rc -eq 77 ] || exit $$rc
