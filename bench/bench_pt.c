/* make bench: nanoseconds per 4 KiB of mapping for the engine, beside a naive
 * walk-from-the-root-per-page mapper (bench-only) and memset of the same
 * number of entry bytes (the write-bandwidth floor). Medians of several runs,
 * all in one process so the ratios compare like with like. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "pool.h"
#include "pt.h"
#include "pte.h"

#define G1 0x40000000ull
#define M2 0x200000ull
#define K4 0x1000ull
#define PAGES (G1 / K4)
#define RUNS 9

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* A pool over memory that is already faulted in, as a runtime's pool is
 * (first-touch page faults would otherwise dominate: ~10 ns per entry here). */
static int pool_populated(struct pool *pool, uint32_t pages)
{
	void *mem = mmap(NULL, pool_bytes(pages), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
			 -1, 0);
	return mem == MAP_FAILED ? -1 : pool_init(pool, mem, pages, 0x100000000ull);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

/* The naive mapper: for every 4 KiB page, walk from the root and make the
 * missing tables on the way. No splits, no collapse, no counting pass. */
static void naive_map(struct pool *pool, uint64_t *root, uint64_t va, uint64_t len, uint64_t pa)
{
	for (uint64_t off = 0; off < len; off += K4) {
		uint64_t *table = root;
		for (int level = 3; level > 0; level--) {
			uint64_t *e = &table[pt_index(va + off, level)];
			if (!(*e & PTE_P)) {
				uint64_t *page;
				if (pool_take(pool, &page))
					abort();
				*e = pool_pa(pool, page) | PTE_P | PTE_RW | PTE_US;
			}
			table = pool_page(pool, *e & PTE_ADDR_MASK);
		}
		table[pt_index(va + off, 0)] = (pa + off) | PTE_P | PTE_RW | PTE_NX;
	}
}

int main(void)
{
	double map4k[RUNS], unmap4k[RUNS], map2m[RUNS], naive[RUNS], floor_[RUNS];
	static uint64_t scratch[PAGES];
	for (int r = 0; r < RUNS; r++) {
		struct pool pool;
		struct pt pt;
		if (pool_populated(&pool, 2048) || pt_init(&pt, &pool, 4, true))
			return 1;
		double t0 = now_ns();
		if (pt_map(&pt, G1, G1, 4 * G1 + K4, PT_R | PT_W)) /* PA forbids huge leaves */
			return 1;
		double t1 = now_ns();
		if (pt_unmap(&pt, G1, G1))
			return 1;
		double t2 = now_ns();
		if (pt_map(&pt, G1, G1, 4 * G1 + M2, PT_R | PT_W)) /* 2 MiB leaves */
			return 1;
		double t3 = now_ns();
		map4k[r] = (t1 - t0) / PAGES;
		unmap4k[r] = (t2 - t1) / PAGES;
		map2m[r] = (t3 - t2) / PAGES;
		pt_destroy(&pt);
		munmap(pool.base, pool_bytes(pool.capacity));

		struct pool npool;
		uint64_t *root;
		if (pool_populated(&npool, 2048) || pool_take(&npool, &root))
			return 1;
		t0 = now_ns();
		naive_map(&npool, root, G1, G1, 4 * G1 + K4);
		t1 = now_ns();
		naive[r] = (t1 - t0) / PAGES;
		munmap(npool.base, pool_bytes(npool.capacity));

		memset(scratch, 1, sizeof(scratch)); /* fault the pages in first */
		t0 = now_ns();
		memset(scratch, r + 2, sizeof(scratch));
		__asm__ volatile("" ::"r"(scratch) : "memory");
		t1 = now_ns();
		floor_[r] = (t1 - t0) / PAGES;
	}
	double m4 = median(map4k, RUNS), u4 = median(unmap4k, RUNS), m2 = median(map2m, RUNS);
	double nv = median(naive, RUNS), fl = median(floor_, RUNS);
	printf("bench pt: ns per 4 KiB of a 1 GiB range (median of %d)\n", RUNS);
	printf("  %-44s %8.2f ns  (%.1fx memset, %.2fx naive)\n", "map, PA forbids huge leaves (4K entries)", m4,
	       m4 / fl, m4 / nv);
	printf("  %-44s %8.2f ns  (%.1fx memset)\n", "unmap of it", u4, u4 / fl);
	printf("  %-44s %8.3f ns  (%.2fx memset)\n", "map with 2 MiB leaves", m2, m2 / fl);
	printf("  %-44s %8.2f ns  (%.1fx memset)\n", "naive walk-from-root-per-page mapper", nv, nv / fl);
	printf("  %-44s %8.2f ns\n", "memset of 8 bytes per page (floor)", fl);
	return 0;
}
