/* A toy fuzz target with planted bugs: the fixture of ci/tests/test-triage
 * and test-regression (not a real target; never fuzzed by make fuzz).
 *
 * Reads: bytes. Plants: "INV" prints the checker-style line
 * "translation: ..." and aborts; "CAN" + any byte + 0xdeadbeef breaks
 * "canonical"; "HEAP" writes past a heap block (ASan); "SHIFT" shifts by 70
 * (UBSan); "HANG" loops for ever. Built with -DTOY_FIXED every bug is gone,
 * which is how the tests play "the bug was fixed". The trace it prints is in
 * kvmpt-trace's language, so the triage's trace step runs for real. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzzer.h"

int fuzz_init(void)
{
	return 0;
}

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
#endif
	free(buf);
	return 0;
}
