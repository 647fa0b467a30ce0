/* The page-table engine: one iterative walker and its visitors.
 *
 * Map and unmap share one visitor (unmap is "map to nothing") and run in two
 * passes over the same walker: a counting pass that changes nothing and tells
 * how many table pages the operation takes at most, then, if the pool has
 * them, the writing pass, which therefore cannot fail half-way. On the way
 * back up, every table the walk went through is settled: freed when empty,
 * collapsed into one huge leaf when uniform (up to the first table that
 * stays once the range is done: nothing above it can change). That keeps
 * the tables canonical: exactly those the current mapping needs, whatever
 * the history.
 *
 * Bookkeeping: the pool keeps, per table page, the number of present entries
 * (pool_count). Every entry write below keeps it exact: single entries
 * through entry_set, runs of 4 KiB entries in set_leaf_run, a table filled
 * by install_table (a split, or a page table a map covers whole). So
 * "empty" is count == 0 and a table is scanned for uniformity only when
 * count == 512; settling a table is O(1) otherwise. A non-present entry is always written as 0, so a table whose
 * count reaches 0 is all zero and the pool need not clear it again. */
#include "pt.h"

#include <errno.h>
#include <string.h>

#include "pool.h"
#include "pt_assert.h"
#include "pt_internal.h"

/* Intermediate entries allow everything; the leaf decides the permissions. */
#define PTE_TABLE_FLAGS (PTE_P | PTE_RW | PTE_US)
#define PTE_LEAF_MATCH (~PTE_HW_BITS & ~PTE_ADDR_MASK)

static unsigned va_bits(const struct pt *pt)
{
	return PT_PAGE_SHIFT + 9u * (unsigned)pt->levels;
}

uint64_t pt_linear(const struct pt *pt, uint64_t va)
{
	return va & ((1ull << va_bits(pt)) - 1);
}

uint64_t pt_canonical(const struct pt *pt, uint64_t linear)
{
	unsigned bits = va_bits(pt);
	if (linear & (1ull << (bits - 1)))
		return linear | ~((1ull << bits) - 1);
	return linear;
}

uint64_t *pt_child(const struct pt *pt, uint64_t pte)
{
	return pool_page(pt->pool, pte & PTE_ADDR_MASK);
}

/* Inlined into the walks: a map writes one per leaf. */
static inline uint64_t make_leaf(uint64_t pa, int level, uint32_t opts)
{
	uint64_t pte = pa | PTE_P;
	if (level > PT_LEVEL_4K)
		pte |= PTE_PS;
	if (opts & PT_W)
		pte |= PTE_RW;
	if (!(opts & PT_X))
		pte |= PTE_NX;
	if (opts & PT_USER)
		pte |= PTE_US;
	if (opts & PT_GLOBAL)
		pte |= PTE_G;
	if (opts & PT_WC)
		pte |= PTE_PWT;
	if (opts & PT_UC)
		pte |= PTE_PWT | PTE_PCD;
	return pte;
}

uint64_t pte_make_leaf(uint64_t pa, int level, uint32_t opts)
{
	return make_leaf(pa, level, opts);
}

uint32_t pte_leaf_opts(uint64_t pte, int level)
{
	(void)level;
	uint32_t opts = PT_R;
	if (pte & PTE_RW)
		opts |= PT_W;
	if (!(pte & PTE_NX))
		opts |= PT_X;
	if (pte & PTE_US)
		opts |= PT_USER;
	if (pte & PTE_G)
		opts |= PT_GLOBAL;
	if ((pte & (PTE_PWT | PTE_PCD)) == PTE_PWT)
		opts |= PT_WC;
	else if ((pte & (PTE_PWT | PTE_PCD)) == (PTE_PWT | PTE_PCD))
		opts |= PT_UC;
	return opts;
}

/* ---- the walker ---- */

/* A visitor of this file: inlined into the walk specialized for it. */
#define VISITOR static inline __attribute__((always_inline))

/* The one walker. It is always inlined, so that each caller in this file,
 * which passes a constant `ops`, gets it specialized: the visitor calls are
 * direct (and small visitors inlined), which halves the instructions of a
 * small map. Everyone else calls the out-of-line pt_walk. `trusted`: the
 * tables are the engine's own, so a table entry is a pool page without
 * checking (the checkers' walks check it). */
