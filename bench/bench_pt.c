/* make bench (bench_pt): the engine beside a naive mapper and the store
 * floors, in one process, rounds interleaved, medians with min/max.
 *
 * Subjects, each run on the same op lists:
 *  - engine: pt_map / pt_unmap over a pre-faulted pool (counting pass,
 *    splits, collapse, freeing of empty tables, per-table counts);
 *  - naive: walk from the root for every leaf, inline, no bounds checks,
 *    tables from a pre-zeroed bump arena, the largest leaf that alignment
 *    allows at each step, never frees a table (no handicap: nothing it does
 *    not need);
 *  - floors for (a)-(c): memset of the entry bytes in one buffer, and the
 *    8-byte entry stores themselves at the places a map writes them (one run
 *    per table page plus the link in the level above), the same loop shape as
 *    the engine's.
 * Cache states: "flushed" evicts every byte the subjects touch (pools,
 * arenas, op lists, floor buffers) with clflushopt before each timed op: the
 * L3 size sysconf reports here is the host's whole L3 (hundreds of MiB), so
 * streaming several times it before every op is not practical on a shared
 * machine, while clflushopt evicts from every level whatever its size. "hot"
 * runs the op and its inverse once, untimed, right before the timed op.
 * One "cold" row: (a) on a pool that was just mmap'd and never touched (how
 * a runtime starts), beside pool_prefault's own cost.
 *
 * Workloads: (a) map 1 GiB with 4 KiB entries (PA forbids huge leaves),
 * (b) unmap it, (c) map 1 GiB as 2 MiB leaves (and unmap), (d) 10,000 maps of
 * 4-64 KiB at random 4 KiB offsets, one per 1 MiB slot of a 10,000 MiB
 * window, in random order, then unmap them all (in another random order),
 * (e) 2,000 regions of 4 KiB-16 MiB (log-uniform), misaligned, one per
 * 64 GiB slot of the lower 128 TiB, PA = VA (2 MiB leaves in the middle),
 * map in random order then unmap. BENCH_ROUNDS sets the rounds (default 15);
 * BENCH_NAIVE_STORES, extra stores for the naive mapper (see run()).
 * Wall-clock times, or CPU time for a sample during which the thread was
 * preempted (see timer_stop). Figures, not tests: the
 * machine may be loaded; compare ratios within one run. docs/bench-pt.md
 * has the figures and how to read them. */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"
#include "pt.h"
#include "pte.h"

#define K4 0x1000ull
#define M2 0x200000ull
#define G1 0x40000000ull
#define T1 0x10000000000ull
#define POOL_PAGES 16384u
#define POOL_PA 0x100000000ull
#define NAIVE_PA 0x200000000ull
#define D_OPS 10000
#define E_OPS 2000
#define MAX_ROUNDS 101
#define LEAF_FLAGS (PTE_P | PTE_RW | PTE_NX)
#define TABLE_FLAGS (PTE_P | PTE_RW | PTE_US)

/* Timing. Wall clock (vDSO, cheap) normally; but on a machine shared with
 * other jobs a long op is often descheduled part-way (wall-clock maxima were
 * 10x the medians), so each timed op also notes the thread's preemptions
 * and CPU time, and a preempted sample counts its CPU time instead (minus
 * the cost of reading it: a system call, measured at start). */
static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static long preemptions(void)
{
	struct rusage ru;
	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_nivcsw; /* involuntary only: a page fault may block, and that is its cost */
}

struct timer {
	long sw;
	double cpu, wall;
};
static double cpu_overhead;
static int preempted;

static void timer_start(struct timer *t)
{
	t->sw = preemptions();
	t->cpu = cpu_ns();
	t->wall = now_ns();
}

static double timer_stop(const struct timer *t)
{
	double wall = now_ns() - t->wall;
	double cpu = cpu_ns() - t->cpu - cpu_overhead;
	if (preemptions() == t->sw)
		return wall;
	preempted++;
	return cpu > 0 ? cpu : 0;
}


