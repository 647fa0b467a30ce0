/* The structure-aware mutator, shared by both engines: libFuzzer's
 * LLVMFuzzerCustomMutator / LLVMFuzzerCustomCrossOver (linked into the
 * target) and an AFL++ custom mutator library (afl_custom_init /
 * afl_custom_fuzz / afl_custom_deinit, built as build/mutator/T.so and
 * loaded with AFL_CUSTOM_MUTATOR_LIBRARY).
 *
 * Reads the input through the target's fuzz_describe (fuzzer.h): items
 * (operations; fuzz_slots' regions) and their fields. Mutates whole items:
 * insert a new one, delete, duplicate, swap two, splice a run of items from
 * another input; moves a VALUE field (address, length, PA) to the nearest
 * boundary (4 KiB, 2 MiB, 1 GiB, 512 GiB or a canonical edge, sometimes a
 * page off it) or by a power of two of pages; flips one permission bit of a
 * BITS field. One to three of
 * those are stacked; about a fifth of the time it falls back to byte
 * mutation (libFuzzer's own LLVMFuzzerMutate; a small havoc of its own
 * under AFL++, which also runs its havoc stage after ours).
 *
 * FUZZ_MUTATOR=bytes in the environment turns the structure off (libFuzzer:
 * every call is LLVMFuzzerMutate, no custom cross-over); make fuzz sets it,
 * or leaves AFL_CUSTOM_MUTATOR_LIBRARY unset, for FUZZ_MUTATOR=bytes.
 *
 * Debug: FUZZ_MUTATOR_DEBUG=1 prints each structural mutation to stderr. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzer.h"

#define MUT_SCRATCH 48  /* random bytes a new item is decoded from */

struct mut {
	uint64_t rng;
	int debug;
	uint8_t *buf;           /* output under construction */
	size_t cap;
	struct fuzz_shape shape, other;
	bool shape_ok;          /* shape describes the buffer as it is */
};

static uint64_t rnd(struct mut *m)
{
	/* xorshift64*: deterministic from the engine's seed */
	uint64_t x = m->rng ? m->rng : 0x9e3779b97f4a7c15ull;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	m->rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

static uint32_t below(struct mut *m, uint32_t n)
{
	return n ? (uint32_t)(rnd(m) % n) : 0;
}

/* Replaces [a, b) of buf (length *len) with n bytes of src; false when the
 * result would not fit in max. */
static bool splice_bytes(uint8_t *buf, size_t *len, size_t max, size_t a, size_t b, const uint8_t *src, size_t n)
{
	if (a > b || b > *len || *len - (b - a) + n > max)
		return false;
	memmove(buf + a + n, buf + b, *len - b);
	if (n)
		memmove(buf + a, src, n);
	*len = *len - (b - a) + n;
	return true;
}

/* Items of list l: indexes into s->item. */
static uint32_t list_items(const struct fuzz_shape *s, int l, uint32_t *idx, uint32_t max)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < s->nitem && n < max; i++)
		if (s->item[i].list == l)
			idx[n++] = i;
	return n;
}

/* Where a new item of list l goes before item k of that list (k == count:
 * after the last). */
static uint32_t list_pos(const struct fuzz_shape *s, const uint32_t *idx, uint32_t count, uint32_t k, int l)
{
	if (k < count)
		return s->item[idx[k]].off;
	if (count)
		return s->item[idx[count - 1]].off + s->item[idx[count - 1]].len;
	return s->list_start[l];
}

static void set_count(uint8_t *buf, size_t len, const struct fuzz_shape *s, int l, uint32_t count)
{
	if (s->count_off[l] >= 0 && (size_t)s->count_off[l] < len)
		buf[s->count_off[l]] = (uint8_t)count;
}

