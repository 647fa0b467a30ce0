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
#ifdef __AFL_FUZZ_TESTCASE_LEN
	/* The fork server first, then init in the child: state that does not
	 * survive fork (fuzz_kvm's VM belongs to the process that made it) is
	 * created where the inputs run. Init then runs once per child, which
	 * persistent mode keeps for many inputs. */
	__AFL_INIT();
	if (fuzz_init())
		return 77;
	unsigned char *buf = __AFL_FUZZ_TESTCASE_BUF;
	while (__AFL_LOOP(100000)) {
		size_t len = (size_t)__AFL_FUZZ_TESTCASE_LEN;
		fuzz_one(buf, len, NULL);
	}
#else
	if (fuzz_init())
		return 77;
	static unsigned char buf[AFL_MAX_INPUT];
	size_t len = fread(buf, 1, sizeof(buf), stdin);
	fuzz_one(buf, len, NULL);
#endif
	return 0;
}
