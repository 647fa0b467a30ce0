/* Pool of page-table pages, allocated once at init. After init it is the only
 * source of table pages: take and give are O(1) and never allocate. */
#ifndef KVMPT_POOL_H
#define KVMPT_POOL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pt_assert.h"

#define PT_BOUND_LEVELS 5

/* Levels of summary over the in-use bitmap: enough for 2^32 pages. */
#define POOL_SUMMARY_LEVELS 5

/* Bookkeeping of one pool page, beside the pages (never in them, so that
 * taking and giving pages touches no page memory). */
struct pool_page_info {
	uint16_t count;  /* taken page: present entries of the table it holds (0..512) */
	uint16_t lo, hi; /* taken page: every present entry's index is in [lo, hi) (a superset: lo >= hi
	                  * when there is none; only a table that empties resets it) */
	uint16_t dirty;  /* free page: its content is not known to be zero */
};

struct pool {
	uint8_t *base;        /* capacity pages, page-aligned */
	uint64_t pa_base;     /* physical address of base */
	uint64_t *in_use;     /* one bit per page, after the pages */
	uint64_t *full[POOL_SUMMARY_LEVELS]; /* full[k]: one bit per word of the level below (in_use for
	                       * k = 0), set when that word is all ones: lowest free page in O(levels) */
	uint32_t words[POOL_SUMMARY_LEVELS + 1]; /* words of in_use, then of each full[k] */
	int summary_levels;   /* full[0..summary_levels) exist; the last is one word */
	uint64_t *mark;       /* one bit per page, scratch for the checker */
	struct pool_page_info *info; /* per page; count, lo and hi kept by pt.c */
	uint32_t capacity;
	uint32_t room;        /* pages the memory holds (the capacity at init; pool_reset may use fewer) */
	uint32_t used;
	uint32_t peak;        /* highest `used` seen: what a layout really needed */
	uint32_t fresh;       /* pages at and above this were never taken */
	uint32_t low;         /* every page below this is in use: where pool_take looks first */
	bool mapped;          /* memory came from pool_init_mmap */
	struct pool_live {    /* deferred reclamation (pool_defer) */
		bool on;              /* pool_give retires; when off, head, count and epoch are 0 (the
		                       * list below may stay mapped for the next pool_defer) */
		uint32_t *ring;       /* indices of retired pages, oldest first; mapped by the first
		                       * pool_defer and kept (room entries) until pool_destroy */
		uint64_t *ring_epoch; /* the epoch each was retired in (non-decreasing) */
		uint64_t *retired;    /* one bit per page */
		uint32_t head;        /* oldest entry of the ring */
		uint32_t count;       /* pages retired now (counted in used) */
		uint32_t peak;        /* most pages retired at once */
		uint64_t epoch;       /* current epoch, from 1; atomic */
		uint64_t reclaimed;   /* pages given back by pool_reclaim, ever */
		size_t bytes;         /* of the one mapping behind ring/ring_epoch/retired */
		bool reclaiming;      /* pool_give gives back for real (pool_reclaim) */
	} live;
};

/* Bytes pool_init needs for `capacity` pages (pages, then the in-use and mark
 * bitmaps and the per-page info: all bookkeeping is part of the pool's one
 * block, so nothing is allocated after init). */
size_t pool_bytes(uint32_t capacity);

/* Use `mem` (page-aligned, pool_bytes(capacity) long) whose first page is at
 * physical address pa_base (page-aligned). 0 or -EINVAL. */
int pool_init(struct pool *p, void *mem, uint32_t capacity, uint64_t pa_base);

/* Same over memory the caller knows is all zero (a fresh anonymous mmap):
 * nothing is written, so a large pool costs nothing until pages are taken.
 * 0 or -EINVAL. */
int pool_init_zeroed(struct pool *p, void *mem, uint32_t capacity, uint64_t pa_base);

/* Same with one anonymous mmap of the right size. 0, -EINVAL or -ENOMEM. */
int pool_init_mmap(struct pool *p, uint32_t capacity, uint64_t pa_base);

/* Optional, at init only: faults every page of the pool in now (writable,
 * zero), so that the first map does not pay the kernel's first-touch fault
 * and page clearing per table page. Costs pool_bytes(capacity) of resident
 * memory from now on, and the kernel's fault + clear time for every page up
 * front (make bench prints both). 0, or -errno from madvise. */
int pool_prefault(struct pool *p);

