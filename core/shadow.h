/* The shadow MMU: a deliberately simple reference model of what should be
 * mapped, as disjoint ranges ordered by VA (a balanced tree, so that every
 * operation costs O(log n) however many ranges there are). It validates
 * arguments with its own rules so that the engine's checks are tested, not
 * reused. */
#ifndef KVMPT_SHADOW_H
#define KVMPT_SHADOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct shadow_range {
	uint64_t va;    /* canonical */
	uint64_t len;
	uint64_t pa;
	uint32_t opts;  /* PT_* from pt.h */
};

struct shadow_node;  /* shadow.c */

/* Ranges in nodes[1..capacity] (index 0 is the empty tree), sorted by va,
 * disjoint, maximal not required. Every range pointer handed out is valid
 * until the next shadow_map/unmap/merge/clear. */
struct shadow {
	struct shadow_node *node;
	uint32_t root;
	uint32_t head, tail;   /* first and last range in VA order */
	uint32_t free;         /* list of given-back nodes */
	uint32_t fresh;        /* next never-used node */
	size_t count;          /* ranges */
	size_t capacity;       /* nodes allocated */
};

/* Allocates room for `capacity` ranges; the shadow grows past it when it must
 * (map and unmap then allocate: size it up front where that matters). 0 or
 * -ENOMEM. */
int shadow_init(struct shadow *s, size_t capacity);
void shadow_destroy(struct shadow *s);
void shadow_clear(struct shadow *s);

/* Same contract and return codes as pt_map / pt_unmap: -EINVAL for bad
 * arguments, and -ENOMEM only when the shadow itself cannot grow (nothing
 * changed then). O(log n) plus O(log n) per range replaced. */
int shadow_map(struct shadow *s, uint64_t va, uint64_t len, uint64_t pa, uint32_t opts);
int shadow_unmap(struct shadow *s, uint64_t va, uint64_t len);

/* The range holding va, or NULL. O(log n). */
const struct shadow_range *shadow_find(const struct shadow *s, uint64_t va);

/* The first range that ends at or after va (holds va or lies above it), or
 * NULL. O(log n). */
const struct shadow_range *shadow_lower(const struct shadow *s, uint64_t va);

/* In VA order: the first and last range, and the one after / before r (NULL at the
 * ends). O(1). */
const struct shadow_range *shadow_first(const struct shadow *s);
const struct shadow_range *shadow_last(const struct shadow *s);
const struct shadow_range *shadow_next(const struct shadow *s, const struct shadow_range *r);
const struct shadow_range *shadow_prev(const struct shadow *s, const struct shadow_range *r);

/* Translation of one page: 0 with *pa and *opts, or -ENOENT. */
int shadow_lookup(const struct shadow *s, uint64_t va, uint64_t *pa, uint32_t *opts);

/* No range meets [va, va + len). O(log n). */
bool shadow_is_empty(const struct shadow *s, uint64_t va, uint64_t len);

/* Merges neighbours that continue each other (contiguous VA and PA, same
 * opts), so that each range is maximal. */
void shadow_merge(struct shadow *s);

#endif
