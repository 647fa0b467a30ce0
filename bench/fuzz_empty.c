/* fuzz_empty: a target that does nothing, linked with the real drivers
 * (fuzz/driver_afl.c: persistent mode, shared-memory test cases;
 * fuzz/driver_libfuzzer.c), so that bench/fuzz-speed can measure what an
 * engine costs per execution on this machine before any target runs: the
 * ceiling of every exec/s figure. */
#include "fuzzer.h"

int fuzz_init(void)
{
	return 0;
}

int fuzz_one(const uint8_t *data, size_t size, FILE *trace)
{
	(void)data, (void)size, (void)trace;
	return 0;
}
