/* test_physmap: the physical map. Builds layouts (hand-made, adversarial,
 * parsed from saved /proc/self/maps samples in core/tests/maps/ and from this
 * process) and checks every property DESIGN.md and issue 3 promise: covering,
 * sorted, disjoint, merged by kind, congruent, reserved, pa_bits, the exact
 * gVisor placement rule, fault blocks on the absolute grid, bad input gets
 * its errno and changes nothing. On failure the check prints the values. */
#include "physmap.h"
#include "pool.h"
#include "t.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GiB (1ull << 30)
#define MiB (1ull << 20)
#define VA_LIMIT PHYSMAP_VA_END   /* the last page below 2^47 is never laid out */
#define MAXR 4096

/* T_EQ evaluates its arguments twice (again to print them): calls with side
 * effects go through this. */
#define T_RET(expr, want)                          \
	do {                                       \
		long long t_ret_ = (long long)(expr); \
		T_EQ(t_ret_, (want));              \
	} while (0)

static struct region host_sorted[MAXR];
static struct phys_region out[2 * MAXR + 2];

static uint64_t congruent(uint64_t at, uint64_t va, uint64_t bs)
{
	uint64_t pa = (at & ~(bs - 1)) + (va & (bs - 1));
	return pa >= at ? pa : pa + bs;
}

/* The host regions of the layout under test, sorted here with qsort (not
 * with the code under test), for a binary search by va. */
static struct region ref[MAXR];
static size_t ref_n;

static int ref_cmp(const void *a, const void *b)
{
	const struct region *x = a, *y = b;
	return x->va < y->va ? -1 : x->va > y->va;
}

static void ref_set(const struct region *h, size_t n)
{
	if (n)
		memcpy(ref, h, n * sizeof(*h));
	qsort(ref, n, sizeof(*ref), ref_cmp);
	ref_n = n;
}

/* Kind that host regions give va: NORMAL when none covers it. */
static enum region_kind host_kind(uint64_t va)
{
	size_t lo = 0, hi = ref_n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (va < ref[mid].va)
			hi = mid;
		else if (va - ref[mid].va >= ref[mid].len)
			lo = mid + 1;
		else
			return ref[mid].kind;
	}
	return REGION_NORMAL;
}

