# Core unit tests: every core/tests/test_*.c is a test binary built with
# ASan+UBSan (a plain build can pass with a live overflow) and run by make check.
CORE_TEST_SRCS := $(sort $(wildcard core/tests/test_*.c))
CORE_TESTS := $(patsubst core/tests/%.c,$(B)/asubsan/core/tests/%,$(CORE_TEST_SRCS))

$(B)/asubsan/core/tests/%: $(B)/asubsan/core/tests/%.o $(B)/asubsan/core/tests/t.o $(B)/asubsan/libkvmpt.a
	$(CC_asubsan) $(CFLAGS_asubsan) $(LDFLAGS) $^ -o $@ -lpthread

TESTS += $(CORE_TESTS)
CHECK_DEPS += $(CORE_TESTS)

# The fault path in a signal handler on a sigaltstack of AT_MINSIGSTKSZ + its
# 2 KiB budget, with malloc interposed: no sanitizer (it allocates), -O2 with
# assertions on. ci/tests/test-sigstack shows its checks fail when they should.
$(B)/clang/core/tests/fault_path: $(B)/clang/core/tests/fault_path.o $(B)/clang/core/tests/t.o $(B)/clang/libkvmpt.a
	$(CC_clang) $(CFLAGS_clang) $(LDFLAGS) $^ -o $@ -lpthread
TESTS += $(B)/clang/core/tests/fault_path ci/tests/test-sigstack
CHECK_DEPS += $(B)/clang/core/tests/fault_path

# Worst-case stack and no allocation/recursion, from the call graph.
TESTS += ci/stack-check
CHECK_DEPS += $(B)/stack/libkvmpt.a

# Golden traces through kvmpt-trace: exact output format, exit status, messages.
TESTS += core/tests/run-traces
CHECK_DEPS += $(B)/kvmpt-trace
include core/tests/slots.mk