static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void *map_populated(size_t bytes)
{
	void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (m == MAP_FAILED) {
		perror("bench_pt: mmap");
		exit(1);
	}
	return m;
}

/* ---- op lists ---- */

struct op {
	uint64_t va, len, pa;
};

struct oplist {
	struct op *map, *unmap; /* the same ranges, each in its own order */
	size_t n;
	const char *what;
};

static void shuffle(struct op *o, size_t n)
{
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = rnd() % (i + 1);
		struct op t = o[i];
		o[i] = o[j];
		o[j] = t;
	}
}

static void oplist_make(struct oplist *l, size_t n, const char *what)
{
	l->n = n;
	l->what = what;
	l->map = map_populated(2 * n * sizeof(struct op));
	l->unmap = l->map + n;
}

static void oplist_done(struct oplist *l)
{
	memcpy(l->unmap, l->map, l->n * sizeof(struct op));
	shuffle(l->map, l->n);
	shuffle(l->unmap, l->n);
}

/* (d): 4-64 KiB each, one per 1 MiB slot. */
static void make_small(struct oplist *l)
{
	oplist_make(l, D_OPS, "(d) 10,000 maps of 4-64 KiB");
	for (size_t i = 0; i < l->n; i++) {
		uint64_t pages = 1 + rnd() % 16;
		uint64_t off = (rnd() % (256 - pages + 1)) * K4;
		uint64_t va = 0x10000000000ull + i * 0x100000ull + off;
		l->map[i] = (struct op){ va, pages * K4, va };
	}
	oplist_done(l);
}

/* (e): 4 KiB-16 MiB, log-uniform, misaligned, one per 64 GiB slot. */
static void make_misaligned(struct oplist *l)
{
	oplist_make(l, E_OPS, "(e) 2,000 misaligned regions of 4 KiB-16 MiB");
	for (size_t i = 0; i < l->n; i++) {
		uint64_t pages = 1ull << (rnd() % 12); /* log-uniform, 1..4095 pages */
		pages += rnd() % pages;
		uint64_t slot = 64 * G1;
		uint64_t off = (rnd() % ((slot - pages * K4) / K4)) * K4;
		if (!(off & (M2 - 1)))
			off += K4; /* misaligned */
		uint64_t va = i * slot + off;
		l->map[i] = (struct op){ va, pages * K4, va };
	}
	oplist_done(l);
}

/* ---- the naive mapper ---- */

struct naive {
	uint64_t *arena; /* pre-zeroed table pages, handed out in order */
	uint64_t pages, next, high;
	uint64_t *root;
};

static inline uint64_t *naive_table(struct naive *n, uint64_t pte)
{
	return (uint64_t *)((uint8_t *)n->arena + ((pte & PTE_ADDR_MASK) - NAIVE_PA));
}

static void naive_reset(struct naive *n)
{
	memset(n->arena, 0, n->next * K4); /* untimed: "pre-zeroed" */
	n->next = 1;
	n->root = n->arena;
}

/* Largest leaf alignment allows at each step; walks from the root each time. */
static inline void naive_map(struct naive *n, uint64_t va, uint64_t len, uint64_t pa)
{
	uint64_t end = va + len;
	while (va < end) {
		int leaf = 0;
		if (!((va | pa) & (G1 - 1)) && end - va >= G1)
			leaf = 2;
		else if (!((va | pa) & (M2 - 1)) && end - va >= M2)
			leaf = 1;
		uint64_t *t = n->root;
		for (int level = 3; level > leaf; level--) {
			uint64_t *e = &t[pt_index(va, level)];
			if (!(*e & PTE_P))
				*e = (NAIVE_PA + n->next++ * K4) | TABLE_FLAGS;
			t = naive_table(n, *e);
		}
		t[pt_index(va, leaf)] = pa | LEAF_FLAGS | (leaf ? PTE_PS : 0);
		va += pt_level_size(leaf);
		pa += pt_level_size(leaf);
	}
	if (n->next > n->high)
		n->high = n->next;
}

/* Clears whatever leaf holds each address, walking from the root each time;
 * the ranges are those mapped, so no leaf is split. */
