/* The shadow MMU: what should be mapped, as a sorted array of disjoint
 * ranges. Simple on purpose; it shares no code with the engine, argument
 * checks included, so that a mistake in one shows up against the other. */
#include "shadow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pt.h"

#define SHADOW_PAGE 4096ull
#define LOWER_END   0x0000800000000000ull /* first non-canonical address */
#define UPPER_START 0xffff800000000000ull
#define PA_LIMIT    (1ull << 52)

int shadow_init(struct shadow *s, size_t capacity)
{
	s->r = calloc(capacity ? capacity : 1, sizeof(*s->r));
	s->count = 0;
	s->capacity = capacity;
	return s->r ? 0 : -ENOMEM;
}

void shadow_destroy(struct shadow *s)
{
	free(s->r);
	memset(s, 0, sizeof(*s));
}

void shadow_clear(struct shadow *s)
{
	s->count = 0;
}

static uint64_t last_of(const struct shadow_range *r)
{
	return r->va + r->len - 1;
}

/* [va, last] is a legal range: aligned, not empty, in one canonical half. */
static bool range_ok(uint64_t va, uint64_t len)
{
	if (va % SHADOW_PAGE || len % SHADOW_PAGE || len == 0)
		return false;
	uint64_t last = va + len - 1;
	if (last < va)
		return false;
	bool lower = last < LOWER_END;
	bool upper = va >= UPPER_START;
	return lower || upper;
}

static bool opts_ok(uint32_t opts)
{
	if (opts & ~(uint32_t)(PT_R | PT_W | PT_X | PT_USER | PT_GLOBAL | PT_WC | PT_UC))
		return false;
	if (!(opts & PT_R))
		return false;
	if ((opts & PT_W) && (opts & PT_X))
		return false;
	return !((opts & PT_WC) && (opts & PT_UC));
}

/* Removes [va, last] from the ranges; *at is where a range for it goes. */
static int cut(struct shadow *s, uint64_t va, uint64_t last, size_t room, size_t *at)
{
	size_t lo = 0, hi;
	while (lo < s->count && last_of(&s->r[lo]) < va)
		lo++;
	hi = lo;
	while (hi < s->count && s->r[hi].va <= last)
		hi++;

	struct shadow_range piece[2];
	size_t pieces = 0;
	if (hi > lo && s->r[lo].va < va) {
		piece[pieces] = s->r[lo];
		piece[pieces++].len = va - s->r[lo].va;
	}
	if (hi > lo && last_of(&s->r[hi - 1]) > last) {
		struct shadow_range right = s->r[hi - 1];
		uint64_t skip = last + 1 - right.va;
		right.va += skip;
		right.pa += skip;
		right.len -= skip;
		piece[pieces++] = right;
	}
	if (s->count - (hi - lo) + pieces + room > s->capacity)
		return -ENOSPC;
	/* Replace r[lo, hi) by the pieces, leaving `room` free slots between. */
	size_t tail = s->count - hi;
	size_t left = pieces && piece[0].va < va ? 1 : 0;
	memmove(&s->r[lo + pieces + room], &s->r[hi], tail * sizeof(*s->r));
	for (size_t i = 0; i < pieces; i++)
		s->r[lo + (i < left ? i : i + room)] = piece[i];
	s->count = lo + pieces + room + tail;
	*at = lo + left;
	return 0;
}

int shadow_map(struct shadow *s, uint64_t va, uint64_t len, uint64_t pa, uint32_t opts)
{
	if (!range_ok(va, len) || !opts_ok(opts) || pa % SHADOW_PAGE || pa >= PA_LIMIT || len > PA_LIMIT - pa)
		return -EINVAL;
	size_t at;
	int ret = cut(s, va, va + len - 1, 1, &at);
	if (ret)
		return ret;
	s->r[at] = (struct shadow_range){ .va = va, .len = len, .pa = pa, .opts = opts };
	return 0;
}

int shadow_unmap(struct shadow *s, uint64_t va, uint64_t len)
{
	if (!range_ok(va, len))
		return -EINVAL;
	size_t at;
	return cut(s, va, va + len - 1, 0, &at);
}

const struct shadow_range *shadow_find(const struct shadow *s, uint64_t va)
{
	size_t lo = 0, hi = s->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (last_of(&s->r[mid]) < va)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->count && s->r[lo].va <= va ? &s->r[lo] : NULL;
}

int shadow_lookup(const struct shadow *s, uint64_t va, uint64_t *pa, uint32_t *opts)
{
	const struct shadow_range *r = shadow_find(s, va);
	if (!r)
		return -ENOENT;
	*pa = r->pa + ((va & ~(SHADOW_PAGE - 1)) - r->va);
	*opts = r->opts;
	return 0;
}

bool shadow_is_empty(const struct shadow *s, uint64_t va, uint64_t len)
{
	uint64_t last = va + len - 1;
	for (size_t i = 0; i < s->count; i++)
		if (s->r[i].va <= last && last_of(&s->r[i]) >= va)
			return false;
	return true;
}

void shadow_merge(struct shadow *s)
{
	size_t out = 0;
	for (size_t i = 0; i < s->count; i++) {
		struct shadow_range *prev = out ? &s->r[out - 1] : NULL;
		const struct shadow_range *r = &s->r[i];
		if (prev && prev->va + prev->len == r->va && prev->pa + prev->len == r->pa && prev->opts == r->opts)
			prev->len += r->len;
		else
			s->r[out++] = *r;
	}
	s->count = out;
}
