#!/usr/bin/env bash
# Side-by-side throughput on the same generated files: is phiwatch the fastest thing on
# the path? One run times, in turn (never two at once):
#
#   python   Python's json.loads over every FHIR AuditEvent line, doing nothing else
#   rsyslog  rsyslogd (when installed) copying the FHIR files, imfile -> omfile, no parsing:
#            an own unprivileged-style instance with its own config, work dir and pid file
#   replay   phiwatch replay of the whole month (all formats), alerts to a file
#   run      phiwatch run catching up on the same month from scratch, until every event is
#            processed (phiwatch_events_processed_total from its /metrics)
#   kafka    phiwatch agent -> tansu -> phiwatch engine, until the engine's partition
#            snapshots have applied every event (when tansu is on PATH). The last minutes
#            of event time are applied only once the agent says its sources are idle and
#            then snapshotted (snapshot_secs = 1). The month's files were written long
#            before, so each source is idle as soon as it is read to its end (the files'
#            modification times; a file written within idle_source_secs would hold it
#            5 s more). The row also gives the time until the engine has taken every
#            event (phiwatch_events_processed_total from its /metrics), as the run row
#            does: the pipeline's throughput without the idle heartbeat and snapshot
#   engine   then a second engine (own consumer group, fresh state) reading that filled
#            topic from its start, timed from its launch until its snapshots hold every
#            event: the engine's half alone
#
# and prints events (or lines) per second and phiwatch's ratios to python and rsyslog.
#
#   benches/compare.sh                    # 800 staff, 30 days, seed 1
#   STAFF=3000 DAYS=30 benches/compare.sh
#
# Environment: STAFF (800), DAYS (30), SEED (1), PARTITIONS (3), DATA (folder for the
# generated month, reused while its labels.json exists; default
# $CARGO_TARGET_DIR/bench-data/hospital-s<seed>-<staff>x<days>), PHIWATCH (binary; default
# built here with cargo build --release), SKIP (space-separated names above to leave out).
# Needs python3; rsyslogd and tansu are optional (their rows say "skipped").
set -euo pipefail

cd "$(dirname "$0")/.."
STAFF=${STAFF:-800}
DAYS=${DAYS:-30}
SEED=${SEED:-1}
PARTITIONS=${PARTITIONS:-3}
SKIP=${SKIP:-}
TARGET=${CARGO_TARGET_DIR:-target}
DATA=${DATA:-$TARGET/bench-data/hospital-s$SEED-${STAFF}x$DAYS}
if [ -z "${PHIWATCH:-}" ]; then
  cargo build --release --quiet
  PHIWATCH=$TARGET/release/phiwatch
fi
PHIWATCH=$(cd "$(dirname "$PHIWATCH")" && pwd)/$(basename "$PHIWATCH")
[ -x "$PHIWATCH" ] || { echo "no phiwatch binary at $PHIWATCH" >&2; exit 1; }

mkdir -p "$(dirname "$DATA")"
DATA=$(cd "$(dirname "$DATA")" && pwd)/$(basename "$DATA")
if [ ! -f "$DATA/labels.json" ]; then
  echo "== simulating $STAFF staff, $DAYS days (seed $SEED) into $DATA" >&2
  rm -rf "$DATA"
  "$PHIWATCH" simulate --out "$DATA" --seed "$SEED" --staff "$STAFF" --days "$DAYS" >/dev/null
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.2
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ "${KEEP:-}" = 1 ]; then echo "work folder kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

