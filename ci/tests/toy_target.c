/* A toy fuzz target with planted bugs: the fixture of ci/tests/test-triage
 * and test-regression (not a real target; never fuzzed by make fuzz).
 *
 * Reads: bytes. Plants: "INV" prints the checker-style line
 * "translation: ..." and aborts; "CAN" + any byte + 0xdeadbeef breaks
 * "canonical"; "HEAP" writes past a heap block (ASan); "SHIFT" shifts by 70
 * (UBSan); "HANG" loops for ever; "RACE" writes a global from a second
 * thread without a lock, a race only the ThreadSanitizer build with
 * -DFUZZ_SLOTS_READER (toy-build's replay-tsan, like fuzz_slots' reader
 * thread) runs into; with -DTOY_OOM (test-triage-tsan's build only: under
 * a fuzzer it would slow every run down), "OOM" allocates 256 MiB and touches
 * one byte (passes unless a memory limit is set). Built with -DTOY_FIXED
 * every bug is gone,
 * which is how the tests play "the bug was fixed". The trace it prints is in
 * kvmpt-trace's language, so the triage's trace step runs for real. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef FUZZ_SLOTS_READER
#include <pthread.h>
#endif

#include "fuzzer.h"

int fuzz_init(void)
{
	return 0;
}

#ifdef FUZZ_SLOTS_READER
static volatile long toy_shared;

static void *toy_racer(void *arg)
{
	(void)arg;
	toy_shared++;
	return NULL;
}
#endif

static void fail(const char *what)
{
	fprintf(stderr, "%s\n", what);
	abort();
}

int fuzz_one(const uint8_t *data, size_t size, FILE *trace)
{
	char *buf = malloc(8);
	if (!buf)
		abort();
	if (trace)
		fprintf(trace, "map 0x1000 0x1000 0x0 rw\ncheck\n");
#ifndef TOY_FIXED
	if (size >= 3 && !memcmp(data, "INV", 3))
		fail("translation: va 0x1000 maps to pa 0x2000, shadow says pa 0x0");
	if (size >= 8 && !memcmp(data, "CAN", 3)) {
		uint32_t m;
		memcpy(&m, data + 4, 4);
		if (m == 0xdeadbeef)
			fail("canonical: va 0x0 sits in a 0x1000 leaf, the canonical form has 0x200000");
	}
	if (size >= 4 && !memcmp(data, "HEAP", 4))
		buf[8 + size % 4] = 1;
	if (size >= 5 && !memcmp(data, "SHIFT", 5)) {
		volatile int s = 70;
		buf[0] = (char)(1 << s);
	}
	if (size >= 4 && !memcmp(data, "HANG", 4))
		for (;;)
			usleep(1000);
#ifdef TOY_OOM
	if (size >= 3 && !memcmp(data, "OOM", 3)) {
		volatile char *big = malloc((size_t)256 << 20);
		if (big)
			big[0] = 1;
		free((void *)big);
	}
#endif
#ifdef FUZZ_SLOTS_READER
	if (size >= 4 && !memcmp(data, "RACE", 4)) {
		pthread_t th;
		if (pthread_create(&th, NULL, toy_racer, NULL) == 0) {
			toy_shared++;
			pthread_join(th, NULL);
		}
	}
#endif
#endif
	free(buf);
	return 0;
}
