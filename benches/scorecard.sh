#!/usr/bin/env bash
# Scorecard over several simulated months: simulate (once per seed and size, kept under
# $DATA), replay, score, then totals per family and per detector.
#
#   benches/scorecard.sh 101 102 103          # 800-staff months, seeds given
#   STAFF=3000 benches/scorecard.sh 1         # the 3,000-staff month
#   SEEDS="$(seq 101 110)" benches/scorecard.sh
#
# Environment: STAFF (800), DAYS (30), DATA (folder for generated months; default
# $CARGO_TARGET_DIR/scorecard-data), KEEP=0 to delete each month's data after scoring,
# PHIWATCH (binary; default: built here with cargo build --release), OUT (folder for the
# per-seed score JSON; default $DATA/scores), DETECTORS (a folder of detector files to
# replay with instead of the shipped ones: to compare a change before building it in).
# Needs python3 for the totals.
set -euo pipefail

cd "$(dirname "$0")/.."
STAFF=${STAFF:-800}
DAYS=${DAYS:-30}
TARGET=${CARGO_TARGET_DIR:-target}
DATA=${DATA:-$TARGET/scorecard-data}
OUT=${OUT:-$DATA/scores}
KEEP=${KEEP:-1}
SEEDS=${SEEDS:-"$*"}
[ -n "$SEEDS" ] || { echo "usage: benches/scorecard.sh SEED..." >&2; exit 2; }

if [ -z "${PHIWATCH:-}" ]; then
  cargo build --release --quiet
  PHIWATCH=$TARGET/release/phiwatch
fi
mkdir -p "$DATA" "$OUT"

files=()
for s in $SEEDS; do
  d="$DATA/s$s-${STAFF}x$DAYS"
  if [ ! -f "$d/labels.json" ]; then
    rm -rf "$d"
    "$PHIWATCH" simulate --out "$d" --seed "$s" --staff "$STAFF" --days "$DAYS" >/dev/null 2>&1
  fi
  config="$d/phiwatch.toml"
  if [ -n "${DETECTORS:-}" ]; then
    config="$d/phiwatch-detectors.toml"
    sed "/^\[engine\]/a detectors = \"$(cd "$DETECTORS" && pwd)\"" "$d/phiwatch.toml" >"$config"
  fi
  "$PHIWATCH" replay --config "$config" --out "$d/alerts.ndjson" >/dev/null 2>&1
  "$PHIWATCH" score --labels "$d/labels.json" "$d/alerts.ndjson" --json >"$OUT/s$s-${STAFF}.json"
  files+=("$OUT/s$s-${STAFF}.json")
  [ "$KEEP" = 1 ] || rm -rf "$d"
done

python3 - "${files[@]}" <<'EOF'
import json, sys
from collections import defaultdict
runs = [(f, json.load(open(f))) for f in sys.argv[1:]]
ins = caught = alerts = false = 0
staff_days = 0.0
fam = defaultdict(lambda: [0, 0])
det = defaultdict(lambda: [0, 0, 0])
hn = defaultdict(int)
missed = []
print(f"{'run':<28} {'caught':>8} {'alerts':>6} {'false':>5} {'prec':>6} {'false/1000/day':>14}")
for f, s in runs:
    name = f.rsplit('/', 1)[-1][:-5]
    ins += s['insiders']; caught += s['caught']; alerts += s['alerts']; false += s['false_alerts']
    staff_days += s['staff'] / 1000 * s['days']
    prec = s['precision'] if s['precision'] is not None else float('nan')
    print(f"{name:<28} {s['caught']:>4}/{s['insiders']:<3} {s['alerts']:>6} {s['false_alerts']:>5} {prec:>6.3f} {s['false_alerts_per_1000_staff_day']:>14.3f}")
    for x in s['families']:
        fam[x['scenario']][0] += x['insiders']; fam[x['scenario']][1] += x['caught']
    for x in s['detectors']:
        d = det[x['detector']]; d[0] += x['alerts']; d[1] += x['false_alerts']; d[2] += x['insiders_caught']
    for k, v in s['false_alerts_by_hard_negative'].items():
        hn[k] += v
    for x in s['scenarios']:
        if not x['caught']:
            missed.append(f"{name} {x['scenario']} {x['user']}: {x['variant']}")
print(f"\nTOTAL recall {caught}/{ins} = {caught/ins:.3f}  precision {(alerts-false)}/{alerts} = {(alerts-false)/max(alerts,1):.3f}  "
      f"false {false} = {false/staff_days:.3f} per 1000 staff per day")
print("\nfamilies:")
for k, (n, c) in sorted(fam.items()):
    flag = "" if c >= 0.9 * n else "   <0.9"
    print(f"  {k:<20} {c}/{n}{flag}")
print("\ndetectors (alerts, false, insiders caught):")
for k, (a, f, c) in sorted(det.items()):
    print(f"  {k:<24} {a:>4} {f:>4} {c:>4}")
print("\nfalse alerts by look-alike:", dict(hn))
print("\nmissed:")
for m in missed:
    print("  " + m)
EOF
