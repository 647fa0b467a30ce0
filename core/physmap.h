/* The physical map: host regions (as /proc/self/maps describes them) laid out
 * in guest-physical space, and the fault blocks that slots are made of. */
#ifndef KVMPT_PHYSMAP_H
#define KVMPT_PHYSMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum region_kind { REGION_NORMAL = 0, REGION_RO, REGION_MMIO, REGION_EXCLUDED };

/* A host region: a line of /proc/self/maps, or a `region` trace line. */
struct region {
	uint64_t va;
	uint64_t len;
	enum region_kind kind;
};

/* A physical region: a VA range and where it sits in PA space. */
struct phys_region {
	uint64_t va;
	uint64_t len;
	uint64_t pa;
	enum region_kind kind;   /* NORMAL, RO or MMIO */
};

struct physmap_config {
	uint64_t block_size;   /* power of two >= 2 MiB; 0: 8 GiB */
	uint64_t reserved;     /* PA below this is never used; 0: 4 GiB (use 1 for none) */
	unsigned pa_bits;      /* 0: 48 */
};

struct physmap {
	struct physmap_config cfg;     /* defaults filled in */
	struct phys_region *regions;   /* sorted, disjoint in VA and PA */
	size_t count;
	const struct region *host;     /* the host regions given to build, sorted */
	size_t host_count;
};

/* One fault block: the intersection of a physical region with one aligned
 * block_size block of the absolute PA grid. */
struct phys_block {
	uint64_t va;
	uint64_t pa;
	uint64_t len;
	enum region_kind kind;
	size_t region;           /* index into pm->regions */
};

/* Where the physical map ends: the last page below 2^47 is not user address
 * space on x86-64 (Linux TASK_SIZE, gVisor's MaximumUserAddress are
 * 2^47 - 4 KiB) and KVM refuses a slot that reaches it, so no layout (trace
 * tool or kvmrt) ever includes it. */
#define PHYSMAP_VA_END ((1ull << 47) - 4096)

/* Lays out [4 KiB, PHYSMAP_VA_END) minus excluded host regions.
 * host: n regions, page-aligned, disjoint (any order; sorted copy kept in
 * host_sorted, n entries). out: room for cap physical regions.
 * 0; -EINVAL (overlapping or unaligned regions, bad block size or pa_bits),
 * -ENOSPC (out too small), -E2BIG (VA space does not fit the PA space).
 * On error *why (if not NULL) points to a message naming the values
 * (a static buffer: not thread-safe, init-time only). */
int physmap_build(struct physmap *pm, const struct physmap_config *cfg,
		  const struct region *host, size_t n, struct region *host_sorted,
		  struct phys_region *out, size_t cap, const char **why);

/* PA of va: 0, or -EFAULT when va is in no physical region. */
int physmap_translate(const struct physmap *pm, uint64_t va, uint64_t *pa);

/* The fault block holding pa: 0, or -EFAULT. */
int physmap_fault_block(const struct physmap *pm, uint64_t pa, struct phys_block *b);

/* The host region holding va, or NULL. */
const struct region *physmap_host_region(const struct physmap *pm, uint64_t va);

/* Calls fn for each fault block in PA order (init-time: the bound, legacy).
 * Stops at and returns the first non-zero return of fn. */
int physmap_for_each_block(const struct physmap *pm, int (*fn)(void *ctx, const struct phys_block *b), void *ctx);

/* Pool pages that mapping fault blocks needs at worst (pool_bound over every
 * block; legacy: over every physical region), root included. */
int physmap_bound(const struct physmap *pm, bool legacy, int levels, bool huge_1g, uint64_t *pages);

/* Parses /proc/self/maps text: [vsyscall] and similar become EXCLUDED,
 * read-only mappings RO, the rest NORMAL. 0, -ENOSPC (cap too small) or
 * -EINVAL (malformed line; *bad_line set, 1-based). */
int physmap_parse_maps(const char *text, size_t len, struct region *out, size_t cap, size_t *n, size_t *bad_line);

/* Physical address bits from CPUID 0x80000008 (x86), 48 when unknown. */
unsigned physmap_cpu_pa_bits(void);

#endif
