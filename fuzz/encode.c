/* Encoder: turns a readable text trace into the input bytes a target
 * decodes to the same operations (make corpus builds corpus/<target>/ from
 * corpus/src/<target>/NAME.trace this way). Linked with one target, which
 * provides fuzz_encode.
 *
 *   encode-TARGET IN.trace OUT     (OUT "-" for stdout)
 *
 * Check a seed with: build/replay/TARGET --trace OUT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s IN.trace OUT\n", argv[0]);
		return 2;
	}
	FILE *in = fopen(argv[1], "r");
	if (!in) {
		perror(argv[1]);
		return 2;
	}
	static char text[1 << 20];
	size_t n = fread(text, 1, sizeof(text) - 1, in);
	fclose(in);
	text[n] = 0;
	static uint8_t bytes[1 << 20];
	struct fuzz_out out = { bytes, 0, sizeof(bytes) };
	char err[256];
	if (fuzz_encode(text, &out, err, sizeof(err))) {
		fprintf(stderr, "%s:%s\n", argv[1], err);
		return 1;
	}
	FILE *o = strcmp(argv[2], "-") ? fopen(argv[2], "wb") : stdout;
	if (!o || fwrite(bytes, 1, out.len, o) != out.len) {
		perror(argv[2]);
		return 2;
	}
	if (o != stdout)
		fclose(o);
	return 0;
}