static inline void naive_unmap(struct naive *n, uint64_t va, uint64_t len)
{
	uint64_t end = va + len;
	while (va < end) {
		uint64_t *t = n->root;
		for (int level = 3;; level--) {
			uint64_t *e = &t[pt_index(va, level)];
			if (!(*e & PTE_P) || level == 0 || (*e & PTE_PS)) {
				*e = 0;
				va = (va | (pt_level_size(level) - 1)) + 1;
				break;
			}
			t = naive_table(n, *e);
		}
	}
}

/* ---- cache states ---- */

struct mem {
	void *p;
	size_t len;
};
static struct mem touched[16];
static int ntouched;

static void touch_add(void *p, size_t len)
{
	touched[ntouched++] = (struct mem){ p, len };
}

/* Evicts every byte any subject touches, from every cache level. */
static void flush_all(void)
{
	for (int i = 0; i < ntouched; i++) {
		uint8_t *p = touched[i].p;
		for (size_t off = 0; off < touched[i].len; off += 64)
			__asm__ volatile("clflushopt %0" : "+m"(p[off]));
	}
	__asm__ volatile("mfence" ::: "memory");
}

/* ---- measurements ---- */

enum { S_ENGINE, S_NAIVE, S_MEMSET, S_SCATTER, S_COUNT };
enum { C_FLUSHED, C_HOT, C_COUNT };
enum { W_A, W_B, W_C_MAP, W_C_UNMAP, W_D_MAP, W_D_UNMAP, W_E_MAP, W_E_UNMAP, W_COUNT };

static const char *subject_name[S_COUNT] = { "engine", "naive", "floor memset", "floor stores" };
static const char *cache_name[C_COUNT] = { "flushed", "hot" };
static const char *work_name[W_COUNT] = {
	"(a) map 1 GiB, 4 KiB entries", "(b) unmap it",		"(c) map 1 GiB, 2 MiB leaves",
	"(c) unmap it",			"(d) 10,000 maps 4-64 KiB", "(d) unmap them all",
	"(e) 2,000 misaligned maps",	"(e) unmap them all",
};

static double samples[W_COUNT][S_COUNT][C_COUNT][MAX_ROUNDS];
static int nsamples[W_COUNT][S_COUNT][C_COUNT];
static double cold[MAX_ROUNDS], prefault[MAX_ROUNDS];
static int ncold;

static struct pool pool;
static struct pt pt;
static struct naive nv;
#define FLOOR_PAGES 2048
static uint64_t *floor_buf;             /* FLOOR_PAGES pages */
static uint32_t floor_page[513];        /* "stores": the PD, then 512 page tables, scattered */

static void die(const char *what, int err)
{
	fprintf(stderr, "bench_pt: %s failed (%d)\n", what, err);
	exit(1);
}

/* BENCH_NAIVE_STORES=N: the naive mapper also makes N 8-byte stores per op
 * (to one cache line, which stays hot), to show what stores that hit cost
 * when they queue behind entry stores that miss (docs/bench-pt.md). */
static int naive_extra_stores;
static volatile uint64_t extra_sink[8];

/* One op of a workload by one subject; returns its time in ns. */
static double run(int subject, const struct op *ops, size_t n, bool map)
{
	struct timer tm;
	timer_start(&tm);
	if (subject == S_ENGINE) {
		for (size_t i = 0; i < n; i++) {
			int err = map ? pt_map(&pt, ops[i].va, ops[i].len, ops[i].pa, PT_R | PT_W)
				      : pt_unmap(&pt, ops[i].va, ops[i].len);
			if (err)
				die(map ? "pt_map" : "pt_unmap", err);
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			for (int k = 0; k < naive_extra_stores; k++)
				extra_sink[k & 7] = i;
			if (map)
				naive_map(&nv, ops[i].va, ops[i].len, ops[i].pa);
			else
				naive_unmap(&nv, ops[i].va, ops[i].len);
		}
	}
	double ns = timer_stop(&tm);
	if (subject == S_NAIVE && !map)
		naive_reset(&nv);
	return ns;
}