static inline __attribute__((always_inline)) int walk(const struct pt *pt, uint64_t start, uint64_t end,
						     const struct pt_walk_ops *ops, void *priv, bool trusted)
{
	/* The table the walk is in at each level: all the state it keeps in
	 * memory. Where the walk leaves a table, and the entry above that points
	 * to it, follow from the address (a table at `level` covers one entry
	 * of level + 1), so they are computed, not stored: every store here
	 * queues behind the map's own entry stores, which miss in the cache. */
	uint64_t *table[PT_MAX_LEVELS];
	int top = pt->levels - 1;
	int level = top;
	uint64_t addr = start;

	table[top] = pt->root;
	while (addr < end) {
		uint64_t next = pt_addr_end(addr, end, level);
		uint64_t *pte = &table[level][pt_index(addr, level)];
		int ret = 0;
		if (level == PT_LEVEL_4K && ops->leaf_run) {
			/* The whole run, holes included, without reading it here: a
			 * table's entries are often not in the cache, and the visitor
			 * may know from the pool's bookkeeping what they hold. */
			next = pt_addr_end(addr, end, level + 1);
			ret = ops->leaf_run(priv, pte, (unsigned)((next - addr) >> PT_PAGE_SHIFT), addr);
		} else if (ops->skip_holes && !pte_present(*pte)) {
			/* Jump over the run of holes in one tight loop. */
			uint64_t stop = level == top ? end : pt_addr_end(addr, end, level + 1);
			while (next < stop && !pte_present(table[level][pt_index(next, level)]))
				next = pt_addr_end(next, stop, level);
		} else {
			ret = ops->entry(priv, pte, level, addr, next);
		}
		if (ret == PT_WALK_DESCEND) {
			PT_ASSERT(pte_is_table(*pte, level));
			level--;
			PT_ASSERT(pt_child(pt, *pte) != NULL);
			table[level] = trusted ? pool_page_at(pt->pool, *pte & PTE_ADDR_MASK) : pt_child(pt, *pte);
			continue;
		}
		if (ret)
			return ret;
		addr = next;
		/* Leave each table whose range is done: addr reached the end, or
		 * the end of the level + 1 entry the table stands for. */
		while (level < top && (addr == end || !(addr & (pt_level_size(level + 1) - 1)))) {
			level++;
			if (!ops->leave)
				continue;
			uint64_t entry_start = (addr - 1) & ~(pt_level_size(level) - 1);
			ret = ops->leave(priv, &table[level][pt_index(entry_start, level)], level, entry_start);
			if (ret)
				return ret;
		}
	}
	return 0;
}

int pt_walk(const struct pt *pt, uint64_t start, uint64_t end, const struct pt_walk_ops *ops, void *priv)
{
	return walk(pt, start, end, ops, priv, false);
}

/* ---- argument checks ---- */

int pt_check_range(const struct pt *pt, uint64_t va, uint64_t len, const char **why)
{
	unsigned bits = va_bits(pt);
	uint64_t half = 1ull << (bits - 1);
	const char *reason = NULL;

	if ((va | len) & (PT_PAGE_SIZE - 1))
		reason = "va and len must be multiples of 4 KiB";
	else if (len == 0)
		reason = "len is zero";
	else if (va + len - 1 < va)
		reason = "va + len wraps";
	else if (va >= half && va < 0ull - half)
		reason = "va is not canonical";
	else if (va < half && va + len - 1 >= half) /* va + len itself may wrap to 0 */
		reason = "range leaves the lower canonical half";
	if (why)
		*why = reason;
	return reason ? -EINVAL : 0;
}

int pt_check_opts(uint32_t opts, const char **why)
{
	const char *reason = NULL;
	if (opts & ~PT_OPTS_ALL)
		reason = "unknown option bits";
	else if (!(opts & PT_R))
		reason = "no access: opts need r";
	else if ((opts & PT_W) && (opts & PT_X))
		reason = "w+x refused";
	else if ((opts & PT_WC) && (opts & PT_UC))
		reason = "two memory types";
	if (why)
		*why = reason;
	return reason ? -EINVAL : 0;
}

int pt_check_map(const struct pt *pt, uint64_t va, uint64_t len, uint64_t pa, uint32_t opts, const char **why)
{
	if (pt_check_range(pt, va, len, why) || pt_check_opts(opts, why))
		return -EINVAL;
	const char *reason = NULL;
	if (pa & (PT_PAGE_SIZE - 1))
		reason = "pa must be a multiple of 4 KiB";
	else if (pa >= (1ull << 52) || len > (1ull << 52) - pa)
		reason = "pa + len reaches 2^52";
	if (why)
		*why = reason;
	return reason ? -EINVAL : 0;
}

/* The common case of the checks above in a few instructions and one
 * branch: a range in the lower half, options without a conflict. false
 * means "ask the full check" (which also says why), never "invalid". */
