/* Internals of the slot engine shared with check_slots.c. */
#ifndef KVMPT_SLOTS_INTERNAL_H
#define KVMPT_SLOTS_INTERNAL_H

#include <signal.h>

#include "physmap.h"
#include "slots.h"

/* Takes s->lock with every signal blocked; *old receives the previous mask. */
void slots_lock(struct slots *s, sigset_t *old);
/* Releases s->lock and restores the mask. */
void slots_unlock(struct slots *s, const sigset_t *old);

/* Id of the slot whose block starts at block_pa, or -1. Lock-free. */
int64_t slots_find(const struct slots *s, uint64_t block_pa);

/* PT_* options the engine gives a block of kind under s->flags. */
uint32_t slots_opts(const struct slots *s, enum region_kind kind);

#endif