static uint8_t interesting_byte(struct mut *m)
{
	static const uint8_t v[] = { 0, 1, 2, 3, 4, 0x7f, 0x80, 0x81, 0xff, 0xfe, 0x40, 0xc0, 0x10, 0x20, 0x08, 0x0c };
	return rnd(m) & 1 ? (uint8_t)rnd(m) : v[below(m, sizeof(v))];
}

/* A fresh item of list l: random bytes placed where the list starts (with
 * the list's count set to one), decoded by the target to find its span. */
static size_t new_item(struct mut *m, const uint8_t *in, size_t len, int l, uint8_t *out, size_t max)
{
	const struct fuzz_shape *s = &m->shape;
	size_t pre = s->list_start[l];
	uint8_t tmp[512];
	if (pre + MUT_SCRATCH > sizeof(tmp))
		return 0;
	memset(tmp, 0, pre);
	memcpy(tmp, in, pre < len ? pre : len);
	if (s->count_off[l] >= 0)
		tmp[s->count_off[l]] = 1;
	for (size_t i = 0; i < MUT_SCRATCH; i++)
		tmp[pre + i] = interesting_byte(m);
	static struct fuzz_shape t;  /* large: not on the stack */
	fuzz_describe(tmp, pre + MUT_SCRATCH, &t);
	for (uint32_t i = 0; i < t.nitem; i++)
		if (t.item[i].list == l && t.item[i].off == pre) {
			size_t n = t.item[i].len < max ? t.item[i].len : max;
			memcpy(out, tmp + pre, n);
			return n;
		}
	return 0;
}

static const uint64_t UNITS[4] = { 0x1000ull, 0x200000ull, 0x40000000ull, 0x8000000000ull };
static const uint64_t EDGES[] = {
	0x0ull,                 0x1000ull,              0x7ffffffff000ull,      0x800000000000ull,
	0xffff800000000000ull, 0xfffffffffffff000ull,  0x10000000000000ull,    0x100000000ull,
	0x1000000000000ull,     0xfff0000000000ull,
};

/* v moved to a boundary near it: rounded to a unit (down, up or nearest) or
 * the nearest canonical edge, a third of the time a page off it; or moved
 * by a power of two of pages (so that it lands half-way between two 2 MiB or
 * 1 GiB boundaries: congruent to a smaller unit only). */
static uint64_t boundary(struct mut *m, uint64_t v)
{
	uint64_t r;
	uint32_t how = below(m, 5);
	if (how == 4) {
		uint64_t d = 0x1000ull << below(m, 19);
		return below(m, 2) ? v + d : v - d;
	}
	if (how < 3) {
		uint64_t u = UNITS[below(m, 4)];
		uint64_t down = v & ~(u - 1), up = down + u;
		r = how == 0 ? down : how == 1 ? up : (v - down < up - v ? down : up);
	} else {
		r = EDGES[0];
		for (size_t i = 1; i < sizeof(EDGES) / sizeof(EDGES[0]); i++) {
			uint64_t d = EDGES[i] > v ? EDGES[i] - v : v - EDGES[i];
			uint64_t dr = r > v ? r - v : v - r;
			if (d < dr)
				r = EDGES[i];
		}
	}
	switch (below(m, 6)) {
	case 0:
		return r + 0x1000;
	case 1:
		return r - 0x1000;
	default:
		return r;
	}
}

/* A field of class cls anywhere in the input (items and header). */
static const struct fuzz_field *pick_field(struct mut *m, const struct fuzz_shape *s, uint8_t cls)
{
	const struct fuzz_field *found = NULL;
	uint32_t seen = 0;
	for (uint32_t i = 0; i < s->nhdr; i++)
		if (s->hdr[i].cls == cls && below(m, ++seen) == 0)
			found = &s->hdr[i];
	for (uint32_t i = 0; i < s->nitem; i++)
		for (uint32_t k = 0; k < s->item[i].nfield; k++)
			if (s->item[i].f[k].cls == cls && below(m, ++seen) == 0)
				found = &s->item[i].f[k];
	return found;
}

