#!/usr/bin/env bash
# Kafka throughput: files -> phiwatch agent -> tansu broker -> phiwatch engine -> alerts.
#
#   benches/kafka_throughput.sh               # 800 staff, 7 days
#   STAFF=800 DAYS=30 PARTITIONS=3 benches/kafka_throughput.sh
#
# Method: simulate a hospital, count its events with `replay`, start a fresh tansu broker
# (memory storage) with PARTITIONS partitions, start one engine and one agent on the same
# files, and time until the engine's partition snapshots hold every event (sum of
# `engine.applied` == replay's count). Events/s = events / that time. The agent starts after
# the engine, so the figure includes spooling, producing, consuming, detection and snapshots.
# The time includes up to 1 s of heartbeat and 1 s of snapshot interval for the last events.
# Each daily file's modification time is set to the end of its day, as on a server, so the
# agent reads the history oldest first, and each source is idle as soon as its files are read
# to their end (they were last written long ago; see idle_source_secs in the README). Prints the alerts written by then
# next to replay's. Line-to-alert latency: benches/kafka_latency.py.
#
# Needs tansu on PATH (.ci/run installs it) and python3.
set -euo pipefail

cd "$(dirname "$0")/.."
STAFF=${STAFF:-800}
DAYS=${DAYS:-7}
SEED=${SEED:-1}
PARTITIONS=${PARTITIONS:-3}
TARGET=${CARGO_TARGET_DIR:-target}
if [ -z "${PHIWATCH:-}" ]; then
  cargo build --release --quiet
  PHIWATCH=$TARGET/release/phiwatch
fi
command -v tansu >/dev/null || { echo "tansu is not on PATH" >&2; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ "${KEEP:-}" = 1 ]; then echo "work folder kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

"$PHIWATCH" simulate --out "$WORK/h" --seed "$SEED" --staff "$STAFF" --days "$DAYS" >/dev/null 2>&1
cd "$WORK/h"
# A hospital's history: each daily file last written at the end of its day (the agent
# reads such backlog oldest first, as it would on a server).
for f in */20*-*-*.*; do
  d=$(basename "$f"); touch -d "${d:0:10} 23:59:59" "$f"
done
EVENTS=$("$PHIWATCH" replay --config phiwatch.toml --out replay.ndjson 2>&1 >/dev/null |
  sed -n 's/^replay: [^,]*, [^,]*, \([0-9]*\) events.*/\1/p')
[ -n "$EVENTS" ] || { echo "no event count from replay" >&2; exit 1; }
rm -rf state

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PROMETHEUS_LISTENER_URL=tcp://127.0.0.1:$MPORT tansu broker --listener-url tcp://127.0.0.1:$PORT \
  --advertised-listener-url tcp://127.0.0.1:$PORT --storage-engine memory://tansu/ \
  >/dev/null 2>"$WORK/tansu.log" &
PIDS+=($!)
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
tansu topic create phiwatch.events --partitions "$PARTITIONS" --broker tcp://127.0.0.1:$PORT
tansu topic create phiwatch.alerts --partitions 1 --broker tcp://127.0.0.1:$PORT
sed -i "/^\[state\]/a snapshot_secs = 1" phiwatch.toml
printf '\n[kafka]\nbrokers = "127.0.0.1:%s"\n' "$PORT" >> phiwatch.toml
# EXTRA: more config lines, e.g. EXTRA='[kafka.properties]\n"fetch.wait.max.ms" = "500"'
if [ -n "${EXTRA:-}" ]; then printf "%b\n" "$EXTRA" >> phiwatch.toml; fi

applied() {
  python3 - <<'EOF'
import glob, json
n = 0
for f in glob.glob("state/engine/*.snapshot.json"):
    try:
        n += json.load(open(f))["engine"]["applied"]
    except Exception:
        pass
print(n)
EOF
}

"$PHIWATCH" engine --config phiwatch.toml 2>"$WORK/engine.log" &
PIDS+=($!)
sleep 2
START=$(date +%s.%N)
"$PHIWATCH" agent --config phiwatch.toml 2>"$WORK/agent.log" &
PIDS+=($!)
while :; do
  A=$(applied)
  [ "$A" -ge "$EVENTS" ] && break
  sleep 0.5
done
END=$(date +%s.%N)
python3 -c "
e=$EVENTS; t=$END-$START
print(f'staff $STAFF, days $DAYS, partitions $PARTITIONS: {e} events through agent, broker and engine in {t:.1f} s = {e/t:,.0f} events/s')"
# Alerts written so far (the engine still holds the findings that are open at the end).
echo "alerts by the engine when caught up: $(wc -l < alerts.ndjson); replay: $(wc -l < replay.ndjson)"
