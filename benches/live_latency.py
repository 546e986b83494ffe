#!/usr/bin/env python3
"""Line-to-alert latency of immediate detectors, live, under background traffic.

    MODE=run   benches/live_latency.py      # phiwatch run
    MODE=kafka benches/live_latency.py      # phiwatch agent -> tansu -> phiwatch engine
    RATE=1000 SECONDS=90 URGENT=40 STAFF=2000 benches/live_latency.py

Method. A simulated hospital (STAFF staff) gives the roster, patient directory and care
rows. phiwatch follows one canonical file; the script appends RATE lines per second to it,
each stamped with the current time (the EHR writing as it goes): ordinary chart views by
staff of departments with the patient under care. URGENT times in the run, spread evenly,
an account the roster says has left opens a chart: the built-in `terminated-account`
detector alerts on it at once (`alert: immediate`; every urgent line uses another leaver).
The file source never goes quiet, so event time lags the wall clock by the allowed
lateness (300 s): the alert comes from early firing (`Engine::push`), not from the
watermark. A reader polls the sink file every 2 ms; latency = the alert's appearance in
the file minus the write of its line. Reported: p50, p90, p99, max.

Needs a release build (built unless PHIWATCH names one) and, for MODE=kafka, tansu on PATH.
"""

import csv
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import datetime as dt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafka_latency import (  # noqa: E402
    AlertReader, fmt_ts, free_port, load_hospital, pct, phiwatch_binary, wait_for, write_config,
)

MODE = os.environ.get("MODE", "run")
RATE = int(os.environ.get("RATE", "1000"))
SECONDS = int(os.environ.get("SECONDS", "90"))
URGENT = int(os.environ.get("URGENT", "40"))
STAFF = int(os.environ.get("STAFF", "2000"))
PARTITIONS = int(os.environ.get("PARTITIONS", "3"))
SEED = int(os.environ.get("SEED", "1"))


def main():
    phiwatch = phiwatch_binary()
    work = tempfile.mkdtemp(prefix="phiwatch-live-")
    procs = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        h = os.path.join(work, "h")
        subprocess.run([phiwatch, "simulate", "--out", h, "--seed", str(SEED), "--staff",
                        str(STAFF), "--days", "2"], check=True, capture_output=True)
        with open(os.path.join(h, "staff.csv")) as f:
            leavers = [r["user_id"] for r in csv.DictReader(f) if r["termination_date"]]
        # Pairs that explain themselves at the simulation's day two (care rows in force).
        header = open(os.path.join(h, "phiwatch.toml")).readline()
        import re
        start = re.search(r"from (\d{4}-\d{2}-\d{2})", header).group(1)
        t0 = dt.datetime.fromisoformat(start + "T16:00:00+00:00") + dt.timedelta(days=1)
        ordinary, _ = load_hospital(h, t0)
        urgent = min(URGENT, len(leavers))
        for d in ("state", "live"):
            os.makedirs(os.path.join(h, d), exist_ok=True)
        live = os.path.join(h, "live", "access.jsonl")
        open(live, "w").close()
        port = None
        penv = dict(os.environ, RUST_LOG="info")
        if MODE == "kafka":
            if not shutil.which("tansu"):
                sys.exit("tansu is not on PATH")
            port = free_port()
            url = f"tcp://127.0.0.1:{port}"
            env = dict(os.environ, PROMETHEUS_LISTENER_URL=f"tcp://127.0.0.1:{free_port()}")
            procs.append(subprocess.Popen(
                ["tansu", "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, "tansu")
            for topic, n in (("phiwatch.events", PARTITIONS), ("phiwatch.alerts", 1)):
                subprocess.run(["tansu", "topic", "create", topic, "--partitions", str(n),
                                "--broker", url], check=True, capture_output=True)
        # The same config as kafka_latency.py (latency.toml); `run` leaves [kafka] unused.
        write_config(h, port or free_port())
        if MODE == "kafka":
            elog = os.path.join(work, "engine.log")
            procs.append(subprocess.Popen([phiwatch, "engine", "--config", "latency.toml"], cwd=h,
                                          env=penv, stderr=open(elog, "w")))
            procs.append(subprocess.Popen([phiwatch, "agent", "--config", "latency.toml"], cwd=h,
                                          env=penv, stderr=open(os.path.join(work, "agent.log"), "w")))
            wait_for(lambda: "partitions assigned" in open(elog).read(), "the engine's partitions")
        else:
            procs.append(subprocess.Popen([phiwatch, "run", "--config", "latency.toml"], cwd=h,
                                          env=penv, stderr=open(os.path.join(work, "run.log"), "w")))
            time.sleep(1)
        reader = AlertReader(os.path.join(h, "alerts.ndjson"))
        reader.start()
        rng = random.Random(SEED)
        total = RATE * SECONDS
        every = max(1, total // (urgent + 1))
        written = {}  # leaver -> wall time its line was written
        w0 = time.time()
        with open(live, "a", buffering=1) as out:
            for i in range(total):
                gap = w0 + i / RATE - time.time()
                if gap > 0:
                    time.sleep(gap)
                ts = fmt_ts(dt.datetime.now(dt.timezone.utc))
                if i % every == every - 1 and len(written) < urgent:
                    user = leavers[len(written)]
                    patient = rng.choice(ordinary)[1]
                else:
                    user, patient = rng.choice(ordinary)
                out.write(json.dumps({"ts": ts, "user": user, "action": "view",
                                      "patient": patient, "host": "ws-1"}) + "\n")
                if user in leavers and user not in written:
                    written[user] = time.time()
        rate = total / (time.time() - w0)
        time.sleep(5)
        reader.stop = True
        lat = []
        for seen, a in reader.seen:
            if a["detector"] == "terminated-account" and a["user"] in written:
                lat.append((seen - written[a["user"]]) * 1000)
        print(f"mode {MODE}: {total} lines at {rate:.0f} lines/s, {len(written)} urgent lines, "
              f"{len(lat)} immediate alerts")
        if lat:
            print(f"line-to-alert: p50 {pct(lat, 50):.0f} ms, p90 {pct(lat, 90):.0f} ms, "
                  f"p99 {pct(lat, 99):.0f} ms, max {max(lat):.0f} ms")
        if len(lat) < len(written):
            print(f"MISSING: {len(written) - len(lat)} urgent lines gave no alert")
    finally:
        for p in procs:
            p.kill()
        if os.environ.get("KEEP") == "1":
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