enum { M_INSERT, M_DELETE, M_DUP, M_SWAP, M_SPLICE, M_BOUNDARY, M_FLIP, M_COUNT };
static const char *const M_NAME[M_COUNT] = { "insert", "delete", "duplicate", "swap", "splice", "boundary", "flip" };

/* One structural mutation of buf (length *len, room max): force, or a
 * random one when force < 0; oth (may be NULL) is the other input for
 * splices. False when it did not apply. */
static bool mutate_once(struct mut *m, uint8_t *buf, size_t *len, size_t max, const uint8_t *oth, size_t olen,
			int force)
{
	struct fuzz_shape *s = &m->shape;
	if (!m->shape_ok)
		fuzz_describe(buf, *len, s);
	m->shape_ok = true;
	static uint32_t idx[FUZZ_MAX_ITEMS];
	int what = force >= 0 ? force : (int)below(m, M_COUNT);
	int l = s->count_max[1] && below(m, 4) == 0 ? 1 : 0;
	uint32_t n = list_items(s, l, idx, FUZZ_MAX_ITEMS);
	uint8_t item[512];
	bool ok = false;
	/* Header shorter than the list start: pad with zeros first. */
	if (*len < s->list_start[l] && (what == M_INSERT || what == M_SPLICE)) {
		size_t pad = s->list_start[l] - *len;
		if (*len + pad > max)
			return false;
		memset(buf + *len, 0, pad);
		*len += pad;
		m->shape_ok = false;
	}
	switch (what) {
	case M_INSERT: {
		if (n >= s->count_max[l])
			return false;
		size_t k = new_item(m, buf, *len, l, item, sizeof(item));
		uint32_t at = list_pos(s, idx, n, below(m, n + 1), l);
		ok = k && splice_bytes(buf, len, max, at, at, item, k);
		if (ok)
			set_count(buf, *len, s, l, n + 1);
		break;
	}
	case M_DELETE: {
		if (!n)
			return false;
		const struct fuzz_item *it = &s->item[idx[below(m, n)]];
		ok = splice_bytes(buf, len, max, it->off, it->off + it->len, NULL, 0);
		if (ok)
			set_count(buf, *len, s, l, n - 1);
		break;
	}
	case M_DUP: {
		if (!n || n >= s->count_max[l])
			return false;
		const struct fuzz_item *it = &s->item[idx[below(m, n)]];
		size_t k = it->len < sizeof(item) ? it->len : sizeof(item);
		memcpy(item, buf + it->off, k);
		uint32_t at = below(m, 2) ? it->off + it->len : list_pos(s, idx, n, below(m, n + 1), l);
		ok = splice_bytes(buf, len, max, at, at, item, k);
		if (ok)
			set_count(buf, *len, s, l, n + 1);
		break;
	}
	case M_SWAP: {
		if (n < 2)
			return false;
		uint32_t a = below(m, n), b = below(m, n);
		if (a == b)
			b = (a + 1) % n;
		if (a > b) {
			uint32_t t = a;
			a = b, b = t;
		}
		const struct fuzz_item *x = &s->item[idx[a]], *y = &s->item[idx[b]];
		size_t span = y->off + y->len - x->off;
		if (span > sizeof(item))
			return false;
		/* y, what lies between, x */
		size_t mid = y->off - (x->off + x->len), k = 0;
		memcpy(item + k, buf + y->off, y->len), k += y->len;
		memcpy(item + k, buf + x->off + x->len, mid), k += mid;
		memcpy(item + k, buf + x->off, x->len), k += x->len;
		memcpy(buf + x->off, item, k);
		ok = true;
		break;
	}
	case M_SPLICE: {
		if (!oth || !olen)
			return false;
		struct fuzz_shape *o = &m->other;
		fuzz_describe(oth, olen, o);
		static uint32_t oidx[FUZZ_MAX_ITEMS];
		uint32_t on = list_items(o, l, oidx, FUZZ_MAX_ITEMS);
		if (!on)
			return false;
		uint32_t from = below(m, on), cnt = 1 + below(m, on - from < 8 ? on - from : 8);
		if (n + cnt > s->count_max[l])
			cnt = s->count_max[l] > n ? s->count_max[l] - n : 0;
		if (!cnt)
			return false;
		const struct fuzz_item *a = &o->item[oidx[from]], *b = &o->item[oidx[from + cnt - 1]];
		size_t k = b->off + b->len - a->off;
		uint32_t at = list_pos(s, idx, n, below(m, n + 1), l);
		/* Half the time the run replaces as many items from there on. */
		uint32_t kill = 0, first = 0;
		for (first = 0; first < n && s->item[idx[first]].off < at; first++)
			;
		if (below(m, 2) && first < n) {
			kill = n - first < cnt ? n - first : cnt;
			const struct fuzz_item *z = &s->item[idx[first + kill - 1]];
			ok = splice_bytes(buf, len, max, at, z->off + z->len, oth + a->off, k);
		} else {
			ok = splice_bytes(buf, len, max, at, at, oth + a->off, k);
		}
		if (ok)
			set_count(buf, *len, s, l, n - kill + cnt);
		break;
	}
	case M_BOUNDARY: {
		const struct fuzz_field *f = pick_field(m, s, FUZZ_F_VALUE);
		if (!f)
			return false;
		uint8_t enc[16];
		size_t k = fuzz_field_encode(f, buf + f->off, boundary(m, f->value), enc);
		ok = k && splice_bytes(buf, len, max, f->off, f->off + f->len, enc, k);
		break;
	}
	case M_FLIP: {
		const struct fuzz_field *f = pick_field(m, s, FUZZ_F_BITS);
		if (!f || !f->flipmask)
			return false;
		unsigned bits[8], nb = 0;
		for (unsigned b = 0; b < 8; b++)
			if (f->flipmask & (1u << b))
				bits[nb++] = b;
		uint8_t bit = (uint8_t)(1u << bits[below(m, nb)]);
		if (f->enc) {
			uint8_t enc[16];
			size_t k = fuzz_field_encode(f, buf + f->off, f->value ^ bit, enc);
			ok = k && splice_bytes(buf, len, max, f->off, f->off + f->len, enc, k);
		} else if (f->off < *len) {
			buf[f->off] ^= bit;
			ok = true;
		}
		break;
	}
	}
	if (ok)
		m->shape_ok = false;
	if (ok && m->debug)
		fprintf(stderr, "mutator: %s (list %d, %u items) -> %zu bytes\n", M_NAME[what], l, n, *len);
	return ok;
}

