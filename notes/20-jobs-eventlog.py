"""Spark jobs of one application from its event log: start, duration, stages, tasks, call site.

    python notes/20-jobs-eventlog.py <spark.eventLog.dir>/<app id>
"""
import json, sys
start = {}; rows = []; first = None
for line in open(sys.argv[1]):
    e = json.loads(line)
    ev = e["Event"]
    if ev == "SparkListenerApplicationStart": first = e["Timestamp"]
    if ev == "SparkListenerJobStart":
        p = e.get("Properties", {})
        site = p.get("callSite.short") or ""
        start[e["Job ID"]] = (e["Submission Time"], site, len(e.get("Stage Infos", [])), sum(s["Number of Tasks"] for s in e.get("Stage Infos", [])))
    if ev == "SparkListenerJobEnd":
        t0, site, stages, tasks = start[e["Job ID"]]
        rows.append((e["Job ID"], (t0 - first) / 1000, (e["Completion Time"] - t0) / 1000, stages, tasks, site))
tot = 0
for r in rows:
    tot += r[2]
    print(f"job {r[0]:3d} at {r[1]:6.2f}s  {r[2]:6.2f}s  stages {r[3]} tasks {r[4]:4d}  {r[5]}")
print(f"{len(rows)} jobs, {tot:.2f} s in jobs")
