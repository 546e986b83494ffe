#!/usr/bin/env bash
# Reference data at a health system's scale: how long the staff roster, patient directory
# and care relationships take to load, and how much memory they hold, with
# `phiwatch check` (which loads all three and exits); then the peak of a reload while
# `phiwatch run` serves, when the new index is built beside the one in service.
#
#   benches/reference.sh                          # 5,000,000 patients, 10,000,000 care rows
#   PATIENTS=1000000 CARE=1000000 benches/reference.sh
#
# Environment: PATIENTS (5000000), CARE (10000000), STAFF (30000), SEED (1), DATA (folder
# for the generated CSVs, reused while its files exist; default
# $CARGO_TARGET_DIR/bench-data/reference-<patients>x<care>), PHIWATCH (binary; default
# built here with cargo build --release), SKIP (`reload` to leave out the reload figure).
# Needs /usr/bin/time (GNU time, Debian package "time") and awk. The files are large
# (about 0.5 GB for the defaults): delete DATA when done.
#
# The generated values vary as a real directory's do: ids in shuffled order, a few hundred
# family names, streets and postcodes, 1% deceased, 0.2% VIP, 1% staff who are patients;
# care rows in random patient order over two years, 40 departments, a named user on one
# row in five, one row in fifty still open.
set -euo pipefail

cd "$(dirname "$0")/.."
PATIENTS=${PATIENTS:-5000000}
CARE=${CARE:-10000000}
STAFF=${STAFF:-30000}
SEED=${SEED:-1}
SKIP=${SKIP:-}
TARGET=${CARGO_TARGET_DIR:-target}
DATA=${DATA:-$TARGET/bench-data/reference-${PATIENTS}x$CARE}

if [ -z "${PHIWATCH:-}" ]; then
  cargo build --release --quiet
  PHIWATCH=$TARGET/release/phiwatch
fi
[ -x "$PHIWATCH" ] || { echo "no phiwatch binary at $PHIWATCH" >&2; exit 1; }
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "GNU time is missing: apt-get install time" >&2; exit 1; }
mkdir -p "$DATA"
DATA=$(cd "$DATA" && pwd)

