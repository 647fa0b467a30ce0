/* kvmpt-trace FILE: runs a text trace (DESIGN.md) against the engine with full
 * checking and prints one result line per operation. Exit status: 0, 1 if a
 * `check` failed, 2 if the trace is malformed (message names the line; the
 * trace stops there). FILE "-" reads standard input. */
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
	char *line = NULL;
	size_t cap = 0;
	unsigned long lineno = 0;
	int status = 0;
	while (getline(&line, &cap, in) >= 0) {
		char err[256];
		lineno++;
		int r = trace_line(t, line, err, sizeof(err));
		if (r == 1)
			status = 1;
		if (r == 2) {
			fflush(stdout);
			fprintf(stderr, "kvmpt-trace: %s:%lu: %s\n", argv[1], lineno, err);
			status = 2;
			break;
		}
	}
	fflush(stdout);
	free(line);
	trace_free(t);
	if (in != stdin)
		fclose(in);
	return status;
}
