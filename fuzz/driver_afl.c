/* AFL++ driver: persistent mode with shared-memory test cases. Build with
 * afl-clang-fast (which defines __AFL_FUZZ_TESTCASE_LEN); without it this
 * file builds a stdin-reading main so that it still compiles anywhere. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzzer.h"

#ifdef __AFL_FUZZ_TESTCASE_LEN
__AFL_FUZZ_INIT();
#endif

#define AFL_MAX_INPUT (1u << 20)

int main(void)
{
	if (fuzz_init())
		return 77;
#ifdef __AFL_FUZZ_TESTCASE_LEN
	__AFL_INIT();
	unsigned char *buf = __AFL_FUZZ_TESTCASE_BUF;
	while (__AFL_LOOP(100000)) {
		size_t len = (size_t)__AFL_FUZZ_TESTCASE_LEN;
		fuzz_one(buf, len, NULL);
	}
#else
	static unsigned char buf[AFL_MAX_INPUT];
	size_t len = fread(buf, 1, sizeof(buf), stdin);
	fuzz_one(buf, len, NULL);
#endif
	return 0;
}