static inline bool range_fast_ok(const struct pt *pt, uint64_t va, uint64_t len)
{
	uint64_t half = 1ull << (va_bits(pt) - 1);
	/* len - 1 < half - va: len > 0 and the range ends in the lower half */
	return !((va | len) & (PT_PAGE_SIZE - 1)) & (va < half) & (len - 1 < half - va);
}

static inline bool map_fast_ok(const struct pt *pt, uint64_t va, uint64_t len, uint64_t pa, uint32_t opts)
{
	bool opts_ok = !(opts & ~PT_OPTS_ALL) & !!(opts & PT_R) & ((opts & (PT_W | PT_X)) != (PT_W | PT_X)) &
		       ((opts & (PT_WC | PT_UC)) != (PT_WC | PT_UC));
	bool pa_ok = !(pa & (PT_PAGE_SIZE - 1)) & (pa < (1ull << 52)) & (len <= (1ull << 52) - pa);
	return range_fast_ok(pt, va, len) & opts_ok & pa_ok;
}

/* ---- map and unmap: one visitor ---- */

struct set_walk {
	struct pt *pt;
	uint64_t end;    /* linear end of the operation */
	uint64_t pa_off; /* a map's pa - va: address addr maps to pa addr + pa_off (mod 2^64) */
	uint64_t leaf_4k; /* a 4 KiB leaf's bits but the address (make_leaf once per operation;
			   * a huge leaf adds PTE_PS) */
	bool clear;      /* unmap */
	uint64_t pages;  /* counting pass: table pages needed */
};

/* Is [addr, next) the whole of a level-`level` entry? */
static inline bool covers_entry(int level, uint64_t addr, uint64_t next)
{
	uint64_t size = pt_level_size(level);
	return !(addr & (size - 1)) && next - addr == size;
}

/* May [addr, next) become one leaf (or one hole, for unmap) at level?
 * `clear` is w->clear, passed apart so that the writing walks, which are
 * specialized for map and for unmap, test it at compile time. */
static inline bool leaf_fits(const struct set_walk *w, bool clear, int level, uint64_t addr, uint64_t next)
{
	if (!covers_entry(level, addr, next))
		return false;
	if (clear)
		return true;
	uint64_t size = pt_level_size(level);
	return level <= w->pt->max_leaf && (w->pa_off & (size - 1)) == 0;
}

/* Tables a wholly covered level-`level` entry needs under it. */
static uint64_t whole_entry_tables(const struct set_walk *w, int level)
{
	uint64_t tables = 0;
	for (int k = 1; k <= level; k++) {
		uint64_t size = pt_level_size(k);
		bool fits = w->clear || (k <= w->pt->max_leaf && (w->pa_off & (size - 1)) == 0);
		tables = fits ? 0 : 1 + PT_ENTRIES * tables;
	}
	return tables;
}

/* Tables needed under a new table at `level` (a split leaf or a fresh one)
 * to hold [start, end). Only the two edges of the range can be partial
 * entries, so at most two ranges go down a level: no recursion needed. */
static uint64_t new_table_needs(const struct set_walk *w, int level, uint64_t start, uint64_t end)
{
	uint64_t lo[2] = { start, 0 }, hi[2] = { end, 0 };
	int n = 1;
	uint64_t tables = 0;

	for (int k = level; k > PT_LEVEL_4K && n; k--) {
		uint64_t size = pt_level_size(k);
		uint64_t whole = whole_entry_tables(w, k);
		uint64_t nlo[2], nhi[2];
		int nn = 0;
		for (int i = 0; i < n; i++) {
			uint64_t a = lo[i], b = hi[i];
			uint64_t a_up = (a + size - 1) & ~(size - 1), b_down = b & ~(size - 1);
			if (a_up > b_down) { /* inside one entry, partial at both ends */
				tables++;
				nlo[nn] = a, nhi[nn++] = b;
				continue;
			}
			if (a != a_up) {
				tables++;
				nlo[nn] = a, nhi[nn++] = a_up;
			}
			if (b != b_down) {
				tables++;
				nlo[nn] = b_down, nhi[nn++] = b;
			}
			tables += (b_down - a_up) / size * whole;
		}
		memcpy(lo, nlo, sizeof(lo));
		memcpy(hi, nhi, sizeof(hi));
		n = nn;
	}
	return tables;
}

