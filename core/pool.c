/* Table pages from one preallocated block, and the bound that sizes it. */
#include "pool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pt_assert.h"
#include "pte.h"

/* Free pages: pool_take always takes the free page with the lowest address.
 * Tables taken together then sit together, which is what the hardware likes:
 * a 1 GiB map writes 512 neighbouring pages rather than 512 scattered ones
 * (make bench here: a 1 GiB map of 4 KiB pages, caches flushed, 163 ->
 * 105 us). Pages never taken (from `fresh` up) stay zero and untouched, so
 * a large pool costs nothing until used. The lowest free page is found in O(levels), at most
 * POOL_SUMMARY_LEVELS + 1 words read: the in-use bitmap has a summary bit per
 * word ("all ones"), and that summary one, and so on up to one word. Take and
 * give touch no page memory.
 *
 * Known-zero pages: pt.c keeps info[].count (present entries per table page)
 * and writes a non-present entry only as 0, so a table given back with count
 * 0 was cleared entry by entry and is already zero: it is not cleared again.
 * Only a page given back with entries still in it (a collapsed table) is
 * dirty, and is cleared when it is next taken. */

void pt_assert_fail(const char *file, int line, const char *expr)
{
	char num[16];
	int n = 0;
	char tmp[16];
	for (int v = line; v > 0 && n < 15; v /= 10)
		tmp[n++] = (char)('0' + v % 10);
	for (int i = 0; i < n; i++)
		num[i] = tmp[n - 1 - i];
	num[n] = 0;
	const char *parts[] = { "PT_ASSERT failed: ", file, ":", num, ": ", expr, "\n" };
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		if (write(2, parts[i], strlen(parts[i])) < 0)
			break;
	abort();
}

static size_t bitmap_words(uint32_t capacity)
{
	return ((size_t)capacity + 63) / 64;
}

/* Bytes of the per-page info, rounded to whole words. */
static size_t info_bytes(uint32_t capacity)
{
	return ((size_t)capacity * sizeof(struct pool_page_info) + 7) & ~(size_t)7;
}

/* Words of each summary level over `capacity` bits of in-use bitmap, up to
 * the level of one word; returns how many levels. */
static int summary_shape(uint32_t capacity, uint32_t words[POOL_SUMMARY_LEVELS + 1])
{
	int levels = 0;
	words[0] = (uint32_t)bitmap_words(capacity);
	while (words[levels] > 1) {
		words[levels + 1] = (words[levels] + 63) / 64;
		levels++;
	}
	return levels;
}

static size_t summary_bytes(uint32_t capacity)
{
	uint32_t words[POOL_SUMMARY_LEVELS + 1];
	int levels = summary_shape(capacity, words);
	size_t n = 0;
	for (int k = 1; k <= levels; k++)
		n += words[k];
	return n * sizeof(uint64_t);
}

size_t pool_bytes(uint32_t capacity)
{
	return (size_t)capacity * PT_PAGE_SIZE + 2 * bitmap_words(capacity) * sizeof(uint64_t) + info_bytes(capacity) +
	       summary_bytes(capacity);
}

static uint64_t *page_at(const struct pool *p, uint32_t index)
{
	return (uint64_t *)(p->base + (size_t)index * PT_PAGE_SIZE);
}

static uint32_t page_index(const struct pool *p, const uint64_t *page)
{
	return (uint32_t)(((const uint8_t *)page - p->base) / PT_PAGE_SIZE);
}

static bool pool_args_ok(const void *mem, uint32_t capacity, uint64_t pa_base)
{
	return mem && capacity && !((uintptr_t)mem & (PT_PAGE_SIZE - 1)) && !(pa_base & (PT_PAGE_SIZE - 1)) &&
	       pa_base <= (1ull << 52) - (uint64_t)capacity * PT_PAGE_SIZE;
}

/* Sets p up over mem, which must be all zero, bookkeeping included: a pool
 * of the documented maximum (64 GiB) then costs nothing until pages are used. */
static int pool_setup(struct pool *p, void *mem, uint32_t capacity, uint64_t pa_base)
{
	if (!pool_args_ok(mem, capacity, pa_base))
		return -EINVAL;
	p->base = mem;
	p->pa_base = pa_base;
	p->capacity = capacity;
	p->room = capacity;
	p->used = 0;
	p->peak = 0;
	p->in_use = (uint64_t *)(p->base + (size_t)capacity * PT_PAGE_SIZE);
	p->mark = p->in_use + bitmap_words(capacity);
	p->info = (struct pool_page_info *)(p->mark + bitmap_words(capacity));
	p->summary_levels = summary_shape(capacity, p->words);
	uint64_t *sum = (uint64_t *)((uint8_t *)p->info + info_bytes(capacity));
	for (int k = 0; k < p->summary_levels; k++) {
		p->full[k] = sum;
		sum += p->words[k + 1];
	}
	p->mapped = false;
	p->fresh = 0;
	p->low = 0;
	memset(&p->live, 0, sizeof(p->live));
	return 0;
}