/* 1-3 stacked structural mutations; 0 when none applied. */
static size_t mutate(struct mut *m, uint8_t *buf, size_t len, size_t max, const uint8_t *oth, size_t olen)
{
	m->shape_ok = false;
	unsigned want = 1 + below(m, 3), done = 0;
	for (unsigned tries = 0; done < want && tries < 16; tries++)
		done += mutate_once(m, buf, &len, max, oth, olen, -1);
	return done ? len : 0;
}

static int mutator_mode(void)
{
	static int mode = -1; /* 0 bytes, 1 structure */
	if (mode < 0) {
		const char *e = getenv("FUZZ_MUTATOR");
		mode = e && !strcmp(e, "bytes") ? 0 : 1;
	}
	return mode;
}

static int debug_mode(void)
{
	const char *e = getenv("FUZZ_MUTATOR_DEBUG");
	return e && *e == '1';
}

#ifdef FUZZ_MUTATOR_AFL
/* ---- AFL++: build/mutator/T.so ---- */
#define EXPORT __attribute__((visibility("default")))

EXPORT void *afl_custom_init(void *afl, unsigned int seed);
EXPORT size_t afl_custom_fuzz(void *data, uint8_t *buf, size_t buf_size, uint8_t **out_buf, uint8_t *add_buf,
			      size_t add_buf_size, size_t max_size);
