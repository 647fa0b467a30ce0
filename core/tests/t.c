#include "t.h"

#include <stdarg.h>
#include <stdio.h>

static unsigned long t_checks, t_failed;
static bool t_skipped;

bool t_check(bool ok, const char *file, int line, const char *expr, const char *fmt, ...)
{
	t_checks++;
	if (ok)
		return true;
	t_failed++;
	fprintf(stderr, "%s:%d: check failed: %s: ", file, line, expr);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return false;
}

bool t_eq(unsigned long long a, unsigned long long b, const char *file, int line, const char *expr)
{
	return t_check(a == b, file, line, expr, "0x%llx != 0x%llx", a, b);
}

unsigned long long t_rand(void)
{
	static unsigned long long state = 0x9e3779b97f4a7c15ull;
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return state;
}

void t_skip(const char *fmt, ...)
{
	va_list ap;
	printf("SKIP ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	t_skipped = true;
}

int t_exit(void)
{
	printf("%lu checks, %lu failed\n", t_checks, t_failed);
	if (t_failed)
		return 1;
	return t_skipped ? 77 : 0;
}