int pool_init(struct pool *p, void *mem, uint32_t capacity, uint64_t pa_base)
{
	if (!pool_args_ok(mem, capacity, pa_base))
		return -EINVAL;
	memset(mem, 0, pool_bytes(capacity));
	return pool_setup(p, mem, capacity, pa_base);
}

int pool_init_zeroed(struct pool *p, void *mem, uint32_t capacity, uint64_t pa_base)
{
	return pool_setup(p, mem, capacity, pa_base);
}

int pool_init_mmap(struct pool *p, uint32_t capacity, uint64_t pa_base)
{
	if (capacity == 0)
		return -EINVAL;
	void *mem = mmap(NULL, pool_bytes(capacity), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return -ENOMEM;
	int ret = pool_setup(p, mem, capacity, pa_base); /* mmap memory is zero */
	if (ret) {
		munmap(mem, pool_bytes(capacity));
		return ret;
	}
	p->mapped = true;
	return 0;
}

int pool_prefault(struct pool *p)
{
	size_t bytes = pool_bytes(p->room);
#ifdef MADV_POPULATE_WRITE
	if (madvise(p->base, bytes, MADV_POPULATE_WRITE) == 0)
		return 0;
	if (errno != EINVAL) /* EINVAL: a kernel before 5.14; touch instead */
		return -errno;
#endif
	/* One write per page faults it in; the pool's memory is zero and stays so. */
	for (size_t off = 0; off < bytes; off += PT_PAGE_SIZE) {
		volatile uint8_t *b = p->base + off;
		*b = *b;
	}
	return 0;
}

/* Deferral off, nothing retired, the retire list's memory kept. Retired
 * pages were taken, so their bits are below fresh. */
static void live_reset(struct pool *p)
{
	struct pool_live *l = &p->live;
	if (l->ring)
		memset(l->retired, 0, bitmap_words(p->fresh) * sizeof(uint64_t));
	l->on = l->reclaiming = false;
	l->head = l->count = l->peak = 0;
	l->epoch = l->reclaimed = 0;
}

int pool_reset(struct pool *p, uint32_t capacity, uint64_t pa_base)
{
	if (!p->base || !capacity || capacity > p->room || (pa_base & (PT_PAGE_SIZE - 1)) ||
	    pa_base > (1ull << 52) - (uint64_t)capacity * PT_PAGE_SIZE)
		return -EINVAL;
	/* Pages at and above fresh were never taken since the memory was zero. */
	for (uint32_t i = 0; i < p->fresh; i++) {
		struct pool_page_info *info = &p->info[i];
		uint64_t *pg = page_at(p, i);
		if (p->in_use[i / 64] & (1ull << (i % 64))) {
			if (info->lo < info->hi)
				memset(pg + info->lo, 0, (size_t)(info->hi - info->lo) * sizeof(*pg));
		} else if (info->dirty) {
			memset(pg, 0, PT_PAGE_SIZE);
		}
		*info = (struct pool_page_info){ 0 };
	}
	size_t words = bitmap_words(p->fresh);
	memset(p->in_use, 0, words * sizeof(uint64_t));
	memset(p->mark, 0, words * sizeof(uint64_t)); /* the checker's marks are on pages taken */
	for (int k = 0; k < p->summary_levels; k++) { /* the summary words over those */
		words = (words + 63) / 64;
		memset(p->full[k], 0, words * sizeof(uint64_t));
	}
	live_reset(p); /* deferral ends with the pool's use: pool_defer starts it afresh */
	p->capacity = capacity;
	p->pa_base = pa_base;
	p->used = 0;
	p->peak = 0;
	p->fresh = 0;
	p->low = 0;
	return 0;
}

void pool_destroy(struct pool *p)
{
	if (p->mapped && p->base)
		munmap(p->base, pool_bytes(p->room));
	if (p->live.ring)
		munmap(p->live.ring, p->live.bytes);
	memset(p, 0, sizeof(*p));
}

#define NO_PAGE UINT32_MAX

/* The free page with the lowest index below the capacity, or NO_PAGE: down
 * the summary levels, the first word that is not all ones at each. A word
 * past the end reads as free in the level above; reaching one means every
 * page before it is taken. */
uint32_t pool_lowest_free(const struct pool *p)
{
	uint64_t w = 0;
	for (int k = p->summary_levels - 1; k >= 0; k--) {
		uint64_t free_bits = ~p->full[k][w];
		if (!free_bits)
			return NO_PAGE;
		w = w * 64 + (uint64_t)__builtin_ctzll(free_bits);
		if (w >= p->words[k])
			return NO_PAGE;
	}
	uint64_t free_bits = ~p->in_use[w];
	if (!free_bits)
		return NO_PAGE;
	uint64_t index = w * 64 + (uint64_t)__builtin_ctzll(free_bits);
	return index < p->capacity ? (uint32_t)index : NO_PAGE;
}

/* The page's in-use word has just filled up: set its summary bit, and each
 * one above whose word fills up in turn. */
void pool_mark_full(struct pool *p, uint32_t index)
{
	uint64_t w = index / 64;
	uint64_t *word = &p->in_use[w];
	for (int k = 0; k < p->summary_levels && *word == ~0ull; k++) {
		word = &p->full[k][w / 64];
		*word |= 1ull << (w % 64);
		w /= 64;
	}
}

/* The page's in-use word is full and is about to lose a bit: clear its
 * summary bit, and each one above whose word was full in turn. */
void pool_mark_not_full(struct pool *p, uint32_t index)
{
	uint64_t w = index / 64;
	bool was_full = true;
	for (int k = 0; k < p->summary_levels && was_full; k++) {
		uint64_t *word = &p->full[k][w / 64];
		was_full = *word == ~0ull;
		*word &= ~(1ull << (w % 64));
		w /= 64;
	}
}

bool pool_page_is_zero(const uint64_t *page)
{
	for (int i = 0; i < PT_ENTRIES; i++)
		if (page[i])
			return false;
	return true;
}

uint64_t *pool_page(const struct pool *p, uint64_t pa)
{
	if (pa < p->pa_base || (pa & (PT_PAGE_SIZE - 1)) || (pa - p->pa_base) / PT_PAGE_SIZE >= p->capacity)
		return NULL;
	return (uint64_t *)(p->base + (pa - p->pa_base));
}

bool pool_pa_in_use(const struct pool *p, uint64_t pa)
{
	uint64_t *page = pool_page(p, pa);
	if (!page)
		return false;
	uint32_t index = page_index(p, page);
	return p->in_use[index / 64] & (1ull << (index % 64));
}

/* ---- deferred reclamation ---- */

int pool_defer(struct pool *p)
{
	if (pool_deferred(p))
		return 0;
	if (!p->live.ring) { /* room entries: pool_reset may raise the capacity up to it */
		size_t ring = (size_t)p->room * sizeof(uint32_t);
		ring = (ring + 7) & ~(size_t)7;
		size_t bytes = ring + (size_t)p->room * sizeof(uint64_t) + bitmap_words(p->room) * sizeof(uint64_t);
		void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem == MAP_FAILED)
			return -ENOMEM;
		p->live.ring = mem;
		p->live.ring_epoch = (uint64_t *)((uint8_t *)mem + ring);
		p->live.retired = p->live.ring_epoch + p->room;
		p->live.bytes = bytes;
	}
	p->live.head = p->live.count = p->live.peak = 0;
	p->live.on = true;
	__atomic_store_n(&p->live.epoch, 1, __ATOMIC_SEQ_CST);
	return 0;
}

