/* libFuzzer driver: maps LLVMFuzzerInitialize / LLVMFuzzerTestOneInput to
 * the target's fuzz_init / fuzz_one. Build: clang -fsanitize=fuzzer,... */
#include <stdlib.h>

#include "fuzzer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	if (fuzz_init())
		exit(77);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_one(data, size, NULL);
	return 0;
}
