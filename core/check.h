/* The checker: walks the real tables the way the CPU does and reports the
 * first broken invariant of DESIGN.md as "<invariant>: <detail>". */
#ifndef KVMPT_CHECK_H
#define KVMPT_CHECK_H

#include <stddef.h>
#include <stdint.h>

struct pt;
struct pool;
struct shadow;
struct slots;

/* Translation (against sh; skipped when sh is NULL), structure, accounting
 * (pool used == referenced tables + root + retired pages, and used - retired
 * <= bound when bound != 0) and
 * canonical form. NULL when all hold, else buf holding the description. */
const char *check_tables(const struct pt *pt, const struct shadow *sh, uint64_t bound, char *buf, size_t len);

/* The pool's own accounting, part of check_tables and cheap enough for every
 * operation (O(pages taken / 64)): every summary bit of the free-page bitmap
 * matches its word, no page below pool_take's low hint is free, used + free
 * == capacity. NULL, or what is wrong written into buf. */
const char *check_pool(const struct pool *pool, char *buf, size_t len);

/* Translation of [va, va+len) only, against sh: the cheap per-op check. */
const char *check_range(const struct pt *pt, const struct shadow *sh, uint64_t va, uint64_t len, char *buf, size_t len_buf);

/* Canonical-form oracle: rebuilds tables from scratch from sh, one 1 GiB
 * chunk at a time in a small fresh pool, and compares shape and entries with
 * pt. Allocates (a few pages, whatever the size of pt); not for the fault
 * path. */
const char *check_rebuild(const struct pt *pt, const struct shadow *sh, char *buf, size_t len);

/* The same over the caller's scratch pool (at least REBUILD_SCRATCH_PAGES
 * pages of room; pool_reset here, so each call costs what the last one
 * used): no allocation, for a process that checks many small trees. */
#define REBUILD_SCRATCH_PAGES 1024
const char *check_rebuild_in(const struct pt *pt, const struct shadow *sh, struct pool *scratch, char *buf, size_t len);

/* The same, calling progress (when not NULL) after each chunk with the
 * linear bytes done of the total the shadow spans. */
const char *check_rebuild_progress(const struct pt *pt, const struct shadow *sh, char *buf, size_t len,
				   void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx);

/* Slot invariants (DESIGN.md 5) plus check_tables on the slot engine's
 * tables. Lives in check_slots.c. */
const char *check_slots(const struct slots *s, char *buf, size_t len);

#endif
