/* The physical map: lays the usable part of the canonical lower half out in
 * guest-physical space (gVisor's computePhysicalRegions), translates VA to PA
 * and cuts PA space into fault blocks on the absolute grid (gVisor PR 12272).
 * Also parses /proc/self/maps into host regions. Nothing here allocates; the
 * caller hands in every array. */
#include "physmap.h"
#include "pool.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PM_VA_LIMIT     PHYSMAP_VA_END    /* see physmap.h */
#define PM_VA_FIRST     0x1000ull         /* page 0 is never part of the map */
#define PM_PAGE_MASK    0xfffull
#define PM_MIN_BLOCK    (2ull << 20)
#define PM_DEF_BLOCK    (8ull << 30)
#define PM_DEF_RESERVED (4ull << 30)
#define PM_DEF_PA_BITS  48u
#define PM_MIN_PA_BITS  32u
#define PM_MAX_PA_BITS  52u               /* PTE address field ends at bit 51 */

/* Error text for physmap_build. Thread-local so that two builds at init in
 * different threads do not garble each other's message. */
static _Thread_local char pm_why[256];

static int pm_fail(const char **why, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int pm_fail(const char **why, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pm_why, sizeof(pm_why), fmt, ap);
	va_end(ap);
	if (why)
		*why = pm_why;
	return err;
}

/* Last byte of a host region; regions may end exactly at 2^64. */
static uint64_t region_last(const struct region *r) { return r->va + (r->len - 1); }

static int pm_check_config(struct physmap_config *c, const char **why)
{
	if (!c->block_size)
		c->block_size = PM_DEF_BLOCK;
	if (!c->reserved)
		c->reserved = PM_DEF_RESERVED;
	if (!c->pa_bits)
		c->pa_bits = PM_DEF_PA_BITS;
	if (c->pa_bits < PM_MIN_PA_BITS || c->pa_bits > PM_MAX_PA_BITS)
		return pm_fail(why, -EINVAL, "physical map: pa_bits %u out of range [%u, %u]",
			       c->pa_bits, PM_MIN_PA_BITS, PM_MAX_PA_BITS);
	if (c->block_size & (c->block_size - 1))
		return pm_fail(why, -EINVAL, "physical map: block size 0x%llx is not a power of two",
			       (unsigned long long)c->block_size);
	if (c->block_size < PM_MIN_BLOCK || c->block_size > (1ull << c->pa_bits))
		return pm_fail(why, -EINVAL, "physical map: block size 0x%llx outside [0x%llx, 2^%u]",
			       (unsigned long long)c->block_size, PM_MIN_BLOCK, c->pa_bits);
	if (c->reserved >= (1ull << c->pa_bits))
		return pm_fail(why, -EINVAL, "physical map: reserved 0x%llx leaves no PA below 2^%u",
			       (unsigned long long)c->reserved, c->pa_bits);
	return 0;
}

static int pm_check_region(const struct region *r, size_t i, const char **why)
{
	if (r->len == 0 || (r->va & PM_PAGE_MASK) || (r->len & PM_PAGE_MASK))
		return pm_fail(why, -EINVAL, "physical map: region %zu va 0x%llx len 0x%llx is empty or not 4 KiB aligned",
			       i, (unsigned long long)r->va, (unsigned long long)r->len);
	if (region_last(r) < r->va)
		return pm_fail(why, -EINVAL, "physical map: region %zu va 0x%llx len 0x%llx wraps",
			       i, (unsigned long long)r->va, (unsigned long long)r->len);
	if ((unsigned)r->kind > REGION_EXCLUDED)
		return pm_fail(why, -EINVAL, "physical map: region %zu va 0x%llx has bad kind %d",
			       i, (unsigned long long)r->va, (int)r->kind);
	return 0;
}

/* Heap sort by va: O(n log n) for any input, in place, no recursion, no
 * allocation (glibc's qsort may malloc). */
static void pm_sift(struct region *a, size_t root, size_t n)
{
	for (;;) {
		size_t child = 2 * root + 1;
		if (child >= n)
			return;
		if (child + 1 < n && a[child + 1].va > a[child].va)
			child++;
		if (a[root].va >= a[child].va)
			return;
		struct region t = a[root];
		a[root] = a[child];
		a[child] = t;
		root = child;
	}
}

