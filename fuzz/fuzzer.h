/* The hooks every fuzz target implements (one target per file, fuzz/fuzz_*.c).
 * Drivers map them to libFuzzer (driver_libfuzzer.c), AFL++ persistent mode
 * (driver_afl.c) and a plain replay main (driver_replay.c). All state is
 * local to one call of fuzz_one: a crash file reproduces on its own. */
#ifndef KVMPT_FUZZER_H
#define KVMPT_FUZZER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Once per process, before any input. 0, or non-zero to give up (the target
 * prints why; fuzz_kvm uses it for "SKIP kvm: ..."). */
int fuzz_init(void);

/* Runs one input. When trace is not NULL, also prints the text trace the
 * input decodes to (DESIGN.md format, replayable by kvmpt-trace). On a broken
 * invariant: prints the trace so far and the invariant to stderr, then
 * abort(). Returns 0 otherwise. */
int fuzz_one(const uint8_t *data, size_t size, FILE *trace);

/* A target's oracle (its checks, not its decoder) sits between
 * FUZZ_ORACLE_BEGIN and FUZZ_ORACLE_END. Under clang it gets no coverage
 * feedback (its branches steer nothing and cost time under trace-cmp; the
 * AFL++ builds keep it out with a deny list made from these markers, see
 * fuzz/build.mk) and, with -DFUZZ_ORACLE_NOASAN (the libFuzzer build), no
 * ASan checks on its own loads: it only reads the pool and the shadow,
 * and the replay-asan build still runs it under ASan. -DFUZZ_ORACLE_COV
 * keeps the coverage. */
#if defined(__clang__) && !defined(FUZZ_ORACLE_COV) && defined(FUZZ_ORACLE_NOASAN)
#define FUZZ_ORACLE_BEGIN \
	_Pragma("clang attribute push(__attribute__((no_sanitize(\"coverage\", \"address\"))), apply_to = function)")
#elif defined(__clang__) && !defined(FUZZ_ORACLE_COV)
#define FUZZ_ORACLE_BEGIN _Pragma("clang attribute push(__attribute__((no_sanitize(\"coverage\"))), apply_to = function)")
#elif defined(__clang__) && defined(FUZZ_ORACLE_NOASAN)
#define FUZZ_ORACLE_BEGIN _Pragma("clang attribute push(__attribute__((no_sanitize(\"address\"))), apply_to = function)")
#endif
#ifdef FUZZ_ORACLE_BEGIN
#define FUZZ_ORACLE_END _Pragma("clang attribute pop")
#else
#define FUZZ_ORACLE_BEGIN
#define FUZZ_ORACLE_END
#endif

/* Byte cursor: fuzz_u8/u16/u64 return 0 once the input is used up. */
struct fuzz_in {
	const uint8_t *p;
	size_t left;
};

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
	if (!in->left)
		return 0;
	in->left--;
	return *in->p++;
}

static inline uint16_t fuzz_u16(struct fuzz_in *in)
{
	return (uint16_t)(fuzz_u8(in) | fuzz_u8(in) << 8);
}

static inline uint64_t fuzz_u64(struct fuzz_in *in)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)fuzz_u8(in) << (8 * i);
	return v;
}

/* ---- structure, for the structure-aware mutator (fuzz/mutator.c) ----
 * A target that links fuzz/mutator.c describes its byte format: the items
 * (operations in list 0; header records such as fuzz_slots' regions in list
 * 1) as byte spans, and inside them the fields a mutation may rewrite whole:
 * VALUE fields (an address, length or PA: what they decoded to, moved to a
 * boundary and written back through fuzz_field_encode) and BITS fields (a
 * byte whose flipmask bits are permissions or flags). Pure functions of the
 * bytes: no engine is run. */
#define FUZZ_MAX_ITEMS  400
#define FUZZ_MAX_FIELDS 3
#define FUZZ_MAX_HDR    4

enum { FUZZ_F_VALUE = 1, FUZZ_F_BITS = 2 };

struct fuzz_field {
	uint32_t off, len;     /* the bytes fuzz_field_encode replaces (BITS: one byte) */
	uint8_t cls;           /* FUZZ_F_VALUE or FUZZ_F_BITS */
	uint8_t enc;           /* the target's own encoding id */
	uint8_t flipmask;      /* BITS: which bits of the byte */
	uint64_t value;        /* VALUE: what the field decoded to */
};

struct fuzz_item {
	uint32_t off, len;     /* len may run short at the end of the input */
	uint8_t list;          /* 0 operations, 1 header records */
	uint8_t nfield;
	struct fuzz_field f[FUZZ_MAX_FIELDS];
};

struct fuzz_shape {
	uint32_t nitem;                 /* items in byte order */
	uint32_t list_start[2];         /* where list i's first item sits (or would) */
	int32_t count_off[2];           /* byte holding list i's item count, -1 none */
	uint32_t count_max[2];          /* most items list i can hold */
	uint32_t nhdr;
	struct fuzz_field hdr[FUZZ_MAX_HDR];  /* header BITS fields */
	struct fuzz_item item[FUZZ_MAX_ITEMS];
};

/* Fills s with the structure of data (targets that link fuzz/mutator.c). */
void fuzz_describe(const uint8_t *data, size_t size, struct fuzz_shape *s);

/* Bytes (at most 16) that replace field f (whose current bytes are old) so
 * that it decodes to value whatever the state before it; 0 when the field
 * cannot say that value. */
size_t fuzz_field_encode(const struct fuzz_field *f, const uint8_t *old, uint64_t value, uint8_t out[16]);

#endif
