# mk/bench.mk - the load generator's smoke run (the `bench` target itself is in the
# top Makefile: `make bench` builds everything, then runs scripts/bench.sh;
# `BENCH_BASELINE=<other build dir> make bench` runs the daemon rows against that
# build's redlockd too and prints both side by side, see the script's header).
#
#   make bench-smoke   BENCH_QUICK=1 run of scripts/bench.sh: three masters, redlockd,
#                      three 1-second lockbench rows, a short fleet row (a second
#                      redlockd, 2 x 4 clients on one key), the direct client and a short
#                      redis-benchmark; fails when a row fails (errors, an overlap), never
#                      on a missed target. Used by `make check`.

.PHONY: bench-smoke
bench-smoke: $(BUILD)/redlockd $(BUILD)/lockbench
	BUILD=$(BUILD) BENCH_QUICK=1 sh scripts/bench.sh
