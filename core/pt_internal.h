/* The one walker, shared by pt.c and check.c. */
#ifndef KVMPT_PT_INTERNAL_H
#define KVMPT_PT_INTERNAL_H

#include "pt.h"
#include "pte.h"

/* Visitor return rule: PT_WALK_DESCEND enters the child table of the entry
 * (which must then be a table), 0 goes on, >0 stops the walk and is handed
 * back, <0 is an error and is handed back. */
#define PT_WALK_DESCEND 0x7fffffff

struct pt_walk_ops {
	/* The entry at `level` whose part [addr, next) lies in the walk's range.
	 * Addresses are linear offsets (canonical VA with the sign bits cut). */
	int (*entry)(void *priv, uint64_t *pte, int level, uint64_t addr, uint64_t next);
	/* Optional: a run of n level-0 (4 KiB) entries from ptes[0], covering
	 * [addr, addr + n * 4 KiB), all in the range, holes included (even
	 * with skip_holes: the walker does not read the run). When set, the
	 * walker calls it instead of `entry` at level 0, so that leaf writes
	 * are one tight loop. Same return rule, without PT_WALK_DESCEND. */
	int (*leaf_run)(void *priv, uint64_t *ptes, unsigned n, uint64_t addr);
	/* The visitor ignores entries that are not present: the walker skips
	 * them without a call (whole-space walks are mostly holes), but for
	 * leaf_run's runs. */
	bool skip_holes;
	/* Optional: the walk has left the child table of *pte (an entry at `level`
	 * covering addr). Called for every table the walk descended into. */
	int (*leave)(void *priv, uint64_t *pte, int level, uint64_t addr);
};

/* Walks linear range [start, end) from the root down, iteratively. */
int pt_walk(const struct pt *pt, uint64_t start, uint64_t end, const struct pt_walk_ops *ops, void *priv);

/* Linear offset of a canonical va and back. */
uint64_t pt_linear(const struct pt *pt, uint64_t va);
uint64_t pt_canonical(const struct pt *pt, uint64_t linear);

/* The table an entry points to. */
uint64_t *pt_child(const struct pt *pt, uint64_t pte);

/* Leaf entry for pa at level with opts, and the opts a leaf carries. */
uint64_t pte_make_leaf(uint64_t pa, int level, uint32_t opts);
uint32_t pte_leaf_opts(uint64_t pte, int level);

#endif
