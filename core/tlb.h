/* A model of what running vCPUs may hold in their TLBs and paging-structure
 * caches (DESIGN.md "Live tables"), for the oracle: fuzz targets, tests and
 * kvmpt-trace. Each simulated vCPU may keep, until its next flush point,
 * every table pointer and translation it could have walked since the last
 * one. The model keeps a bounded subset (a real CPU may drop entries at any
 * time, so a subset never raises a false alarm): a few dozen entries per
 * vCPU, so checking costs O(vCPUs x entries x levels) per operation, never
 * O(tree).
 *
 * The two rules it checks:
 *  - tables: a table page that some vCPU may still reach through its
 *    paging-structure caches is either still that table (same position) or
 *    retired in the pool (pool_defer); never free, never reused;
 *  - translations: a translation a vCPU may still use is allowed by the
 *    current tables (same PA, no more rights, same memory type): an unmap or
 *    downgrade must be followed by a flush of every vCPU (shootdown) before
 *    it counts as done. */
#ifndef KVMPT_TLB_H
#define KVMPT_TLB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pt;

#define TLB_MAX_VCPUS 8
#define TLB_PTRS      48  /* cached table pointers per vCPU */
#define TLB_TRS       48  /* cached translations per vCPU */

/* A paging-structure-cache entry: the level-`level` entry for `va` pointed
 * at the table page `table_pa`. */
struct tlb_ptr {
	uint64_t va;        /* linear, aligned to the size of a level-`level` entry */
	uint64_t table_pa;
	int level;
};

/* A TLB entry: one 4 KiB page (a CPU may cache less than the leaf). */
struct tlb_tr {
	uint64_t va;        /* linear page */
	uint64_t pa;
	uint32_t opts;      /* PT_* of the leaf */
};

struct tlb_vcpu {
	struct tlb_ptr ptr[TLB_PTRS];
	struct tlb_tr tr[TLB_TRS];
	unsigned nptr, ntr;         /* valid entries */
	unsigned next_ptr, next_tr; /* round-robin victim once full */
	uint64_t walks, flushes;
};

struct tlb {
	const struct pt *pt;
	unsigned nvcpus;
	struct tlb_vcpu vcpu[TLB_MAX_VCPUS];
	uint64_t flushed[TLB_MAX_VCPUS]; /* the pool's epoch each vCPU started at its last flush point */
};

/* Where a walk found its answer. */
enum tlb_source { TLB_FROM_TABLES = 0, TLB_FROM_TLB = 1 };

/* nvcpus 1..TLB_MAX_VCPUS. 0 or -EINVAL. Nothing allocated. */
int tlb_init(struct tlb *t, const struct pt *pt, unsigned nvcpus);

/* A flush point of vCPU v: it forgets every pointer and translation. */
void tlb_flush(struct tlb *t, unsigned v);

/* The same under deferred reclamation (pool_defer; docs/live-tables.md),
 * the epoch rule in one place: vCPU v flushes and starts a new epoch of the
 * pool of t's tables, and the pool gets back every page retired before the
 * oldest epoch that all vCPUs have flushed past. Returns the pages given
 * back. */
uint32_t tlb_flush_point(struct tlb *t, unsigned v);
void tlb_flush_all(struct tlb *t);

/* vCPU v accesses va as the CPU would: a cached translation if it has one,
 * else a walk (which may start from any cached table pointer for va, so each
 * of them must still be safe), caching what it read. 0 with *tr and *src;
 * -ENOENT when va is not mapped; -EFAULT when the vCPU could reach a freed
 * or reused table page or use a translation the tables no longer allow (the
 * reason in why, which may be NULL). -EINVAL for a bad v or va. */
int tlb_walk(struct tlb *t, unsigned v, uint64_t va, struct tlb_tr *tr, enum tlb_source *src, char *why,
	     size_t why_len);

/* Checks every vCPU's cached table pointers (the tables rule). NULL, or the
 * first violation written into buf. */
const char *tlb_check_tables(const struct tlb *t, char *buf, size_t len);

/* Checks every vCPU's cached translations (the translations rule): call it
 * when an operation that may unmap or downgrade has returned. */
const char *tlb_check_translations(const struct tlb *t, char *buf, size_t len);

/* Both. */
const char *tlb_check(const struct tlb *t, char *buf, size_t len);

#endif