EXPORT void afl_custom_deinit(void *data);

EXPORT void *afl_custom_init(void *afl, unsigned int seed)
{
	(void)afl;
	struct mut *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->rng = seed * 0x9e3779b97f4a7c15ull + 1;
	m->debug = debug_mode();
	return m;
}

/* A few byte mutations: bit flip, interesting byte, random byte. */
static size_t havoc_bytes(struct mut *m, uint8_t *buf, size_t len)
{
	if (!len)
		return 0;
	for (unsigned i = 1 + below(m, 4); i; i--) {
		size_t at = below(m, (uint32_t)len);
		switch (below(m, 3)) {
		case 0:
			buf[at] ^= (uint8_t)(1u << below(m, 8));
			break;
		case 1:
			buf[at] = interesting_byte(m);
			break;
		default:
			buf[at] = (uint8_t)rnd(m);
			break;
		}
	}
	return len;
}

EXPORT size_t afl_custom_fuzz(void *data, uint8_t *buf, size_t buf_size, uint8_t **out_buf, uint8_t *add_buf,
			      size_t add_buf_size, size_t max_size)
{
	struct mut *m = data;
	size_t room = max_size > buf_size + 1024 ? max_size : buf_size + 1024;
	if (m->cap < room) {
		uint8_t *nb = realloc(m->buf, room);
		if (!nb) {
			*out_buf = buf;
			return buf_size;
		}
		m->buf = nb, m->cap = room;
	}
	memcpy(m->buf, buf, buf_size);
	*out_buf = m->buf;
	size_t n = 0;
	if (mutator_mode() && below(m, 5))
		n = mutate(m, m->buf, buf_size, max_size, add_buf, add_buf_size);
	if (!n)
		n = havoc_bytes(m, m->buf, buf_size);
	return n ? n : buf_size;
}

EXPORT void afl_custom_deinit(void *data)
{
	struct mut *m = data;
	if (m)
		free(m->buf);
	free(m);
}

#else
/* ---- libFuzzer: linked into build/libfuzzer/T ---- */
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);
size_t LLVMFuzzerCustomCrossOver(const uint8_t *data1, size_t size1, const uint8_t *data2, size_t size2, uint8_t *out,
				 size_t max_out_size, unsigned int seed);

static struct mut lf_mut;

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	if (!mutator_mode())
		return LLVMFuzzerMutate(data, size, max_size);
	struct mut *m = &lf_mut;
	m->rng ^= seed * 0x9e3779b97f4a7c15ull + 1;
	if (m->rng == 0)
		m->rng = 1;
	m->debug = debug_mode();
	if (below(m, 5) == 0 || size > max_size)
		return LLVMFuzzerMutate(data, size, max_size);
	size_t n = mutate(m, data, size, max_size, NULL, 0);
	return n ? n : LLVMFuzzerMutate(data, size, max_size);
}

size_t LLVMFuzzerCustomCrossOver(const uint8_t *data1, size_t size1, const uint8_t *data2, size_t size2, uint8_t *out,
				 size_t max_out_size, unsigned int seed)
{
	if (!mutator_mode() || size1 > max_out_size)
		return 0; /* libFuzzer picks another mutation */
	struct mut *m = &lf_mut;
	m->rng ^= seed * 0x9e3779b97f4a7c15ull + 7;
	if (m->rng == 0)
		m->rng = 1;
	/* A splice of a run of data2's items into data1. */
	for (unsigned tries = 0; tries < 4; tries++) {
		size_t len = size1;
		memcpy(out, data1, size1);
		m->shape_ok = false;
		if (mutate_once(m, out, &len, max_out_size, data2, size2, M_SPLICE))
			return len;
	}
	return 0;
}
#endif