/* Every page free again, as after pool_init over the same memory, now with
 * `capacity` pages (at most p->room) at physical address pa_base: for a
 * process that runs many short lives (a fuzz target) on one pre-faulted
 * pool. Costs what was used since the last init or reset, not the
 * capacity: only pages below `fresh` are visited, a taken page has only its
 * entries [lo, hi) cleared and a free one is cleared only when dirty.
 * Tables still built over the pool are gone (pt_init again), and so is
 * deferral (pool_defer again: it keeps its retire list's memory, so this
 * costs no system call either). 0 or -EINVAL. */
int pool_reset(struct pool *p, uint32_t capacity, uint64_t pa_base);

/* Unmaps what pool_init_mmap mapped. */
void pool_destroy(struct pool *p);

/* pool_take's rare halves, in pool.c: the lowest free page by the summaries
 * (UINT32_MAX when none), and the summary bits of a word just filled. */
uint32_t pool_lowest_free(const struct pool *p);
void pool_mark_full(struct pool *p, uint32_t index);

/* A zeroed page into *page (its count 0): 0, or -ENOMEM when every page is
 * in use. Only a page not known to be zero is cleared here. Inline: half
 * the small maps take a table, and a call's stores (return address, saved
 * registers) queue behind the map's own entry stores, which miss in the
 * cache. */
static inline int pool_take(struct pool *p, uint64_t **page)
{
	/* Every page below `low` is taken, so the lowest free page is usually
	 * in low's own word: one load, the summaries only when it is full. */
	uint64_t free_bits = p->low < p->capacity ? ~p->in_use[p->low / 64] : 0;
	uint32_t index = free_bits ? (p->low & ~63u) + (uint32_t)__builtin_ctzll(free_bits) : pool_lowest_free(p);
	if (index >= p->capacity)
		return -ENOMEM;
	p->low = index + 1;
	if (index >= p->fresh)
		p->fresh = index + 1;
	uint64_t *pg = (uint64_t *)(p->base + (size_t)index * 4096);
	struct pool_page_info *info = &p->info[index];
	if (info->dirty) {
		__builtin_memset(pg, 0, 4096);
		info->dirty = 0;
	}
	PT_ASSERT(info->count == 0 && info->lo >= info->hi);
	/* The next take is most often the page after this one: start its
	 * bookkeeping and its first entries on their way from memory now. */
	if (index + 1 < p->capacity) {
		__builtin_prefetch(info + 1, 1);
		__builtin_prefetch(pg + 512, 1);
	}
	uint64_t *word = &p->in_use[index / 64];
	*word |= 1ull << (index % 64);
	if (*word == ~0ull)
		pool_mark_full(p, index);
	p->used++;
	if (p->used > p->peak)
		p->peak = p->used;
	*page = pg;
	return 0;
}

static inline bool pool_deferred(const struct pool *p) { return p->live.on; }

/* pool_give's rare halves, in pool.c: retiring the page instead while
 * deferral is on (see "Live tables" below), and the summary bits of a word
 * that was full. And the debug builds' check that a page is all zero. */
void pool_retire(struct pool *p, uint64_t *page);
void pool_mark_not_full(struct pool *p, uint32_t index);
bool pool_page_is_zero(const uint64_t *page);

/* Returns `page` (taken from p) to the pool. A page whose count is 0 must be
 * all zero (its entries were cleared one by one) and is not cleared again;
 * any other page is marked for clearing when it is next taken. Inline, for
 * the same reason as pool_take: an unmap that empties a table gives it. */
static inline void pool_give(struct pool *p, uint64_t *page)
{
	/* Deferred: retired, and given back for real by pool_reclaim. */
	if (pool_deferred(p) && !p->live.reclaiming) {
		pool_retire(p, page);
		return;
	}
	uint32_t index = (uint32_t)(((uint8_t *)page - p->base) >> 12);
	PT_ASSERT((uint8_t *)page >= p->base && index < p->capacity);
	uint64_t *word = &p->in_use[index / 64];
	PT_ASSERT(*word & (1ull << (index % 64)));
	struct pool_page_info *info = &p->info[index];
	PT_ASSERT(info->count || pool_page_is_zero(page));
	/* A table that emptied entry by entry has count, lo and hi 0 already:
	 * no store (each one queues behind the unmap's own). */
	if (info->count | info->lo | info->hi) {
		info->dirty = info->count != 0;
		info->count = info->lo = info->hi = 0;
	}
	if (*word == ~0ull)
		pool_mark_not_full(p, index);
	*word &= ~(1ull << (index % 64));
	if (index < p->low)
		p->low = index;
	p->used--;
}