# generate KIND ROWS: one reference file on standard output.
generate() {
  awk -v kind="$1" -v rows="$2" -v patients="$PATIENTS" -v staff="$STAFF" -v seed="$SEED" '
    function pick(a, n) { return a[int(rand() * n) + 1] }
    # A permutation-like spread of 1..n: ids are not written in order.
    function shuffled(i, n) { return (i * 7919 + 104729) % n + 1 }
    function date(days,   y, d, m, ml) { # days since 2000-01-01 -> YYYY-MM-DD
      y = 2000
      while (1) { d = (y % 4 == 0) ? 366 : 365; if (days < d) break; days -= d; y++ }
      for (m = 1; m <= 12; m++) {
        ml = mlen[m] + ((m == 2 && y % 4 == 0) ? 1 : 0)
        if (days < ml) break
        days -= ml
      }
      return sprintf("%04d-%02d-%02d", y, m, days + 1)
    }
    function instant(secs,   day, s) {
      day = int(secs / 86400); s = secs - day * 86400
      return sprintf("%sT%02d:%02d:%02dZ", dates[day], int(s / 3600), int(s % 3600 / 60), s % 60)
    }
    BEGIN {
      srand(seed)
      split("31 28 31 30 31 30 31 31 30 31 30 31", mlen, " ")
      nf = split("Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez", fam, " ")
      ng = split("James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew Betty Anthony Sandra Mark Margaret Donald Ashley Steven Kimberly Paul Emily Andrew Donna Joshua Michelle", giv, " ")
      ns = split("Elm Oak Maple Cedar Pine Birch Walnut Cherry Spruce Willow Ash Hickory Poplar Catalpa Cleveland Lincoln Washington Jefferson Madison Monroe Jackson Lake Hill Park River Spring Forest Meadow Sunset Highland Ridge Church Main Mill Center Union Prospect Grove Water Bridge", st, " ")
      nx = split("St Street Ave Avenue Rd Road Dr Drive Ln Pl Ct Blvd Ter", sx, " ")
      nd = split("Emergency Cardiology Oncology Pediatrics ICU Radiology Laboratory Pharmacy Registration Neurology Orthopedics Obstetrics Gynecology Urology Nephrology Dermatology Psychiatry Gastroenterology Pulmonology Endocrinology Rheumatology Hematology Infectious-Disease Geriatrics Surgery Anesthesiology Ophthalmology ENT Plastic-Surgery Vascular-Surgery Neurosurgery Transplant Burn-Unit NICU PICU Rehabilitation Palliative-Care Billing HIM Med-Surg-5-South", dept, " ")
      nr = split("physician nurse nurse nurse technician pharmacist clerk registrar therapist resident billing", role, " ")
      for (i = 0; i < 366 * 30; i++) dates[i] = date(i)
      if (kind == "staff") {
        print "user_id,given_name,family_name,role,department,address,postcode,hire_date,termination_date"
        for (i = 1; i <= rows; i++) {
          term = (rand() < 0.02) ? dates[8800 + int(rand() * 730)] : ""
          printf "u%d,%s,%s,%s,%s,%d %s %s,%05d,%s,%s\n", 10000 + shuffled(i, rows), pick(giv, ng), pick(fam, nf), \
            pick(role, nr), pick(dept, nd), int(rand() * 400) + 1, pick(st, ns), pick(sx, nx), \
            60000 + int(rand() * 400), dates[3000 + int(rand() * 6000)], term
        }
      } else if (kind == "patients") {
        print "patient_id,given_name,family_name,birth_date,address,postcode,deceased_date,vip,employee_user_id"
        for (i = 1; i <= rows; i++) {
          dead = (rand() < 0.01) ? dates[8000 + int(rand() * 1500)] : ""
          vip = (rand() < 0.002) ? "true" : "false"
          emp = (rand() < 0.01) ? "u" (10000 + int(rand() * staff) + 1) : ""
          unit = (rand() < 0.1) ? sprintf(" Apt %d", int(rand() * 40) + 1) : ""
          printf "MRN%d,%s,%s,%s,%d %s %s%s,%05d,%s,%s,%s\n", 1000000 + shuffled(i, rows), pick(giv, ng), pick(fam, nf), \
            dates[int(rand() * 9000)], int(rand() * 900) + 1, pick(st, ns), pick(sx, nx), unit, \
            60000 + int(rand() * 400), dead, vip, emp
        }
      } else {
        print "patient_id,department,user_id,start,end"
        base = 8766 * 86400 # 2024-01-01
        for (i = 1; i <= rows; i++) {
          s = base + int(rand() * 730 * 86400)
          len = (rand() < 0.7) ? int(rand() * 8 * 3600) + 600 : int(rand() * 10 * 86400) + 3600
          end = (rand() < 0.02) ? "" : instant(s + len)
          user = (rand() < 0.2) ? "u" (10000 + int(rand() * staff) + 1) : ""
          printf "MRN%d,%s,%s,%s,%s\n", 1000000 + int(rand() * patients) + 1, pick(dept, nd), user, instant(s), end
        }
      }
    }'
}

for kind in staff patients care; do
  case $kind in staff) rows=$STAFF ;; patients) rows=$PATIENTS ;; care) rows=$CARE ;; esac
  if [ -s "$DATA/$kind.csv" ]; then
    echo "== reusing $DATA/$kind.csv"
  else
    echo "== generating $rows $kind rows"
    generate "$kind" "$rows" > "$DATA/$kind.csv.tmp"
    mv "$DATA/$kind.csv.tmp" "$DATA/$kind.csv"
  fi
done
du -sh "$DATA" | awk '{print "data: " $1}'

cat > "$DATA/phiwatch.toml" <<EOF
[reference]
staff = "staff.csv"
patients = "patients.csv"
care = "care.csv"

[engine]
timezone = "UTC"

[[sources]]
name = "events"
type = "file"
paths = ["events/*.jsonl"]
format = "canonical"

[[sinks]]
type = "file"
path = "alerts.ndjson"
format = "json"
EOF
mkdir -p "$DATA/events"

RESULTS=$DATA/bench-results.txt
: > "$RESULTS"

