#!/usr/bin/env python3
"""Line-to-alert latency through phiwatch agent -> tansu broker -> phiwatch engine.

    benches/kafka_latency.py                      # 300 lines/s for 150 s, 2 snoops/s
    RATE=1000 SECONDS=150 SNOOPS=2 SPEED=60 benches/kafka_latency.py

Method. A simulated hospital (STAFF staff) gives the roster, patient directory and care
rows. A fresh tansu broker (memory storage, PARTITIONS partitions), one engine and one agent
run with a single canonical file source and the built-in detectors. The script appends
lines to that file at a steady RATE lines per second (wall clock), each flushed on its own:

  * ordinary chart views: staff opening charts their department has under care;
  * SNOOPS per second: a staff member opening a VIP's chart with no care relationship (one
    `vip-without-care` alert each; every snoop uses a new user).

An alert is not written the moment its first evidence arrives: phiwatch holds events for
`allowed_lateness_secs` (300 s) to put the sources in event-time order, and keeps a finding
open until the user has been quiet for the detector's gap (30 min) so that ten charts opened
in one evening make one alert. Measuring that at wall-clock speed would take 35 minutes per
alert, so event time runs SPEED times faster than the wall clock (default 60: one second of
writing is one minute of hospital time): a line written at wall time w carries
ts = T0 + SPEED * (w - w0).

A reader polls the engine's alert file every 2 ms. For each snoop alert, the moment it was
due is when the first line with ts > last_seen + gap + lateness was written; the pipeline
latency is the time from that line's write to the alert's appearance in the file: agent
tailing, spool, Kafka produce and consume, engine, sink. Reported: p50, p90, p99 and max of
that, and the event-time delay from the snoop line to its alert (lateness + gap by design).

Needs tansu on PATH (.ci/run installs it) and a release build (built unless PHIWATCH
names a binary). KEEP=1 keeps the work folder (logs, state).
"""

import bisect
import csv
import datetime as dt
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