static void pm_sort(struct region *a, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		pm_sift(a, i, n);
	for (size_t end = n; end > 1; end--) {
		struct region t = a[0];
		a[0] = a[end - 1];
		a[end - 1] = t;
		pm_sift(a, 0, end - 1);
	}
}

/* Layout under construction: VA ranges first, PA assigned afterwards. */
struct pm_out {
	struct phys_region *r;
	size_t count, cap;
};

/* Appends [va, va+len) of kind, merging with a VA-contiguous neighbour of the
 * same kind: a split only where the kind changes. */
static int pm_emit(struct pm_out *o, uint64_t va, uint64_t len, enum region_kind kind)
{
	if (len == 0)
		return 0;
	if (o->count) {
		struct phys_region *p = &o->r[o->count - 1];
		if (p->kind == kind && p->va + p->len == va) {
			p->len += len;
			return 0;
		}
	}
	if (o->count == o->cap)
		return -ENOSPC;
	o->r[o->count++] = (struct phys_region){ .va = va, .len = len, .pa = 0, .kind = kind };
	return 0;
}

/* The VA side: [PM_VA_FIRST, PM_VA_LIMIT) minus excluded, cut by kind. */
static int pm_cut(struct pm_out *o, const struct region *h, size_t n)
{
	uint64_t cursor = PM_VA_FIRST;
	int err = 0;

	for (size_t i = 0; i < n && !err && cursor < PM_VA_LIMIT; i++) {
		uint64_t start = h[i].va, last = region_last(&h[i]);
		if (last < cursor)
			continue;
		if (start < cursor)
			start = cursor;
		if (start >= PM_VA_LIMIT)
			break;
		uint64_t end = last >= PM_VA_LIMIT - 1 ? PM_VA_LIMIT : last + 1;
		err = pm_emit(o, cursor, start - cursor, REGION_NORMAL);
		if (!err && h[i].kind != REGION_EXCLUDED)
			err = pm_emit(o, start, end - start, h[i].kind);
		cursor = end;
	}
	if (!err && cursor < PM_VA_LIMIT)
		err = pm_emit(o, cursor, PM_VA_LIMIT - cursor, REGION_NORMAL);
	return err;
}

/* Smallest address >= at that is congruent to va modulo bs. */
static uint64_t pm_congruent(uint64_t at, uint64_t va, uint64_t bs)
{
	uint64_t pa = (at & ~(bs - 1)) + (va & (bs - 1));
	return pa >= at ? pa : pa + bs;
}

/* The PA side, in ascending VA order. Values stay below 2^54 (cursor below
 * 2^52 + 2^47 before each step, block size at most 2^52), so nothing wraps;
 * once past the PA space we only keep counting for the message. */
static int pm_assign(struct pm_out *o, const struct physmap_config *c, const char **why)
{
	const uint64_t space = 1ull << c->pa_bits;
	const uint64_t cap = 1ull << 62;
	uint64_t cursor = c->reserved, vsize = 0;
	bool fits = true;

	for (size_t i = 0; i < o->count; i++) {
		struct phys_region *r = &o->r[i];
		vsize += r->len;
		if (cursor >= cap)
			continue;
		r->pa = pm_congruent(cursor, r->va, c->block_size);
		cursor = r->pa + r->len;
		if (cursor > space)
			fits = false;
	}
	if (fits)
		return 0;
	return pm_fail(why, -E2BIG,
		       "physical map: VA space needed 0x%llx (%llu GiB in %zu regions; with alignment padding PA would end at %s0x%llx) "
		       "exceeds PA space available 0x%llx (%llu GiB: 2^%u minus reserved 0x%llx); exclude more address space",
		       (unsigned long long)vsize, (unsigned long long)(vsize >> 30), o->count,
		       cursor >= cap ? ">= " : "", (unsigned long long)cursor,
		       (unsigned long long)(space - c->reserved), (unsigned long long)((space - c->reserved) >> 30),
		       c->pa_bits, (unsigned long long)c->reserved);
}

