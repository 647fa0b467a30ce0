/* The #PF service path (kvmrt_service_fault -> slots_fault -> tables + KVM
 * slot ioctl) run from inside a real signal handler, on a small sigaltstack
 * (this CPU's AT_MINSIGSTKSZ + the fault path's 2 KiB budget, above a guard
 * page), with malloc/calloc/realloc/free interposed to count calls while the
 * path runs: there must be none. Then the guest touches the page natively
 * (no #PF exit), and the checker holds. Prints AT_MINSIGSTKSZ, the stack
 * given and the bytes the handler + engine used above the kernel's frame,
 * and fails when that exceeds the budget ("FATAL: ... sigaltstack overflow"
 * when it ran into the guard page). Built -O2 with assertions, like
 * core/tests/fault_path (the budget is an optimised build's).
 * Debug: run it directly; every check prints its values. */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../kvmrt_internal.h"
#include "../../core/tests/t.h"

/* ---- allocation guard ------------------------------------------------------ */

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

static volatile sig_atomic_t guard_on;
static atomic_ulong guard_hits;

static void guard_note(void)
{
	if (guard_on)
		atomic_fetch_add(&guard_hits, 1);
}

void *malloc(size_t n)
{
	guard_note();
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
	guard_note();
	return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
	guard_note();
	return __libc_realloc(p, n);
}

void free(void *p)
{
	guard_note();
	__libc_free(p);
}

/* ---- the handler ------------------------------------------------------------ */

static struct kvmrt *the_rt;
static struct {
	uint64_t va, err;
	int ret;
	struct slots_result res;
	unsigned long allocs;
	bool on_altstack;
} req;
#define BUDGET 2048 /* DESIGN.md: the whole fault path fits in 2 KiB */
static struct t_sigstack alt;

static void on_usr1(int sig)
{
	uint8_t here;

	(void)sig;
	t_sigstack_enter(&alt);
	req.on_altstack = &here >= alt.base && &here < alt.base + alt.size;
	unsigned long before = atomic_load(&guard_hits);
	guard_on = 1;
	req.ret = kvmrt_service_fault(the_rt, req.va, req.err, &req.res);
	guard_on = 0;
	req.allocs = atomic_load(&guard_hits) - before;
	t_sigstack_leave(&alt);
}

/* Services va from the handler (the stack's paint measures the deepest
 * use over every call). */
static void serve_in_handler(uint64_t va, uint64_t err)
{
	req.va = va;
	req.err = err;
	req.ret = 1;
	raise(SIGUSR1);
}

static uint64_t g_load(uint64_t a)
{
	return *(volatile uint64_t *)(uintptr_t)a;
}

