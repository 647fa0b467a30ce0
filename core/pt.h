/* The page-table engine: map, unmap, lookup and is-empty over x86-64 tables
 * whose pages all come from one preallocated pool. Every function returns 0 or
 * a negative errno and, on error, leaves the tables exactly as they were.
 * Nothing here allocates, locks or recurses. */
#ifndef KVMPT_PT_H
#define KVMPT_PT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pool;

#define PT_MAX_LEVELS 5

/* Mapping options: exactly one access (PT_R, PT_R|PT_W, PT_R|PT_X), plus
 * any of user / global and at most one memory type (write-back by default). */
#define PT_R      0x01u
#define PT_W      0x02u
#define PT_X      0x04u
#define PT_USER   0x08u
#define PT_GLOBAL 0x10u
#define PT_WC     0x20u  /* PAT index 1 (PWT): kvmrt programs PAT entry 1 as WC */
#define PT_UC     0x40u  /* PAT index 3 (PCD|PWT): UC in the reset PAT */
#define PT_OPTS_ALL 0x7fu

struct pt {
	struct pool *pool;
	uint64_t *root;
	int levels;       /* 4 (48-bit VA); 5 is allowed by the walker */
	int max_leaf;     /* highest level a leaf may sit at: PT_LEVEL_1G or PT_LEVEL_2M */
};

/* One leaf of the tables. */
struct pt_leaf {
	uint64_t va;     /* canonical base address of the leaf */
	uint64_t pa;
	uint64_t size;   /* 4 KiB, 2 MiB or 1 GiB */
	uint32_t opts;
	int level;
};

/* Takes the root table from pool. levels 4 or 5. 0, -EINVAL or -ENOMEM. */
int pt_init(struct pt *pt, struct pool *pool, int levels, bool huge_1g);

/* Unmaps everything and gives the root back to the pool. */
void pt_destroy(struct pt *pt);

/* Maps [va, va+len) to [pa, pa+len) with opts, replacing what was there. */
int pt_map(struct pt *pt, uint64_t va, uint64_t len, uint64_t pa, uint32_t opts);

/* Removes every translation in [va, va+len); frees tables that become empty. */
int pt_unmap(struct pt *pt, uint64_t va, uint64_t len);

/* The leaf that holds va: 0, -ENOENT when unmapped, -EINVAL for a bad va. */
int pt_lookup(const struct pt *pt, uint64_t va, struct pt_leaf *leaf);

/* *empty = no page of [va, va+len) is mapped. 0 or -EINVAL. */
int pt_is_empty(const struct pt *pt, uint64_t va, uint64_t len, bool *empty);

/* Table pages map(va, len, pa, opts) would take from the pool at most
 * (the number pt_map checks against the free pages). 0 or -EINVAL. */
int pt_map_cost(const struct pt *pt, uint64_t va, uint64_t len, uint64_t pa, uint32_t opts, uint32_t *pages);
int pt_unmap_cost(const struct pt *pt, uint64_t va, uint64_t len, uint32_t *pages);

/* Table pages in use by level of the table (tables[3] is the PML4 root for
 * 4-level). */
void pt_count_tables(const struct pt *pt, uint64_t tables[PT_MAX_LEVELS]);

/* Physical address of the root, for CR3. */
uint64_t pt_root_pa(const struct pt *pt);

/* Checks map/unmap arguments without touching anything: 0 or -EINVAL with a
 * static reason in *why (may be NULL). */
int pt_check_range(const struct pt *pt, uint64_t va, uint64_t len, const char **why);
int pt_check_opts(uint32_t opts, const char **why);
int pt_check_map(const struct pt *pt, uint64_t va, uint64_t len, uint64_t pa, uint32_t opts, const char **why);

/* Formats opts as in traces: r|rw|rx then ,user ,global ,wc ,uc. */
const char *pt_opts_str(uint32_t opts, char buf[32]);

#endif