/* Every layout property; host the unsorted input. */
static void check_layout(const struct physmap *pm, const struct region *host, size_t n)
{
	const uint64_t bs = pm->cfg.block_size;
	uint64_t prev_va_end = 0x1000, prev_pa_end = pm->cfg.reserved;

	ref_set(host, n);
	/* The kept sorted copy is a sorted permutation of the input. */
	T_EQ(pm->host_count, n);
	for (size_t i = 0; i < n; i++)
		T_CHECK(pm->host[i].va == ref[i].va && pm->host[i].len == ref[i].len && pm->host[i].kind == ref[i].kind,
			"host[%zu] va 0x%llx differs from the sorted input", i, (unsigned long long)pm->host[i].va);

	for (size_t i = 0; i < pm->count; i++) {
		const struct phys_region *r = &pm->regions[i];
		T_CHECK(r->len && !(r->va & 0xfff) && !(r->len & 0xfff) && !(r->pa & 0xfff),
			"region %zu va 0x%llx len 0x%llx pa 0x%llx", i, (unsigned long long)r->va,
			(unsigned long long)r->len, (unsigned long long)r->pa);
		T_CHECK(r->kind != REGION_EXCLUDED, "region %zu excluded", i);
		T_CHECK(r->va >= prev_va_end, "region %zu va 0x%llx before 0x%llx", i,
			(unsigned long long)r->va, (unsigned long long)prev_va_end);
		T_CHECK(r->va + r->len <= VA_LIMIT, "region %zu ends above 2^47", i);
		T_CHECK((r->va & (bs - 1)) == (r->pa & (bs - 1)), "region %zu va 0x%llx pa 0x%llx not congruent", i,
			(unsigned long long)r->va, (unsigned long long)r->pa);
		/* The exact placement rule: smallest congruent PA at or after
		 * the previous region's end and the reserved range. */
		T_EQ(r->pa, congruent(prev_pa_end, r->va, bs));
		T_CHECK(r->pa + r->len <= (1ull << pm->cfg.pa_bits), "region %zu beyond pa_bits", i);
		/* The gap before: only excluded host memory. */
		for (uint64_t g = prev_va_end; g < r->va; g = r->va) {
			T_EQ(host_kind(g), REGION_EXCLUDED);
			T_EQ(host_kind(r->va - 0x1000), REGION_EXCLUDED);
		}
		/* Merged: a VA-contiguous neighbour has another kind. */
		if (i && pm->regions[i - 1].va + pm->regions[i - 1].len == r->va)
			T_CHECK(pm->regions[i - 1].kind != r->kind, "regions %zu and %zu not merged", i - 1, i);
		/* Kind matches the host regions at both ends. */
		T_EQ(host_kind(r->va), r->kind);
		T_EQ(host_kind(r->va + r->len - 0x1000), r->kind);
		prev_va_end = r->va + r->len;
		prev_pa_end = r->pa + r->len;
	}
	if (prev_va_end < VA_LIMIT)
		T_EQ(host_kind(prev_va_end), REGION_EXCLUDED);
	/* Every host region start translates (unless excluded / out of range)
	 * into a region of its kind. */
	for (size_t i = 0; i < n; i++) {
		uint64_t pa;
		int err = physmap_translate(pm, host[i].va, &pa);
		if (host[i].kind == REGION_EXCLUDED || host[i].va >= VA_LIMIT || host[i].va == 0) {
			if (host[i].kind == REGION_EXCLUDED || host[i].va >= VA_LIMIT)
				T_EQ(err, -EFAULT);
			continue;
		}
		T_EQ(err, 0);
		struct phys_block b;
		T_RET(physmap_fault_block(pm, pa, &b), 0);
		T_EQ(b.kind, host[i].kind);
		T_CHECK(physmap_host_region(pm, host[i].va) != NULL, "host region 0x%llx not found",
			(unsigned long long)host[i].va);
	}
}

/* Fault block of pa: absolute grid cell trimmed to its region. */
static void check_block(const struct physmap *pm, uint64_t pa)
{
	struct phys_block b;
	const uint64_t bs = pm->cfg.block_size;

	if (physmap_fault_block(pm, pa, &b)) {
		T_CHECK(0, "no block at pa 0x%llx", (unsigned long long)pa);
		return;
	}
	const struct phys_region *r = &pm->regions[b.region];
	uint64_t cell = pa & ~(bs - 1);
	T_CHECK(b.pa <= pa && pa < b.pa + b.len, "pa 0x%llx not in block 0x%llx+0x%llx", (unsigned long long)pa,
		(unsigned long long)b.pa, (unsigned long long)b.len);
	T_EQ(b.pa, cell > r->pa ? cell : r->pa);
	T_EQ(b.pa + b.len, cell + bs < r->pa + r->len ? cell + bs : r->pa + r->len);
	T_EQ(b.va, r->va + (b.pa - r->pa));
	T_EQ(b.kind, r->kind);
	/* VA side lies on the same grid. */
	T_EQ(b.va & (bs - 1), b.pa & (bs - 1));
	uint64_t back;
	T_RET(physmap_translate(pm, b.va, &back), 0);
	T_EQ(back, b.pa);
}

static int build(struct physmap *pm, const struct physmap_config *c, const struct region *h, size_t n,
		 const char **why)
{
	return physmap_build(pm, c, h, n, host_sorted, out, sizeof(out) / sizeof(out[0]), why);
}

