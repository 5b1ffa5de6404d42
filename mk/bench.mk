# mk/bench.mk - the load generator's smoke run (the `bench` target itself is in the
# top Makefile: `make bench` builds everything, then runs scripts/bench.sh).
#
#   make bench-smoke   BENCH_QUICK=1 run of scripts/bench.sh: three masters, redlockd,
#                      two 1-second lockbench rows, the direct client and a short
#                      redis-benchmark; fails when a row fails. Used by `make check`.

.PHONY: bench-smoke
bench-smoke: $(BUILD)/redlockd $(BUILD)/lockbench
	BUILD=$(BUILD) BENCH_QUICK=1 sh scripts/bench.sh
