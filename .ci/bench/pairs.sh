#!/usr/bin/env bash
# .ci/bench/pairs.sh OUT ROUNDS NAME=BIN[:extra args] ... -- C_BIN
#
# Before/after runs of the #13 rows (Benchmarks.md, "Reply polling ..."): for every named Swift
# channels-redis-bench binary (e.g. a release build of main and one of a branch) and the C
# hiredis-baseline, ROUNDS rounds, each running every row with each program in turn, against one
# loopback redis-server it starts. Rows: 1/8/64 awaited senders (C: windows 1/8/64), ping-pong,
# latency at 1,000 and 10,000 msg/s (C also with --consumer-thread: its lines carry
# "consumer_thread": true), fan-out to 100 and 1,000 members (C: windows 1,000 and 8;
# Swift also the task hand-off floor, fanout-floor, and the in-memory layer, neither using Redis;
# and after each awaited-senders row its hand-off floor, send-floor),
# and (Swift) the idle 10,000-channel layer. Appends the programs' JSON lines to OUT, each with
# "label", "round" and "load" (the load average when it ended). .ci/bench/run stays the canonical
# full table; this is the short, interleaved A/B.
set -u
OUT=$1; ROUNDS=$2; shift 2
progs=()
while [ "$1" != "--" ]; do progs+=("$1"); shift; done
shift; CBIN=$1
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
DIR=$(mktemp -d)
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no --dir "$DIR" >"$DIR/redis.log" 2>&1 &
RPID=$!
trap 'kill $RPID' EXIT
for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
common=(--host 127.0.0.1 --port "$PORT" --timeout 120 --json)
run() { # label args...
    local label=$1; shift
    local line
    line=$(timeout 150 "$@" "${common[@]}" 2>>"$DIR/stderr.log" | tail -1)
    [ -z "$line" ] && line='{"ok":false}'
    echo "${line%\}},\"label\":\"$label\",\"round\":$r,\"load\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >>"$OUT"
    echo "$label: ${line:0:160}" >&2
}
for r in $(seq "$ROUNDS"); do
  for spec in "${progs[@]}" C; do
    if [ "$spec" = C ]; then
      B=$CBIN; name=C
      for w in 1:10000 8:50000 64:100000; do run C "$B" --workload throughput --window "${w%%:*}" --count "${w##*:}"; done
      run C "$B" --workload pingpong --count 10000
      for rate in 1000 10000; do run C "$B" --workload latency --rate $rate --seconds 3; done
      # The same with each message handed to a consumer thread that takes the receive time.
      for rate in 1000 10000; do run C "$B" --workload latency --rate $rate --seconds 3 --consumer-thread; done
      for f in 100:20000 1000:4000; do
        run C "$B" --workload fanout --members "${f%%:*}" --count "${f##*:}" --window 1000
        run C "$B" --workload fanout --members "${f%%:*}" --count "${f##*:}" --window 8
      done
    else
      name=${spec%%=*}; rest=${spec#*=}; B=${rest%%:*}; extra=""; [ "$rest" != "$B" ] && extra=${rest#*:}
      # shellcheck disable=SC2086
      { for w in 1:10000 8:50000 64:100000; do
          run "$name" "$B" --workload throughput --senders "${w%%:*}" --count "${w##*:}" $extra
          run "$name" "$B" --workload send-floor --senders "${w%%:*}" --count "${w##*:}"  # no Redis: no extra args
        done
        run "$name" "$B" --workload pingpong --count 10000 $extra
        for rate in 1000 10000; do run "$name" "$B" --workload latency --rate $rate --seconds 3 $extra; done
        for f in 100:20000 1000:4000; do
          run "$name" "$B" --workload fanout --members "${f%%:*}" --count "${f##*:}" $extra
          # No Redis, so no extra args (the layer's options, which these refuse).
          run "$name" "$B" --workload fanout-floor --members "${f%%:*}" --count "${f##*:}"
          run "$name" "$B" --workload fanout --layer in-memory --members "${f%%:*}" --count "${f##*:}"
        done
        run "$name" "$B" --workload memory --channels 10000 --idle-seconds 5 $extra; }
    fi
  done
done
