/* pool_sizes: how many page-table pages the pool needs, three ways, side by
 * side, for a few layouts:
 *   bound   physmap_bound(): what kvmrt preallocates (normal and legacy mode)
 *   peak    the most pool pages in use while every fault block is mapped
 *           one after the other through slots_map_physical (normal), or
 *           after slots_init built every region (legacy)
 *   gvisor  gVisor's EstimatePTEsPoolSize: 1 + ((vsize + 511 GiB) >> 39)
 *           + 10 x regions (vsize: bytes of the physical map, regions: its
 *           physical regions)
 *   old grid the bound with older gVisor's per-region grid (blocks start at
 *           each region's own start instead of on the absolute grid)
 * Layouts: one full-space region; this process's own /proc/self/maps (and
 * any maps files named on the command line, e.g. kvmpt-trace's); 1,000
 * small misaligned read-only regions. 4-level tables with 1 GiB leaves,
 * 8 GiB fault blocks unless a row says otherwise.
 * A peak above the bound would be a bug (the run then exits 1); gvisor
 * below peak means the Go runtime would fall back to allocating in the
 * fault path. Figures and discussion: docs/pool-sizing.md. */
#include "physmap.h"
#include "pool.h"
#include "pt.h"
#include "slots.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GiB (1ull << 30)
#define MAX_HOST 8192

struct layout {
	const char *name;
	struct region *host;
	size_t n;
	uint64_t block_size;
};

struct run {
	struct pool pool;
	struct pt pt;
	struct slots slots;
	uint32_t peak;
	uint64_t blocks;
	int err;
};

static int count_set(void *ctx, uint32_t id, uint64_t pa, uint64_t len, uint64_t va, bool ro)
{
	(void)ctx, (void)id, (void)pa, (void)len, (void)va, (void)ro;
	return 0;
}

static int map_block(void *ctx, const struct phys_block *b)
{
	struct run *r = ctx;

	r->blocks++;
	r->err = slots_map_physical(&r->slots, b->pa, b->len, NULL);
	if (r->pool.used > r->peak)
		r->peak = r->pool.used;
	return r->err;
}

static uint64_t count_blocks(const struct physmap *pm)
{
	uint64_t n = 0;
	for (size_t i = 0; i < pm->count; i++) {
		const struct phys_region *r = &pm->regions[i];
		uint64_t first = r->pa / pm->cfg.block_size, last = (r->pa + r->len - 1) / pm->cfg.block_size;
		n += last - first + 1;
	}
	return n;
}

/* Peak pool use with every block mapped; 0 and *peak, or -errno. */
static int measure(const struct physmap *pm, bool legacy, uint64_t bound, uint32_t *peak)
{
	struct run r;
	uint64_t blocks = count_blocks(pm);
	int err;

	memset(&r, 0, sizeof(r));
	if (blocks > SLOTS_MAX_CAPACITY)
		return -E2BIG;
	err = pool_init_mmap(&r.pool, (uint32_t)bound, 1ull << 40);
	if (err)
		return err;
	err = pt_init(&r.pt, &r.pool, 4, true);
	if (!err)
		err = slots_init(&r.slots, &r.pt, pm, (uint32_t)blocks, legacy ? SLOTS_LEGACY : 0, count_set, NULL);
	if (!err) {
		r.peak = r.pool.used;
		err = physmap_for_each_block(pm, map_block, &r);
		slots_destroy(&r.slots);
	}
	*peak = r.peak;
	if (!err)
		pt_destroy(&r.pt);
	pool_destroy(&r.pool);
	return err;
}

static uint64_t gvisor_estimate(const struct physmap *pm)
{
	uint64_t vsize = 0;
	for (size_t i = 0; i < pm->count; i++)
		vsize += pm->regions[i].len;
	return 1 + ((vsize + 511 * GiB) >> 39) + 10 * (uint64_t)pm->count;
}