static void test_full_space(void)
{
	struct physmap pm;
	const char *why = NULL;

	T_RET(build(&pm, NULL, NULL, 0, &why), 0);
	T_EQ(pm.count, 1);
	T_EQ(pm.regions[0].va, 0x1000);
	T_EQ(pm.regions[0].len, VA_LIMIT - 0x1000);
	T_EQ(pm.regions[0].pa, 8 * GiB + 0x1000);   /* reserved 4 GiB, congruent mod 8 GiB */
	T_EQ(pm.cfg.block_size, 8 * GiB);
	T_EQ(pm.cfg.reserved, 4 * GiB);
	T_EQ(pm.cfg.pa_bits, 48);
	check_layout(&pm, NULL, 0);
	check_block(&pm, 8 * GiB + 0x1000);
	check_block(&pm, 16 * GiB);
	check_block(&pm, 16 * GiB - 0x1000);
	check_block(&pm, pm.regions[0].pa + pm.regions[0].len - 1);
	struct phys_block b;
	T_RET(physmap_fault_block(&pm, 8 * GiB, &b), -EFAULT);
	T_RET(physmap_fault_block(&pm, 0, &b), -EFAULT);
	uint64_t pa;
	T_RET(physmap_translate(&pm, 0, &pa), -EFAULT);
	T_RET(physmap_translate(&pm, VA_LIMIT, &pa), -EFAULT);
	T_RET(physmap_translate(&pm, 0xffff800000000000ull, &pa), -EFAULT);
}

static int count_block(void *ctx, const struct phys_block *b)
{
	uint64_t *c = ctx;
	T_CHECK(b->pa >= c[1], "blocks out of order at pa 0x%llx", (unsigned long long)b->pa);
	c[1] = b->pa + b->len;
	c[0]++;
	return 0;
}

/* Issue 3's figure: one full-space region, 8 GiB blocks. With the absolute
 * grid every block edge is 1 GiB-aligned except the first (va 0x1000) and
 * the last (2^47 - 4 KiB), so all blocks need the root, 256 PDPTs, two PDs
 * and two PTs; the per-region
 * grid of older gVisor puts every edge at 0x1000 past a 2 MiB boundary and
 * needs a PD and a PT per edge. */
static void test_absolute_grid_bound(void)
{
	struct physmap pm;
	uint64_t counter[2] = { 0, 0 }, ours, legacy, old_grid;

	T_RET(build(&pm, NULL, NULL, 0, NULL), 0);
	T_RET(physmap_for_each_block(&pm, count_block, counter), 0);
	T_EQ(counter[0], 16384);
	T_RET(physmap_bound(&pm, false, 4, true, &ours), 0);
	T_RET(physmap_bound(&pm, true, 4, true, &legacy), 0);
	T_EQ(ours, 1 + 256 + 2 + 2);   /* a PD and a PT at each end: 0x1000 and 2^47 - 4 KiB */
	T_EQ(legacy, 1 + 256 + 2 + 2);

	/* The per-region grid: blocks [r.pa + k*bs, ...). */
	struct pool_bound b;
	const struct phys_region *r = &pm.regions[0];
	pool_bound_start(&b, 4, true);
	for (uint64_t off = 0; off < r->len; off += 8 * GiB) {
		uint64_t len = r->len - off < 8 * GiB ? r->len - off : 8 * GiB;
		struct pt_unit u = { .va = r->va + off, .len = len, .pa = r->pa + off };
		T_RET(pool_bound_add(&b, &u), 0);
	}
	T_RET(pool_bound_pages(&b, &old_grid), 0);
	printf("full space, 8 GiB blocks: absolute grid %llu pages, per-region grid %llu pages\n",
	       (unsigned long long)ours, (unsigned long long)old_grid);
	T_EQ(old_grid, 1 + 256 + 2 * 16384 + 2);   /* 33,027: a PD and a PT per edge, and at the end */
	T_CHECK(old_grid > 100 * ours, "old grid %llu vs ours %llu", (unsigned long long)old_grid,
		(unsigned long long)ours);
}