int main(void)
{
	struct kvmrt_config cfg = { .quiet = true };
	char why[400];
	/* The alternate stack first: the test goes on in a supervised child
	 * (t.h), which must be the process that opens /dev/kvm. */
	int err = t_sigstack_init(&alt, BUDGET, 0);
	if (!T_CHECK(err == 0, "sigaltstack of %zu bytes: %s", alt.size, strerror(-err)))
		return t_exit();
	err = kvmrt_open(&the_rt, &cfg, why, sizeof(why));

	if (err) {
		t_skip("kvm: %s", why);
		return t_exit();
	}
	/* The guard itself works. */
	guard_on = 1;
	void *p = malloc(16);
	guard_on = 0;
	free(p);
	T_CHECK(atomic_load(&guard_hits) == 1, "allocation guard does not see malloc: %lu", atomic_load(&guard_hits));
	atomic_store(&guard_hits, 0);

	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_ONSTACK };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);

	/* Fresh pages in blocks nothing uses: one per block, and one pair
	 * straddling a block boundary (two services, one per block). */
	uint64_t bs = the_rt->pm.cfg.block_size;
	uint64_t arena = ((uint64_t)(uintptr_t)sbrk(0) + (64ull << 30) + bs - 1) / bs * bs;
	uint64_t vas[5] = { arena + 4096 * 3, arena + bs + (5ull << 20) + 4096 * 7, arena + 3 * bs - 4096,
			    arena + 3 * bs, arena + 5 * bs + 4096 };
	T_CHECK(mmap((void *)(uintptr_t)vas[0], 4096, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != MAP_FAILED, "mmap 0");
	T_CHECK(mmap((void *)(uintptr_t)vas[1], 4096, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != MAP_FAILED, "mmap 1");
	T_CHECK(mmap((void *)(uintptr_t)vas[2], 8192, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != MAP_FAILED, "mmap 2+3");
	/* vas[4] stays unmapped. */

	struct kvmrt_exits e0, e1;
	uint64_t v;
	struct kvmrt_fault f;
	T_EQ(kvmrt_call(the_rt, g_load, (uint64_t)(uintptr_t)&bs, &v, &f), 0);   /* creates the vCPU */
	for (int i = 0; i < 4; i++) {
		*(uint64_t *)(uintptr_t)vas[i] = 0x1000 + (uint64_t)i;
		uint64_t pa;
		T_EQ(physmap_translate(&the_rt->pm, vas[i], &pa), 0);
		T_CHECK(!slots_has_slot(&the_rt->slots, pa), "va 0x%llx already slotted", (unsigned long long)vas[i]);
		serve_in_handler(vas[i], 0x4);
		T_CHECK(req.on_altstack, "handler not on the sigaltstack");
		T_CHECK(req.ret == 0 && req.res.outcome == SLOTS_NEW, "service of 0x%llx in the handler: %d outcome %d",
			(unsigned long long)vas[i], req.ret, req.res.outcome);
		T_CHECK(req.allocs == 0, "%lu allocator calls on the fault path", req.allocs);
		T_CHECK(slots_has_slot(&the_rt->slots, pa), "va 0x%llx has no slot after the handler", (unsigned long long)vas[i]);
		/* The guest now reads it natively: no #PF exit. */
		kvmrt_exits(the_rt, &e0);
		err = kvmrt_call(the_rt, g_load, vas[i], &v, &f);
		kvmrt_exits(the_rt, &e1);
		T_CHECK(err == 0 && v == 0x1000 + (uint64_t)i, "guest read of 0x%llx: err %d value 0x%llx: %s",
			(unsigned long long)vas[i], err, (unsigned long long)v, f.why);
		T_CHECK(e1.pf == e0.pf && e1.mmio == e0.mmio, "guest read of 0x%llx still faulted (pf %llu -> %llu)",
			(unsigned long long)vas[i], (unsigned long long)e0.pf, (unsigned long long)e1.pf);
	}
	/* Host-unmapped: refused inside the handler, still without allocating. */
	serve_in_handler(vas[4], 0x4);
	T_CHECK(req.ret == -EFAULT && req.allocs == 0, "unmapped 0x%llx: ret %d allocs %lu",
		(unsigned long long)vas[4], req.ret, req.allocs);
	/* A protection fault is not a missing slot. */
	serve_in_handler(vas[0], 0x7);
	T_CHECK(req.ret == -EACCES && req.allocs == 0, "protection fault: ret %d allocs %lu", req.ret, req.allocs);
	/* Servicing a slotted block again is a no-op. */
	serve_in_handler(vas[1], 0x6);
	T_CHECK(req.ret == 0 && req.res.outcome == SLOTS_ALREADY && req.allocs == 0, "again: ret %d outcome %d",
		req.ret, req.res.outcome);

	const char *bad = kvmrt_check(the_rt, why, sizeof(why));
	T_CHECK(!bad, "check after the handler's mappings: %s", bad);
	t_sigstack_check(&alt, "kvmrt fault service in a signal handler");
	T_CHECK(kvmrt_close(the_rt, why, sizeof(why)) == 0, "close: %s", why);
	return t_exit();
}