VISITOR int count_entry(void *priv, uint64_t *pte, int level, uint64_t addr, uint64_t next)
{
	struct set_walk *w = priv;
	if (pte_is_table(*pte, level)) /* a 4 KiB entry never needs a table */
		return level > PT_LEVEL_2M ? PT_WALK_DESCEND : 0;
	if (leaf_fits(w, w->clear, level, addr, next) || (w->clear && !pte_present(*pte)))
		return 0;
	w->pages += 1 + new_table_needs(w, level - 1, addr, next);
	return 0;
}

/* Index of an entry in its table page. */
static unsigned entry_index(const uint64_t *pte)
{
	return (unsigned)((uintptr_t)pte / sizeof(*pte)) & (PT_ENTRIES - 1);
}

/* Entries [i, j) of the table are present now: widen its extent. */
static void extent_add(struct pool_page_info *info, unsigned i, unsigned j)
{
	if (info->lo >= info->hi) {
		info->lo = (uint16_t)i;
		info->hi = (uint16_t)j;
		return;
	}
	if (i < info->lo)
		info->lo = (uint16_t)i;
	if (j > info->hi)
		info->hi = (uint16_t)j;
}

/* Entries [i, j) of the table were cleared: narrow its extent where that is
 * known without looking (the cleared run was at one end, or nothing is left). */
static void extent_clear(struct pool_page_info *info, unsigned i, unsigned j)
{
	if (info->count == 0) {
		info->lo = info->hi = 0;
		return;
	}
	if (i <= info->lo && j > info->lo)
		info->lo = (uint16_t)j;
	if (j >= info->hi && i < info->hi)
		info->hi = (uint16_t)i;
}

/* Writes one entry of a table page and keeps that table's count and extent.
 * Release order: a vCPU may be walking, and a new table must be filled
 * before it is linked (install_table) or a leaf written before its table is
 * freed. */
static inline void entry_set(struct pool *pool, uint64_t *pte, uint64_t val)
{
	struct pool_page_info *info = pool_info(pool, pte);
	unsigned i = entry_index(pte);
	bool was = pte_present(*pte), now = pte_present(val);
	info->count = (uint16_t)(info->count + now - was);
	PT_ASSERT(info->count <= PT_ENTRIES);
	if (now && !was)
		extent_add(info, i, i + 1);
	else if (was && !now)
		extent_clear(info, i, i + 1);
	__atomic_store_n(pte, val, __ATOMIC_RELEASE);
}

/* Fills a new table with PT_ENTRIES leaves, first, first + step, ... (the
 * address field counts up, the bits stay), and marks it full. */
static inline void fill_leaves(struct pool *pool, uint64_t *table, uint64_t first, uint64_t step)
{
	for (int i = 0; i < PT_ENTRIES; i++, first += step)
		table[i] = first;
	struct pool_page_info *info = pool_info(pool, table);
	info->count = PT_ENTRIES;
	extent_add(info, 0, PT_ENTRIES);
}

/* The first of the leaves that split the leaf `leaf` at `level` one level
 * down (the others follow at that level's size), or 0 when *pte holds no
 * leaf. */
static uint64_t split_first(uint64_t leaf, int level)
{
	if (!pte_present(leaf))
		return 0;
	uint32_t opts = pte_leaf_opts(leaf, level);
	return make_leaf(pte_addr(leaf, level), level - 1, opts);
}

/* Puts a new table under *pte in place of what it held: empty when first is
 * 0, else filled with the leaves first, first + step, ... (a split, or a
 * page table a map covers whole) before it is linked, so that a vCPU walking
 * meanwhile sees the old entry or the full table, never an empty one.
 * Inlined: half the small maps take a table. */
VISITOR void install_table(struct pt *pt, uint64_t *pte, uint64_t first, uint64_t step)
{
	uint64_t *table = NULL;
	int ret = pool_take(pt->pool, &table);
	PT_ASSERT(ret == 0); /* reserved by the counting pass */
	(void)ret;
	if (first)
		fill_leaves(pt->pool, table, first, step);
	entry_set(pt->pool, pte, pool_pa(pt->pool, table) | PTE_TABLE_FLAGS);
}

/* Present entries among ptes[0..n), which are entries [i, i + n) of their
 * table, when the bookkeeping alone tells: the table is empty or full, or
 * the run misses or covers the extent. Else *scan is set and the caller
 * counts them as it writes them. The bookkeeping matters: the run's entries
 * are usually not in the cache, and a map that only stores to them does not
 * wait for them, while a load does. */