static void test_kinds_and_merge(void)
{
	struct physmap pm;
	const struct region h[] = {
		{ 0x7f0000003000, 0x2000, REGION_NORMAL },   /* merges with the gap around */
		{ 0x10000, 0x1000, REGION_RO },
		{ 0x11000, 0x3000, REGION_RO },              /* merges with the one before */
		{ 0x14000, 0x1000, REGION_MMIO },
		{ 0x15000, 0x1000, REGION_EXCLUDED },
		{ 0x16000, 0x1000, REGION_EXCLUDED },
		{ 0x40000000, 0x200000, REGION_RO },
		{ 0x7ffffffff000, 0x1000, REGION_EXCLUDED },
		{ 0xffffffffff600000ull, 0x1000, REGION_EXCLUDED },
		{ 0xfffffffffffff000ull, 0x1000, REGION_NORMAL }, /* ends at 2^64: no wrap */
	};
	const size_t n = sizeof(h) / sizeof(h[0]);
	const struct physmap_config c = { .block_size = 2 * MiB, .reserved = 1, .pa_bits = 48 };

	T_RET(build(&pm, &c, h, n, NULL), 0);
	check_layout(&pm, h, n);
	T_EQ(pm.count, 6);
	T_EQ(pm.regions[0].va, 0x1000);
	T_EQ(pm.regions[0].pa, 0x1000);
	T_EQ(pm.regions[1].va, 0x10000);
	T_EQ(pm.regions[1].len, 0x4000);
	T_EQ(pm.regions[1].kind, REGION_RO);
	T_EQ(pm.regions[2].kind, REGION_MMIO);
	T_EQ(pm.regions[3].va, 0x17000);
	T_EQ(pm.regions[5].va + pm.regions[5].len, 0x7ffffffff000);
	T_EQ(pm.host_count, n);
	for (uint64_t va = 0x1000; va < 0x800000; va += 0x1000) {
		uint64_t pa;
		if (physmap_translate(&pm, va, &pa) == 0)
			check_block(&pm, pa);
	}
	T_CHECK(physmap_host_region(&pm, 0x12000) == &pm.host[1], "host lookup");
	T_CHECK(physmap_host_region(&pm, 0x20000) == NULL, "host lookup gap");
	T_CHECK(physmap_host_region(&pm, 0xfffffffffffff123ull) != NULL, "host lookup at the top");
}

/* Pseudo-random adversarial layouts: small misaligned regions of every
 * kind, adjacent or not, in random order. */
#define rnd() ((uint64_t)t_rand())

static void shuffle(struct region *h, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = rnd() % i;
		struct region t = h[i - 1];
		h[i - 1] = h[j];
		h[j] = t;
	}
}

static int bound_every_block(void *ctx, const struct phys_block *blk)
{
	const struct pt_unit u = { .va = blk->va, .len = blk->len, .pa = blk->pa };
	return pool_bound_add(ctx, &u);
}

static void test_random_layouts(void)
{
	static struct region h[1001];
	const uint64_t sizes[] = { 2 * MiB, 4 * MiB, 1 * GiB, 8 * GiB, 64 * GiB };

	for (int round = 0; round < 60; round++) {
		size_t n = 1 + rnd() % 1000;
		uint64_t va = ((rnd() % 64) << 12) + (rnd() % 4 ? 0 : (rnd() % 0x800) << 30);
		for (size_t i = 0; i < n; i++) {
			va += (rnd() % 4 ? 0 : (rnd() % 0x4000) << 12);   /* often adjacent */
			h[i].va = va;
			h[i].len = (1 + rnd() % 0x800) << 12;
			h[i].kind = (enum region_kind)(rnd() % 4);
			va += h[i].len;
		}
		shuffle(h, n);
		struct physmap_config c = { .block_size = sizes[rnd() % 5], .reserved = (rnd() % 8) << 28,
					    .pa_bits = 48 };
		struct physmap pm;
		const char *why = NULL;
		int err = build(&pm, &c, h, n, &why);
		T_CHECK(err == 0, "round %d: %d %s", round, err, why ? why : "");
		if (err)
			continue;
		check_layout(&pm, h, n);
		for (int k = 0; k < 200; k++) {
			const struct phys_region *r = &pm.regions[rnd() % pm.count];
			check_block(&pm, r->pa + ((rnd() % r->len) & ~0xfffull));
		}
		/* The bound that skips look-alike full blocks equals the one
		 * that feeds every block. Only with most of the space excluded
		 * (else 2^26 blocks): the round's regions plus an excluded rest. */
		h[n] = (struct region){ va, VA_LIMIT - va, REGION_EXCLUDED };
		T_RET(build(&pm, &c, h, n + 1, &why), 0);
		for (int huge = 0; huge < 2; huge++) {
			uint64_t fast, slow;
			struct pool_bound b;
			pool_bound_start(&b, 4, huge);
			T_RET(physmap_for_each_block(&pm, bound_every_block, &b), 0);
			T_RET(pool_bound_pages(&b, &slow), 0);
			T_RET(physmap_bound(&pm, false, 4, huge, &fast), 0);
			T_CHECK(fast == slow, "round %d block 0x%llx huge %d: bound %llu, every block %llu", round,
				(unsigned long long)c.block_size, huge, (unsigned long long)fast, (unsigned long long)slow);
			T_RET(physmap_bound(&pm, true, 4, huge, &fast), 0);
		}
	}
}

