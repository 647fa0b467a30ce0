/* kvmpt-trace FILE: runs a text trace (DESIGN.md) against the engine with full
 * checking and prints one result line per operation. Exit status: 0, 1 if a
 * `check` failed, 2 if the trace is malformed or unreadable (the message
 * names file:line; the trace stops there). Lines are read in constant memory
 * (at most TRACE_LINE_MAX characters; a NUL byte is malformed). FILE "-"
 * reads standard input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"

int main(int argc, char **argv)
{
	if (argc != 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fprintf(stderr, "usage: kvmpt-trace FILE   (FILE - for standard input)\n");
		return 2;
	}
	FILE *in = strcmp(argv[1], "-") ? fopen(argv[1], "r") : stdin;
	if (!in) {
		perror(argv[1]);
		return 2;
	}
	struct trace *t = trace_new(stdout);
	if (!t) {
		fprintf(stderr, "kvmpt-trace: out of memory\n");
		return 2;
	}
	int status = trace_run(t, in, argv[1], stderr);
	trace_free(t);
	if (in != stdin)
		fclose(in);
	if (fflush(stdout) || ferror(stdout)) {
		perror("kvmpt-trace: standard output");
		return 2;
	}
	return status;
}