static inline unsigned run_present(const struct pool_page_info *info, unsigned i, unsigned n, bool *scan)
{
	unsigned count = info->count;
	*scan = false;
	if (count == 0 || n == PT_ENTRIES || i + n <= info->lo || i >= info->hi)
		return n == PT_ENTRIES ? count : 0;
	if (count == PT_ENTRIES)
		return n;
	if (i <= info->lo && i + n >= info->hi)
		return count;
	*scan = true;
	return 0;
}

/* The writing visitors take `clear` as a constant: each is wrapped twice
 * below, once for map and once for unmap, so each writing walk carries only
 * its own half. */
VISITOR int set_leaf_run(struct set_walk *w, bool clear, uint64_t *ptes, unsigned n, uint64_t addr)
{
	struct pool_page_info *info = pool_info(w->pt->pool, ptes);
	unsigned i = entry_index(ptes);
	bool scan;
	unsigned before = run_present(info, i, n, &scan);
	if (clear) {
		/* One loop that loads and clears (a run known to be all holes
		 * is all zero already, and is left alone). */
		if (scan) {
			for (unsigned k = 0; k < n; k++) {
				before += (unsigned)(ptes[k] & PTE_P);
				ptes[k] = 0;
			}
		} else if (before) {
			for (unsigned k = 0; k < n; k++)
				ptes[k] = 0;
		}
		info->count = (uint16_t)(info->count - before);
		extent_clear(info, i, i + n);
		return 0;
	}
	uint64_t pte = (addr + w->pa_off) | w->leaf_4k;
	if (scan) {
		for (unsigned k = 0; k < n; k++)
			before += (unsigned)(ptes[k] & PTE_P);
	}
	for (unsigned k = 0; k < n; k++, pte += PT_PAGE_SIZE)
		ptes[k] = pte;
	info->count = (uint16_t)(info->count + n - before);
	extent_add(info, i, i + n);
	return 0;
}

VISITOR int set_entry(struct set_walk *w, bool clear, uint64_t *pte, int level, uint64_t addr, uint64_t next)
{
	if (!pte_is_table(*pte, level) && leaf_fits(w, clear, level, addr, next)) {
		PT_ASSERT(level > PT_LEVEL_4K); /* 4 KiB entries go through set_leaf_run */
		entry_set(w->pt->pool, pte, clear ? 0 : (addr + w->pa_off) | w->leaf_4k | PTE_PS);
		return 0;
	}
	if (pte_is_table(*pte, level))
		return PT_WALK_DESCEND;
	if (clear && !pte_present(*pte))
		return 0;
	/* A page table the map covers whole, where no 2 MiB leaf can stand (pa
	 * - va is not 2 MiB aligned): filled and linked in one step, with no
	 * step down, run and settle (a 1 GiB map makes 512 of them). */
	if (!clear && level == PT_LEVEL_2M && covers_entry(level, addr, next)) {
		install_table(w->pt, pte, (addr + w->pa_off) | w->leaf_4k, PT_PAGE_SIZE);
		return 0;
	}
	install_table(w->pt, pte, split_first(*pte, level), pt_level_size(level - 1));
	return PT_WALK_DESCEND;
}

/* Would the table at `level` (entries of that level) be one leaf one level
 * up? All entries leaves with the same options, contiguous from an aligned
 * PA. */
static bool table_is_uniform(const uint64_t *table, int level)
{
	uint64_t first = table[0];
	if (!pte_is_leaf(first, level) || pte_addr(first, level) & (pt_level_size(level + 1) - 1))
		return false;
	uint64_t size = pt_level_size(level);
	for (int i = 1; i < PT_ENTRIES; i++) {
		uint64_t e = table[i];
		if (!pte_is_leaf(e, level) || ((e ^ first) & PTE_LEAF_MATCH) ||
		    pte_addr(e, level) != pte_addr(first, level) + (uint64_t)i * size)
			return false;
	}
	return true;
}

/* Can the table under a level-`level` entry that this walk went through be
 * uniform? A map wrote leaves in it whose pa - va is pa_off, and a uniform
 * table's is a multiple of the level's size: when pa_off is not, the scan
 * is skipped (a 1 GiB map at a misaligned pa settles 512 full tables). */
static inline bool may_be_one_leaf(const struct set_walk *w, bool clear, int level)
{
	return clear || !(w->pa_off & (pt_level_size(level) - 1));
}

/* settle_entry's "nothing left to settle" (a stop, > 0, per the walker's
 * return rule; the writing pass has nothing else to do by then). */
#define SETTLE_DONE 1

/* Leaving the child table of *pte: free it when empty, collapse it into a
 * leaf when full, uniform and a leaf may sit at this level. O(1) from the
 * count unless the table is full. When the table stays and the walk has
 * reached the end of its range, it stops: every table above still holds an
 * entry that is a table (the path to this one), so none of them can be
 * empty or uniform, and settling them would change nothing. A small map or
 * unmap thus settles one table, not one per level. */