# The load: phiwatch check reads the three files into the index the engine uses and exits.
err=$DATA/bench-load.err
"$TIME" -v "$PHIWATCH" check --config "$DATA/phiwatch.toml" > "$DATA/bench-load.out" 2> "$err" || true
grep -q 'reference data:' "$DATA/bench-load.out" || { echo "the load failed:" >&2; cat "$DATA/bench-load.out" "$err" >&2; exit 1; }
wall=$(grep -F 'Elapsed (wall clock)' "$err" | awk '{print $NF}')
rss=$(grep -F 'Maximum resident set size' "$err" | awk '{print $NF}')
printf 'load    %s: %s wall, %d MiB peak\n' "$(grep -o 'reference data:.*' "$DATA/bench-load.out")" "$wall" "$((rss / 1024))" | tee -a "$RESULTS"

case " $SKIP " in *" reload "*) exit 0 ;; esac

# The reload: phiwatch run serves with the data loaded, events keep arriving, the care
# file is touched (a new copy: same rows) and the daemon loads it beside the data in
# service. Peak memory is then the old index and the new one together; events written
# during the load are counted processed before the load has finished.
RUN_DIR=$DATA/run
rm -rf "$RUN_DIR" && mkdir -p "$RUN_DIR/events"
sed -e "s|\"staff.csv\"|\"$DATA/staff.csv\"|; s|\"patients.csv\"|\"$DATA/patients.csv\"|; s|\"care.csv\"|\"$DATA/care.csv\"|" \
  -e "s|events/\*.jsonl|$RUN_DIR/events/*.jsonl|; s|\"alerts.ndjson\"|\"$RUN_DIR/alerts.ndjson\"|" \
  "$DATA/phiwatch.toml" > "$RUN_DIR/phiwatch.toml"
PORT=${PORT:-19464}
cat >> "$RUN_DIR/phiwatch.toml" <<EOF

[state]
dir = "$RUN_DIR/state"

[metrics]
listen = "127.0.0.1:$PORT"
EOF
# metric NAME: the sum of a metric's series (empty while the endpoint does not answer).
metric() { curl -fsS "http://127.0.0.1:$PORT/metrics" 2>/dev/null |
  awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2; n++} END {if (n) printf "%d\n", s}'; }
event() { printf '{"ts":"%s","user":"u10001","action":"view","patient":"MRN1000001"}\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$RUN_DIR/events/live.jsonl"; }
"$TIME" -v "$PHIWATCH" run --config "$RUN_DIR/phiwatch.toml" > "$RUN_DIR/run.out" 2> "$RUN_DIR/run.err" &
RUN_PID=$!
trap 'kill $(pgrep -P $RUN_PID) 2>/dev/null || true' EXIT
start=$(date +%s)
until grep -q 'phiwatch run started' "$RUN_DIR/run.err" 2>/dev/null; do
  sleep 0.5
  kill -0 $RUN_PID 2>/dev/null || { echo "phiwatch run ended:" >&2; tail -5 "$RUN_DIR/run.err" >&2; exit 1; }
done
echo "run: serving after $(( $(date +%s) - start )) s"
RUN_CHILD=$(pgrep -P $RUN_PID)  # phiwatch under /usr/bin/time
rss_serving=$(awk '/VmRSS/ {print $2}' "/proc/$RUN_CHILD/status")
loaded_at=$(metric phiwatch_reference_reload_timestamp_seconds)
touch "$DATA/care.csv"
reload_start=$(date +%s)
during=0
before=$(metric phiwatch_events_processed_total); before=${before:-0}
after=$before
# An event every 0.2 s; the processed count is kept only while the old data still serves.
while :; do
  event; during=$((during + 1))
  sleep 0.2
  processed=$(metric phiwatch_events_processed_total)
  [ "$(metric phiwatch_reference_reload_timestamp_seconds)" = "$loaded_at" ] || break
  after=${processed:-$after}
done
reload_secs=$(( $(date +%s) - reload_start ))
kill -TERM "$RUN_CHILD"; wait $RUN_PID || true
trap - EXIT
peak=$(grep -F 'Maximum resident set size' "$RUN_DIR/run.err" | awk '{print $NF}')
printf 'reload  %d s while serving: %d MiB before, %d MiB peak (old and new index); %d of %d events written during the load processed before it ended\n' \
  "$reload_secs" "$((rss_serving / 1024))" "$((peak / 1024))" "$((after - before))" "$during" | tee -a "$RESULTS"
