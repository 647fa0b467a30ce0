/* The shootdown protocol: see shootdown.h for the argument. */
#include "shootdown.h"

#include <time.h>

#include "pool.h"

void sd_cpu_init(struct sd_cpu *c)
{
	atomic_store(&c->state, SD_OUT);
	atomic_store(&c->flushed, 0); /* epochs start at 1: the first entry flushes */
	atomic_store(&c->flushes, 0);
}

bool sd_enter(struct sd_cpu *c, const struct pool *p, uint64_t *epoch)
{
	atomic_store(&c->state, SD_IN);            /* seq_cst: before the load below */
	uint64_t e = pool_epoch(p);                /* seq_cst */
	*epoch = e;
	return atomic_load(&c->flushed) != e;
}

void sd_flushed(struct sd_cpu *c, uint64_t epoch)
{
	atomic_store(&c->flushed, epoch);
	atomic_fetch_add(&c->flushes, 1);
}

void sd_leave(struct sd_cpu *c)
{
	atomic_store(&c->state, SD_OUT);
}

static void sd_sleep_us(unsigned us)
{
	struct timespec ts = { 0, (long)us * 1000 };
	nanosleep(&ts, NULL);
}

uint64_t sd_shootdown(struct sd_cpu *cpus, unsigned n, struct pool *p, sd_flush_all_fn flush_all, sd_kick_fn kick,
		      void *ctx, unsigned rekick_us, uint64_t *kicks)
{
	uint64_t e = pool_epoch_advance(p);        /* seq_cst: before the state loads */
	uint64_t sent = 0;
	if (flush_all)
		flush_all(ctx);
	for (unsigned i = 0; i < n; i++) {
		struct sd_cpu *c = &cpus[i];
		unsigned waited = rekick_us;
		/* flushed >= e: epochs only grow, and a later shootdown's epoch
		 * covers ours. */
		while (atomic_load(&c->state) == SD_IN && atomic_load(&c->flushed) < e) {
			if (waited >= rekick_us) {
				if (!kick(ctx, i))
					break; /* the caller's own vCPU */
				sent++;
				waited = 0;
			}
			sd_sleep_us(20);
			waited += 20;
		}
	}
	if (kicks)
		*kicks += sent;
	return e;
}