VISITOR int settle_entry(struct set_walk *w, bool clear, uint64_t *pte, int level, uint64_t addr)
{
	struct pt *pt = w->pt;
	uint64_t *table = pool_page_at(pt->pool, *pte & PTE_ADDR_MASK);
	unsigned count = *pool_count(pt->pool, table);
	PT_ASSERT(clear || count); /* a map never empties a table */
	if (clear && count == 0) {
		entry_set(pt->pool, pte, 0);
		pool_give(pt->pool, table);
	} else if (count == PT_ENTRIES && level <= pt->max_leaf && may_be_one_leaf(w, clear, level) &&
		   table_is_uniform(table, level - 1)) {
		uint64_t first = table[0];
		entry_set(pt->pool, pte, make_leaf(pte_addr(first, level - 1), level, pte_leaf_opts(first, level - 1)));
		pool_give(pt->pool, table);
	} else if (addr + pt_level_size(level) >= w->end) {
		return SETTLE_DONE;
	}
	return 0;
}

VISITOR int map_leaf_run(void *priv, uint64_t *ptes, unsigned n, uint64_t addr)
{
	return set_leaf_run(priv, false, ptes, n, addr);
}

VISITOR int map_entry(void *priv, uint64_t *pte, int level, uint64_t addr, uint64_t next)
{
	return set_entry(priv, false, pte, level, addr, next);
}

VISITOR int map_settle(void *priv, uint64_t *pte, int level, uint64_t addr)
{
	return settle_entry(priv, false, pte, level, addr);
}

VISITOR int clear_leaf_run(void *priv, uint64_t *ptes, unsigned n, uint64_t addr)
{
	return set_leaf_run(priv, true, ptes, n, addr);
}

VISITOR int clear_entry(void *priv, uint64_t *pte, int level, uint64_t addr, uint64_t next)
{
	return set_entry(priv, true, pte, level, addr, next);
}

VISITOR int clear_settle(void *priv, uint64_t *pte, int level, uint64_t addr)
{
	return settle_entry(priv, true, pte, level, addr);
}

static const struct pt_walk_ops count_ops = { .entry = count_entry };
static const struct pt_walk_ops set_ops = { .entry = map_entry, .leaf_run = map_leaf_run, .leave = map_settle };
/* Unmapping visits only what is there. */
static const struct pt_walk_ops clear_count_ops = { .entry = count_entry, .skip_holes = true };
static const struct pt_walk_ops clear_ops = {
	.entry = clear_entry, .leaf_run = clear_leaf_run, .leave = clear_settle, .skip_holes = true
};

/* Table pages the operation takes at most (the counting pass). Not inlined:
 * its walk's frame and the writing walk's are siblings, never stacked (the
 * fault path runs on a small signal stack). */
static __attribute__((noinline)) uint32_t set_cost(struct pt *pt, uint64_t va, uint64_t end, uint64_t pa_off, bool clear)
{
	struct set_walk w = { .pt = pt, .end = end, .pa_off = pa_off, .clear = clear };
	walk(pt, va, end, clear ? &clear_count_ops : &count_ops, &w, true);
	return (uint32_t)(w.pages > UINT32_MAX ? UINT32_MAX : w.pages);
}

/* A bound on what set_cost returns, from the length alone in O(1): the
 * operation takes at most one table under each entry it touches (fewer: only
 * where it covers an entry in part or no leaf may stand for it), and a range
 * of len bytes touches at most len / size + 2 entries of each level k >= 1
 * (size >= 2 MiB), which sums to less than len / 1 MiB + 2 * levels. */
static uint64_t set_upper(const struct pt *pt, uint64_t len)
{
	return (len >> 20) + 2 * (uint64_t)pt->levels;
}

/* All or nothing: the writing pass starts only when the pool holds what the
 * counting pass says it may take. When the pool holds even set_upper's bound
 * (nearly always: a small operation needs a handful of pages at most), the
 * counting pass could not say otherwise and is skipped; debug builds run it
 * anyway and check the bound. *need: the pages the writing pass may take. */
static inline int reserve(struct pt *pt, uint64_t va, uint64_t end, uint64_t pa_off, bool clear, uint64_t *need)
{
	uint32_t free_pages = pool_free(pt->pool);
	*need = set_upper(pt, end - va);
#ifdef PT_DEBUG
	uint32_t exact = set_cost(pt, va, end, pa_off, clear);
	PT_ASSERT(exact <= *need);
	if (*need > free_pages)
		*need = exact;
#else
	if (*need > free_pages)
		*need = set_cost(pt, va, end, pa_off, clear);
#endif
	return *need > free_pages ? -ENOMEM : 0;
}

