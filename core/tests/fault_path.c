/* The fault path in fault context: pt_map/pt_unmap and slots_fault run inside
 * a real signal handler on a small sigaltstack with a PROT_NONE guard page
 * below it, while malloc/calloc/realloc/free are interposed and count calls.
 * The stack is this CPU's AT_MINSIGSTKSZ (the kernel's frame, which holds the
 * xsave state and so differs from host to host) plus the fault path's budget
 * (DESIGN.md: 2 KiB). Fails if anything allocates after init, if the handler
 * and the engine use more than the budget above the kernel's frame, if the
 * stack overflows (the guard page: "FATAL: ... sigaltstack overflow"), or if
 * the results are wrong. Prints AT_MINSIGSTKSZ, the stack given and the bytes
 * used above the kernel's frame. Built without sanitizers (they allocate and
 * use big frames) at -O2 with PT_DEBUG assertions on.
 *   fault_path [--budget BYTES] [--stack BYTES]
 * shrink the budget checked (and the stack, min + budget) or give the stack
 * size outright: ci/tests/test-sigstack shows both failures that way. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "physmap.h"
#include "pool.h"
#include "pt.h"
#include "slots.h"
#include "t.h"

/* ---- allocation guard ---- */

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static volatile int guard_armed;
static volatile int guard_calls;

void *malloc(size_t n)
{
	guard_calls += guard_armed;
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
	guard_calls += guard_armed;
	return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
	guard_calls += guard_armed;
	return __libc_realloc(p, n);
}

void free(void *p)
{
	guard_calls += guard_armed && p;
	__libc_free(p);
}

/* ---- state the handler works on ---- */

#define G1 0x40000000ull
#define M2 0x200000ull
#define K4 0x1000ull
#define BUDGET 2048 /* DESIGN.md: the whole fault path fits in 2 KiB */

static struct pool pt_pool;
static struct pt pt;
static struct pool slot_pool;
static struct pt slot_pt;
static struct physmap pm;
static struct slots slots;
static volatile int handler_errors;
static volatile int handler_slots;
static struct t_sigstack alt;

static int record_slot(void *ctx, uint32_t id, uint64_t pa, uint64_t len, uint64_t va, bool ro)
{
	(void)ctx, (void)id, (void)pa, (void)len, (void)va, (void)ro;
	handler_slots++;
	return 0;
}

/* Split-heavy work: a 1 GiB leaf, a 4 KiB hole in it, refilled (collapse),
 * then misaligned maps and their unmap; and faults on the slot engine. */
static void on_signal(int sig)
{
	(void)sig;
	t_sigstack_enter(&alt);
	int bad = 0;
	bad += pt_map(&pt, G1, G1, 2 * G1, PT_R | PT_W) != 0;
	bad += pt_unmap(&pt, G1 + 5 * M2 + 3 * K4, K4) != 0;
	bad += pt_map(&pt, G1 + 5 * M2 + 3 * K4, K4, 2 * G1 + 5 * M2 + 3 * K4, PT_R | PT_W) != 0;
	bad += pt_map(&pt, 0xffff800000000000ull + K4, 3 * M2, 7 * K4, PT_R | PT_X) != 0;
	bad += pt_unmap(&pt, 0xffff800000000000ull, 4 * M2) != 0;
	bad += pt_unmap(&pt, G1, G1) != 0;
	struct slots_result r;
	bad += slots_fault(&slots, 0x400000, &r) != 0;
	bad += slots_fault(&slots, 0x7f0000123000ull, &r) != 0;
	bad += slots_fault(&slots, 0x7f0000124000ull, &r) != 0; /* same block: already */
	handler_errors = bad;
	t_sigstack_leave(&alt);
}

static size_t arg_size(const char *opt, const char *v)
{
	char *end;
	unsigned long n = v ? strtoul(v, &end, 0) : 0;
	if (!v || *end || !n) {
		fprintf(stderr, "fault_path: %s needs a number of bytes\n", opt);
		exit(2);
	}
	return n;
}

int main(int argc, char **argv)
{
	size_t budget = BUDGET, stack = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--budget"))
			budget = arg_size(argv[i], argv[i + 1]), i++;
		else if (!strcmp(argv[i], "--stack"))
			stack = arg_size(argv[i], argv[i + 1]), i++;
		else {
			fprintf(stderr, "usage: fault_path [--budget BYTES] [--stack BYTES]\n");
			return 2;
		}
	}
	T_EQ(pool_init_mmap(&pt_pool, 1024, 0x100000000ull), 0);
	T_EQ(pt_init(&pt, &pt_pool, 4, true), 0);

	static struct region host[] = {
		{ .va = 0x400000, .len = 0x100000, .kind = REGION_NORMAL },
		{ .va = 0x7f0000000000ull, .len = 0x1000000, .kind = REGION_RO },
	};
	static struct region sorted[2];
	static struct phys_region phys[8];
	const char *why = NULL;
	T_CHECK(physmap_build(&pm, NULL, host, 2, sorted, phys, 8, &why) == 0, "physmap_build: %s", why);
	uint64_t bound = 0;
	T_EQ(physmap_bound(&pm, false, 4, true, &bound), 0);
	T_EQ(pool_init_mmap(&slot_pool, (uint32_t)bound, 0x200000000ull), 0);
	T_EQ(pt_init(&slot_pt, &slot_pool, 4, true), 0);
	T_EQ(slots_init(&slots, &slot_pt, &pm, 64, 0, record_slot, NULL), 0);

	/* The alternate stack: a guard page, then AT_MINSIGSTKSZ + budget,
	 * painted to measure use. */
	int err = t_sigstack_init(&alt, budget, stack);
	T_CHECK(err == 0, "sigaltstack of %zu bytes: %s", alt.size, strerror(-err));
	if (err)
		return t_exit();
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_ONSTACK };
	sigemptyset(&sa.sa_mask);
	T_EQ(sigaction(SIGUSR1, &sa, NULL), 0);

	guard_armed = 1;
	for (int i = 0; i < 3; i++)
		raise(SIGUSR1);
	guard_armed = 0;

	T_CHECK(guard_calls == 0, "%d allocator calls on the fault path", guard_calls);
	T_CHECK(handler_errors == 0, "%d operations failed in the handler", handler_errors);
	T_EQ(handler_slots, 2);
	T_EQ(pt_pool.used, 1);
	char buf[512];
	const char *f = check_slots(&slots, buf, sizeof(buf));
	T_CHECK(!f, "check_slots: %s", f);
	t_sigstack_check(&alt, "fault path in a signal handler");
	return t_exit();
}
