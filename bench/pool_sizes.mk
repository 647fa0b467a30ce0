# bench/pool_sizes: bound vs peak vs gVisor's estimate (docs/pool-sizing.md).
# Included from bench/build.mk; `make bench` builds and runs it.
POOL_SIZES := $(B)/release/bench/pool_sizes
$(POOL_SIZES): $(B)/release/bench/pool_sizes.o $(B)/release/libkvmpt.a
	$(CC_release) $(CFLAGS_release) $(LDFLAGS) $^ -o $@

BENCH_BINS += $(POOL_SIZES)
BENCH_RUN += $(POOL_SIZES)
bench: $(POOL_SIZES)