static void test_bad_input(void)
{
	struct physmap pm, before;
	const char *why;
	const struct region good = { 0x10000, 0x1000, REGION_RO };
	struct region bad[2];

	T_RET(build(&pm, NULL, &good, 1, NULL), 0);
	before = pm;
#define EXPECT_BAD(cfg, h, n, errno_, text)                                                              \
	do {                                                                                             \
		why = NULL;                                                                              \
		T_RET(build(&pm, cfg, h, n, &why), errno_);                                               \
		T_CHECK(why && strstr(why, text), "message %s lacks \"%s\"", why ? why : "(null)", text); \
		T_CHECK(!memcmp(&pm, &before, sizeof(pm)), "physmap changed after a bad build");         \
	} while (0)

	bad[0] = (struct region){ 0x10000, 0x2000, REGION_NORMAL };
	bad[1] = (struct region){ 0x11000, 0x1000, REGION_RO };
	EXPECT_BAD(NULL, bad, 2, -EINVAL, "overlap");
	bad[0] = (struct region){ 0x10000, 0x1000, REGION_NORMAL };
	bad[1] = (struct region){ 0x10000, 0x1000, REGION_RO };
	EXPECT_BAD(NULL, bad, 2, -EINVAL, "overlap");
	bad[0] = (struct region){ 0x10800, 0x1000, REGION_NORMAL };
	EXPECT_BAD(NULL, bad, 1, -EINVAL, "aligned");
	bad[0] = (struct region){ 0x10000, 0x1800, REGION_NORMAL };
	EXPECT_BAD(NULL, bad, 1, -EINVAL, "aligned");
	bad[0] = (struct region){ 0x10000, 0, REGION_NORMAL };
	EXPECT_BAD(NULL, bad, 1, -EINVAL, "empty");
	bad[0] = (struct region){ 0xfffffffffffff000ull, 0x2000, REGION_NORMAL };
	EXPECT_BAD(NULL, bad, 1, -EINVAL, "wraps");
	bad[0] = (struct region){ 0x10000, 0x1000, (enum region_kind)7 };
	EXPECT_BAD(NULL, bad, 1, -EINVAL, "kind");

	struct physmap_config c = { .block_size = 3 * MiB };
	EXPECT_BAD(&c, &good, 1, -EINVAL, "power of two");
	c.block_size = 1 * MiB;
	EXPECT_BAD(&c, &good, 1, -EINVAL, "block size");
	c.block_size = 4096;
	EXPECT_BAD(&c, &good, 1, -EINVAL, "block size");
	c = (struct physmap_config){ .pa_bits = 31 };
	EXPECT_BAD(&c, &good, 1, -EINVAL, "pa_bits");
	c.pa_bits = 53;
	EXPECT_BAD(&c, &good, 1, -EINVAL, "pa_bits");
	c = (struct physmap_config){ .block_size = 2 * MiB, .pa_bits = 32 };   /* default reserved 4 GiB fills it */
	EXPECT_BAD(&c, &good, 1, -EINVAL, "reserved");

	/* VA space larger than PA space. */
	c = (struct physmap_config){ .pa_bits = 47 };
	EXPECT_BAD(&c, NULL, 0, -E2BIG, "VA space needed 0x7fffffffe000");
	T_CHECK(strstr(why, "PA space available 0x7fff00000000"), "%s", why);
	/* Fits by size, not with the congruence padding: the first region
	 * starts at va 0x1000, so its PA lands at 16 TiB + 0x1000. */
	static const struct region h[] = { { (1ull << 47) - (1ull << 43), 1ull << 43, REGION_EXCLUDED } };
	c = (struct physmap_config){ .block_size = 1ull << 44, .pa_bits = 47 };
	EXPECT_BAD(&c, h, 1, -E2BIG, "VA space needed 0x77fffffff000");
	T_CHECK(strstr(why, "PA would end at 0x880000000000"), "%s", why);
	printf("E2BIG message: %s\n", why);

	/* Too little room for the physical regions. */
	bad[0] = (struct region){ 0x10000, 0x1000, REGION_RO };
	why = NULL;
	T_RET(physmap_build(&pm, NULL, bad, 1, host_sorted, out, 2, &why), -ENOSPC);
	T_CHECK(!memcmp(&pm, &before, sizeof(pm)), "physmap changed after -ENOSPC");
	T_RET(physmap_build(&pm, NULL, bad, 1, host_sorted, out, 3, &why), 0);
#undef EXPECT_BAD
}

