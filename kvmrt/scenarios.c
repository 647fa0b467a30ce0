/* Scenarios of `kvmrt run`. Every guest function runs at the workload's CPL
 * with the host's addresses; the host prepares memory, runs the function on
 * N vCPU threads and checks what it sees in its own memory afterwards.
 *
 * "Fresh" memory lives in an arena of fault blocks nothing else uses, so its
 * first access really finds no slot: a #PF in lazy mode, an MMIO exit in
 * legacy mode. Debug one scenario with `kvmrt run NAME --check`. */
#include "scenarios.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvmrt_internal.h"

#define MIB (1ull << 20)
#define GIB (1ull << 30)
#define ARENA_GAP (64 * GIB)   /* the arena starts this far above the program break */
#define MAX_THREADS 64

const char *const scen_names[] = {
	"touch", "xsave", "avx", "rep-movs", "cmpxchg16b", "lock-xadd", "unmapped", "race", "collapse-race", "unmap-race",
	NULL,
};

struct scen;
struct scen_def {
	const char *name;
	int (*prepare)(struct scen *s);          /* before kvmrt_open: regions the map must see */
	int (*setup)(struct scen *s);            /* after open, before the threads */
	int (*run)(struct scen *s, unsigned tid);
	int (*verify)(struct scen *s);           /* after the threads */
};

struct scen {
	const struct scen_def *def;
	struct scen_opts o;
	struct kvmrt *rt;
	FILE *out;
	unsigned threads;
	uint64_t bs;                              /* fault block size */
	pthread_mutex_t lock;                     /* reports */
	pthread_barrier_t start;
	enum scen_status status;
	char why[512];
	unsigned printed;                         /* FAIL / EMULATION FAILURE lines on out */
	/* what the scenario prepared */
	uint8_t *mem[8];
	size_t len[8];
	uint64_t slots_before;
};

/* Per run: every run has a fresh VM, so blocks can be used again. */
static _Atomic uint64_t scen_next_block;
static uint64_t scen_arena;