int physmap_build(struct physmap *pm, const struct physmap_config *cfg,
		  const struct region *host, size_t n, struct region *host_sorted,
		  struct phys_region *out, size_t cap, const char **why)
{
	struct physmap_config c = cfg ? *cfg : (struct physmap_config){ 0 };
	struct pm_out o = { .r = out, .count = 0, .cap = cap };
	int err;

	if (!pm || (n && (!host || !host_sorted)) || (cap && !out))
		return pm_fail(why, -EINVAL, "physical map: NULL argument");
	err = pm_check_config(&c, why);
	for (size_t i = 0; i < n && !err; i++)
		err = pm_check_region(&host[i], i, why);
	if (err)
		return err;
	if (n && host_sorted != host)
		memmove(host_sorted, host, n * sizeof(*host));
	pm_sort(host_sorted, n);
	for (size_t i = 1; i < n; i++) {
		const struct region *a = &host_sorted[i - 1], *b = &host_sorted[i];
		if (region_last(a) >= b->va)
			return pm_fail(why, -EINVAL,
				       "physical map: regions overlap: va 0x%llx len 0x%llx and va 0x%llx len 0x%llx",
				       (unsigned long long)a->va, (unsigned long long)a->len,
				       (unsigned long long)b->va, (unsigned long long)b->len);
	}
	err = pm_cut(&o, host_sorted, n);
	if (err)
		return pm_fail(why, err, "physical map: more than %zu physical regions", cap);
	err = pm_assign(&o, &c, why);
	if (err)
		return err;
	*pm = (struct physmap){ .cfg = c, .regions = out, .count = o.count,
				.host = host_sorted, .host_count = n };
	return 0;
}

/* Index of the region holding va (VA-sorted), or count. */
static size_t pm_find_va(const struct physmap *pm, uint64_t va)
{
	size_t lo = 0, hi = pm->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct phys_region *r = &pm->regions[mid];
		if (va < r->va)
			hi = mid;
		else if (va - r->va >= r->len)
			lo = mid + 1;
		else
			return mid;
	}
	return pm->count;
}

/* Index of the region holding pa; regions are PA-sorted too. */
static size_t pm_find_pa(const struct physmap *pm, uint64_t pa)
{
	size_t lo = 0, hi = pm->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct phys_region *r = &pm->regions[mid];
		if (pa < r->pa)
			hi = mid;
		else if (pa - r->pa >= r->len)
			lo = mid + 1;
		else
			return mid;
	}
	return pm->count;
}

int physmap_translate(const struct physmap *pm, uint64_t va, uint64_t *pa)
{
	size_t i = pm_find_va(pm, va);

	if (i == pm->count)
		return -EFAULT;
	*pa = pm->regions[i].pa + (va - pm->regions[i].va);
	return 0;
}

/* The block of region i holding pa: the absolute grid cell of pa trimmed to
 * the region. Because PA and VA are congruent modulo the block size, the
 * block is also grid-aligned in VA, so its edges fall on 1 GiB / 2 MiB
 * boundaries whenever the region's own edges do. */
static void pm_block(const struct physmap *pm, size_t i, uint64_t pa, struct phys_block *b)
{
	const struct phys_region *r = &pm->regions[i];
	uint64_t cell = pa & ~(pm->cfg.block_size - 1);
	uint64_t start = cell > r->pa ? cell : r->pa;
	uint64_t end = r->pa + r->len;

	if (cell + pm->cfg.block_size < end)
		end = cell + pm->cfg.block_size;
	b->pa = start;
	b->va = r->va + (start - r->pa);
	b->len = end - start;
	b->kind = r->kind;
	b->region = i;
}

int physmap_fault_block(const struct physmap *pm, uint64_t pa, struct phys_block *b)
{
	size_t i = pm_find_pa(pm, pa);

	if (i == pm->count)
		return -EFAULT;
	pm_block(pm, i, pa, b);
	return 0;
}

const struct region *physmap_host_region(const struct physmap *pm, uint64_t va)
{
	size_t lo = 0, hi = pm->host_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct region *h = &pm->host[mid];
		if (va < h->va)
			hi = mid;
		else if (va > region_last(h))
			lo = mid + 1;
		else
			return h;
	}
	return NULL;
}