skipped() { [[ " $SKIP " == *" $1 "* ]]; }
now() { date +%s.%N; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# A fresh copy of the month (config, reference, logs as symlinks) so no run sees another's
# state folder.
fresh() {
  local d=$WORK/$1
  mkdir -p "$d"
  for f in "$DATA"/*; do
    case $(basename "$f") in state | alerts* | bench-*) ;; *) ln -s "$f" "$d/" ;; esac
  done
  rm -f "$d/phiwatch.toml"
  cp "$DATA/phiwatch.toml" "$d/phiwatch.toml"
  echo "$d"
}

FHIR_FILES=("$DATA"/fhir/*.ndjson)
FHIR_LINES=$(cat "${FHIR_FILES[@]}" | wc -l)
declare -A RATE

# --- python json.loads ------------------------------------------------------------------
if ! skipped python; then
  RATE[python]=$(python3 - "${FHIR_FILES[@]}" <<'EOF'
import json, sys, time
t = time.perf_counter(); n = 0
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                n += 1
                try:
                    json.loads(line)
                except ValueError:  # the simulator's few deliberately broken lines
                    pass
print(f"{n / (time.perf_counter() - t):.0f}")
EOF
)
fi

# --- rsyslog imfile -> omfile -----------------------------------------------------------
RSYSLOGD=$(command -v rsyslogd || true)
if [ -n "$RSYSLOGD" ] && ! skipped rsyslog; then
  R=$WORK/rsyslog; mkdir -p "$R/work"
  {
    echo "global(workDirectory=\"$R/work\" maxMessageSize=\"64k\")"
    echo 'module(load="imfile" mode="inotify")'
    echo 'template(name="raw" type="string" string="%msg%\n")'
    echo "input(type=\"imfile\" file=\"$DATA/fhir/*.ndjson\" tag=\"fhir\" ruleset=\"copy\")"
    echo 'ruleset(name="copy") {'
    echo "  action(type=\"omfile\" file=\"$R/out.ndjson\" template=\"raw\" asyncWriting=\"on\" ioBufferSize=\"256k\" flushInterval=\"1\")"
    echo '}'
  } > "$R/rsyslog.conf"
  START=$(now)
  "$RSYSLOGD" -n -f "$R/rsyslog.conf" -i "$R/rsyslogd.pid" 2>"$R/err.log" &
  PIDS+=($!)
  while :; do
    n=$( (wc -l < "$R/out.ndjson") 2>/dev/null || echo 0)
    [ "$n" -ge "$FHIR_LINES" ] && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || { echo "rsyslogd stopped: $(tail -3 "$R/err.log")" >&2; break; }
    sleep 0.2
  done
  END=$(now)
  kill "${PIDS[-1]}" 2>/dev/null || true
  [ "${n:-0}" -ge "$FHIR_LINES" ] && RATE[rsyslog]=$(python3 -c "print(f'{$FHIR_LINES/($END-$START):.0f}')")
fi

# --- phiwatch replay ----------------------------------------------------------------------
D=$(fresh replay)
/usr/bin/time -f "%M" -o "$WORK/replay.rss" "$PHIWATCH" replay --config "$D/phiwatch.toml" \
  --out "$D/alerts.ndjson" 2> "$WORK/replay.err" \
  || { tail -5 "$WORK/replay.err" >&2; exit 1; }
EVENTS=$(sed -n 's/^replay: [^,]*, [^,]*, \([0-9]*\) events.*/\1/p' "$WORK/replay.err")
RATE[replay]=$(sed -n 's/.*(\([0-9]*\) events\/s).*/\1/p' "$WORK/replay.err")
REPLAY_ALERTS=$(wc -l < "$D/alerts.ndjson")
REPLAY_RSS=$(( $(cat "$WORK/replay.rss" | tail -1) / 1024 ))

# Events a phiwatch process has taken (phiwatch_events_processed_total), from its
# /metrics on 127.0.0.1:PORT; 0 while it does not answer yet.
processed() {
  python3 - "$1" <<'EOF'
import sys, urllib.request
try:
    body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=2).read().decode()
except Exception:
    print(0); sys.exit()
print(sum(int(float(l.rsplit(" ", 1)[1])) for l in body.splitlines()
          if l.startswith("phiwatch_events_processed_total")))
EOF
}

# --- phiwatch run, catching up ----------------------------------------------------------
if ! skipped run; then
  D=$(fresh run)
  MPORT=$(free_port)
  printf '\n[metrics]\nlisten = "127.0.0.1:%s"\n' "$MPORT" >> "$D/phiwatch.toml"
  START=$(now)
  (cd "$D" && exec "$PHIWATCH" run --config phiwatch.toml) 2> "$WORK/run.err" &
  PIDS+=($!)
  while :; do
    n=$(processed "$MPORT")
    [ "$n" -ge "$EVENTS" ] && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || { echo "run stopped: $(tail -3 "$WORK/run.err")" >&2; break; }
    sleep 0.2
  done
  END=$(now)
  kill "${PIDS[-1]}" 2>/dev/null || true
  [ "${n:-0}" -ge "$EVENTS" ] && RATE[run]=$(python3 -c "print(f'{$EVENTS/($END-$START):.0f}')")
fi

# --- agent -> tansu -> engine -----------------------------------------------------------
if command -v tansu >/dev/null && ! skipped kafka; then
  D=$(fresh kafka)
  PORT=$(free_port); MPORT=$(free_port)
  (cd "$D" && PROMETHEUS_LISTENER_URL=tcp://127.0.0.1:$MPORT exec tansu broker \
    --listener-url tcp://127.0.0.1:$PORT --advertised-listener-url tcp://127.0.0.1:$PORT \
    --storage-engine memory://tansu/) >/dev/null 2>"$WORK/tansu.log" &
  PIDS+=($!)
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  tansu topic create phiwatch.events --partitions "$PARTITIONS" --broker tcp://127.0.0.1:$PORT >/dev/null
  tansu topic create phiwatch.alerts --partitions 1 --broker tcp://127.0.0.1:$PORT >/dev/null
  sed -i "/^\[state\]/a snapshot_secs = 1" "$D/phiwatch.toml"
  printf '\n[kafka]\nbrokers = "127.0.0.1:%s"\n' "$PORT" >> "$D/phiwatch.toml"
  # The engine's own copy, with a metrics endpoint (the agent's has none: one port each).
  EPORT=$(free_port)
  cp "$D/phiwatch.toml" "$D/engine.toml"
  printf '\n[metrics]\nlisten = "127.0.0.1:%s"\n' "$EPORT" >> "$D/engine.toml"
  applied() {
    python3 - "$D" <<'EOF'
import glob, json, sys
n = 0
for f in glob.glob(sys.argv[1] + "/state/engine/*.snapshot.json"):
    try:
        n += json.load(open(f))["engine"]["applied"]
    except Exception:
        pass
print(n)
EOF
  }
  (cd "$D" && exec "$PHIWATCH" engine --config engine.toml) 2>"$WORK/engine.log" &
  PIDS+=($!)
  sleep 2
  START=$(now)
  (cd "$D" && exec "$PHIWATCH" agent --config phiwatch.toml) 2>"$WORK/agent.log" &
  PIDS+=($!)
  TAKEN_END=
  # One reader a turn, as before: what the engine took first, then what it applied.
  while :; do
    if [ -z "$TAKEN_END" ]; then
      [ "$(processed "$EPORT")" -ge "$EVENTS" ] && TAKEN_END=$(now)
    else
      n=$(applied)
      [ "$n" -ge "$EVENTS" ] && break
    fi
    kill -0 "${PIDS[-1]}" 2>/dev/null || { echo "agent stopped: $(tail -3 "$WORK/agent.log")" >&2; break; }
    sleep 0.25
  done
  END=$(now)
  [ "${n:-0}" -ge "$EVENTS" ] && RATE[kafka]=$(python3 -c "print(f'{$EVENTS/($END-$START):.0f}')")
  [ -n "$TAKEN_END" ] && RATE[kafka_taken]=$(python3 -c "print(f'{$EVENTS/($TAKEN_END-$START):.0f}')")
  KAFKA_ALERTS=$(wc -l < "$D/alerts.ndjson" 2>/dev/null || echo 0)

  # --- the engine alone, on the topic the agent filled -------------------------------------
  # A second engine, in a consumer group of its own and with a fresh state folder, reads the
  # whole topic from the start while the agent (still up) only heartbeats: the engine's
  # half of the pipeline without the agent and the broker's ingest beside it.
  if ! skipped engine; then
    KAFKA_CONF=$D/phiwatch.toml
    D=$(fresh engine)
    cp "$KAFKA_CONF" "$D/phiwatch.toml"
    sed -i '/^\[kafka\]/a group = "phiwatch-bench-engine-alone"' "$D/phiwatch.toml"
    START=$(now)
    (cd "$D" && exec "$PHIWATCH" engine --config phiwatch.toml) 2>"$WORK/engine-alone.log" &
    PIDS+=($!)
    while :; do
      n=$(applied)
      [ "$n" -ge "$EVENTS" ] && break
      kill -0 "${PIDS[-1]}" 2>/dev/null || { echo "engine stopped: $(tail -3 "$WORK/engine-alone.log")" >&2; break; }
      sleep 0.5
    done
    END=$(now)
    [ "${n:-0}" -ge "$EVENTS" ] && RATE[engine]=$(python3 -c "print(f'{$EVENTS/($END-$START):.0f}')")
  fi
fi

# --- table ------------------------------------------------------------------------------
echo
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
echo "month: $STAFF staff, $DAYS days, seed $SEED: $EVENTS events, $FHIR_LINES FHIR lines"
printf '%-34s %14s %10s %10s\n' "what" "per second" "x python" "x rsyslog"
row() { # row LABEL KEY
  local r=${RATE[$2]:-}
  if [ -z "$r" ]; then printf '%-34s %14s\n' "$1" "skipped"; return; fi
  local xp=- xr=-
  [ -n "${RATE[python]:-}" ] && xp=$(python3 -c "print(f'{$r/${RATE[python]}:.1f}')")
  [ -n "${RATE[rsyslog]:-}" ] && xr=$(python3 -c "print(f'{$r/${RATE[rsyslog]}:.2f}')")
  printf '%-34s %14s %10s %10s\n' "$1" "$r" "$xp" "$xr"
}
row "python json.loads (FHIR lines)" python
row "rsyslog imfile->omfile (FHIR)" rsyslog
row "phiwatch replay (events)" replay
row "phiwatch run catch-up (events)" run
row "agent -> tansu -> engine (events)" kafka
row "  same, until the engine took them" kafka_taken
row "engine alone, topic filled (events)" engine
echo "replay: $REPLAY_ALERTS alerts, peak RSS $REPLAY_RSS MiB; engine via tansu: ${KAFKA_ALERTS:-?} alerts when caught up"
