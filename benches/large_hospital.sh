#!/usr/bin/env bash
# Large-hospital benchmark: replay throughput and peak memory, all sources together and
# per format, plus the scorecard against the simulator's labels.
#
#   benches/large_hospital.sh                 # 3000 staff, 30 days (several million events)
#   STAFF=800 DAYS=30 benches/large_hospital.sh
#
# Environment: STAFF (3000), DAYS (30), SEED (1), DATA (folder for the generated hospital,
# default $CARGO_TARGET_DIR/bench-data/hospital-s<seed>-<staff>x<days>; the data is made
# once and reused while its labels.json exists), PHIWATCH (binary; default: built here
# with cargo build --release).
# Needs /usr/bin/time (GNU time, Debian package "time") for peak memory.
set -euo pipefail

cd "$(dirname "$0")/.."
STAFF=${STAFF:-3000}
DAYS=${DAYS:-30}
SEED=${SEED:-1}
TARGET=${CARGO_TARGET_DIR:-target}
DATA=${DATA:-$TARGET/bench-data/hospital-s$SEED-${STAFF}x$DAYS}

if [ -z "${PHIWATCH:-}" ]; then
  cargo build --release --quiet
  PHIWATCH=$TARGET/release/phiwatch
fi
[ -x "$PHIWATCH" ] || { echo "no phiwatch binary at $PHIWATCH" >&2; exit 1; }
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "GNU time is missing: apt-get install time" >&2; exit 1; }

mkdir -p "$(dirname "$DATA")"
DATA=$(cd "$(dirname "$DATA")" && pwd)/$(basename "$DATA")
if [ -f "$DATA/labels.json" ]; then
  echo "== reusing $DATA"
else
  echo "== simulating $STAFF staff, $DAYS days (seed $SEED) into $DATA"
  rm -rf "$DATA"
  "$TIME" -f "simulate: %e s wall, %M KiB peak" \
    "$PHIWATCH" simulate --out "$DATA" --seed "$SEED" --staff "$STAFF" --days "$DAYS"
fi
du -sh "$DATA" | awk '{print "data: " $1}'

# One config per source: the generated phiwatch.toml with every other [[sources]] dropped.
one_source() {
  awk -v want="$1" '
    /^\[\[sources\]\]/ { flush(); insrc = 1; buf = $0 "\n"; keep = 0; next }
    /^\[\[sinks\]\]/   { flush(); insrc = 0 }
    insrc && /^#/      { next }
    insrc              { buf = buf $0 "\n"; if ($0 == "name = \"" want "\"") keep = 1; next }
                       { print }
    function flush() { if (insrc && keep) printf "%s\n", buf; insrc = 0; buf = "" }
  ' "$DATA/phiwatch.toml" > "$DATA/bench-$1.toml"
}

RESULTS=$DATA/bench-results.txt
: > "$RESULTS"
run() { # run NAME CONFIG
  local name=$1 cfg=$2 err=$DATA/bench-$1.err
  rm -rf "$DATA/state"
  "$TIME" -v "$PHIWATCH" replay --config "$cfg" --out "$DATA/alerts-$name.ndjson" 2> "$err" || {
    echo "replay $name failed:" >&2; tail -5 "$err" >&2; return 1; }
  local rate events wall rss alerts
  rate=$(grep -oE '[0-9]+ events/s' "$err" | head -1 | cut -d' ' -f1)
  events=$(grep -oE '[0-9]+ events in' "$err" | head -1 | cut -d' ' -f1)
  wall=$(grep -F 'Elapsed (wall clock)' "$err" | awk '{print $NF}')
  rss=$(grep -F 'Maximum resident set size' "$err" | awk '{print $NF}')
  alerts=$(wc -l < "$DATA/alerts-$name.ndjson")
  printf '%-16s %10s events %9s events/s %9s wall %7s MiB peak %6s alerts\n' \
    "$name" "${events:-?}" "${rate:-?}" "$wall" "$((rss / 1024))" "$alerts" | tee -a "$RESULTS"
}

echo "== replay"
run all "$DATA/phiwatch.toml"
for src in $(grep -E '^name = ' "$DATA/phiwatch.toml" | cut -d'"' -f2); do
  one_source "$src"
  run "$src" "$DATA/bench-$src.toml"
done

echo "== scorecard (all sources)"
"$PHIWATCH" score --labels "$DATA/labels.json" "$DATA/alerts-all.ndjson" | tee -a "$RESULTS" \
  || echo "phiwatch score failed (is the score command wired?)" >&2
echo "results: $RESULTS"