/* May the writing pass start without the counting pass? Yes when the pool
 * holds even set_upper's bound; never in debug builds, which always count
 * (reserve checks the bound against the exact count). */
static inline bool pool_holds_bound(const struct pt *pt, uint64_t len)
{
#ifdef PT_DEBUG
	(void)pt, (void)len;
	return false;
#else
	return set_upper(pt, len) <= pool_free(pt->pool);
#endif
}

/* The writing passes, which cannot fail (they return 0, so that the common
 * case of pt_map and pt_unmap is a tail call: no frame, no stores). Not
 * inlined, for the same reason as set_cost. They build the operation from
 * their register arguments, so that it stays in registers: a store here
 * queues behind the map's entry stores, which miss in the cache. */
static __attribute__((noinline)) int map_write(struct pt *pt, uint64_t va, uint64_t end, uint64_t pa_off,
						 uint64_t leaf_4k)
{
	/* The leaf bits come from the caller: built here, the compiler spills
	 * the make_leaf steps to the stack, live across the walk. */
	struct set_walk w = { .pt = pt, .end = end, .pa_off = pa_off, .leaf_4k = leaf_4k };
	walk(pt, va, end, &set_ops, &w, true);
	return 0;
}

static __attribute__((noinline)) int clear_write(struct pt *pt, uint64_t va, uint64_t end)
{
	struct set_walk w = { .pt = pt, .end = end, .clear = true };
	walk(pt, va, end, &clear_ops, &w, true);
	return 0;
}

int pt_map_cost(const struct pt *pt, uint64_t va, uint64_t len, uint64_t pa, uint32_t opts, uint32_t *pages)
{
	if (pt_check_map(pt, va, len, pa, opts, NULL))
		return -EINVAL;
	uint64_t lin = pt_linear(pt, va);
	*pages = set_cost((struct pt *)pt, lin, lin + len, pa - lin, false);
	return 0;
}

int pt_unmap_cost(const struct pt *pt, uint64_t va, uint64_t len, uint32_t *pages)
{
	if (pt_check_range(pt, va, len, NULL))
		return -EINVAL;
	uint64_t lin = pt_linear(pt, va);
	*pages = set_cost((struct pt *)pt, lin, lin + len, 0, true);
	return 0;
}

/* pt_map and pt_unmap but for their common case: full argument checks, the
 * counting pass when needed. */
static __attribute__((noinline)) int map_checked(struct pt *pt, uint64_t va, uint64_t len, uint64_t pa, uint32_t opts)
{
	if (pt_check_map(pt, va, len, pa, opts, NULL))
		return -EINVAL;
	uint64_t lin = pt_linear(pt, va), need;
	if (reserve(pt, lin, lin + len, pa - lin, false, &need))
		return -ENOMEM;
	uint32_t before = pt->pool->used;
	map_write(pt, lin, lin + len, pa - lin, make_leaf(0, PT_LEVEL_4K, opts));
	PT_ASSERT(pt->pool->used <= before + need);
	(void)before;
	return 0;
}

static __attribute__((noinline)) int unmap_checked(struct pt *pt, uint64_t va, uint64_t len)
{
	if (pt_check_range(pt, va, len, NULL))
		return -EINVAL;
	uint64_t lin = pt_linear(pt, va), need;
	if (reserve(pt, lin, lin + len, 0, true, &need))
		return -ENOMEM;
	uint32_t before = pt->pool->used;
	clear_write(pt, lin, lin + len);
	PT_ASSERT(pt->pool->used <= before + need);
	(void)before;
	return 0;
}

int pt_map(struct pt *pt, uint64_t va, uint64_t len, uint64_t pa, uint32_t opts)
{
	/* What the fast check accepts, the full one does too. */
	PT_ASSERT(!map_fast_ok(pt, va, len, pa, opts) || !pt_check_map(pt, va, len, pa, opts, NULL));
	if (map_fast_ok(pt, va, len, pa, opts) && pool_holds_bound(pt, len)) {
		uint64_t lin = pt_linear(pt, va);
		return map_write(pt, lin, lin + len, pa - lin, make_leaf(0, PT_LEVEL_4K, opts));
	}
	return map_checked(pt, va, len, pa, opts);
}

