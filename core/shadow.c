/* The shadow MMU: what should be mapped, as disjoint ranges in an AVL tree
 * over an array of nodes (indices, not pointers, so that the array can grow
 * with realloc), threaded by a list in VA order for O(1) iteration. Simple
 * on purpose otherwise; it shares no code with the engine, argument checks
 * included, so that a mistake in one shows up against the other. */
#include "shadow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pt.h"

#define SHADOW_PAGE 4096ull
#define LOWER_END   0x0000800000000000ull /* first non-canonical address */
#define UPPER_START 0xffff800000000000ull
#define PA_LIMIT    (1ull << 52)
#define MAX_DEPTH   64   /* an AVL tree of 2^32 nodes is at most 46 deep */

struct shadow_node {
	struct shadow_range r;        /* first: a range pointer is its node's */
	uint32_t left, right;         /* tree */
	uint32_t prev, next;          /* VA order; 0 ends; next also links free nodes */
	int32_t height;               /* 0 for the empty tree (node 0) */
};

#define N(i) (s->node[i])

int shadow_init(struct shadow *s, size_t capacity)
{
	memset(s, 0, sizeof(*s));
	if (capacity < 4)
		capacity = 4;
	if (capacity >= UINT32_MAX)
		return -ENOMEM;
	s->node = calloc(capacity + 1, sizeof(*s->node));
	if (!s->node)
		return -ENOMEM;
	s->capacity = capacity;
	s->fresh = 1;
	return 0;
}

void shadow_destroy(struct shadow *s)
{
	free(s->node);
	memset(s, 0, sizeof(*s));
}

void shadow_clear(struct shadow *s)
{
	s->root = s->head = s->tail = s->free = 0;
	s->fresh = 1;
	s->count = 0;
}

