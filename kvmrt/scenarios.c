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
	"touch", "xsave", "avx", "rep-movs", "cmpxchg16b", "lock-xadd", "unmapped", "race", NULL,
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
	if (s.def->run == race_run && s.threads < 2)
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
