#!/bin/sh
# Run every libFuzzer target for FUZZ_SECONDS on a copy of its seed corpus.
# Fails (exit 1) on the first crash, leak or sanitizer report; the input that
# triggered it is left in $BUILD/fuzz/ (crash-*, leak-*, ...).
BUILD=${BUILD:-build}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
status=0
for target in request reply config redis_reply master; do
    bin="$BUILD/fuzz/fuzz_$target"
    corpus="$BUILD/fuzz/corpus-$target"
    mkdir -p "$corpus"
    cp tests/fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null
    echo "==> fuzz_$target for ${FUZZ_SECONDS}s"
    if ! (cd "$BUILD/fuzz" && "./fuzz_$target" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
            -rss_limit_mb=2048 -print_final_stats=1 "corpus-$target" 2>"fuzz_$target.log"); then
        tail -n 40 "$BUILD/fuzz/fuzz_$target.log"
        echo "fuzz: fuzz_$target FAILED (inputs and log in $BUILD/fuzz/)"
        status=1
        continue
    fi
    grep -E "stat::number_of_executed_units|cov:" "$BUILD/fuzz/fuzz_$target.log" | tail -n 2
done
[ $status -eq 0 ] && echo "fuzz: every target ran clean for ${FUZZ_SECONDS}s"
exit $status
