# The slot engine's thread test again under ThreadSanitizer (the ASan+UBSan
# build comes from core/tests/build.mk like every test_*.c). Included from
# core/tests/build.mk.
SLOTS_TSAN_TEST := $(B)/tsan/core/tests/test_slots_threads

$(SLOTS_TSAN_TEST): $(B)/tsan/core/tests/test_slots_threads.o $(B)/tsan/core/tests/t.o $(B)/tsan/libkvmpt.a
	$(CC_tsan) $(CFLAGS_tsan) $(LDFLAGS) $^ -o $@ -lpthread

TESTS += $(SLOTS_TSAN_TEST)
CHECK_DEPS += $(SLOTS_TSAN_TEST)