int pt_unmap(struct pt *pt, uint64_t va, uint64_t len)
{
	PT_ASSERT(!range_fast_ok(pt, va, len) || !pt_check_range(pt, va, len, NULL));
	if (range_fast_ok(pt, va, len) && pool_holds_bound(pt, len)) {
		uint64_t lin = pt_linear(pt, va);
		return clear_write(pt, lin, lin + len);
	}
	return unmap_checked(pt, va, len);
}

/* ---- lookup and is-empty ---- */

struct find_walk {
	const struct pt *pt;
	uint64_t *leaf;
	int level;
	uint64_t addr;
};

/* Stops (1) at the first present leaf. */
VISITOR int find_entry(void *priv, uint64_t *pte, int level, uint64_t addr, uint64_t next)
{
	struct find_walk *f = priv;
	(void)next;
	if (pte_is_table(*pte, level))
		return PT_WALK_DESCEND;
	if (!pte_present(*pte))
		return 0;
	f->leaf = pte;
	f->level = level;
	f->addr = addr;
	return 1;
}

static const struct pt_walk_ops find_ops = { .entry = find_entry, .skip_holes = true };

int pt_lookup(const struct pt *pt, uint64_t va, struct pt_leaf *leaf)
{
	if (pt_check_range(pt, va & ~(PT_PAGE_SIZE - 1), PT_PAGE_SIZE, NULL))
		return -EINVAL;
	struct find_walk f = { .pt = pt };
	uint64_t lin = pt_linear(pt, va);
	if (walk(pt, lin, lin + 1, &find_ops, &f, true) != 1)
		return -ENOENT;
	uint64_t size = pt_level_size(f.level);
	uint64_t base = lin & ~(size - 1);
	leaf->va = pt_canonical(pt, base);
	leaf->pa = pte_addr(*f.leaf, f.level);
	leaf->size = size;
	leaf->opts = pte_leaf_opts(*f.leaf, f.level);
	leaf->level = f.level;
	return 0;
}

int pt_is_empty(const struct pt *pt, uint64_t va, uint64_t len, bool *empty)
{
	if (pt_check_range(pt, va, len, NULL))
		return -EINVAL;
	struct find_walk f = { .pt = pt };
	uint64_t lin = pt_linear(pt, va);
	*empty = walk(pt, lin, lin + len, &find_ops, &f, true) != 1;
	return 0;
}

/* ---- whole-table helpers ---- */

static int count_tables_entry(void *priv, uint64_t *pte, int level, uint64_t addr, uint64_t next)
{
	uint64_t *tables = priv;
	(void)addr, (void)next;
	if (!pte_is_table(*pte, level))
		return 0;
	tables[level - 1]++;
	return level > PT_LEVEL_2M ? PT_WALK_DESCEND : 0; /* a page table holds only leaves */
}

void pt_count_tables(const struct pt *pt, uint64_t tables[PT_MAX_LEVELS])
{
	static const struct pt_walk_ops ops = { .entry = count_tables_entry, .skip_holes = true };
	memset(tables, 0, sizeof(uint64_t) * PT_MAX_LEVELS);
	tables[pt->levels - 1] = 1;
	pt_walk(pt, 0, 1ull << va_bits(pt), &ops, tables);
}

uint64_t pt_root_pa(const struct pt *pt)
{
	return pool_pa(pt->pool, pt->root);
}

int pt_init(struct pt *pt, struct pool *pool, int levels, bool huge_1g)
{
	if (levels < 4 || levels > PT_MAX_LEVELS)
		return -EINVAL;
	memset(pt, 0, sizeof(*pt));
	int ret = pool_take(pool, &pt->root);
	if (ret)
		return ret;
	pt->pool = pool;
	pt->levels = levels;
	pt->max_leaf = huge_1g ? PT_LEVEL_1G : PT_LEVEL_2M;
	return 0;
}

void pt_destroy(struct pt *pt)
{
	if (!pt->root)
		return;
	/* Unmapping whole top-level entries never splits, so it cannot fail. */
	clear_write(pt, 0, 1ull << va_bits(pt));
	pool_give(pt->pool, pt->root);
	pt->root = NULL;
}

const char *pt_opts_str(uint32_t opts, char buf[32])
{
	strcpy(buf, (opts & PT_W) ? "rw" : (opts & PT_X) ? "rx" : "r");
	if (opts & PT_USER)
		strcat(buf, ",user");
	if (opts & PT_GLOBAL)
		strcat(buf, ",global");
	if (opts & PT_WC)
		strcat(buf, ",wc");
	if (opts & PT_UC)
		strcat(buf, ",uc");
	return buf;
}