/* The floors of a 1 GiB map: `tables` table pages of 512 entries each (512
 * page tables under a PD for 4 KiB entries, or the PD alone for 2 MiB
 * leaves). memset: the entry bytes as one contiguous block. stores: 8-byte
 * entry stores page by page into the table pages a map takes (consecutive
 * pages: the pool hands out the lowest free page), plus the link to each
 * page table in the PD, in the same loop shape as the engine's runs. */
static double run_floor(int subject, unsigned tables, uint64_t pa, bool map)
{
	uint64_t *pd = floor_buf + 512 * (size_t)floor_page[0];
	struct timer tm;
	timer_start(&tm);
	if (subject == S_MEMSET) {
		memset(floor_buf, map ? 0x11 : 0, (size_t)tables * K4);
	} else if (tables == 1) {
		if (map) {
			uint64_t pte = pa | LEAF_FLAGS | PTE_PS;
			for (unsigned i = 0; i < 512; i++, pte += M2)
				pd[i] = pte;
		} else {
			memset(pd, 0, K4);
		}
	} else {
		uint64_t pte = pa | LEAF_FLAGS;
		for (unsigned t = 0; t < tables; t++) {
			uint64_t *page = floor_buf + 512 * (size_t)floor_page[1 + t];
			if (map) {
				for (unsigned i = 0; i < 512; i++, pte += K4)
					page[i] = pte;
				pd[t] = (NAIVE_PA + floor_page[1 + t] * K4) | TABLE_FLAGS;
			} else {
				memset(page, 0, K4);
				pd[t] = 0;
			}
		}
	}
	__asm__ volatile("" ::"r"(floor_buf) : "memory");
	return timer_stop(&tm);
}

static void record(int w, int s, int c, double ns)
{
	int *k = &nsamples[w][s][c];
	if (*k < MAX_ROUNDS)
		samples[w][s][c][(*k)++] = ns;
}

/* A map/unmap pair in one cache state: hot runs the pair once untimed first. */
static void pair(int wmap, int wunmap, int s, int c, const struct oplist *l)
{
	if (c == C_HOT) {
		run(s, l->map, l->n, true);
		run(s, l->unmap, l->n, false);
	} else {
		flush_all();
	}
	double m = run(s, l->map, l->n, true);
	if (c == C_FLUSHED)
		flush_all();
	double u = run(s, l->unmap, l->n, false);
	record(wmap, s, c, m);
	record(wunmap, s, c, u);
}

static void floor_pair(int wmap, int wunmap, int s, int c, unsigned tables, uint64_t pa)
{
	if (c == C_HOT) {
		run_floor(s, tables, pa, true);
		run_floor(s, tables, pa, false);
	} else {
		flush_all();
	}
	double m = run_floor(s, tables, pa, true);
	if (c == C_FLUSHED)
		flush_all();
	double u = run_floor(s, tables, pa, false);
	record(wmap, s, c, m);
	record(wunmap, s, c, u);
}

