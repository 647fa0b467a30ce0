/* The text-trace interpreter behind kvmpt-trace (format: DESIGN.md "Text
 * traces"). One struct trace holds the engine state a trace builds. */
#ifndef KVMPT_TRACE_H
#define KVMPT_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct trace;

/* A fresh interpreter writing results to out. NULL when out of memory. */
struct trace *trace_new(FILE *out);
void trace_free(struct trace *t);

/* Runs one line. 0 ok (an operation that returns an error is ok), 1 a
 * `check` failed, 2 the line is malformed (message in err, naming nothing:
 * the caller adds file and line). */
int trace_line(struct trace *t, const char *line, char *err, size_t err_len);

#endif
