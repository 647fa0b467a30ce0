/* The shadow MMU: a deliberately simple reference model of what should be
 * mapped. A sorted array of disjoint ranges; it validates arguments with its
 * own rules so that the engine's checks are tested, not reused. */
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

struct shadow {
	struct shadow_range *r;  /* sorted by va, disjoint, maximal not required */
	size_t count;
	size_t capacity;
};

/* Allocates room for `capacity` ranges. 0 or -ENOMEM. */
int shadow_init(struct shadow *s, size_t capacity);
void shadow_destroy(struct shadow *s);
void shadow_clear(struct shadow *s);

/* Same contract and return codes as pt_map / pt_unmap (never -ENOMEM for
 * tables; -ENOSPC when the shadow itself is full, which callers avoid). */
int shadow_map(struct shadow *s, uint64_t va, uint64_t len, uint64_t pa, uint32_t opts);
int shadow_unmap(struct shadow *s, uint64_t va, uint64_t len);

/* The range holding va, or NULL. Binary search. */
const struct shadow_range *shadow_find(const struct shadow *s, uint64_t va);

/* Translation of one page: 0 with *pa and *opts, or -ENOENT. */
int shadow_lookup(const struct shadow *s, uint64_t va, uint64_t *pa, uint32_t *opts);

bool shadow_is_empty(const struct shadow *s, uint64_t va, uint64_t len);

/* Merges neighbours that continue each other (contiguous VA and PA, same
 * opts), so that each range is maximal. */
void shadow_merge(struct shadow *s);

#endif
