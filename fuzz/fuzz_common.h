/* Helpers shared by the fuzz targets of this directory: the encoder hook
 * (text trace -> input bytes, used by `make corpus`), failure reporting,
 * and small bit helpers. Not part of the core API. */
#ifndef KVMPT_FUZZ_COMMON_H
#define KVMPT_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Output buffer of the encoder. */
struct fuzz_out {
	uint8_t *p;
	size_t len;
	size_t cap;
};

/* Appends bytes; returns -1 when out of room. */
static inline int fuzz_put(struct fuzz_out *o, const void *b, size_t n)
{
	if (o->len + n > o->cap)
		return -1;
	for (size_t i = 0; i < n; i++)
		o->p[o->len++] = ((const uint8_t *)b)[i];
	return 0;
}

static inline int fuzz_put_u8(struct fuzz_out *o, uint8_t v)
{
	return fuzz_put(o, &v, 1);
}

static inline int fuzz_put_u64(struct fuzz_out *o, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	return fuzz_put(o, b, 8);
}

/* Encodes the text trace `text` (DESIGN.md format, the subset the target
 * decodes) into input bytes that decode to the same operations. 0, or -1
 * with a message naming the line in err. Implemented by each target. */
int fuzz_encode(const char *text, struct fuzz_out *out, char *err, size_t errlen);

/* Leaves the canonical form uses to map [va, va+len) to va + d (linear
 * addresses): 4 KiB up to the first 2 MiB edge, 2 MiB up to the first 1 GiB
 * edge, 1 GiB leaves, and down again (each size only where d and huge_1g
 * allow it). The fuzz targets' work caps count with it. */
static inline uint64_t fuzz_map_leaves(uint64_t va, uint64_t len, uint64_t d, bool huge_1g)
{
	const uint64_t page = 0x1000, sz_2m = 0x200000, sz_1g = 0x40000000;
	uint64_t end = va + len;
	uint64_t a2 = (va + sz_2m - 1) & ~(sz_2m - 1), b2 = end & ~(sz_2m - 1);
	if ((d & (sz_2m - 1)) || a2 >= b2)
		return len / page;
	uint64_t n = (a2 - va) / page + (end - b2) / page;
	uint64_t a1 = (a2 + sz_1g - 1) & ~(sz_1g - 1), b1 = b2 & ~(sz_1g - 1);
	if (!huge_1g || (d & (sz_1g - 1)) || a1 >= b1)
		return n + (b2 - a2) / sz_2m;
	return n + (a1 - a2) / sz_2m + (b2 - b1) / sz_2m + (b1 - a1) / sz_1g;
}

#endif