RATE = int(os.environ.get("RATE", "300"))
SECONDS = int(os.environ.get("SECONDS", "150"))
SPEED = float(os.environ.get("SPEED", "60"))
GAP_S = 30 * 60  # vip-without-care: the built-in gap
LATENESS_S = 300  # [engine] allowed_lateness_secs default
SNOOPS = float(os.environ.get("SNOOPS", "2"))
STAFF = int(os.environ.get("STAFF", "800"))
PARTITIONS = int(os.environ.get("PARTITIONS", "3"))
SEED = int(os.environ.get("SEED", "1"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def phiwatch_binary():
    if os.environ.get("PHIWATCH"):
        return os.environ["PHIWATCH"]
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "phiwatch")


def parse_ts(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def fmt_ts(t):
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (
        t.microsecond // 1000
    )


def load_hospital(h, t0):
    """Ordinary (user, patient) pairs under care at t0, and (user, VIP) pairs without care."""
    staff = {}
    with open(os.path.join(h, "staff.csv")) as f:
        for r in csv.DictReader(f):
            if r["termination_date"]:
                continue
            staff[r["user_id"]] = r["department"]
    patients = {}
    with open(os.path.join(h, "patients.csv")) as f:
        for r in csv.DictReader(f):
            patients[r["patient_id"]] = r
    by_dept = {}
    for u, d in staff.items():
        by_dept.setdefault(d, []).append(u)
    under_care = {}  # patient -> departments with an active care row
    with open(os.path.join(h, "care.csv")) as f:
        for r in csv.DictReader(f):
            if parse_ts(r["start"]) > t0 or (r["end"] and parse_ts(r["end"]) <= t0):
                continue
            under_care.setdefault(r["patient_id"], set()).add(r["department"])
    ordinary = []
    for p, depts in under_care.items():
        pr = patients.get(p)
        if pr is None or pr["vip"] == "true" or pr["deceased_date"] or pr["employee_user_id"]:
            continue
        for d in depts:
            for u in by_dept.get(d, [])[:5]:
                ordinary.append((u, p))
    vips = [p for p, r in patients.items() if r["vip"] == "true" and not r["deceased_date"]]
    snoops = []
    users = sorted(staff)
    random.Random(SEED).shuffle(users)
    for i, u in enumerate(users):
        vip = vips[i % len(vips)]
        if staff[u] in under_care.get(vip, set()):
            continue
        snoops.append((u, vip))
    return ordinary, snoops


def write_config(h, port):
    with open(os.path.join(h, "latency.toml"), "w") as f:
        f.write(
            f"""[reference]
staff = "staff.csv"
patients = "patients.csv"
care = "care.csv"

[engine]
timezone = "America/Chicago"

[[sources]]
name = "live"
type = "file"
paths = ["live/*.jsonl"]
format = "canonical"

[[sinks]]
type = "file"
path = "alerts.ndjson"
format = "json"

[state]
dir = "state"

[kafka]
brokers = "127.0.0.1:{port}"
"""
        )
        # PROPS="fetch.wait.max.ms=100,linger.ms=5": librdkafka properties to try.
        props = [kv.split("=", 1) for kv in os.environ.get("PROPS", "").split(",") if kv]
        if props:
            f.write("[kafka.properties]\n")
            for k, v in props:
                f.write(f'"{k}" = "{v}"\n')


class AlertReader(threading.Thread):
    """Notes the wall time each alert line appears in the sink file."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.seen = []  # (wall time, alert)
        self.stop = False

    def run(self):
        pos, buf = 0, b""
        while not self.stop:
            try:
                with open(self.path, "rb") as f:
                    f.seek(pos)
                    chunk = f.read()
            except FileNotFoundError:
                chunk = b""
            now = time.time()
            if chunk:
                pos += len(chunk)
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        self.seen.append((now, json.loads(line)))
            time.sleep(0.002)


def wait_for(pred, what, secs=60):
    end = time.time() + secs
    while time.time() < end:
        if pred():
            return
        time.sleep(0.1)
    sys.exit(f"timed out waiting for {what}")


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def main():
    if not shutil.which("tansu"):
        sys.exit("tansu is not on PATH")
    phiwatch = phiwatch_binary()
    work = tempfile.mkdtemp(prefix="phiwatch-latency-")
    procs = []

    def cleanup(*_):
        for p in procs:
            p.kill()
        if os.environ.get("KEEP") == "1":
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        h = os.path.join(work, "h")
        subprocess.run(
            [phiwatch, "simulate", "--out", h, "--seed", str(SEED), "--staff", str(STAFF),
             "--days", "2"],
            check=True, capture_output=True,
        )
        header = open(os.path.join(h, "phiwatch.toml")).readline()
        start_day = re.search(r"from (\d{4}-\d{2}-\d{2})", header).group(1)
        # Day two, 10:00 in Chicago: a working hour, care rows of the simulation in force.
        t0 = dt.datetime.fromisoformat(start_day + "T16:00:00+00:00") + dt.timedelta(days=1)
        ordinary, snoops = load_hospital(h, t0)
        # Snoops stop early enough for their alerts to fall due while lines still flow.
        snoop_secs = SECONDS - (GAP_S + LATENESS_S + 120) / SPEED
        want_snoops = int(snoop_secs * SNOOPS)
        if snoop_secs <= 0:
            sys.exit(f"SECONDS={SECONDS} is too short at SPEED={SPEED}; make either larger")
        if not ordinary or len(snoops) < want_snoops:
            sys.exit(f"the simulated hospital has {len(snoops)} snoop pairs, need {want_snoops}")
        for d in ("state", "live"):
            os.makedirs(os.path.join(h, d), exist_ok=True)

        port = free_port()
        env = dict(os.environ, PROMETHEUS_LISTENER_URL=f"tcp://127.0.0.1:{free_port()}")
        url = f"tcp://127.0.0.1:{port}"
        procs.append(subprocess.Popen(
            ["tansu", "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))
        wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, "tansu")
        for topic, n in (("phiwatch.events", PARTITIONS), ("phiwatch.alerts", 1)):
            subprocess.run(["tansu", "topic", "create", topic, "--partitions", str(n),
                            "--broker", url], check=True, capture_output=True)
        write_config(h, port)
        live = os.path.join(h, "live", "access.jsonl")
        open(live, "w").close()
        engine_log = os.path.join(work, "engine.log")
        penv = dict(os.environ, RUST_LOG="info")
        procs.append(subprocess.Popen([phiwatch, "engine", "--config", "latency.toml"], cwd=h,
                                      env=penv, stderr=open(engine_log, "w")))
        procs.append(subprocess.Popen([phiwatch, "agent", "--config", "latency.toml"], cwd=h,
                                      env=penv, stderr=open(os.path.join(work, "agent.log"), "w")))
        wait_for(lambda: "partitions assigned" in open(engine_log).read(), "the engine's partitions")

        reader = AlertReader(os.path.join(h, "alerts.ndjson"))
        reader.start()
        rng = random.Random(SEED)
        every = max(1, round(RATE / SNOOPS))
        total = RATE * SECONDS
        snoop_users = set()
        writes = []  # (wall time written, event seconds after t0), in order
        w0 = time.time()
        late = 0
        with open(live, "a", buffering=1) as out:
            for i in range(total):
                due = w0 + i / RATE
                gap = due - time.time()
                if gap > 0:
                    time.sleep(gap)
                elif gap < -0.05:
                    late += 1
                now = time.time()
                ev = round((now - w0) * SPEED, 3)
                ts = fmt_ts(t0 + dt.timedelta(seconds=ev))
                if i % every == every - 1 and len(snoop_users) < want_snoops:
                    user, patient = snoops[len(snoop_users)]
                    snoop_users.add(user)
                else:
                    user, patient = rng.choice(ordinary)
                out.write(json.dumps({"ts": ts, "user": user, "action": "view",
                                      "patient": patient, "host": "ws-1"}) + "\n")
                writes.append((time.time(), ev))
        written = time.time() - w0

        def snoop_alerts():
            return [(w, a) for w, a in list(reader.seen)
                    if a["detector"] == "vip-without-care" and a["user"] in snoop_users]

        deadline = time.time() + 30
        while len(snoop_alerts()) < len(snoop_users) and time.time() < deadline:
            time.sleep(0.2)
        reader.stop = True
        evs = [e for _, e in writes]
        pipeline, policy = [], []
        for wall, a in snoop_alerts():
            last = (parse_ts(a["last_seen"]) - t0).total_seconds()
            # The first line written after the alert fell due made the engine write it.
            k = bisect.bisect_right(evs, last + GAP_S + LATENESS_S)
            if k < len(writes):
                pipeline.append((wall - writes[k][0]) * 1000)
            policy.append((wall - w0) * SPEED - last)
        print(f"rate {RATE} lines/s for {SECONDS} s ({total} lines in {written:.1f} s, "
              f"{late} written >50 ms late), event time x{SPEED:g}, {PARTITIONS} partitions, "
              f"{STAFF} staff")
        print(f"alerts: {len(reader.seen)}; snoops caught {len(snoop_alerts())} of "
              f"{len(snoop_users)}")
        if pipeline:
            print(f"pipeline latency (line that made the alert due -> alert in the sink file): "
                  f"p50 {pct(pipeline, 50):.0f} ms, p90 {pct(pipeline, 90):.0f} ms, "
                  f"p99 {pct(pipeline, 99):.0f} ms, max {max(pipeline):.0f} ms, "
                  f"mean {statistics.mean(pipeline):.0f} ms (n={len(pipeline)})")
        if policy:
            print(f"event-time delay, snoop line -> alert: p50 {pct(policy, 50) / 60:.1f} min, "
                  f"max {max(policy) / 60:.1f} min (by design: lateness {LATENESS_S // 60} min "
                  f"+ gap {GAP_S // 60} min)")
    finally:
        cleanup()


if __name__ == "__main__":
    main()