/* ---- /proc/self/maps ---- */

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	size_t cap = 1 << 16, n = 0;
	char *buf;

	if (!f)
		return NULL;
	buf = malloc(cap);
	for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
		n += got;
		if (n == cap)
			buf = realloc(buf, cap *= 2);
	}
	fclose(f);
	*len = n;
	return buf;
}

static size_t count_lines(const char *t, size_t len)
{
	size_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += t[i] == '\n' && (i == 0 || t[i - 1] != '\n');
	return lines + (len && t[len - 1] != '\n');
}

static void check_maps_text(const char *name, const char *text, size_t len, size_t *nout)
{
	static struct region h[MAXR];
	size_t n = 0, bad = 0;
	struct physmap pm;
	const char *why = NULL;

	int err = physmap_parse_maps(text, len, h, MAXR, &n, &bad);
	T_CHECK(err == 0, "%s: parse %d at line %zu", name, err, bad);
	if (err)
		return;
	T_EQ(n, count_lines(text, len));
	for (size_t i = 0; i < n; i++)
		if (h[i].va >= VA_LIMIT)
			T_EQ(h[i].kind, REGION_EXCLUDED);
	err = build(&pm, NULL, h, n, &why);
	T_CHECK(err == 0, "%s: build %d %s", name, err, why ? why : "");
	if (!err) {
		check_layout(&pm, h, n);
		for (size_t i = 0; i < n; i++) {
			uint64_t pa;
			if (!physmap_translate(&pm, h[i].va, &pa))
				check_block(&pm, pa);
		}
	}
	*nout = n;
}

static const char *samples_dir(char *buf, size_t len)
{
	const char *slash = strrchr(__FILE__, '/');
	snprintf(buf, len, "%.*smaps", slash ? (int)(slash - __FILE__ + 1) : 0, __FILE__);
	return buf;
}

static void test_maps_samples(void)
{
	const char *samples[] = { "cat.maps", "bash.maps", "python3.maps", "sleep.maps", "odd.maps", "short.maps", "kvmpt-trace.maps" };
	char dir[256], path[512];

	samples_dir(dir, sizeof(dir));
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		size_t len, n = 0;
		snprintf(path, sizeof(path), "%s/%s", dir, samples[i]);
		char *text = read_file(path, &len);
		T_CHECK(text != NULL, "cannot read %s", path);
		if (!text)
			continue;
		check_maps_text(samples[i], text, len, &n);
		free(text);
	}
}

