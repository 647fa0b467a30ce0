/* A tiny test harness: T_CHECK counts and reports failed checks with the
 * values; t_exit() prints "<test>: N checks, N failed" and returns the exit
 * status (0 pass, 1 fail, 77 skip after t_skip). */
#ifndef KVMPT_T_H
#define KVMPT_T_H

#include <stdbool.h>

bool t_check(bool ok, const char *file, int line, const char *expr, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
int t_exit(void);
/* Prints "SKIP <reason>" and makes t_exit return 77. */
void t_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A deterministic xorshift64 stream: tests replay the same cases every run. */
unsigned long long t_rand(void);

#define T_CHECK(cond, ...) t_check(!!(cond), __FILE__, __LINE__, #cond, __VA_ARGS__)
/* Equality of two integers, printing both; each is evaluated once. */
bool t_eq(unsigned long long a, unsigned long long b, const char *file, int line, const char *expr);
#define T_EQ(a, b) t_eq((unsigned long long)(a), (unsigned long long)(b), __FILE__, __LINE__, #a " == " #b)

#endif
