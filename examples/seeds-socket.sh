#!/bin/bash
# The five seed libraries' jobs over a plain TCP socket, nothing but bash:
# REDLOCK_TCP=host:port. `seeds-socket.sh JOB`.
set -e
host=${REDLOCK_TCP%:*} port=${REDLOCK_TCP##*:}
exec 3<>"/dev/tcp/$host/$port"
req() { printf '%s\r\n' "$1" >&3; IFS= read -r reply <&3; reply=${reply%$'\r'}; }
ok() { [ "${reply%% *}" = OK ] || { echo "unexpected: $reply" >&2; exit 1; }; }
case "$1" in
using)    req "ACQUIRE seed-using 300 AUTOEXTEND WAIT 5000"; ok; id=$(echo "$reply" | cut -d' ' -f2)
          for step in 1 2 3; do
              sleep 0.2
              # signal.aborted: an EVENT LOST line waiting on the socket means the lock is gone
              if read -r -t 0.01 ev <&3; then echo "aborted: $ev" >&2; exit 1; fi
          done
          req "RELEASE $id"; ok; echo "using: 3 steps under $id" ;;
retries)  for i in 0 1 2 3; do req "ACQUIRE seed-retries 10000"; [ "${reply%% *}" = OK ] && break; sleep 1; done
          ok; id=$(echo "$reply" | cut -d' ' -f2); req "RELEASE $id"; ok ;;
validity) req "ACQUIRE seed-validity 10000"; ok; set -- $reply; echo "validity: $3 ms, fence $4"
          req "EXTEND $2 15000"; ok; req "RELEASE $2"; ok ;;
execute)  req "ACQUIRE seed-execute 5000 WAIT 20000"; ok; id=$(echo "$reply" | cut -d' ' -f2)
          echo "start $$" >> "$SEEDS_LOG"; sleep 0.1; echo "end $$" >> "$SEEDS_LOG"
          req "RELEASE $id"; ok ;;
acquire-all) req "ACQUIRE kitchen-light,bedroom-light 10000 PRIORITY 100"; ok
          id=$(echo "$reply" | cut -d' ' -f2); req "RELEASE $id"; ok ;;
*)        echo "usage: $0 using|retries|validity|execute|acquire-all" >&2; exit 64 ;;
esac
req QUIT
