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
 * kvmpt-trace's language, so the triage's trace step runs for real.
 *
 * Only "HEAP" is compared with memcmp; the other triggers go through a hash
 * (hidden()), which libFuzzer's comparison-guided mutations cannot solve. So
 * minimising the heap input (-minimize_crash) can only ever find smaller
 * heap inputs, never turn it into another planted bug (which triage would
 * then reject as a different signature: test-triage was flaky that way). */
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

#ifndef TOY_FIXED
/* Does data start with word? Through FNV-1a of both, not a byte compare. */
static int hidden(const uint8_t *data, size_t size, const char *word)
{
	size_t n = strlen(word);
	uint32_t a = 2166136261u, b = 2166136261u;

	if (size < n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		a = (a ^ data[i]) * 16777619u;
		b = (b ^ (uint8_t)word[i]) * 16777619u;
	}
	return a == b;
}

static void fail(const char *what)
{
	fprintf(stderr, "%s\n", what);
	abort();
}
#endif

int fuzz_one(const uint8_t *data, size_t size, FILE *trace)
{
	char *buf = malloc(8);
	if (!buf)
		abort();
	if (trace)
		fprintf(trace, "map 0x1000 0x1000 0x0 rw\ncheck\n");
#ifndef TOY_FIXED
	if (hidden(data, size, "INV"))
		fail("translation: va 0x1000 maps to pa 0x2000, shadow says pa 0x0");
	if (size >= 8 && hidden(data, size, "CAN")) {
		uint32_t m;
		memcpy(&m, data + 4, 4);
		if (m == 0xdeadbeef)
			fail("canonical: va 0x0 sits in a 0x1000 leaf, the canonical form has 0x200000");
	}
	if (size >= 4 && !memcmp(data, "HEAP", 4))
		buf[8 + size % 4] = 1;
	if (hidden(data, size, "SHIFT")) {
		volatile int s = 70;
		buf[0] = (char)(1 << s);
	}
	if (hidden(data, size, "HANG"))
		for (;;)
			usleep(1000);
#ifdef TOY_OOM
	if (hidden(data, size, "OOM")) {
		volatile char *big = malloc((size_t)256 << 20);
		if (big)
			big[0] = 1;
		free((void *)big);
	}
#endif
#ifdef FUZZ_SLOTS_READER
	if (hidden(data, size, "RACE")) {
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
