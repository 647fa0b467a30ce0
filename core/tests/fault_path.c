/* The fault path in fault context: pt_map/pt_unmap and slots_fault run inside
 * a real signal handler on a 4 KiB sigaltstack with a PROT_NONE guard page
 * below it, while malloc/calloc/realloc/free are interposed and count calls.
 * Fails if anything allocates after init, if the stack overflows (the guard
 * page kills the process), or if the results are wrong. Prints the deepest
 * stack use seen. Built without sanitizers (they allocate and use big
 * frames) at -O2 with PT_DEBUG assertions on. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
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
#define ALT_SIZE 4096
#define PAINT 0xa5

static struct pool pt_pool;
static struct pt pt;
static struct pool slot_pool;
static struct pt slot_pt;
static struct physmap pm;
static struct slots slots;
static volatile int handler_errors;
static volatile int handler_slots;
static unsigned char *volatile handler_top; /* frame address on handler entry */

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
	handler_top = __builtin_frame_address(0);
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
}

static size_t stack_used(const unsigned char *stack)
{
	size_t untouched = 0;
	while (untouched < ALT_SIZE && stack[untouched] == PAINT)
		untouched++;
	return ALT_SIZE - untouched;
}

int main(void)
{
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

	/* The alternate stack: a guard page, then 4 KiB painted to measure use. */
	unsigned char *mem = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	T_CHECK(mem != MAP_FAILED, "mmap");
	T_EQ(mprotect(mem, 4096, PROT_NONE), 0);
	unsigned char *stack = mem + 4096;
	memset(stack, PAINT, ALT_SIZE);
	stack_t ss = { .ss_sp = stack, .ss_size = ALT_SIZE };
	T_EQ(sigaltstack(&ss, NULL), 0);
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
	size_t used = stack_used(stack);
	size_t ours = (size_t)(handler_top - (stack + ALT_SIZE - used));
	printf("fault path in a signal handler: %zu bytes of the %d-byte sigaltstack used, %zu by the kernel's "
	       "signal frame, %zu by the handler and the engine below it\n",
	       used, ALT_SIZE, used - ours, ours);
	T_CHECK(ours <= 2048, "the fault path used %zu bytes, budget 2048", ours);
	T_CHECK(used < ALT_SIZE, "the stack was used to its end");
	return t_exit();
}
