/* A tiny test harness: T_CHECK counts and reports failed checks with the
 * values; t_exit() prints "<test>: N checks, N failed" and returns the exit
 * status (0 pass, 1 fail, 77 skip after t_skip). */
#ifndef KVMPT_T_H
#define KVMPT_T_H

#include <stdbool.h>
#include <stddef.h>

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

/* ---- a small sigaltstack for fault-path tests ----
 * The kernel's signal frame is not ours to count and differs from host to
 * host (it holds the xsave state: ~3 KiB with AVX-512, ~12 KiB with AMX), so
 * the stack given is the kernel's minimum for this CPU plus the engine's
 * budget, above a PROT_NONE guard page. The stack is painted; a handler
 * records its frame address on entry (t_sigstack_enter), and t_sigstack_check
 * measures what the handler and the engine used below that point and checks
 * it against the budget. A death by a signal (a fault on the guard page
 * among them) gets a one-line diagnosis. */
struct t_sigstack {
	unsigned char *guard;        /* the PROT_NONE page just below base */
	unsigned char *base;         /* lowest byte of the stack */
	size_t size;                 /* bytes handed to sigaltstack() */
	size_t min;                  /* the kernel's minimum for this CPU */
	const char *min_from;        /* "AT_MINSIGSTKSZ", or the fallback used */
	size_t budget;               /* what the handler + engine may use */
	unsigned char *volatile top; /* deepest frame address seen on handler entry */
	volatile int *in_handler;    /* shared with the supervisor: between enter and leave */
};

/* The kernel's minimum signal stack for this CPU: getauxval(AT_MINSIGSTKSZ),
 * else MINSIGSTKSZ/SIGSTKSZ; *from names which. */
size_t t_sigstack_min(const char **from);
/* Maps guard page + stack (size = stack ? stack : min + budget), paints it
 * and installs it with sigaltstack(). From then on the test runs in a child
 * process: when it dies by a signal, the parent prints "FATAL: <test>:
 * killed by SIGxxx" (with ": sigaltstack overflow ..." when the handler died
 * of a fault with the stack used down to the guard page) and exits 128 +
 * the signal.
 * Call it before opening anything a child cannot use (/dev/kvm).
 * Returns 0 or -errno. */
int t_sigstack_init(struct t_sigstack *s, size_t budget, size_t stack);
/* Repaints the stack (before a delivery whose depth is measured alone). */
void t_sigstack_paint(struct t_sigstack *s);
/* Called first thing in the handler: remembers where its frame starts;
 * t_sigstack_leave last thing (a death in between is the handler's). */
#define t_sigstack_enter(s) t_sigstack_note((s), __builtin_frame_address(0))
void t_sigstack_note(struct t_sigstack *s, void *frame);
void t_sigstack_leave(struct t_sigstack *s);
/* Prints "<what>: AT_MINSIGSTKSZ N, stack given N, kernel frame N, handler +
 * engine N bytes above the kernel frame (budget N)" and checks the last
 * figure against the budget (a failed T_CHECK otherwise). Returns it. */
size_t t_sigstack_check(struct t_sigstack *s, const char *what);

#endif