int physmap_for_each_block(const struct physmap *pm, int (*fn)(void *ctx, const struct phys_block *b), void *ctx)
{
	for (size_t i = 0; i < pm->count; i++) {
		const struct phys_region *r = &pm->regions[i];
		for (uint64_t pa = r->pa; pa < r->pa + r->len;) {
			struct phys_block b;
			pm_block(pm, i, pa, &b);
			int ret = fn(ctx, &b);
			if (ret)
				return ret;
			pa = b.pa + b.len;
		}
	}
	return 0;
}

/* Streaming bound over the blocks, skipping full blocks that cannot add a
 * table position (2 MiB blocks over 128 TiB are 2^26 blocks; this feeds one
 * per GiB). A full block (len == block size: aligned in VA, PA congruent)
 * needs tables only at levels whose entries are larger than the block, at
 * the positions of the entries holding it -- provided no entry size up to
 * the block size sits above the highest leaf (else it also needs one table
 * per such entry inside it, and nothing is skipped). So a full block adds
 * nothing when the previous block fed lies in the same entry of the
 * smallest size above the block size: that block was counted at all of
 * those positions already (a partial or full unit counts every position of
 * an entry it does not fill). test_physmap checks this against feeding
 * every block. */
static int pm_bound_unit(struct pool_bound *b, uint64_t va, uint64_t len, uint64_t pa)
{
	const struct pt_unit u = { .va = va, .len = len, .pa = pa };
	return pool_bound_add(b, &u);
}

/* Feeds the blocks of region r: every partial block, and of the full ones
 * the first in each group (1 << group_shift bytes of VA; 0: all). */
static int pm_bound_region(struct pool_bound *b, const struct phys_region *r, uint64_t bs, unsigned group_shift)
{
	uint64_t va = r->va, end = r->va + r->len;
	uint64_t full_end = end & ~(bs - 1);
	const uint64_t to_pa = r->pa - r->va;   /* wraps harmlessly: PA = VA + to_pa */
	int err = 0;

	if (va & (bs - 1)) {   /* partial first block */
		uint64_t next = (va | (bs - 1)) + 1;
		if (next > end)
			next = end;
		err = pm_bound_unit(b, va, next - va, va + to_pa);
		va = next;
	}
	while (!err && va < full_end) {
		err = pm_bound_unit(b, va, bs, va + to_pa);
		uint64_t next = va + bs;
		if (group_shift) {
			uint64_t group_end = ((va >> group_shift) + 1) << group_shift;
			if (group_end > next)
				next = group_end < full_end ? group_end : full_end;
		}
		va = next;
	}
	if (!err && va < end)  /* partial last block */
		err = pm_bound_unit(b, va, end - va, va + to_pa);
	return err;
}

static unsigned pm_group_shift(uint64_t block_size, int levels, bool huge_1g)
{
	int max_leaf = huge_1g ? 2 : 1;   /* PT_LEVEL_1G : PT_LEVEL_2M */

	if (block_size >= (1ull << (12 + 9 * (max_leaf + 1))))
		return 0;
	for (int k = 1; k < levels; k++)
		if ((1ull << (12 + 9 * k)) > block_size)
			return 12u + 9u * (unsigned)k;
	return 0;
}

int physmap_bound(const struct physmap *pm, bool legacy, int levels, bool huge_1g, uint64_t *pages)
{
	const uint64_t bs = pm->cfg.block_size;
	const unsigned group_shift = pm_group_shift(bs, levels, huge_1g);
	struct pool_bound b;
	int err = 0;

	/* Units in ascending VA order: regions are sorted by VA. */
	pool_bound_start(&b, levels, huge_1g);
	for (size_t i = 0; i < pm->count && !err; i++) {
		const struct phys_region *r = &pm->regions[i];
		if (legacy)
			err = pm_bound_unit(&b, r->va, r->len, r->pa);
		else
			err = pm_bound_region(&b, r, bs, group_shift);
	}
	if (err)
		return err;
	return pool_bound_pages(&b, pages);
}

/* ---- /proc/self/maps ---- */

struct pm_cursor {
	const char *p, *end;
};

static bool cur_more(const struct pm_cursor *c) { return c->p < c->end; }

