# make bench: figures, not tests. Each piece prints its own table.
BENCH_BINS := $(B)/release/bench/bench_pt
$(B)/release/bench/bench_pt: $(B)/release/bench/bench_pt.o $(B)/release/libkvmpt.a
	$(CC_release) $(CFLAGS_release) $(LDFLAGS) $^ -o $@

BENCH_RUN := $(B)/release/bench/bench_pt
bench: $(BENCH_BINS) $(BENCH_DEPS)
	@for b in $(BENCH_RUN); do echo "== $$b"; $$b || exit 1; done
