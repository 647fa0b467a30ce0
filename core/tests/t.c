#include "t.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* ---- sigaltstack for fault-path tests ---- */

#define T_PAINT 0xa5

#ifndef AT_MINSIGSTKSZ
#define AT_MINSIGSTKSZ 51
#endif

static void t_supervise(const struct t_sigstack *s);

size_t t_sigstack_min(const char **from)
{
	unsigned long v = getauxval(AT_MINSIGSTKSZ);

	if (v) {
		*from = "AT_MINSIGSTKSZ";
		return v;
	}
	/* An old kernel: glibc's MINSIGSTKSZ (sysconf-based with _GNU_SOURCE
	 * on glibc >= 2.34) or, without it, SIGSTKSZ. */
	long m = MINSIGSTKSZ;
	if (m > 0) {
		*from = "MINSIGSTKSZ";
		return (size_t)m;
	}
	*from = "SIGSTKSZ";
	return SIGSTKSZ;
}

void t_sigstack_paint(struct t_sigstack *s)
{
	memset(s->base, T_PAINT, s->size);
}

int t_sigstack_init(struct t_sigstack *s, size_t budget, size_t stack)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	memset(s, 0, sizeof(*s));
	s->min = t_sigstack_min(&s->min_from);
	s->budget = budget;
	s->size = stack ? stack : s->min + budget;
	/* A page for the in-handler flag, the guard page, the stack: shared,
	 * so that the supervising parent can read flag and paint after the
	 * child's death. */
	size_t span = 2 * page + (s->size + page - 1) / page * page;
	unsigned char *mem = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	if (mprotect(mem + page, page, PROT_NONE))
		return -errno;
	s->in_handler = (volatile int *)mem;
	s->guard = mem + page;
	s->base = mem + 2 * page; /* the stack starts right on top of the guard page */
	s->top = s->base + s->size;
	t_sigstack_paint(s);
	stack_t ss = { .ss_sp = s->base, .ss_size = s->size };
	if (sigaltstack(&ss, NULL))
		return -errno;
	t_supervise(s);
	return 0;
}

void t_sigstack_note(struct t_sigstack *s, void *frame)
{
	unsigned char *f = frame;
	*s->in_handler = 1;
	if (f >= s->base && f < s->top)
		s->top = f;
}

void t_sigstack_leave(struct t_sigstack *s)
{
	*s->in_handler = 0;
}

size_t t_sigstack_check(struct t_sigstack *s, const char *what)
{
	size_t untouched = 0;
	while (untouched < s->size && s->base[untouched] == T_PAINT)
		untouched++;
	unsigned char *low = s->base + untouched;
	size_t frame = (size_t)(s->base + s->size - s->top);
	size_t ours = s->top > low ? (size_t)(s->top - low) : 0;
	char how[64];
	if (s->size == s->min + s->budget)
		snprintf(how, sizeof(how), "%s + budget", s->min_from);
	else
		snprintf(how, sizeof(how), "set by hand");
	printf("%s: %s %zu, stack given %zu (%s), kernel frame %zu, "
	       "handler + engine %zu bytes above the kernel frame (budget %zu)\n",
	       what, s->min_from, s->min, s->size, how, frame, ours, s->budget);
	T_CHECK(s->top < s->base + s->size, "the handler never called t_sigstack_enter on the sigaltstack");
	T_CHECK(ours <= s->budget, "the handler and the engine used %zu bytes above the kernel frame, budget %zu", ours,
		s->budget);
	return ours;
}

/* ---- fatal-signal diagnosis ----
 * A handler that overflows its sigaltstack cannot be relied on to report
 * it: the kernel's second frame may not fit either, and the process just
 * dies. So the test runs on in a child; the parent waits, and when the child
 * dies by a signal it names the signal and looks at the shared in-handler
 * flag and the painted stack: a fault in the handler with (almost) no paint
 * left above the guard page is an overflow. */

static void t_supervise(const struct t_sigstack *s)
{
	fflush(stdout);
	fflush(stderr);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid <= 0) {
		/* The child (or no fork: run unsupervised). The child goes
		 * when the parent goes (a killed test leaves nothing behind). */
		if (pid == 0 && (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent))
			_exit(1);
		return;
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			_exit(1);
	if (WIFEXITED(st))
		_exit(WEXITSTATUS(st));
	int sig = WTERMSIG(st);
	const char *abbrev = sigabbrev_np(sig);
	size_t untouched = 0;
	while (untouched < s->size && s->base[untouched] == T_PAINT)
		untouched++;
	if (abbrev)
		fprintf(stderr, "FATAL: %s: killed by SIG%s", program_invocation_short_name, abbrev);
	else
		fprintf(stderr, "FATAL: %s: killed by signal %d", program_invocation_short_name, sig);
	if (*s->in_handler && (sig == SIGSEGV || sig == SIGBUS)) {
		/* No frame on the fault path comes near 1 KiB (no VLAs): a
		 * fault with less paint than that left below is the guard. */
		if (untouched < 1024)
			fprintf(stderr, ": sigaltstack overflow: the handler ran into the guard page below its %zu-byte "
				"sigaltstack (%s %zu, budget %zu)",
				s->size, s->min_from, s->min, s->budget);
		else
			fprintf(stderr, " in the signal handler, %zu bytes of its sigaltstack still unused (not an overflow)",
				untouched);
	}
	fputc('\n', stderr);
	_exit(128 + sig);
}
