# Core unit tests: every core/tests/test_*.c is a test binary built with
# ASan+UBSan (a plain build can pass with a live overflow) and run by make check.
CORE_TEST_SRCS := $(sort $(wildcard core/tests/test_*.c))
CORE_TESTS := $(patsubst core/tests/%.c,$(B)/asubsan/core/tests/%,$(CORE_TEST_SRCS))

$(B)/asubsan/core/tests/%: $(B)/asubsan/core/tests/%.o $(B)/asubsan/core/tests/t.o $(B)/asubsan/libkvmpt.a
	$(CC_asubsan) $(CFLAGS_asubsan) $^ -o $@ -lpthread

TESTS += $(CORE_TESTS)
CHECK_DEPS += $(CORE_TESTS)