/* The bookkeeping of the table page that holds entry `pte` (any pointer into
 * a taken page): O(1), for pt.c to keep up to date at every entry write. */
static inline struct pool_page_info *pool_info(const struct pool *p, const uint64_t *pte)
{
	return &p->info[(size_t)((const uint8_t *)pte - p->base) >> 12]; /* 4 KiB pages */
}

/* Its count of present entries. */
static inline uint16_t *pool_count(const struct pool *p, const uint64_t *pte)
{
	return &pool_info(p, pte)->count;
}

static inline uint32_t pool_free(const struct pool *p) { return p->capacity - p->used; }

/* Physical address of a pool page, and back (NULL when pa is not a pool page). */
static inline uint64_t pool_pa(const struct pool *p, const uint64_t *page)
{
	return p->pa_base + (uint64_t)((const uint8_t *)page - p->base);
}
uint64_t *pool_page(const struct pool *p, uint64_t pa);

/* The same without the checks, for a pa the engine itself put in an entry. */
static inline uint64_t *pool_page_at(const struct pool *p, uint64_t pa)
{
	return (uint64_t *)(p->base + (pa - p->pa_base));
}

/* Is the pool page at physical address pa taken? */
bool pool_pa_in_use(const struct pool *p, uint64_t pa);

/* ---- Live tables: deferred reclamation (DESIGN.md "Live tables",
 * docs/live-tables.md) ----
 * A vCPU may still walk a table page the engine has just freed (unmap,
 * collapse) from its paging-structure caches until it flushes. With deferral
 * on, pool_give retires the page instead: it stays in use (counted in used
 * and peak) and untouched, tagged with the current epoch, on a preallocated
 * list, until pool_reclaim gives it back once every vCPU has passed a flush
 * point in a later epoch. The runtime's rule: a vCPU that reads epoch E and
 * then flushes holds nothing retired before E. */

/* Turns deferral on (at init, or after pool_reset). The first call maps the
 * retire list, room entries, so that retiring never fails; a pool reset and
 * deferred again reuses it. 0, or -ENOMEM. */
int pool_defer(struct pool *p);

/* The current epoch (pages retired now carry it); 0 when deferral is off.
 * Sequentially consistent: a vCPU's flush-point protocol relies on it. */
uint64_t pool_epoch(const struct pool *p);

/* Starts a new epoch and returns it (seq_cst). Lock-free. */
uint64_t pool_epoch_advance(struct pool *p);

/* Gives back every page retired in an epoch before `epoch`, oldest first;
 * returns how many. O(pages given back). The caller serialises it with
 * map/unmap (the engine's lock). */
uint32_t pool_reclaim(struct pool *p, uint64_t epoch);

/* Pages retired now, and whether the page at pa is one of them. */
static inline uint32_t pool_retired(const struct pool *p) { return p->live.count; }
bool pool_pa_retired(const struct pool *p, uint64_t pa);

/* A range that will be mapped and unmapped whole (a fault block, say). */
struct pt_unit {
	uint64_t va;   /* canonical, 4 KiB aligned */
	uint64_t len;  /* multiple of 4 KiB, > 0 */
	uint64_t pa;   /* 4 KiB aligned */
};

/* The bound: worst-case number of table pages (root included) that any
 * subset of a set of units mapped at once can need, at any moment inside a map
 * or unmap of one unit. Derivation in docs/bound.md. Streaming, so that
 * millions of small fault blocks need no array: start, add each unit in
 * ascending va order (units disjoint), read pages. */
struct pool_bound {
	int levels;
	int max_leaf;
	int err;                          /* -EINVAL once a unit was bad */
	uint64_t pages;
	uint64_t next_va;                 /* linear end of the previous unit */
	uint64_t last[PT_BOUND_LEVELS];   /* one past the highest position counted */
};

void pool_bound_start(struct pool_bound *b, int levels, bool huge_1g);
/* 0, or -EINVAL for a bad, unsorted or overlapping unit (then sticky). */
int pool_bound_add(struct pool_bound *b, const struct pt_unit *u);
/* 0 and *pages, or the first error. */
int pool_bound_pages(const struct pool_bound *b, uint64_t *pages);

/* The same over an array. */
int pool_bound(const struct pt_unit *units, size_t n, int levels, bool huge_1g, uint64_t *pages);

#endif
