#!/bin/sh
# The five seed libraries' jobs with the `redlock` CLI (REDLOCK_ADDR set;
# REDLOCK names the binary, default `redlock`). `seeds-cli.sh JOB`.
set -e
R=${REDLOCK:-redlock}
case "$1" in
using)    # Deno-Redlock using(): an auto-extended lock for as long as the command runs
          "$R" run -t 300 -w 5000 seed-using -- sh -c 'sleep 0.6; echo "using: done under $REDLOCK_LOCK_ID"' ;;
retries)  # distributed-locks lock({ttl: 10, retries: 3, interval: 1})
          # out=$(cmd) keeps cmd's exit status (a pipe into cut would not): retry
          # only while the lock is held elsewhere (75), stop on any other error.
          i=0
          until out=$("$R" acquire -n -t 10000 --detach seed-retries); do
              status=$?; [ $status -eq 75 ] || exit $status
              i=$((i + 1)); [ $i -gt 3 ] && { echo FailedToObtainKey >&2; exit 75; }; sleep 1
          done
          "$R" release "${out%% *}" ;;
validity) # distrilock: acquire, validity, extend, release
          set -- $("$R" acquire -t 10000 --detach seed-validity)
          echo "validity: $2 ms, fence $3"
          "$R" extend "$1" 15000
          "$R" release "$1" ;;
execute)  # execute a block exclusively
          "$R" run -w 20000 seed-execute -- sh -c 'echo "start $$" >> "$SEEDS_LOG"; sleep 0.1; echo "end $$" >> "$SEEDS_LOG"' ;;
acquire-all) # acquireAll over both lights, all or nothing, at priority 100
          "$R" raw "ACQUIRE kitchen-light,bedroom-light 10000 PRIORITY 100" | grep '^OK ' ;;
*)        echo "usage: $0 using|retries|validity|execute|acquire-all" >&2; exit 64 ;;
esac