/* At least `want` nodes can be taken without failing: 0 or -ENOMEM. */
static int reserve(struct shadow *s, size_t want)
{
	size_t have = s->capacity + 1 - s->fresh;
	for (uint32_t i = s->free; i && have < want; i = N(i).next)
		have++;
	if (have >= want)
		return 0;
	size_t cap = s->capacity * 2 + want;
	if (cap >= UINT32_MAX)
		return -ENOMEM;
	struct shadow_node *n = realloc(s->node, (cap + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	s->node = n;
	s->capacity = cap;
	return 0;
}

static uint32_t take(struct shadow *s)
{
	uint32_t i = s->free;
	if (i)
		s->free = N(i).next;
	else
		i = s->fresh++;
	memset(&N(i), 0, sizeof(N(i)));
	return i;
}

static void give(struct shadow *s, uint32_t i)
{
	N(i).next = s->free;
	s->free = i;
}

static uint64_t last_of(const struct shadow_range *r)
{
	return r->va + r->len - 1;
}

/* ---- the AVL tree ---- */

static void fix_height(struct shadow *s, uint32_t i)
{
	int32_t l = N(N(i).left).height, r = N(N(i).right).height;
	N(i).height = 1 + (l > r ? l : r);
}

static uint32_t rotate_right(struct shadow *s, uint32_t i)
{
	uint32_t l = N(i).left;
	N(i).left = N(l).right;
	N(l).right = i;
	fix_height(s, i);
	fix_height(s, l);
	return l;
}

static uint32_t rotate_left(struct shadow *s, uint32_t i)
{
	uint32_t r = N(i).right;
	N(i).right = N(r).left;
	N(r).left = i;
	fix_height(s, i);
	fix_height(s, r);
	return r;
}

/* Restores the AVL property at i (its subtrees hold it); the new root. */
static uint32_t rebalance(struct shadow *s, uint32_t i)
{
	fix_height(s, i);
	int32_t bal = N(N(i).left).height - N(N(i).right).height;
	if (bal > 1) {
		uint32_t l = N(i).left;
		if (N(N(l).left).height < N(N(l).right).height)
			N(i).left = rotate_left(s, l);
		return rotate_right(s, i);
	}
	if (bal < -1) {
		uint32_t r = N(i).right;
		if (N(N(r).right).height < N(N(r).left).height)
			N(i).right = rotate_right(s, r);
		return rotate_left(s, i);
	}
	return i;
}

/* After a change below path[depth - 1]: rebalance every node on the path,
 * bottom up, relinking each to its parent (right[k]: path[k+1] is its right
 * child). */
static void retrace(struct shadow *s, const uint32_t *path, const bool *right, int depth)
{
	for (int k = depth - 1; k >= 0; k--) {
		uint32_t n = rebalance(s, path[k]);
		if (k == 0)
			s->root = n;
		else if (right[k - 1])
			N(path[k - 1]).right = n;
		else
			N(path[k - 1]).left = n;
	}
}

/* Links node i (its range disjoint from all others) into tree and list. */
static void insert(struct shadow *s, uint32_t i)
{
	uint32_t path[MAX_DEPTH] = { 0 };
	bool right[MAX_DEPTH] = { 0 };
	int depth = 0;
	uint32_t pred = 0, succ = 0;
	N(i).height = 1;
	for (uint32_t n = s->root; n;) {
		path[depth] = n;
		right[depth] = N(n).r.va < N(i).r.va;
		if (right[depth]) {
			pred = n;
			n = N(n).right;
		} else {
			succ = n;
			n = N(n).left;
		}
		depth++;
	}
	if (depth == 0)
		s->root = i;
	else if (right[depth - 1])
		N(path[depth - 1]).right = i;
	else
		N(path[depth - 1]).left = i;
	retrace(s, path, right, depth);
	N(i).prev = pred;
	N(i).next = succ;
	if (pred)
		N(pred).next = i;
	else
		s->head = i;
	if (succ)
		N(succ).prev = i;
	else
		s->tail = i;
	s->count++;
}

static void unlink_list(struct shadow *s, uint32_t i)
{
	if (N(i).prev)
		N(N(i).prev).next = N(i).next;
	else
		s->head = N(i).next;
	if (N(i).next)
		N(N(i).next).prev = N(i).prev;
	else
		s->tail = N(i).prev;
}

/* Removes the range that starts at va (it must exist). A node with two
 * children takes its successor's range, and the successor's node goes: a
 * node index may then hold another range, never a range another index. */
static void erase(struct shadow *s, uint64_t va)
{
	uint32_t path[MAX_DEPTH];
	bool right[MAX_DEPTH];
	int depth = 0;
	uint32_t n = s->root;
	while (N(n).r.va != va) {
		path[depth] = n;
		right[depth] = N(n).r.va < va;
		n = right[depth] ? N(n).right : N(n).left;
		depth++;
	}
	uint32_t gone = n, child;
	if (N(n).left && N(n).right) {
		/* The successor: leftmost of the right subtree, next in the list. */
		path[depth] = n;
		right[depth++] = true;
		gone = N(n).right;
		while (N(gone).left) {
			path[depth] = gone;
			right[depth++] = false;
			gone = N(gone).left;
		}
		N(n).r = N(gone).r;
		child = N(gone).right;
	} else {
		child = N(n).left ? N(n).left : N(n).right;
	}
	unlink_list(s, gone);
	if (depth == 0)
		s->root = child;
	else if (right[depth - 1])
		N(path[depth - 1]).right = child;
	else
		N(path[depth - 1]).left = child;
	retrace(s, path, right, depth);
	give(s, gone);
	s->count--;
}

/* The first node whose range ends at or after va, or 0. */
static uint32_t lower(const struct shadow *s, uint64_t va)
{
	uint32_t best = 0;
	for (uint32_t n = s->root; n;) {
		if (last_of(&N(n).r) >= va) {
			best = n;
			n = N(n).left;
		} else {
			n = N(n).right;
		}
	}
	return best;
}

/* ---- the model ---- */

/* [va, last] is a legal range: aligned, not empty, in one canonical half. */
static bool range_ok(uint64_t va, uint64_t len)
{
	if (va % SHADOW_PAGE || len % SHADOW_PAGE || len == 0)
		return false;
	uint64_t last = va + len - 1;
	if (last < va)
		return false;
	bool lower_half = last < LOWER_END;
	bool upper_half = va >= UPPER_START;
	return lower_half || upper_half;
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

/* Removes [va, last] from the ranges. Needs one free node (a split). */
static void cut(struct shadow *s, uint64_t va, uint64_t last)
{
	for (;;) {
		uint32_t i = lower(s, va);
		if (!i || N(i).r.va > last)
			return;
		struct shadow_range *r = &N(i).r;
		if (r->va < va && last_of(r) > last) {
			/* Splits in two: the right piece is a new range. */
			uint32_t j = take(s);
			uint64_t skip = last + 1 - r->va;
			N(j).r = (struct shadow_range){ .va = last + 1, .len = r->len - skip, .pa = r->pa + skip,
							.opts = r->opts };
			r->len = va - r->va;
			insert(s, j);
			return;
		}
		if (r->va < va) {
			r->len = va - r->va;  /* keeps its left part; order unchanged */
		} else if (last_of(r) > last) {
			uint64_t skip = last + 1 - r->va;
			r->va += skip;        /* keeps its right part; order unchanged */
			r->pa += skip;
			r->len -= skip;
			return;
		} else {
			erase(s, r->va);
		}
	}
}

int shadow_map(struct shadow *s, uint64_t va, uint64_t len, uint64_t pa, uint32_t opts)
{
	if (!range_ok(va, len) || !opts_ok(opts) || pa % SHADOW_PAGE || pa >= PA_LIMIT || len > PA_LIMIT - pa)
		return -EINVAL;
	if (reserve(s, 2))
		return -ENOMEM;
	cut(s, va, va + len - 1);
	uint32_t i = take(s);
	N(i).r = (struct shadow_range){ .va = va, .len = len, .pa = pa, .opts = opts };
	insert(s, i);
	return 0;
}

int shadow_unmap(struct shadow *s, uint64_t va, uint64_t len)
{
	if (!range_ok(va, len))
		return -EINVAL;
	if (reserve(s, 1))
		return -ENOMEM;
	cut(s, va, va + len - 1);
	return 0;
}

const struct shadow_range *shadow_lower(const struct shadow *s, uint64_t va)
{
	uint32_t i = lower(s, va);
	return i ? &N(i).r : NULL;
}

const struct shadow_range *shadow_find(const struct shadow *s, uint64_t va)
{
	const struct shadow_range *r = shadow_lower(s, va);
	return r && r->va <= va ? r : NULL;
}

const struct shadow_range *shadow_first(const struct shadow *s)
{
	return s->head ? &N(s->head).r : NULL;
}

const struct shadow_range *shadow_last(const struct shadow *s)
{
	return s->tail ? &N(s->tail).r : NULL;
}

const struct shadow_range *shadow_next(const struct shadow *s, const struct shadow_range *r)
{
	uint32_t i = ((const struct shadow_node *)r)->next;
	return i ? &N(i).r : NULL;
}

const struct shadow_range *shadow_prev(const struct shadow *s, const struct shadow_range *r)
{
	uint32_t i = ((const struct shadow_node *)r)->prev;
	return i ? &N(i).r : NULL;
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
	if (len == 0)
		return true;
	const struct shadow_range *r = shadow_lower(s, va);
	return !r || r->va > va + len - 1;
}

void shadow_merge(struct shadow *s)
{
	for (uint32_t i = s->head; i;) {
		uint32_t j = N(i).next;
		if (j && N(i).r.va + N(i).r.len == N(j).r.va && N(i).r.pa + N(i).r.len == N(j).r.pa &&
		    N(i).r.opts == N(j).r.opts) {
			uint64_t len = N(j).r.len;
			erase(s, N(j).r.va);   /* never moves i's range: i is j's predecessor */
			N(i).r.len += len;
		} else {
			i = j;
		}
	}
}