static void test_maps_odd(void)
{
	char dir[256], path[512];
	static struct region h[64];
	size_t len, n = 0, bad = 0;

	snprintf(path, sizeof(path), "%s/odd.maps", samples_dir(dir, sizeof(dir)));
	char *text = read_file(path, &len);
	if (!T_CHECK(text != NULL, "cannot read %s", path))
		return;
	T_RET(physmap_parse_maps(text, len, h, 64, &n, &bad), 0);
	T_EQ(n, 16);
	T_EQ(h[0].va, 0);                       /* page 0 mapped: skipped by build */
	T_EQ(h[1].kind, REGION_RO);             /* r-xp, deleted file with spaces */
	T_EQ(h[1].len, 0x52000);
	T_EQ(h[3].kind, REGION_NORMAL);
	T_EQ(h[5].kind, REGION_NORMAL);         /* shared rw memfd */
	T_EQ(h[6].kind, REGION_RO);             /* ---p guard: never writable in the guest either */
	T_EQ(h[8].kind, REGION_RO);
	T_EQ(h[9].kind, REGION_RO);             /* r--s, tab in the name */
	T_EQ(h[11].kind, REGION_RO);            /* [vvar] */
	T_EQ(h[12].kind, REGION_RO);            /* [vdso] */
	T_EQ(h[13].va + h[13].len, 1ull << 47);   /* last page of the lower half */
	T_EQ(h[14].kind, REGION_EXCLUDED);      /* upper half */
	T_EQ(h[15].kind, REGION_EXCLUDED);      /* [vsyscall], no newline at the end */
	T_EQ(h[15].va, 0xffffffffff600000ull);
	/* Too small an array. */
	T_RET(physmap_parse_maps(text, len, h, 15, &n, &bad), -ENOSPC);
	free(text);
}

static void test_maps_bad_lines(void)
{
	const char *bad[] = {
		"1000-2000 r--p 0 0:0 0\nzzz\n",                        /* line 2 */
		"1000-2000 r--p 0 0:0 0\n2000-1000 r--p 0 0:0 0\n",     /* end < start */
		"1000-2000 r--p 0 0:0 0\n2000-3800 r--p 0 0:0 0\n",     /* unaligned */
		"1000-2000 r--p 0 0:0 0\n2000-3000 rw-q 0 0:0 0\n",     /* bad perms */
		"1000-2000 r--p 0 0:0 0\n2000-3000 r--p 0 0:0\n",       /* no inode */
		"1000-2000 r--p 0 0:0 0\n2000 r--p 0 0:0 0\n",          /* no end */
		"1000-2000 r--p 0 0:0 0\n12345678123456789-12345678123456790 r--p 0 0:0 0\n",
	};
	static struct region h[4];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = 99, line = 0;
		T_RET(physmap_parse_maps(bad[i], strlen(bad[i]), h, 4, &n, &line), -EINVAL);
		T_EQ(line, 2);
		T_EQ(n, 99);   /* untouched on error */
	}
	size_t n = 99, line = 0;
	T_RET(physmap_parse_maps("", 0, h, 4, &n, &line), 0);
	T_EQ(n, 0);
}

static void test_maps_live(void)
{
	size_t len, n = 0;
	char *text = read_file("/proc/self/maps", &len);

	if (!T_CHECK(text != NULL, "cannot read /proc/self/maps"))
		return;
	check_maps_text("/proc/self/maps", text, len, &n);
	T_CHECK(n > 5, "only %zu regions", n);
	free(text);
}

static void test_cpu_pa_bits(void)
{
	unsigned bits = physmap_cpu_pa_bits();
	T_CHECK(bits >= 32 && bits <= 52, "pa bits %u", bits);
	printf("cpu pa bits: %u\n", bits);
}

int main(void)
{
	test_full_space();
	test_absolute_grid_bound();
	test_kinds_and_merge();
	test_random_layouts();
	test_bad_input();
	test_maps_samples();
	test_maps_odd();
	test_maps_bad_lines();
	test_maps_live();
	test_cpu_pa_bits();
	return t_exit();
}