static int cur_hex(struct pm_cursor *c, uint64_t *v)
{
	uint64_t x = 0;
	int digits = 0;

	for (; cur_more(c); c->p++, digits++) {
		char ch = *c->p;
		unsigned d;
		if (ch >= '0' && ch <= '9')
			d = (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			d = (unsigned)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			d = (unsigned)(ch - 'A' + 10);
		else
			break;
		if (digits == 16)
			return -EINVAL;
		x = x << 4 | d;
	}
	if (!digits)
		return -EINVAL;
	*v = x;
	return 0;
}

static int cur_char(struct pm_cursor *c, char ch)
{
	if (!cur_more(c) || *c->p != ch)
		return -EINVAL;
	c->p++;
	return 0;
}

static void cur_spaces(struct pm_cursor *c)
{
	while (cur_more(c) && (*c->p == ' ' || *c->p == '\t'))
		c->p++;
}

/* A non-empty run of characters other than blanks. */
static int cur_word(struct pm_cursor *c)
{
	const char *start = c->p;

	while (cur_more(c) && *c->p != ' ' && *c->p != '\t')
		c->p++;
	return c->p > start ? 0 : -EINVAL;
}

static bool perm_ok(char ch, char want) { return ch == want || ch == '-'; }

/* "start-end perms offset dev inode [name]"; the name (which may hold
 * spaces, or end in " (deleted)") is the rest of the line. */
static int pm_parse_line(struct pm_cursor *c, struct region *r)
{
	uint64_t start, end, offset;
	const char *perms;

	if (cur_hex(c, &start) || cur_char(c, '-') || cur_hex(c, &end) || cur_char(c, ' '))
		return -EINVAL;
	if (c->end - c->p < 5)
		return -EINVAL;
	perms = c->p;
	if (!perm_ok(perms[0], 'r') || !perm_ok(perms[1], 'w') || !perm_ok(perms[2], 'x') ||
	    (perms[3] != 'p' && perms[3] != 's') || perms[4] != ' ')
		return -EINVAL;
	c->p += 5;
	/* offset, device (major:minor), inode */
	if (cur_hex(c, &offset) || cur_char(c, ' ') || cur_word(c) || cur_char(c, ' ') || cur_word(c))
		return -EINVAL;
	if (end <= start || ((start | end) & PM_PAGE_MASK))
		return -EINVAL;
	cur_spaces(c);
	size_t name_len = (size_t)(c->end - c->p);
	r->va = start;
	r->len = end - start;
	/* Not writable on the host, not writable in the guest (---p guard pages
	 * and --xp code included): permissions never exceed the region's. */
	r->kind = perms[1] == '-' ? REGION_RO : REGION_NORMAL;
	/* [vsyscall] lives in the upper half on x86-64 and cannot be given to
	 * KVM (get_user_pages fails on it); anything else from PHYSMAP_VA_END up is
	 * outside the lower half the map covers. */
	if ((name_len == 10 && !memcmp(c->p, "[vsyscall]", 10)) || start >= PM_VA_LIMIT)
		r->kind = REGION_EXCLUDED;
	return 0;
}

int physmap_parse_maps(const char *text, size_t len, struct region *out, size_t cap, size_t *n, size_t *bad_line)
{
	size_t count = 0, line = 0;
	const char *p = text, *end = text + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		struct pm_cursor c = { .p = p, .end = eol };
		struct region r;
		line++;
		p = nl ? nl + 1 : end;
		if (eol == c.p)
			continue;               /* blank line: nothing to say */
		if (pm_parse_line(&c, &r)) {
			if (bad_line)
				*bad_line = line;
			return -EINVAL;
		}
		if (count == cap)
			return -ENOSPC;
		out[count++] = r;
	}
	*n = count;
	return 0;
}

unsigned physmap_cpu_pa_bits(void)
{
#if defined(__x86_64__) || defined(__i386__)
	unsigned a, b, c, d;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000000u), "c"(0u));
	if (a >= 0x80000008u) {
		__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000008u), "c"(0u));
		if ((a & 0xff) >= PM_MIN_PA_BITS && (a & 0xff) <= PM_MAX_PA_BITS)
			return a & 0xff;
	}
#endif
	return PM_DEF_PA_BITS;
}