/* Bound over blocks [r.pa + k * bs, ...) per region: the per-region grid. */
static uint64_t old_grid_bound(const struct physmap *pm)
{
	const uint64_t bs = pm->cfg.block_size;
	struct pool_bound b;
	uint64_t pages = 0;

	pool_bound_start(&b, 4, true);
	for (size_t i = 0; i < pm->count; i++) {
		const struct phys_region *r = &pm->regions[i];
		for (uint64_t off = 0; off < r->len; off += bs) {
			const struct pt_unit u = { .va = r->va + off, .len = r->len - off < bs ? r->len - off : bs,
						   .pa = r->pa + off };
			pool_bound_add(&b, &u);
		}
	}
	return pool_bound_pages(&b, &pages) ? 0 : pages;
}

static int report(const struct layout *l)
{
	static struct region sorted[MAX_HOST];
	static struct phys_region phys[2 * MAX_HOST + 2];
	struct physmap pm;
	const struct physmap_config c = { .block_size = l->block_size };
	const char *why = NULL;
	int bad = 0;

	int err = physmap_build(&pm, &c, l->host, l->n, sorted, phys, 2 * MAX_HOST + 2, &why);
	if (err) {
		printf("%-36s  build failed: %d %s\n", l->name, err, why ? why : "");
		return 1;
	}
	const uint64_t old = count_blocks(&pm) > SLOTS_MAX_CAPACITY ? 0 : old_grid_bound(&pm);
	for (int legacy = 0; legacy < 2; legacy++) {
		uint64_t bound;
		uint32_t peak = 0;
		err = physmap_bound(&pm, legacy, 4, true, &bound);
		if (!err && count_blocks(&pm) > SLOTS_MAX_CAPACITY) {
			printf("%-36s  %-6s  %7zu  %8llu  %7llu  %7s  %7llu  %8s  (too many blocks to map them all)\n",
			       l->name, legacy ? "legacy" : "normal", pm.count, (unsigned long long)count_blocks(&pm),
			       (unsigned long long)bound, "-", (unsigned long long)gvisor_estimate(&pm), "-");
			continue;
		}
		if (!err)
			err = measure(&pm, legacy, bound, &peak);
		if (err) {
			printf("%-36s  %-6s  error %d\n", l->name, legacy ? "legacy" : "normal", err);
			bad = 1;
			continue;
		}
		uint64_t gv = gvisor_estimate(&pm);
		printf("%-36s  %-6s  %7zu  %8llu  %7llu  %7u  %7llu  %8llu%s\n", l->name, legacy ? "legacy" : "normal",
		       pm.count, (unsigned long long)count_blocks(&pm), (unsigned long long)bound, peak,
		       (unsigned long long)gv, (unsigned long long)old, gv < peak ? "  (gvisor short)" : "");
		if (peak > bound) {
			printf("  BUG: peak %u above bound %llu\n", peak, (unsigned long long)bound);
			bad = 1;
		}
	}
	return bad;
}

/* Full space, 2 MiB blocks, one block in each GiB mapped: the subset that
 * needs a page directory per GiB, which is what the normal-mode bound is
 * made of and what gVisor's estimate does not see. */
