/* Helpers shared by the fuzz targets of this directory: the encoder hook
 * (text trace -> input bytes, used by `make corpus`), failure reporting,
 * and small bit helpers. Not part of the core API. */
#ifndef KVMPT_FUZZ_COMMON_H
#define KVMPT_FUZZ_COMMON_H

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

#endif
