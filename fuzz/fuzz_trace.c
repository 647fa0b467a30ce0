/* fuzz_trace: kvmpt-trace's reader and parser (fuzz/trace.c, the project's
 * most-used input surface) on arbitrary bytes.
 *
 * Reads: the input as a trace file, through fmemopen and trace_run, as
 * kvmpt-trace reads a file (results to /dev/null, messages to a buffer).
 * Looks for: crashes and sanitizer reports in the reader, the parser and the
 * engine behind them; an input holding a line the format does not allow (an
 * operation word it does not know, a NUL byte, more than 511 characters)
 * that does not end with status 2 (malformed): the reader never passes a
 * line it did not understand; and, in a trace without `layout`, status 1
 * (the engine and the shadow disagree, or `check` failed: an engine bug,
 * not bad input; after a layout, `map` may break slot invariants on purpose).
 * Which lines are not allowed is decided here by a classifier of its own
 * that shares nothing with trace.c.
 * Limits: pools above FT_MAX_POOL pages are refused (status 2) so that no
 * input asks for gigabytes of tables.
 * Debug: build/replay/fuzz_trace --trace FILE prints the input (it is its own
 * trace); build/kvmpt-trace FILE runs it with every message.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzer.h"
#include "trace.h"

#define FT_MAX_POOL 4096   /* 16 MiB of tables at most */
#define FT_LINE_MAX 511    /* README: the longest line, newline not counted */

static FILE *ft_null;

int fuzz_init(void)
{
	ft_null = fopen("/dev/null", "w");
	if (!ft_null) {
		perror("fuzz_trace: /dev/null");
		return 1;
	}
	return 0;
}

static const char *const ft_ops[] = {
	"pool", "map", "unmap", "lookup", "empty", "check", "region",
	"layout", "fault", "stats", "mapphys", "mapall", "inject",
	"vcpus", "vcpu", /* live tables (docs/live-tables.md) */
};

static bool ft_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* Whether some line of d is not allowed by the format; *layout: some line's
 * operation is `layout`. */
static bool ft_has_bad_line(const uint8_t *d, size_t n, bool *layout)
{
	bool bad = false;
	*layout = false;
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j < n && d[j] != '\n')
			j++;
		if (j - i > FT_LINE_MAX || memchr(d + i, 0, j - i))
			bad = true;
		size_t k = i;
		while (k < j && ft_space(d[k]))
			k++;
		if (k < j && d[k] != '#') {
			size_t e = k;
			while (e < j && !ft_space(d[e]) && d[e] != '#')
				e++;
			bool known = false;
			for (size_t o = 0; o < sizeof(ft_ops) / sizeof(ft_ops[0]); o++)
				if (strlen(ft_ops[o]) == e - k && !memcmp(ft_ops[o], d + k, e - k))
					known = true;
			if (!known)
				bad = true;
			if (e - k == 6 && !memcmp(d + k, "layout", 6))
				*layout = true;
		}
		i = j + 1;
	}
	return bad;
}

static void ft_fail(const uint8_t *data, size_t size, int status, const char *msg, const char *why)
{
	fprintf(stderr, "---- fuzz_trace input (%zu bytes) ----\n", size);
	fwrite(data, 1, size, stderr);
	fprintf(stderr, "\n---- end of input ----\nkvmpt-trace said: %s\nfuzz_trace: FAIL: status %d: %s\n", msg, status,
		why);
	abort();
}

int fuzz_one(const uint8_t *data, size_t size, FILE *trace)
{
	if (trace)
		fwrite(data, 1, size, trace);
	if (size == 0)
		return 0;
	bool layout;
	bool bad = ft_has_bad_line(data, size, &layout);
	/* fmemopen reads exactly size bytes, NULs included. */
	FILE *in = fmemopen((void *)data, size, "r");
	char msg[1024] = "";
	FILE *err = fmemopen(msg, sizeof(msg) - 1, "w");
	struct trace *t = trace_new(ft_null);
	if (!in || !err || !t)
		abort();
	setvbuf(err, NULL, _IONBF, 0);
	trace_set_max_pool(t, FT_MAX_POOL);
	int status = trace_run(t, in, "input", err);
	trace_free(t);
	fclose(in);
	fclose(err);
	if (status < 0 || status > 2)
		ft_fail(data, size, status, msg, "exit status out of range");
	if (bad && status != 2)
		ft_fail(data, size, status, msg, "a line the format does not allow, yet not malformed");
	if (status == 2 && !strstr(msg, "kvmpt-trace: input:"))
		ft_fail(data, size, status, msg, "malformed without a message naming input:line");
	if (status == 1 && !layout)
		ft_fail(data, size, status, msg, "engine and shadow disagree, or check failed");
	return 0;
}
