# make bench: figures, not tests. Each piece prints its own table.
BENCH_BINS := $(B)/release/bench/bench_pt
$(B)/release/bench/bench_pt: $(B)/release/bench/bench_pt.o $(B)/release/libkvmpt.a
	$(CC_release) $(CFLAGS_release) $(LDFLAGS) $^ -o $@

BENCH_RUN := $(B)/release/bench/bench_pt
include bench/pool_sizes.mk
# kvmrt's exit/MMIO/#PF round trips (bench-kvm, kvmrt/build.mk) and the fuzz
# targets' execs/s (bench/fuzz-speed) run after the engine's figures.
bench: $(BENCH_BINS) $(BENCH_DEPS)
	@for b in $(BENCH_RUN); do echo "== $$b"; $$b || exit 1; done
	@$(MAKE) --no-print-directory bench-kvm
	@if [ -x bench/fuzz-speed ]; then bench/fuzz-speed; fi