uint64_t pool_epoch(const struct pool *p)
{
	return __atomic_load_n(&p->live.epoch, __ATOMIC_SEQ_CST);
}

uint64_t pool_epoch_advance(struct pool *p)
{
	return __atomic_add_fetch(&p->live.epoch, 1, __ATOMIC_SEQ_CST);
}

/* The page stays in use and untouched: a vCPU may be walking it. The
 * caller has unlinked it (its parent entry now holds a leaf or 0); the
 * fence orders that store before the epoch load, so a vCPU that flushes
 * after reading a later epoch cannot have cached a pointer to it afterwards
 * (x86 lets a load pass an earlier store without it). */
void pool_retire(struct pool *p, uint64_t *page)
{
	struct pool_live *l = &p->live;
	uint32_t index = page_index(p, page);
	PT_ASSERT((uint8_t *)page >= p->base && index < p->capacity);
	PT_ASSERT(p->in_use[index / 64] & (1ull << (index % 64)));
	PT_ASSERT(!(l->retired[index / 64] & (1ull << (index % 64))));
	PT_ASSERT(l->count < p->capacity); /* retired pages are in use: never more */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint32_t slot = (l->head + l->count) % p->capacity;
	l->ring[slot] = index;
	l->ring_epoch[slot] = __atomic_load_n(&l->epoch, __ATOMIC_SEQ_CST);
	l->retired[index / 64] |= 1ull << (index % 64);
	l->count++;
	if (l->count > l->peak)
		l->peak = l->count;
}

