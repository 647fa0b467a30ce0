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

#endif