/* (a) on a pool that was never touched; the pool is then unmapped. */
static void cold_row(void)
{
	struct pool cp;
	struct pt cpt;
	int err = pool_init_mmap(&cp, 1024, POOL_PA);
	if (err || (err = pt_init(&cpt, &cp, 4, true)))
		die("cold pool", err);
	struct timer tm;
	timer_start(&tm);
	err = pt_map(&cpt, G1, G1, 4 * G1 + K4, PT_R | PT_W);
	double t_map = timer_stop(&tm);
	if (err)
		die("cold pt_map", err);
	pt_destroy(&cpt);
	pool_destroy(&cp);
	/* The cost of the option: pre-faulting a pool of the same size. */
	err = pool_init_mmap(&cp, 1024, POOL_PA);
	if (err)
		die("prefault pool", err);
	timer_start(&tm);
	err = pool_prefault(&cp);
	double t_prefault = timer_stop(&tm);
	if (err)
		die("pool_prefault", err);
	pool_destroy(&cp);
	if (ncold < MAX_ROUNDS) {
		cold[ncold] = t_map;
		prefault[ncold++] = t_prefault;
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

struct stat3 {
	double med, min, max;
};

static struct stat3 stats(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return (struct stat3){ v[n / 2], v[0], v[n - 1] };
}

static size_t llc_bytes(void)
{
	long l = sysconf(_SC_LEVEL3_CACHE_SIZE);
	if (l > 0)
		return (size_t)l;
	FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
	unsigned kb = 0;
	if (f) {
		if (fscanf(f, "%uK", &kb) != 1)
			kb = 0;
		fclose(f);
	}
	return (size_t)kb * 1024;
}

int main(void)
{
	int rounds = 15;
	const char *env = getenv("BENCH_ROUNDS");
	if (env && atoi(env) > 0)
		rounds = atoi(env) < MAX_ROUNDS ? atoi(env) : MAX_ROUNDS;
	env = getenv("BENCH_NAIVE_STORES");
	if (env && atoi(env) > 0)
		naive_extra_stores = atoi(env) < 1000 ? atoi(env) : 1000;

	/* Engine: a pre-faulted pool, as a runtime that pre-faults has. */
	void *mem = map_populated(pool_bytes(POOL_PAGES));
	int err = pool_init(&pool, mem, POOL_PAGES, POOL_PA);
	if (err || (err = pt_init(&pt, &pool, 4, true)))
		die("pool", err);
	nv.pages = POOL_PAGES;
	nv.arena = map_populated(POOL_PAGES * K4);
	nv.next = 1;
	naive_reset(&nv);
	floor_buf = map_populated(FLOOR_PAGES * K4);
	for (uint32_t n = 0; n < 513; n++) /* in the order the pool hands pages out: lowest first */
		floor_page[n] = n;

	struct oplist a, c, d, e;
	oplist_make(&a, 1, "(a)");
	a.map[0] = (struct op){ G1, G1, 4 * G1 + K4 };
	oplist_done(&a);
	oplist_make(&c, 1, "(c)");
	c.map[0] = (struct op){ G1, G1, 4 * G1 + M2 };
	oplist_done(&c);
	make_small(&d);
	make_misaligned(&e);

	touch_add(mem, pool_bytes(POOL_PAGES));
	touch_add(nv.arena, POOL_PAGES * K4);
	touch_add(floor_buf, FLOOR_PAGES * K4);
	touch_add(a.map, 2 * sizeof(struct op));
	touch_add(c.map, 2 * sizeof(struct op));
	touch_add(d.map, 2 * d.n * sizeof(struct op));
	touch_add(e.map, 2 * e.n * sizeof(struct op));
	/* Flush only what has been touched so far, so a flush costs little:
	 * warm up each subject once, then shrink the pool and arena ranges to
	 * the pages used (the high-water marks). */
	for (int s = S_ENGINE; s <= S_NAIVE; s++) {
		pair(W_A, W_B, s, C_HOT, &a);
		pair(W_D_MAP, W_D_UNMAP, s, C_HOT, &d);
		pair(W_E_MAP, W_E_UNMAP, s, C_HOT, &e);
	}
	memset(nsamples, 0, sizeof(nsamples));
	preempted = 0;
	double empty[101];
	for (int i = 0; i < 101; i++) {
		double t0 = cpu_ns();
		empty[i] = cpu_ns() - t0;
	}
	cpu_overhead = stats(empty, 101).med;
	touched[0].len = (size_t)pool.fresh * K4;
	touch_add(pool.in_use, pool_bytes(POOL_PAGES) - (size_t)POOL_PAGES * K4);
	touched[1].len = nv.high * K4;

	size_t llc = llc_bytes();
	printf("bench pt: %d rounds, subjects interleaved in each round; medians [min-max] in microseconds per op\n"
	       "  (wall clock; CPU time for a sample during which the thread was preempted, count below)\n",
	       rounds);
	if (naive_extra_stores)
		printf("  BENCH_NAIVE_STORES=%d: the naive mapper makes that many extra 8-byte stores per op\n",
		       naive_extra_stores);
	printf("  flushed: clflushopt of every byte the subjects touch (%.1f MiB) before each timed op; L3 reported: %zu KiB\n",
	       (double)(touched[0].len + touched[1].len + FLOOR_PAGES * K4 + 2 * (d.n + e.n) * sizeof(struct op)) / (1 << 20),
	       llc / 1024);
	fflush(stdout);

	for (int r = 0; r < rounds; r++) {
		for (int c0 = 0; c0 < C_COUNT; c0++) {
			int cs = (c0 + r) % C_COUNT;
			for (int k = 0; k < S_COUNT; k++) {
				int s = (k + r) % S_COUNT; /* rotate who goes first */
				if (s == S_ENGINE || s == S_NAIVE) {
					pair(W_A, W_B, s, cs, &a);
					pair(W_C_MAP, W_C_UNMAP, s, cs, &c);
					pair(W_D_MAP, W_D_UNMAP, s, cs, &d);
					pair(W_E_MAP, W_E_UNMAP, s, cs, &e);
				} else {
					floor_pair(W_A, W_B, s, cs, 512, 4 * G1 + K4);
					floor_pair(W_C_MAP, W_C_UNMAP, s, cs, 1, 4 * G1 + M2);
				}
			}
		}
		cold_row();
	}

	printf("\n  %-30s %-8s %-14s %26s %26s %26s %26s\n", "workload", "cache", "", subject_name[0], subject_name[1],
	       subject_name[2], subject_name[3]);
	struct stat3 st[W_COUNT][S_COUNT][C_COUNT];
	for (int w = 0; w < W_COUNT; w++) {
		for (int cs = 0; cs < C_COUNT; cs++) {
			printf("  %-30s %-8s %-14s", work_name[w], cache_name[cs], "");
			for (int s = 0; s < S_COUNT; s++) {
				if (!nsamples[w][s][cs]) {
					printf(" %26s", "-");
					continue;
				}
				st[w][s][cs] = stats(samples[w][s][cs], nsamples[w][s][cs]);
				char cell[64];
				snprintf(cell, sizeof(cell), "%.1f [%.1f-%.1f]", st[w][s][cs].med / 1e3,
					 st[w][s][cs].min / 1e3, st[w][s][cs].max / 1e3);
				printf(" %26s", cell);
			}
			printf("\n");
		}
	}
	printf("  %d samples were preempted and count their CPU time\n", preempted);
	struct stat3 cst = stats(cold, ncold), pst = stats(prefault, ncold);
	printf("  %-30s %-8s %-14s %26s\n", work_name[W_A], "cold", "(new pool)", "");
	printf("    engine on a pool never touched: %.1f [%.1f-%.1f] us = %.2fx the pre-faulted flushed median\n",
	       cst.med / 1e3, cst.min / 1e3, cst.max / 1e3, cst.med / st[W_A][S_ENGINE][C_FLUSHED].med);
	printf("    pool_prefault of that pool (1024 pages, %.1f MiB resident): %.1f [%.1f-%.1f] us, %.0f ns per page\n",
	       (double)pool_bytes(1024) / (1 << 20), pst.med / 1e3, pst.min / 1e3, pst.max / 1e3,
	       pst.med / 1024);

	printf("\n  ratios of medians        %-8s %12s %18s %18s\n", "cache", "engine/naive", "engine/memset",
	       "engine/stores");
	for (int w = 0; w < W_COUNT; w++) {
		for (int cs = 0; cs < C_COUNT; cs++) {
			if (!nsamples[w][S_ENGINE][cs] || !nsamples[w][S_NAIVE][cs])
				continue;
			double eng = st[w][S_ENGINE][cs].med;
			printf("  %-30s %-8s %12.2f", work_name[w], cache_name[cs], eng / st[w][S_NAIVE][cs].med);
			if (nsamples[w][S_MEMSET][cs])
				printf(" %18.2f %18.2f", eng / st[w][S_MEMSET][cs].med, eng / st[w][S_SCATTER][cs].med);
			printf("\n");
		}
	}
	return 0;
}
