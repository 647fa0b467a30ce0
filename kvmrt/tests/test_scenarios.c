/* Every `kvmrt run` scenario in lazy and legacy mode with the checker on,
 * the race on 4 vCPU threads, and CPL0 runs. What each must do:
 *   collapse-race, unmap-race (lazy, 4 vCPUs): succeed with shootdowns and
 *           reclaimed table pages in the counters;
 *   lazy:   succeeds, no MMIO exit at all;
 *   legacy: touch, rep-movs, lock-xadd, unmapped, race succeed and show MMIO
 *           exits; xsave, avx and cmpxchg16b stop with a reported emulation
 *           failure (KVM cannot emulate them), never a hang or a wrong value.
 * Debug one line with `build/kvmrt run NAME [--legacy] --check`. */
#include <stdio.h>
#include <string.h>

#include "../scenarios.h"
#include "../../core/tests/t.h"

enum { NONE, MUST, ANY };

struct expect {
	const char *name;
	bool legacy;
	int cpl;
	unsigned vcpus;
	enum scen_status status;
	int mmio;         /* MMIO exits: MUST (legacy), NONE (lazy), ANY */
};

static const struct expect cases[] = {
	{ "touch", false, 3, 1, SCEN_OK, NONE },
	{ "xsave", false, 3, 1, SCEN_OK, NONE },
	{ "avx", false, 3, 1, SCEN_OK, NONE },
	{ "rep-movs", false, 3, 1, SCEN_OK, NONE },
	{ "cmpxchg16b", false, 3, 1, SCEN_OK, NONE },
	{ "lock-xadd", false, 3, 2, SCEN_OK, NONE },
	{ "unmapped", false, 3, 1, SCEN_OK, NONE },
	{ "race", false, 3, 4, SCEN_OK, NONE },
	/* Live tables: readers on 3 vCPUs while the tables change under them. */
	{ "collapse-race", false, 3, 4, SCEN_OK, NONE },
	{ "unmap-race", false, 3, 4, SCEN_OK, NONE },
	{ "touch", true, 3, 1, SCEN_OK, MUST },
	{ "xsave", true, 3, 1, SCEN_EMULATION, MUST },
	{ "avx", true, 3, 1, SCEN_EMULATION, MUST },
	{ "rep-movs", true, 3, 1, SCEN_OK, MUST },
	{ "cmpxchg16b", true, 3, 1, SCEN_EMULATION, MUST },
	{ "lock-xadd", true, 3, 2, SCEN_OK, MUST },
	{ "unmapped", true, 3, 1, SCEN_OK, MUST },
	{ "race", true, 3, 4, SCEN_OK, MUST },
	/* CPL0: the workload in ring 0 (emulated on PVM, so only the cheap ones). */
	{ "touch", false, 0, 1, SCEN_OK, NONE },
	/* At CPL0 PVM emulates the load, and the emulator turns a slot over
	 * host-unmapped memory into an MMIO exit (reported as a record). */
	{ "unmapped", false, 0, 1, SCEN_OK, ANY },
};

int main(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct expect *c = &cases[i];
		struct scen_opts o = { .legacy = c->legacy, .check = true, .cpl = c->cpl, .vcpus = c->vcpus, .quiet = true };
		struct scen_report r;
		char ex[128];
		enum scen_status st = scen_run(c->name, &o, NULL, &r);

		if (st == SCEN_SKIP) {
			t_skip("%s", r.why);
			return t_exit();
		}
		printf("%-10s %-6s cpl%d vcpus %u: status %d, %u slots, %s\n", c->name, c->legacy ? "legacy" : "lazy",
		       c->cpl, c->vcpus, st, r.slots, kvmrt_exits_str(&r.exits, ex, sizeof(ex)));
		T_CHECK(st == c->status, "%s %s cpl%d: status %d, expected %d: %s", c->name,
			c->legacy ? "legacy" : "lazy", c->cpl, st, c->status, r.why);
		if (c->mmio == MUST)
			T_CHECK(r.exits.mmio > 0, "%s legacy: no MMIO exit", c->name);
		else if (c->mmio == NONE)
			T_CHECK(r.exits.mmio == 0, "%s lazy: %llu MMIO exits (a present entry without a slot: "
				"the slot engine must create the slot before writing the entries)", c->name,
				(unsigned long long)r.exits.mmio);
		if (!strcmp(c->name, "collapse-race") || !strcmp(c->name, "unmap-race"))
			T_CHECK(r.exits.shootdowns > 0 && r.exits.reclaimed > 0, "%s: %llu shootdowns, %llu reclaimed",
				c->name, (unsigned long long)r.exits.shootdowns, (unsigned long long)r.exits.reclaimed);
		if (c->status == SCEN_EMULATION)
			T_CHECK(r.exits.internal > 0 && strstr(r.why, "instruction bytes: ") &&
				!strstr(r.why, "(none given)"), "%s legacy: emulation failure without its bytes: %s",
				c->name, r.why);
		if (!c->legacy && c->cpl == 3 && strcmp(c->name, "unmapped"))
			T_CHECK(r.exits.pf > 0, "%s lazy: no #PF exit, so nothing was lazy", c->name);
	}
	return t_exit();
}