uint32_t pool_reclaim(struct pool *p, uint64_t epoch)
{
	struct pool_live *l = &p->live;
	uint32_t n = 0;
	while (l->count && l->ring_epoch[l->head] < epoch) {
		uint32_t index = l->ring[l->head];
		l->retired[index / 64] &= ~(1ull << (index % 64));
		l->head = (l->head + 1) % p->capacity;
		l->count--;
		l->reclaiming = true;
		pool_give(p, page_at(p, index));
		l->reclaiming = false;
		n++;
	}
	l->reclaimed += n;
	return n;
}

bool pool_pa_retired(const struct pool *p, uint64_t pa)
{
	uint64_t *page = pool_page(p, pa);
	if (!page || !pool_deferred(p))
		return false;
	uint32_t index = page_index(p, page);
	return p->live.retired[index / 64] & (1ull << (index % 64));
}

/* The bound. A table at level k (holding level-k entries) sits at position
 * linear_va >> shift(k+1). A unit needs the table at a position when the
 * level-(k+1) entry above it cannot be a single leaf or hole for that unit:
 * the unit covers the entry only in part, or whole but a leaf may not sit at
 * level k+1 (above max_leaf, or PA not congruent to VA modulo the entry
 * size). The tables that exist at any moment are a subset of the positions
 * needed by the units mapped then, plus the unit being mapped or unmapped
 * (a split or a new table only ever happens where that unit is partial or
 * misaligned), plus the root. So the bound is 1 + the number of distinct
 * positions over all units; docs/bound.md has the argument. */

void pool_bound_start(struct pool_bound *b, int levels, bool huge_1g)
{
	memset(b, 0, sizeof(*b));
	b->levels = levels;
	b->max_leaf = huge_1g ? PT_LEVEL_1G : PT_LEVEL_2M;
	b->pages = 1; /* the root */
	if (levels < 4 || levels > PT_BOUND_LEVELS)
		b->err = -EINVAL;
}

/* Counts the positions [first, last] at one level not counted before;
 * positions arrive in ascending order because units do. */
static void bound_count(struct pool_bound *b, int level, uint64_t first, uint64_t last)
{
	uint64_t from = first > b->last[level] ? first : b->last[level];
	if (last >= from) {
		b->pages += last - from + 1;
		b->last[level] = last + 1;
	}
}

int pool_bound_add(struct pool_bound *b, const struct pt_unit *u)
{
	if (b->err)
		return b->err;
	unsigned va_bits = PT_PAGE_SHIFT + 9u * (unsigned)b->levels;
	uint64_t half = 1ull << (va_bits - 1);
	uint64_t mask = (1ull << va_bits) - 1;
	uint64_t lin = u->va & mask;
	bool upper = u->va >= (0ull - half);
	if (u->len == 0 || ((u->va | u->len | u->pa) & (PT_PAGE_SIZE - 1)) ||
	    (!upper && u->va >= half) || u->len > (upper ? mask + 1 - lin : half - lin) ||
	    lin < b->next_va) {
		b->err = -EINVAL;
		return b->err;
	}
	b->next_va = lin + u->len;
	uint64_t end = lin + u->len;
	for (int k = b->levels - 2; k >= 0; k--) {
		int above = k + 1;
		uint64_t size = pt_level_size(above);
		unsigned shift = pt_level_shift(above);
		uint64_t first = lin >> shift, last = (end - 1) >> shift;
		bool leaf_ok = above <= b->max_leaf && ((u->pa - lin) & (size - 1)) == 0;
		if (!leaf_ok) {
			bound_count(b, k, first, last);
			continue;
		}
		bool first_whole = (lin & (size - 1)) == 0 && end >= (first + 1) * size;
		bool last_whole = (end & (size - 1)) == 0 && lin <= last * size;
		if (!first_whole)
			bound_count(b, k, first, first);
		if (!last_whole)
			bound_count(b, k, last, last);
	}
	return 0;
}

int pool_bound_pages(const struct pool_bound *b, uint64_t *pages)
{
	if (b->err)
		return b->err;
	*pages = b->pages;
	return 0;
}

int pool_bound(const struct pt_unit *units, size_t n, int levels, bool huge_1g, uint64_t *pages)
{
	struct pool_bound b;
	pool_bound_start(&b, levels, huge_1g);
	for (size_t i = 0; i < n; i++)
		pool_bound_add(&b, &units[i]);
	return pool_bound_pages(&b, pages);
}