static void scen_say(struct scen *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void scen_say(struct scen *s, const char *fmt, ...)
{
	va_list ap;

	if (!s->out)
		return;
	pthread_mutex_lock(&s->lock);
	va_start(ap, fmt);
	vfprintf(s->out, fmt, ap);
	va_end(ap);
	fputc('\n', s->out);
	fflush(s->out);
	pthread_mutex_unlock(&s->lock);
}

/* Records an outcome; the worst one wins, the first message of it stays. */
static int scen_note(struct scen *s, enum scen_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int scen_note(struct scen *s, enum scen_status st, const char *fmt, ...)
{
	va_list ap;
	char buf[512];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&s->lock);
	bool worse = (st == SCEN_FAIL && s->status != SCEN_FAIL) || (st == SCEN_EMULATION && s->status == SCEN_OK);
	if (worse) {
		s->status = st;
		snprintf(s->why, sizeof(s->why), "%s", buf);
	}
	if (s->out) {
		fprintf(s->out, "%s: %s\n", st == SCEN_FAIL ? "FAIL" : st == SCEN_EMULATION ? "EMULATION FAILURE" : "note", buf);
		s->printed += st != SCEN_OK;
	}
	pthread_mutex_unlock(&s->lock);
	return st == SCEN_OK ? 0 : -1;
}

/* Runs fn(arg) in the guest; a fault is a failure (an emulation failure its
 * own outcome). 0 and *ret, or -1. */
static int scen_call(struct scen *s, const char *what, kvmrt_fn fn, uint64_t arg, uint64_t *ret)
{
	struct kvmrt_fault f;
	char buf[400];
	uint64_t r = 0;
	int err = kvmrt_call(s->rt, fn, arg, &r, &f);

	if (ret)
		*ret = r;
	if (!err)
		return 0;
	kvmrt_fault_str(&f, buf, sizeof(buf));
	return scen_note(s, f.reason == KVMRT_EMULATION ? SCEN_EMULATION : SCEN_FAIL, "%s: %s", what, buf);
}

/* n consecutive fault blocks of the arena that no earlier scenario used
 * (so none has a slot), mapped at [first block + off, + len). */
static uint8_t *scen_fresh(struct scen *s, unsigned nblocks, uint64_t off, uint64_t len)
{
	for (int tries = 0; tries < 64; tries++) {
		uint64_t k = atomic_fetch_add(&scen_next_block, nblocks + 1);
		uint64_t base = scen_arena + k * s->bs;
		void *p = mmap((void *)(uintptr_t)(base + off), len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
		if (p == MAP_FAILED)
			continue;
		if (p != (void *)(uintptr_t)(base + off)) {
			munmap(p, len);
			continue;
		}
		return p;
	}
	return NULL;
}

static int scen_keep(struct scen *s, unsigned i, uint8_t *p, size_t len)
{
	if (!p)
		return scen_note(s, SCEN_FAIL, "cannot map scenario memory %u (0x%zx bytes)", i, len);
	s->mem[i] = p;
	s->len[i] = len;
	return 0;
}

/* ---- touch: heap, stacks and mmap'd regions across many blocks ---------- */

struct touch_arg {
	uint8_t *heap;
	size_t heap_len;
	uint8_t *hstack;          /* the host thread's own stack */
	size_t hstack_len;
	uint8_t *map;             /* a mapping over several blocks, misaligned */
	size_t map_len;
	size_t stride;
	const uint8_t *ro;        /* read-only pages inside it (their own regions) */
	size_t ro_len;
	unsigned tid;
};

static bool touch_in_ro(const struct touch_arg *t, size_t o)
{
	const uint8_t *p = t->map + o;
	return p + 64 > t->ro && p < t->ro + t->ro_len;
}

static uint64_t g_touch(uint64_t a)
{
	struct touch_arg *t = (struct touch_arg *)(uintptr_t)a;
	volatile uint64_t local[2048];   /* 16 KiB of the guest's own stack */
	uint64_t sum = 0;

	for (size_t o = 0; o + 8 <= t->heap_len; o += 4096)
		*(uint64_t *)(t->heap + o) = o ^ t->tid;
	for (size_t o = 0; o + 8 <= t->hstack_len; o += 1024)
		*(uint64_t *)(t->hstack + o) = o + 7;
	for (size_t o = 0; o < t->map_len; o += t->stride)
		if (!touch_in_ro(t, o))
			*(uint64_t *)(t->map + o + 8 * t->tid) = o + t->tid;
	for (size_t o = 0; o < t->ro_len; o += 4096)
		sum += t->ro[o];
	for (size_t i = 0; i < 2048; i += 64)
		local[i] = i;
	for (size_t i = 0; i < 2048; i += 64)
		sum += local[i];
	return sum;
}

/* Memory the physical map must see at open: a read-only window between two
 * read-write parts, at addresses misaligned to 2 MiB and 1 GiB, so region
 * edges cut fault blocks in odd places; the whole spans 4 blocks. */
static int touch_prepare(struct scen *s)
{
	uint64_t bs = s->bs ? s->bs : 8 * GIB;
	uint64_t len = 3 * bs + 2 * GIB + 20 * 4096;
	uint8_t *p = scen_fresh(s, 5, bs - GIB - 3 * 4096, len);

	if (scen_keep(s, 0, p, len))
		return -1;
	/* The read-only window: 2 MiB + 4 KiB starting 12 KiB into block 1. */
	uint8_t *ro = p + GIB + 3 * 4096 + 3 * 4096;
	for (size_t o = 0; o < 2 * MIB + 4096; o += 4096)
		ro[o] = 3;
	if (mprotect(ro, 2 * MIB + 4096, PROT_READ))
		return scen_note(s, SCEN_FAIL, "mprotect: %s", strerror(errno));
	s->mem[1] = ro;
	s->len[1] = 2 * MIB + 4096;
	return 0;
}

static int touch_run(struct scen *s, unsigned tid)
{
	uint8_t hstack[16384];
	struct touch_arg t = {
		.heap_len = 3 * MIB + 4096 * 3, .hstack = hstack, .hstack_len = sizeof(hstack),
		.map = s->mem[0], .map_len = s->len[0] - 64, .stride = 256 * MIB + 4096 * 5,
		.ro = s->mem[1], .ro_len = s->len[1], .tid = tid,
	};
	uint64_t sum = 0, want = 3 * (s->len[1] / 4096);
	int bad = 0;

	t.heap = malloc(t.heap_len);
	if (!t.heap)
		return scen_note(s, SCEN_FAIL, "malloc");
	memset(hstack, 0, sizeof(hstack));
	for (size_t i = 0; i < 2048; i += 64)
		want += i;
	if (scen_call(s, "touch", g_touch, (uint64_t)(uintptr_t)&t, &sum)) {
		free(t.heap);
		return -1;
	}
	if (sum != want)
		bad = scen_note(s, SCEN_FAIL, "touch: guest sum %llu, expected %llu", (unsigned long long)sum,
				(unsigned long long)want);
	for (size_t o = 0; o + 8 <= t.heap_len && !bad; o += 4096)
		if (*(uint64_t *)(t.heap + o) != (o ^ tid))
			bad = scen_note(s, SCEN_FAIL, "touch: heap byte 0x%zx not written by the guest", o);
	for (size_t o = 0; o + 8 <= sizeof(hstack) && !bad; o += 1024)
		if (*(uint64_t *)(hstack + o) != o + 7)
			bad = scen_note(s, SCEN_FAIL, "touch: host stack byte 0x%zx not written by the guest", o);
	for (size_t o = 0; o < t.map_len && !bad; o += t.stride)
		if (!touch_in_ro(&t, o) && *(uint64_t *)(t.map + o + 8 * tid) != o + tid)
			bad = scen_note(s, SCEN_FAIL, "touch: map offset 0x%zx (va %p) not written by the guest", o,
					(void *)(t.map + o));
	free(t.heap);
	return bad;
}

/* ---- xsave ---------------------------------------------------------------- */

struct xsave_arg {
	uint8_t *area;     /* 64-byte aligned, 4 KiB, in a fresh block */
	uint8_t *farea;    /* fxsave area, 16-byte aligned, in another fresh block */
	uint64_t mask;
};

static uint64_t g_xsave(uint64_t a)
{
	struct xsave_arg *x = (struct xsave_arg *)(uintptr_t)a;
	static const uint64_t pat[2] = { 0x1122334455667788ull, 0x99aabbccddeeff00ull };
	uint64_t out[2];

	__asm__ volatile("movdqu (%0), %%xmm1" :: "r"(pat) : "xmm1");
	__asm__ volatile("xsave64 (%0)" :: "r"(x->area), "a"((uint32_t)x->mask), "d"((uint32_t)(x->mask >> 32)) : "memory");
	__asm__ volatile("pxor %%xmm1, %%xmm1" ::: "xmm1");
	__asm__ volatile("xrstor64 (%0)" :: "r"(x->area), "a"((uint32_t)x->mask), "d"((uint32_t)(x->mask >> 32)) : "memory");
	__asm__ volatile("movdqu %%xmm1, (%0)" :: "r"(out) : "memory");
	__asm__ volatile("fxsave64 (%0)" :: "r"(x->farea) : "memory");
	return out[0] == pat[0] && out[1] == pat[1];
}

static int xsave_run(struct scen *s, unsigned tid)
{
	uint8_t *a = scen_fresh(s, 1, 0, 8192), *b = scen_fresh(s, 1, s->bs - 4096, 4096);
	struct xsave_arg x = { .area = a, .farea = b, .mask = s->rt->vm.xcr0 };
	uint64_t ok = 0;
	int bad = 0;

	(void)tid;
	if (!a || !b)
		return scen_note(s, SCEN_FAIL, "xsave: cannot map fresh blocks");
	if (scen_call(s, "xsave", g_xsave, (uint64_t)(uintptr_t)&x, &ok) == 0) {
		uint64_t bv, xmm1;
		memcpy(&bv, a + 512, 8);
		memcpy(&xmm1, b + 160 + 16, 8);   /* fxsave: xmm1 at 160 + 16 */
		if (!ok)
			bad = scen_note(s, SCEN_FAIL, "xsave: xmm1 did not survive xsave64/xrstor64");
		else if (!(bv & 2))
			bad = scen_note(s, SCEN_FAIL, "xsave: XSTATE_BV 0x%llx lacks SSE", (unsigned long long)bv);
		else if (xmm1 != 0x1122334455667788ull)
			bad = scen_note(s, SCEN_FAIL, "xsave: fxsave64 stored xmm1 low 0x%llx", (unsigned long long)xmm1);
	} else {
		bad = -1;
	}
	munmap(a, 8192);
	munmap(b, 4096);
	return bad;
}

/* ---- avx -------------------------------------------------------------------- */

struct avx_arg {
	const uint8_t *src;   /* 64 bytes straddling a block boundary */
	uint8_t *dst;         /* 64 bytes straddling another */
	int zmm;
};

static uint64_t g_avx(uint64_t a)
{
	struct avx_arg *x = (struct avx_arg *)(uintptr_t)a;

	__asm__ volatile("vmovdqu (%0), %%ymm2\n\tvmovdqu 32(%0), %%ymm3\n\t"
			 "vpaddb %%ymm2, %%ymm2, %%ymm2\n\tvmovdqu %%ymm2, (%1)\n\tvmovdqu %%ymm3, 32(%1)\n\tvzeroupper"
			 :: "r"(x->src), "r"(x->dst) : "xmm2", "xmm3", "memory");
	if (x->zmm)
		__asm__ volatile("vmovdqu64 (%0), %%zmm4\n\tvmovdqu64 %%zmm4, 64(%1)\n\tvzeroupper"
				 :: "r"(x->src), "r"(x->dst) : "xmm4", "memory");
	return 1;
}

static int avx_run(struct scen *s, unsigned tid)
{
	uint8_t *a = scen_fresh(s, 2, s->bs - 4096, 8192), *b = scen_fresh(s, 2, s->bs - 4096, 8192);
	struct avx_arg x = { .src = a ? a + 4096 - 16 : NULL, .dst = b ? b + 4096 - 40 : NULL,
			     .zmm = s->rt->vm.has_avx512 };
	int bad = 0;

	(void)tid;
	if (!a || !b)
		return scen_note(s, SCEN_FAIL, "avx: cannot map fresh blocks");
	for (int i = 0; i < 128; i++)
		a[4096 - 16 + i] = (uint8_t)(i + 1);
	if (scen_call(s, x.zmm ? "avx (ymm, zmm)" : "avx (ymm; no AVX-512 here)", g_avx, (uint64_t)(uintptr_t)&x, NULL) == 0) {
		for (int i = 0; i < 64 && !bad; i++) {
			uint8_t want = (uint8_t)(i < 32 ? 2 * (i + 1) : i + 1);
			if (x.dst[i] != want)
				bad = scen_note(s, SCEN_FAIL, "avx: dst[%d] = 0x%x, expected 0x%x", i, x.dst[i], want);
		}
		for (int i = 0; i < 64 && x.zmm && !bad; i++)
			if (x.dst[64 + i] != (uint8_t)(i + 1))
				bad = scen_note(s, SCEN_FAIL, "avx: zmm dst[%d] = 0x%x", i, x.dst[64 + i]);
	} else {
		bad = -1;
	}
	munmap(a, 8192);
	munmap(b, 8192);
	return bad;
}

/* ---- rep-movs across a block boundary --------------------------------------- */

struct movs_arg {
	const uint8_t *src;
	uint8_t *dst;
	size_t n;
};

static uint64_t g_movs(uint64_t a)
{
	struct movs_arg *m = (struct movs_arg *)(uintptr_t)a;
	const void *src = m->src;
	void *dst = m->dst;
	size_t n = m->n;

	__asm__ volatile("rep movsb" : "+S"(src), "+D"(dst), "+c"(n) :: "memory");
	return n;
}

static int movs_run(struct scen *s, unsigned tid)
{
	uint8_t *a = scen_fresh(s, 2, s->bs - 8192, 16384), *b = scen_fresh(s, 2, s->bs - 8192, 16384);
	struct movs_arg m = { .src = a ? a + 8192 - 1000 : NULL, .dst = b ? b + 8192 - 3000 : NULL, .n = 6000 };
	uint64_t left = 1;
	int bad = 0;

	(void)tid;
	if (!a || !b)
		return scen_note(s, SCEN_FAIL, "rep-movs: cannot map fresh blocks");
	for (size_t i = 0; i < m.n; i++)
		a[8192 - 1000 + i] = (uint8_t)(i * 7 + 1);
	if (scen_call(s, "rep-movs", g_movs, (uint64_t)(uintptr_t)&m, &left) == 0) {
		if (left)
			bad = scen_note(s, SCEN_FAIL, "rep-movs: rcx %llu left", (unsigned long long)left);
		for (size_t i = 0; i < m.n && !bad; i++)
			if (m.dst[i] != (uint8_t)(i * 7 + 1))
				bad = scen_note(s, SCEN_FAIL, "rep-movs: dst[%zu] = 0x%x, expected 0x%x", i, m.dst[i],
						(uint8_t)(i * 7 + 1));
	} else {
		bad = -1;
	}
	munmap(a, 16384);
	munmap(b, 16384);
	return bad;
}

/* ---- cmpxchg16b ------------------------------------------------------------- */

static uint64_t g_cx16(uint64_t a)
{
	uint64_t *p = (uint64_t *)(uintptr_t)a;
	uint64_t lo = 1, hi = 2;   /* expected */
	uint8_t ok;

	__asm__ volatile("lock cmpxchg16b (%[p])\n\tsete %[ok]"
			 : [ok] "=q"(ok), "+a"(lo), "+d"(hi)
			 : [p] "r"(p), "b"(0x1111ull), "c"(0x2222ull) : "memory", "cc");
	return ok;
}

static int cx16_run(struct scen *s, unsigned tid)
{
	uint8_t *a = scen_fresh(s, 1, 4096, 4096);
	uint64_t *p = (uint64_t *)(uintptr_t)(a + 64);
	uint64_t ok = 0;
	int bad = 0;

	(void)tid;
	if (!a)
		return scen_note(s, SCEN_FAIL, "cmpxchg16b: cannot map a fresh block");
	p[0] = 1;
	p[1] = 2;
	if (scen_call(s, "cmpxchg16b", g_cx16, (uint64_t)(uintptr_t)p, &ok) == 0) {
		if (!ok || p[0] != 0x1111 || p[1] != 0x2222)
			bad = scen_note(s, SCEN_FAIL, "cmpxchg16b: zf %llu, memory 0x%llx 0x%llx", (unsigned long long)ok,
					(unsigned long long)p[0], (unsigned long long)p[1]);
	} else {
		bad = -1;
	}
	munmap(a, 4096);
	return bad;
}

/* ---- lock-xadd: every thread adds to one counter in a fresh block ----------- */

#define XADD_ROUNDS 20000

static uint64_t g_xadd(uint64_t a)
{
	uint64_t *p = (uint64_t *)(uintptr_t)a;
	uint64_t seen = 0;

	for (int i = 0; i < XADD_ROUNDS; i++) {
		uint64_t one = 1;
		__asm__ volatile("lock xaddq %0, (%1)" : "+r"(one) : "r"(p) : "memory");
		seen += one >= (uint64_t)i;   /* the old value is at least our own count */
	}
	return seen;
}

static int xadd_setup(struct scen *s)
{
	return scen_keep(s, 0, scen_fresh(s, 1, 8192, 4096), 4096);
}

static int xadd_run(struct scen *s, unsigned tid)
{
	(void)tid;
	pthread_barrier_wait(&s->start);
	return scen_call(s, "lock-xadd", g_xadd, (uint64_t)(uintptr_t)s->mem[0], NULL);
}

static int xadd_verify(struct scen *s)
{
	uint64_t got = *(volatile uint64_t *)s->mem[0], want = (uint64_t)s->threads * XADD_ROUNDS;

	if (got != want)
		return scen_note(s, SCEN_FAIL, "lock-xadd: counter %llu, expected %llu (%u threads x %d): not atomic",
				 (unsigned long long)got, (unsigned long long)want, s->threads, XADD_ROUNDS);
	scen_say(s, "lock-xadd: counter %llu = %u threads x %d", (unsigned long long)got, s->threads, XADD_ROUNDS);
	return 0;
}

/* ---- unmapped: host-unmapped memory gives a fault record, never a crash ---- */

static uint64_t g_load(uint64_t a)
{
	return *(volatile uint64_t *)(uintptr_t)a;
}

static int unmapped_one(struct scen *s, const char *what, uint64_t va, bool addr_known)
{
	struct kvmrt_fault f;
	char buf[400];
	uint64_t r;
	int err = kvmrt_call(s->rt, g_load, va, &r, &f);

	if (err == 0)
		return scen_note(s, SCEN_FAIL, "unmapped (%s): load of 0x%llx returned 0x%llx instead of a fault", what,
				 (unsigned long long)va, (unsigned long long)r);
	kvmrt_fault_str(&f, buf, sizeof(buf));
	if (err != -EFAULT || f.reason == KVMRT_HOST_ERROR || f.reason == KVMRT_EMULATION ||
	    (addr_known && f.addr != va))
		return scen_note(s, SCEN_FAIL, "unmapped (%s): unexpected record for 0x%llx: %s", what,
				 (unsigned long long)va, buf);
	scen_say(s, "unmapped (%s): %s", what, buf);
	return 0;
}

static int unmapped_run(struct scen *s, unsigned tid)
{
	/* 1: a block the host never mapped: a #PF (lazy) or an MMIO exit
	 * (legacy) for an address the host does not have. */
	uint8_t *p = scen_fresh(s, 1, 0, 4096);
	if (!p)
		return scen_note(s, SCEN_FAIL, "unmapped: cannot map a fresh block");
	munmap(p, 4096);
	if (unmapped_one(s, "never mapped", (uint64_t)(uintptr_t)p + 8 + 8 * tid, true))
		return -1;
	/* 2: a page unmapped after its block got a slot: the entry is present,
	 * so KVM_RUN itself fails with EFAULT. */
	p = scen_fresh(s, 1, 0, 8192);
	if (!p)
		return scen_note(s, SCEN_FAIL, "unmapped: cannot map a fresh block");
	p[0] = 1;
	if (scen_call(s, "unmapped: first page", g_load, (uint64_t)(uintptr_t)p, NULL))
		return -1;
	munmap(p + 4096, 4096);
	int bad = unmapped_one(s, "unmapped after slotting", (uint64_t)(uintptr_t)p + 4096 + 16, false);
	munmap(p, 4096);
	/* And the vCPU still works. */
	uint64_t v = 0;
	if (!bad && scen_call(s, "unmapped: call after the faults", g_load, (uint64_t)(uintptr_t)&s->bs, &v) == 0 &&
	    v != s->bs)
		bad = scen_note(s, SCEN_FAIL, "unmapped: call after the faults read 0x%llx", (unsigned long long)v);
	return bad;
}

/* ---- race: every thread faults on the same fresh blocks at once ----------- */

#define RACE_BLOCKS 16

struct race_arg {
	uint8_t **blocks;
	unsigned first;
	unsigned tid;
};

static uint64_t g_race(uint64_t a)
{
	struct race_arg *r = (struct race_arg *)(uintptr_t)a;

	for (unsigned i = 0; i < RACE_BLOCKS; i++) {
		uint8_t *b = r->blocks[(r->first + i) % RACE_BLOCKS];
		__atomic_fetch_add((uint64_t *)b, 1, __ATOMIC_RELAXED);
		((volatile uint64_t *)b)[1 + r->tid] = r->tid + 1;
	}
	return 0;
}

static int race_setup(struct scen *s)
{
	uint8_t **blocks = calloc(RACE_BLOCKS, sizeof(*blocks));

	if (!blocks)
		return scen_note(s, SCEN_FAIL, "race: out of memory");
	s->mem[0] = (uint8_t *)blocks;
	for (unsigned i = 0; i < RACE_BLOCKS; i++) {
		/* Odd offsets: each block's page sits at a different place. */
		blocks[i] = scen_fresh(s, 1, (uint64_t)(i * 37 % 512) * 4096 * 3, 4096);
		if (!blocks[i])
			return scen_note(s, SCEN_FAIL, "race: cannot map fresh block %u", i);
	}
	s->slots_before = kvmrt_slot_count(s->rt);
	return 0;
}

static int race_run(struct scen *s, unsigned tid)
{
	struct race_arg r = { .blocks = (uint8_t **)s->mem[0], .first = (tid * 5) % RACE_BLOCKS, .tid = tid };

	pthread_barrier_wait(&s->start);
	return scen_call(s, "race", g_race, (uint64_t)(uintptr_t)&r, NULL);
}

static int race_verify(struct scen *s)
{
	uint8_t **blocks = (uint8_t **)s->mem[0];
	uint64_t slots = kvmrt_slot_count(s->rt) - s->slots_before;
	int bad = 0;

	for (unsigned i = 0; i < RACE_BLOCKS && !bad; i++) {
		uint64_t n = *(uint64_t *)blocks[i], pa;
		if (n != s->threads)
			bad = scen_note(s, SCEN_FAIL, "race: block %u counter %llu, expected %u", i, (unsigned long long)n,
					s->threads);
		for (unsigned t = 0; t < s->threads && !bad; t++)
			if (((uint64_t *)blocks[i])[1 + t] != t + 1)
				bad = scen_note(s, SCEN_FAIL, "race: block %u thread %u's write missing", i, t);
		if (!bad && (physmap_translate(&s->rt->pm, (uint64_t)(uintptr_t)blocks[i], &pa) ||
			     !slots_has_slot(&s->rt->slots, pa)))
			bad = scen_note(s, SCEN_FAIL, "race: block %u (va %p) has no slot", i, (void *)blocks[i]);
	}
	/* Each block exactly one slot: RACE_BLOCKS new slots (some threads'
	 * stacks or areas may add their own; never fewer, never 2 per block). */
	char buf[256];
	const char *inv = kvmrt_check(s->rt, buf, sizeof(buf));
	if (!bad && inv)
		bad = scen_note(s, SCEN_FAIL, "race: %s", inv);
	if (!bad && slots < RACE_BLOCKS)
		bad = scen_note(s, SCEN_FAIL, "race: %llu new slots for %d blocks", (unsigned long long)slots, RACE_BLOCKS);
	if (!bad)
		scen_say(s, "race: %u threads x %d shared blocks: %llu new slots, every block slotted once, check_slots ok",
			 s->threads, RACE_BLOCKS, (unsigned long long)slots);
	for (unsigned i = 0; i < RACE_BLOCKS; i++)
		munmap(blocks[i], 4096);
	free(blocks);
	s->mem[0] = NULL;
	return bad;
}

/* ---- live tables: collapse-race and unmap-race -------------------------------
 * Reader vCPUs (every thread but the last) read tagged memory in a loop: each
 * page holds its own address (xor a generation). The last thread changes the
 * guest tables under them: docs/live-tables.md. Afterwards every read either
 * saw the right tag or its call faulted on a page the change had removed:
 * never anything else. */

#define LIVE_REGION (2 * MIB)
#define LIVE_PAGES (LIVE_REGION / 4096)
#define LIVE_PIECE (64 * 1024)
#define LIVE_PIECES (LIVE_REGION / LIVE_PIECE)

struct live {
	uint8_t *region[2];
	_Atomic int done;                    /* the changer has finished */
	_Atomic int removed[2][LIVE_PIECES]; /* unmap-race: piece announced gone */
	_Atomic uint64_t reads, calls, faults;
};

struct live_read {
	uint8_t *region[2];
	uint64_t skip[2];     /* pieces not to read (bit per piece) */
	unsigned passes;
	uint64_t wrong, wrong_va, wrong_val;
};

static void live_tag(uint8_t *base, size_t len, uint64_t gen)
{
	for (size_t o = 0; o < len; o += 4096)
		*(volatile uint64_t *)(base + o) = (uint64_t)(uintptr_t)(base + o) ^ gen;
}

/* Guest: reads every page's tag of both regions, passes times. */
static uint64_t g_live_read(uint64_t a)
{
	struct live_read *r = (struct live_read *)(uintptr_t)a;

	for (unsigned p = 0; p < r->passes; p++)
		for (int k = 0; k < 2; k++)
			for (size_t i = 0; i < LIVE_PAGES; i++) {
				if (r->skip[k] & (1ull << (i * 4096 / LIVE_PIECE)))
					continue;
				const uint8_t *pg = r->region[k] + i * 4096;
				uint64_t v = *(const volatile uint64_t *)pg;
				if (v != (uint64_t)(uintptr_t)pg) {
					r->wrong++;
					r->wrong_va = (uint64_t)(uintptr_t)pg;
					r->wrong_val = v;
				}
			}
	return 0;
}

static int live_setup(struct scen *s)
{
	struct live *l = calloc(1, sizeof(*l));

	if (!l)
		return scen_note(s, SCEN_FAIL, "%s: out of memory", s->def->name);
	s->mem[1] = (uint8_t *)l;
	for (int k = 0; k < 2; k++) {
		l->region[k] = scen_fresh(s, 1, 0, LIVE_REGION);
		if (!l->region[k])
			return scen_note(s, SCEN_FAIL, "%s: cannot map fresh memory", s->def->name);
		live_tag(l->region[k], LIVE_REGION, 0);
		/* Slots and entries now: the race is about changes, not first faults. */
		if (kvmrt_map_range(s->rt, (uint64_t)(uintptr_t)l->region[k], LIVE_REGION))
			return scen_note(s, SCEN_FAIL, "%s: kvmrt_map_range failed", s->def->name);
	}
	return 0;
}

/* A reader: calls until the changer is done (and once more after), each
 * call a few passes. A fault must be on a piece the changer removed. */
static int live_reader(struct scen *s, unsigned tid)
{
	struct live *l = (struct live *)s->mem[1];
	struct live_read r = { .region = { l->region[0], l->region[1] }, .passes = 4 };
	bool last = false;

	(void)tid;
	pthread_barrier_wait(&s->start);
	while (!last) {
		last = atomic_load(&l->done);
		struct kvmrt_fault f;
		uint64_t ret;
		int err = kvmrt_call(s->rt, g_live_read, (uint64_t)(uintptr_t)&r, &ret, &f);
		atomic_fetch_add(&l->calls, 1);
		if (r.wrong)
			return scen_note(s, SCEN_FAIL, "%s: va 0x%llx read 0x%llx, not its tag: a vCPU used a stale "
					 "translation or a reused table page", s->def->name,
					 (unsigned long long)r.wrong_va, (unsigned long long)r.wrong_val);
		if (!err) {
			atomic_fetch_add(&l->reads, 2ull * LIVE_PAGES * r.passes);
			continue;
		}
		char buf[400];
		int k = -1;
		for (int j = 0; j < 2; j++)
			if (f.addr - (uint64_t)(uintptr_t)l->region[j] < LIVE_REGION)
				k = j;
		size_t piece = k < 0 ? 0 : (f.addr - (uint64_t)(uintptr_t)l->region[k]) / LIVE_PIECE;
		if ((f.reason != KVMRT_PAGE_FAULT && f.reason != KVMRT_EFAULT) || k < 0 || !atomic_load(&l->removed[k][piece]))
			return scen_note(s, SCEN_FAIL, "%s: %s", s->def->name, kvmrt_fault_str(&f, buf, sizeof(buf)));
		r.skip[k] |= 1ull << piece;
		atomic_fetch_add(&l->faults, 1);
		last = false; /* go on with the rest */
	}
	return 0;
}

/* collapse-race: the changer toggles one page at a time read-only and back
 * (kvmrt_protect), alternating between the two regions: each downgrade
 * splits the huge leaf (new tables) and shoots down, each restore collapses
 * the tables back (retired); the next split elsewhere needs table pages,
 * and a broken retire list would hand it the page a reader may still walk. */
static int collapse_race_run(struct scen *s, unsigned tid)
{
	struct live *l = (struct live *)s->mem[1];

	if (tid + 1 < s->threads)
		return live_reader(s, tid);
	pthread_barrier_wait(&s->start);
	int bad = 0;
	for (unsigned round = 0; round < 64 && !bad; round++) {
		uint8_t *pg = l->region[round % 2] + (size_t)(round * 37 % LIVE_PAGES) * 4096;
		if (kvmrt_protect(s->rt, (uint64_t)(uintptr_t)pg, 4096, PT_R) ||
		    kvmrt_protect(s->rt, (uint64_t)(uintptr_t)pg, 4096, PT_R | PT_W))
			bad = scen_note(s, SCEN_FAIL, "collapse-race: kvmrt_protect of %p failed", (void *)pg);
	}
	kvmrt_shootdown(s->rt); /* reclaim the last collapse's pages */
	atomic_store(&l->done, 1);
	return bad;
}

/* unmap-race: the changer removes the regions a piece at a time: the guest
 * entries (kvmrt_unmap, which returns only after every vCPU flushed), then
 * the host pages, which come back at once with other tags (generation 1):
 * a vCPU still using an old translation would read those. */
static int unmap_race_run(struct scen *s, unsigned tid)
{
	struct live *l = (struct live *)s->mem[1];

	if (tid + 1 < s->threads)
		return live_reader(s, tid);
	pthread_barrier_wait(&s->start);
	int bad = 0;
	for (unsigned i = 0; i < 2 * LIVE_PIECES && !bad; i++) {
		int k = (int)(i % 2);
		size_t piece = (i / 2) * 7 % LIVE_PIECES;
		uint8_t *p = l->region[k] + piece * LIVE_PIECE;
		atomic_store(&l->removed[k][piece], 1);
		if (kvmrt_unmap(s->rt, (uint64_t)(uintptr_t)p, LIVE_PIECE)) {
			bad = scen_note(s, SCEN_FAIL, "unmap-race: kvmrt_unmap of %p failed", (void *)p);
			break;
		}
		void *q = mmap(p, LIVE_PIECE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (q != p) {
			bad = scen_note(s, SCEN_FAIL, "unmap-race: cannot map %p again", (void *)p);
			break;
		}
		live_tag(p, LIVE_PIECE, 1);
	}
	atomic_store(&l->done, 1);
	return bad;
}

static int live_verify(struct scen *s)
{
	struct live *l = (struct live *)s->mem[1];
	struct kvmrt_exits e;
	char buf[256];
	int bad = 0;

	kvmrt_exits(s->rt, &e);
	const char *inv = kvmrt_check(s->rt, buf, sizeof(buf));
	if (inv)
		bad = scen_note(s, SCEN_FAIL, "%s: %s", s->def->name, inv);
	if (!bad && (e.shootdowns == 0 || e.reclaimed == 0))
		bad = scen_note(s, SCEN_FAIL, "%s: %llu shootdowns, %llu table pages reclaimed: the race did not happen",
				s->def->name, (unsigned long long)e.shootdowns, (unsigned long long)e.reclaimed);
	if (!bad && pool_retired(&s->rt->pool))
		bad = scen_note(s, SCEN_FAIL, "%s: %u table pages still retired at the end", s->def->name,
				pool_retired(&s->rt->pool));
	if (!bad)
		scen_say(s, "%s: %u readers, %llu calls, %llu tag reads all right, %llu faults on removed pages; "
			    "%llu shootdowns (%llu kicks), %llu table pages reclaimed",
			 s->def->name, s->threads - 1, (unsigned long long)l->calls, (unsigned long long)l->reads,
			 (unsigned long long)l->faults, (unsigned long long)e.shootdowns,
			 (unsigned long long)s->rt->kicks, (unsigned long long)e.reclaimed);
	for (int k = 0; k < 2; k++)
		if (l->region[k])
			munmap(l->region[k], LIVE_REGION);
	free(l);
	s->mem[1] = NULL;
	return bad;
}

/* ---- the runner ------------------------------------------------------------ */

static const struct scen_def scen_defs[] = {
	{ "touch", touch_prepare, NULL, touch_run, NULL },
	{ "xsave", NULL, NULL, xsave_run, NULL },
	{ "avx", NULL, NULL, avx_run, NULL },
	{ "rep-movs", NULL, NULL, movs_run, NULL },
	{ "cmpxchg16b", NULL, NULL, cx16_run, NULL },
	{ "lock-xadd", NULL, xadd_setup, xadd_run, xadd_verify },
	{ "unmapped", NULL, NULL, unmapped_run, NULL },
	{ "race", NULL, race_setup, race_run, race_verify },
	{ "collapse-race", NULL, live_setup, collapse_race_run, live_verify },
	{ "unmap-race", NULL, live_setup, unmap_race_run, live_verify },
};

struct scen_thread {
	struct scen *s;
	unsigned tid;
	pthread_t th;
};

static void *scen_thread_main(void *p)
{
	struct scen_thread *t = p;
	t->s->def->run(t->s, t->tid);
	return NULL;
}

/* Unmaps what prepare/setup kept in mem[0] (touch's read-only window lies
 * inside it; race frees its own). */
static void scen_release(struct scen *s)
{
	if (s->mem[0] && s->len[0])
		munmap(s->mem[0], s->len[0]);
	s->mem[0] = NULL;
	if (s->def && s->def->verify == live_verify && s->mem[1]) {
		struct live *l = (struct live *)s->mem[1];
		for (int k = 0; k < 2; k++)
			if (l->region[k])
				munmap(l->region[k], LIVE_REGION);
		free(l);
		s->mem[1] = NULL;
	}
}

enum scen_status scen_run(const char *name, const struct scen_opts *opts, FILE *out, struct scen_report *rep)
{
	struct scen s = { .o = *opts, .out = out, .status = SCEN_OK };
	struct kvmrt_config cfg = { .legacy = opts->legacy, .check = opts->check, .ring0 = opts->cpl == 0,
				    .quiet = opts->quiet };
	struct scen_thread th[MAX_THREADS];
	char why[400] = "";

	memset(rep, 0, sizeof(*rep));
	for (size_t i = 0; i < sizeof(scen_defs) / sizeof(scen_defs[0]); i++)
		if (!strcmp(scen_defs[i].name, name))
			s.def = &scen_defs[i];
	if (!s.def) {
		snprintf(rep->why, sizeof(rep->why), "unknown scenario '%s'", name);
		return rep->status = SCEN_USAGE;
	}
	s.threads = opts->vcpus ? opts->vcpus : 1;
	if ((s.def->run == race_run || s.def->run == collapse_race_run || s.def->run == unmap_race_run) &&
	    s.threads < 2)
		s.threads = 2;
	if (s.threads > MAX_THREADS)
		s.threads = MAX_THREADS;
	cfg.max_vcpus = s.threads + 1;
	s.bs = 8 * GIB;   /* the physical map's default; confirmed after open */
	/* The arena: above the break, where nothing else maps and inside the
	 * window kvmrt keeps next to the heap (it trims only far holes). */
	scen_arena = ((uint64_t)(uintptr_t)sbrk(0) + ARENA_GAP + s.bs - 1) / s.bs * s.bs;
	atomic_store(&scen_next_block, 0);
	pthread_mutex_init(&s.lock, NULL);
	pthread_barrier_init(&s.start, NULL, s.threads);
	if (s.def->prepare && s.def->prepare(&s))
		goto out;
	int err = kvmrt_open(&s.rt, &cfg, why, sizeof(why));
	if (err) {
		scen_release(&s);
		snprintf(rep->why, sizeof(rep->why), "kvm: %s", why);
		rep->status = err == -ENOENT || err == -EACCES || err == -EPERM || err == -ENODEV ? SCEN_SKIP : SCEN_FAIL;
		pthread_barrier_destroy(&s.start);
		pthread_mutex_destroy(&s.lock);
		return rep->status;
	}
	s.bs = s.rt->pm.cfg.block_size;
	if (s.def->setup && s.def->setup(&s))
		goto close;
	for (unsigned i = 1; i < s.threads; i++) {
		th[i] = (struct scen_thread){ .s = &s, .tid = i };
		if (pthread_create(&th[i].th, NULL, scen_thread_main, &th[i])) {
			scen_note(&s, SCEN_FAIL, "pthread_create failed");
			s.threads = i;   /* the barrier would wait forever: */
			break;
		}
	}
	if (s.status == SCEN_OK || s.threads > 1) {
		th[0] = (struct scen_thread){ .s = &s, .tid = 0 };
		scen_thread_main(&th[0]);
	}
	for (unsigned i = 1; i < s.threads; i++)
		pthread_join(th[i].th, NULL);
	if (s.def->verify && s.status == SCEN_OK)
		s.def->verify(&s);
close:
	kvmrt_exits(s.rt, &rep->exits);
	rep->slots = kvmrt_slot_count(s.rt);
	if (kvmrt_close(s.rt, why, sizeof(why)))
		scen_note(&s, SCEN_FAIL, "check at close: %s", why);
out:
	scen_release(&s);
	rep->status = s.status;
	rep->printed = s.printed;
	snprintf(rep->why, sizeof(rep->why), "%s", s.why);
	pthread_barrier_destroy(&s.start);
	pthread_mutex_destroy(&s.lock);
	return rep->status;
}