static int report_sparse_2m(void)
{
	static struct phys_region phys[2];
	const struct physmap_config c = { .block_size = 2ull << 20 };
	struct physmap pm;
	struct run r;
	uint64_t bound;
	int err;

	memset(&r, 0, sizeof(r));
	err = physmap_build(&pm, &c, NULL, 0, NULL, phys, 2, NULL);
	err = err ? err : physmap_bound(&pm, false, 4, true, &bound);
	err = err ? err : pool_init_mmap(&r.pool, (uint32_t)bound, 1ull << 40);
	err = err ? err : pt_init(&r.pt, &r.pool, 4, true);
	err = err ? err : slots_init(&r.slots, &r.pt, &pm, 1u << 18, 0, count_set, NULL);
	for (uint64_t va = 2ull << 20; !err && va < (1ull << 47); va += GiB) {
		uint64_t pa;
		err = physmap_translate(&pm, va, &pa);
		err = err ? err : slots_map_physical(&r.slots, pa, 2ull << 20, NULL);
		if (r.pool.used > r.peak)
			r.peak = r.pool.used;
	}
	printf("%-36s  %-6s  %7zu  %8u  %7llu  %7u  %7llu  %8s%s\n", "full space, 2 MiB blocks, 1 per GiB", "normal",
	       pm.count, r.slots.count, (unsigned long long)bound, r.peak, (unsigned long long)gvisor_estimate(&pm),
	       "-", gvisor_estimate(&pm) < r.peak ? "  (gvisor short)" : "");
	if (err)
		printf("  error %d\n", err);
	slots_destroy(&r.slots);
	pool_destroy(&r.pool);
	return err || r.peak > bound;
}

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);

	if (!f || !buf) {
		if (f)
			fclose(f);
		free(buf);
		return NULL;
	}
	for (size_t got; (got = fread(buf + n, 1, cap - n, f)) > 0;) {
		n += got;
		if (n == cap) {
			char *more = realloc(buf, cap * 2);
			if (!more)
				break;
			buf = more;
			cap *= 2;
		}
	}
	fclose(f);
	*len = n;
	return buf;
}

static int report_maps(const char *path, const char *name)
{
	static struct region host[MAX_HOST];
	size_t len, n = 0, line = 0;
	char *text = read_all(path, &len);
	int bad;

	if (!text) {
		printf("%-36s  cannot read %s\n", name, path);
		return 1;
	}
	int err = physmap_parse_maps(text, len, host, MAX_HOST, &n, &line);
	free(text);
	if (err) {
		printf("%-36s  parse error %d at line %zu\n", name, err, line);
		return 1;
	}
	const struct layout l = { name, host, n, 0 };
	bad = report(&l);
	return bad;
}

/* 1,000 read-only regions of 1..64 pages at random page offsets, each in
 * its own 64 MiB stretch: every one splits the space into three physical
 * regions and no edge is 2 MiB-aligned. */
static int report_misaligned(uint64_t block_size, bool only_them, const char *name)
{
	static struct region host[1002];
	size_t n = 1000;
	uint64_t x = 0x2545f4914f6cdd1dull;

	for (size_t i = 0; i < 1000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		host[i].va = 0x7f0000000000ull + i * (64ull << 20) + ((x % 0x3c00) << 12);
		host[i].len = (1 + (x >> 20) % 64) << 12;
		host[i].kind = REGION_RO;
	}
	if (only_them) {   /* everything else excluded, so that 2 MiB blocks stay few */
		const uint64_t end = 0x7f0000000000ull + 1000 * (64ull << 20);
		host[n++] = (struct region){ 0x1000, 0x7f0000000000ull - 0x1000, REGION_EXCLUDED };
		host[n++] = (struct region){ end, (1ull << 47) - end, REGION_EXCLUDED };
	}
	const struct layout l = { name, host, n, block_size };
	return report(&l);
}

int main(int argc, char **argv)
{
	int bad = 0;

	printf("%-36s  %-6s  %7s  %8s  %7s  %7s  %7s  %8s\n", "layout", "mode", "regions", "blocks", "bound", "peak",
	       "gvisor", "old grid");
	const struct layout full = { "one full-space region", NULL, 0, 0 };
	bad |= report(&full);
	const struct layout full1g = { "one full-space region, 1 GiB blocks", NULL, 0, GiB };
	bad |= report(&full1g);
	const struct layout full2m = { "one full-space region, 2 MiB blocks", NULL, 0, 2ull << 20 };
	bad |= report(&full2m);
	bad |= report_sparse_2m();
	bad |= report_maps("/proc/self/maps", "/proc/self/maps (pool_sizes)");
	for (int i = 1; i < argc; i++)
		bad |= report_maps(argv[i], argv[i]);
	bad |= report_misaligned(0, false, "1000 small misaligned RO regions");
	bad |= report_misaligned(0, true, "same, rest of the space excluded");
	bad |= report_misaligned(2ull << 20, true, "same, 2 MiB blocks");
	return bad;
}
