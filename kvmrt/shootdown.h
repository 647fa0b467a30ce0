/* The shootdown protocol (DESIGN.md "Live tables", docs/live-tables.md).
 *
 * vCPU threads say when they may run guest code (sd_enter ... sd_leave) and
 * pass a flush point before running guest code whenever the pool's epoch
 * moved since their last one. A thread that changed the tables (an unmap, a
 * downgrade, or just to reclaim retired table pages) calls sd_shootdown:
 * it starts a new epoch, kicks every vCPU that is in, and waits until each
 * has either flushed at the new epoch or left; afterwards no vCPU can use a
 * translation or table pointer from before, and pool_reclaim(pool, epoch)
 * may give back every page retired before it.
 *
 * Why it is enough (seq_cst on both sides, Dekker style): a vCPU stores
 * state IN and then loads the epoch; the initiator advances the epoch and
 * then loads each state. Either the vCPU's load sees the new epoch (so it
 * flushes before its next guest entry), or the initiator's load sees IN (so
 * it kicks and waits). A vCPU that is out flushes on entry, because its
 * recorded epoch is older than the pool's.
 *
 * Nothing here knows KVM: kvmrt's kick sets kvm_run.immediate_exit and sends
 * a signal; tests use plain threads. */
#ifndef KVMRT_SHOOTDOWN_H
#define KVMRT_SHOOTDOWN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct pool;

enum { SD_OUT = 0, SD_IN = 1 };

struct sd_cpu {
	_Atomic int state;           /* SD_OUT or SD_IN */
	_Atomic uint64_t flushed;    /* the epoch read before its last flush point */
	_Atomic uint64_t flushes;    /* flush points passed */
};

/* A vCPU that has never flushed: its first entry flushes. */
void sd_cpu_init(struct sd_cpu *c);

/* vCPU thread, before each entry into the guest: marks it in and returns
 * true when it must pass a flush point before running guest code; it then
 * flushes and calls sd_flushed(c, *epoch). Async-signal-safe, lock-free. */
bool sd_enter(struct sd_cpu *c, const struct pool *p, uint64_t *epoch);
void sd_flushed(struct sd_cpu *c, uint64_t epoch);

/* vCPU thread: no guest code runs on it until the next sd_enter. */
void sd_leave(struct sd_cpu *c);

/* Kicks vCPU i out of the guest (signal + immediate_exit in kvmrt). Returns
 * false when vCPU i is run by the calling thread: it is between two runs
 * (it is here), so it passes the flush point before its next entry and
 * need not be waited for (waiting would never end). */
typedef bool (*sd_kick_fn)(void *ctx, unsigned i);
/* Optional: a flush of every vCPU at once that the backend offers (kvmrt on
 * PVM: dropping every shadow page); runs after the new epoch starts, so it
 * covers every page retired before it. */
typedef void (*sd_flush_all_fn)(void *ctx);

/* The initiator: a new epoch, flush_all (may be NULL), then every vCPU of
 * cpus[0..n) that is in is kicked (again every `rekick_us` while it has not
 * answered) until it has flushed at that epoch or left. Returns the epoch to
 * reclaim with; adds the kicks sent to *kicks (may be NULL). May sleep:
 * never on a fault path. */
uint64_t sd_shootdown(struct sd_cpu *cpus, unsigned n, struct pool *p, sd_flush_all_fn flush_all, sd_kick_fn kick,
		      void *ctx, unsigned rekick_us, uint64_t *kicks);

#endif
