/* The text-trace interpreter behind kvmpt-trace (format: DESIGN.md "Text
 * traces"). One struct trace holds the engine state a trace builds. */
#ifndef KVMPT_TRACE_H
#define KVMPT_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct trace;

/* A fresh interpreter writing results to out. NULL when out of memory. */
struct trace *trace_new(FILE *out);
void trace_free(struct trace *t);

/* Caps the pool a `pool` line (above: malformed) or a `layout` bound (above:
 * E2BIG) may ask for; the default is the documented maximum, 16777216. */
void trace_set_max_pool(struct trace *t, uint32_t pages);

/* The longest line a trace may hold, newline not counted. */
#define TRACE_LINE_MAX 511

/* Runs one line. 0 ok (an operation that returns an error is ok), 1 a
 * `check` failed, 2 the line is malformed (message in err, naming nothing:
 * the caller adds file and line). */
int trace_line(struct trace *t, const char *line, char *err, size_t err_len);

/* Runs the trace read from in (named `name` in messages, which go to err)
 * to its end or its first malformed line, in constant memory: lines over
 * TRACE_LINE_MAX, a NUL byte and read errors are malformed too. Returns the
 * exit status: 0, 1 a `check` (or the engine against the shadow) failed, 2
 * malformed or unreadable (one message on err naming name:line). */
int trace_run(struct trace *t, FILE *in, const char *name, FILE *err);

#endif
