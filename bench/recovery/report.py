#!/usr/bin/env python3
"""Results of the failure-recovery benchmark (bench/recovery/run.sh).

  report.py assemble --raw RAWDIR --out RESULTS.json
  report.py render RESULTS.json [--md FILE] [--png FILE]

assemble reads run.sh's raw directory (per system: event times, the probe's
rounds, fio's 500 ms bandwidth/IOPS logs and JSON outputs, the catch-up
polls, /proc/PID/io of the restarted server) and derives the figures; the
JSON keeps the timelines so render (markdown table + plot) needs nothing
else. Every figure is measured in the same run for all systems; the ratio
columns are "times better than the peer" (value/peer for rates,
peer/value for times), so > 1 is better for valorfs.
"""
import argparse
import json
import os
import re
import sys

SYSTEMS = ["valorfs", "moosefs", "glusterfs"]
LABEL = {"valorfs": "valorfs", "moosefs": "MooseFS", "glusterfs": "GlusterFS"}
PEERS = ["moosefs", "glusterfs"]
BIN_MS = 500


def _tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def _json(path):
    """fio JSON (fio may print warnings before the object); None when absent."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    i = text.find("{")
    if i < 0:
        return None
    try:
        return json.loads(text[i:])
    except ValueError:
        return None


def _text(path, limit=40):
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    return lines[:limit]


def _fio_log(path):
    """fio --log_unix_epoch log: [(epoch_ms, value, direction)]."""
    out = []
    for row in _tsv(path):
        parts = [p.strip() for p in row[0].split(",")]
        if len(parts) >= 3:
            try:
                out.append((int(parts[0]), int(parts[1]), int(parts[2])))
            except ValueError:
                pass
    return out


def _bins(samples, t0, t1):
    """500 ms bins over [t0, t1): sum of the samples falling in each bin
    (a bin without a sample is 0: nothing completed there)."""
    n = max(0, (t1 - t0 + BIN_MS - 1) // BIN_MS)
    b = [0.0] * n
    for t, v, _ in samples:
        i = (t - t0) // BIN_MS
        if 0 <= i < n:
            b[i] += v
    return b


def _mean(xs):
    return sum(xs) / len(xs) if xs else None


def _longest_zero_run(bins, start, stop):
    """Longest run of empty bins in bins[start:stop], in seconds."""
    best = cur = 0
    for v in bins[max(0, start):max(0, stop)]:
        cur = cur + 1 if v <= 0 else 0
        best = max(best, cur)
    return best * BIN_MS / 1000


def _probe_figures(rows, t_from, t_to):
    """Probe rounds (start, end, w_us, r_us, status): the longest gap between
    two successful rounds that ends in [t_from, t_to) (a gap spanning t_from
    counts here, one spanning t_to in the next window), the first successful
    round that started at or after t_from (its end - t_from), errors."""
    ok_ends = [r[1] for r in rows if r[4] == "ok"]
    errs = [r for r in rows if r[4] != "ok" and t_from <= r[0] < t_to]
    gap = 0
    prev = None
    for e in ok_ends:
        if prev is not None and t_from <= e < t_to:
            gap = max(gap, e - prev)
        prev = e
    first = next((r for r in rows if r[4] == "ok" and r[0] >= t_from), None)
    longest_round = max((r[1] - r[0] for r in rows if t_from <= r[0] < t_to), default=0)
    return {
        "longest_gap_s": gap / 1000 if gap else None,
        "first_ok_after_s": (first[1] - t_from) / 1000 if first else None,
        "longest_round_s": longest_round / 1000,
        "errors": len(errs),
        "error_kinds": sorted({r[4] for r in errs}),
    }


def _fio_errors(j):
    if not j:
        return None
    return {job["jobname"]: {"total_err": job.get("total_err", 0), "error": job.get("error", 0),
                             "read_bytes": job["read"]["io_bytes"],
                             "write_bytes": job["write"]["io_bytes"]}
            for job in j.get("jobs", [])}


def _log_ts_ms(line):
    """Epoch ms of a valorfs log line (ts=2026-11-26T12:26:37.103Z ...)."""
    import datetime
    m = re.search(r"ts=(\S+)Z", line)
    if not m:
        return None
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
    return int(t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


def _resync_from_log(lines):
    """valorfs's own account of the resync: the storage servers log
    'done target=T ...: N compared, M pushed, B bytes, S s, G GB/s' per
    chain, mgmtd 'target T ... returns to chain C as syncing'."""
    first = last = None
    pushed = chunks = 0
    n = 0
    for ln in lines:
        t = _log_ts_ms(ln)
        if "as syncing" in ln and t is not None:
            first = t if first is None else min(first, t)
        m = re.search(r"done target=\d+ .*?(\d+) pushed, (\d+) bytes", ln)
        if m and t is not None:
            chunks += int(m.group(1))
            pushed += int(m.group(2))
            last = t if last is None else max(last, t)
            n += 1
    if not n:
        return None
    span = (last - first) / 1000 if (first is not None and last is not None) else None
    return {"chains": n, "chunks_pushed": chunks, "bytes_pushed": pushed, "span_s": span,
            "gbs": pushed / 1e9 / span if span else None}


def derive_system(raw, s):
    ev = {}
    for row in _tsv(os.path.join(raw, f"{s}.events.tsv")):
        ev.setdefault(row[0], (int(row[1]), row[2] if len(row) > 2 else ""))
    if "load_start" not in ev or "kill" not in ev:
        return {"events": {k: v[0] for k, v in ev.items()}, "complete": False}
    t_load = ev["load_start"][0]
    t_kill = ev["kill"][0]
    t_restart = ev.get("restart", (None,))[0]
    t_done = ev.get("caught_up", (None,))[0]
    # not caught up under load: run.sh stopped the load and waited without it
    t_done_idle = ev.get("caught_up_idle", (None,))[0]
    t_stop = ev.get("load_stop", (None,))[0] or t_kill
    t_end = max(t_stop, t_done or 0, t_restart or 0)

    # fio 500 ms logs: job 1 = rd, job 2 = wr (order of the job file)
    bw = {j: _fio_log(os.path.join(raw, f"{s}_bw.{i}.log")) for i, j in ((1, "rd"), (2, "wr"))}
    iops = {j: _fio_log(os.path.join(raw, f"{s}_iops.{i}.log")) for i, j in ((1, "rd"), (2, "wr"))}
    rd = _bins(bw["rd"], t_load, t_end)
    wr = _bins(bw["wr"], t_load, t_end)
    tot = [a + b for a, b in zip(rd, wr)]
    ird = _bins(iops["rd"], t_load, t_end)
    iwr = _bins(iops["wr"], t_load, t_end)

    def idx(t):
        return (t - t_load) // BIN_MS

    warm = idx(t_load + 2000)  # the first bins include fio's start-up
    phases = {"before": (warm, idx(t_kill))}
    if t_restart:
        phases["down"] = (idx(t_kill), idx(t_restart))
        phases["resync"] = (idx(t_restart), idx(t_done) if t_done else idx(t_stop))
        if t_done:
            phases["after"] = (idx(t_done) + 1, idx(t_stop))
    else:
        phases["down"] = (idx(t_kill), idx(t_stop))
    thr = {}
    for p, (a, b) in phases.items():
        # KiB/s summed over the bins' samples -> MB/s
        thr[p] = {k: (_mean(v[a:b]) * 1024 / 1e6 if _mean(v[a:b]) is not None else None)
                  for k, v in (("total", tot), ("read", rd), ("write", wr))}
        thr[p]["seconds"] = (b - a) * BIN_MS / 1000
    base_tot = thr["before"]["total"]
    for p in thr:
        t = thr[p]["total"]
        thr[p]["ratio_to_before"] = t / base_tot if (t is not None and base_tot) else None

    probe = []
    for row in _tsv(os.path.join(raw, f"{s}.probe.tsv")):
        try:
            probe.append((int(row[0]), int(row[1]), int(row[2]), int(row[3]), row[4]))
        except (ValueError, IndexError):
            pass
    kill_to = t_restart or t_stop
    res = {
        "complete": True,
        "events": {k: v[0] for k, v in ev.items()},
        "event_values": {k: v[1] for k, v in ev.items() if v[1]},
        "probe_kill": _probe_figures(probe, t_kill, kill_to),
        "probe_restart": _probe_figures(probe, t_restart, t_stop) if t_restart else None,
        "fio_stall_kill_s": {
            "read": _longest_zero_run(ird, idx(t_kill), idx(kill_to)),
            "write": _longest_zero_run(iwr, idx(t_kill), idx(kill_to)),
        },
        "fio_stall_restart_s": {
            "read": _longest_zero_run(ird, idx(t_restart), idx(t_stop)),
            "write": _longest_zero_run(iwr, idx(t_restart), idx(t_stop)),
        } if t_restart else None,
        "throughput": thr,
        "catchup_s": (t_done - t_restart) / 1000 if (t_done and t_restart) else None,
        "catchup_timeout": "catchup_timeout" in ev,
        "catchup_idle_s": (t_done_idle - t_restart) / 1000 if (t_done_idle and t_restart) else None,
        "load_stopped_after_restart_s": (t_stop - t_restart) / 1000 if (t_restart and t_done_idle) else None,
        "down_s": (t_restart - t_kill) / 1000 if t_restart else None,
    }
    # bytes the returning server wrote to disk while catching up
    for row in _tsv(os.path.join(raw, "victim-io.tsv")):
        if row[0] == s:
            a = [int(x) for x in row[1].split()]
            b = [int(x) for x in row[2].split()]
            res["victim_io"] = {"rchar": b[0] - a[0], "wchar": b[1] - a[1],
                                "read_bytes": b[2] - a[2], "write_bytes": b[3] - a[3]}
    wb = res.get("victim_io", {}).get("write_bytes")
    ct = res["catchup_s"] or res["catchup_idle_s"]
    if wb is not None and ct:
        res["resync_gbs"] = wb / 1e9 / ct
    # what was written while the server was down: the down file + the load's writes
    dwj = _json(os.path.join(raw, f"{s}.down-write.json"))
    dw = _fio_errors(dwj)
    res["down_write"] = dw
    if dwj and dwj.get("jobs"):
        res["down_write_mbs"] = dwj["jobs"][0]["write"]["bw_bytes"] / 1e6
    if t_restart:
        a, b = idx(t_kill), idx(t_restart)
        load_w = sum(wr[a:b]) * 1024 * BIN_MS / 1000  # KiB/s per bin -> bytes
        res["written_while_down_bytes"] = (dw or {}).get("down", {}).get("write_bytes", 0) + load_w
    res["load"] = _fio_errors(_json(os.path.join(raw, f"{s}.load.json")))
    res["verify"] = _fio_errors(_json(os.path.join(raw, f"{s}.verify.json")))
    res["verify_rc"] = ev.get("verify_done", (None, ""))[1]
    res["replicas_rc"] = ev.get("replicas_done", (None, None))[1]
    res["replicas_text"] = _text(os.path.join(raw, f"{s}.replicas.txt"), 60)
    res["down_write_rc"] = ev.get("down_write_done", (None, ""))[1]
    res["load_stderr"] = _text(os.path.join(raw, f"{s}.load.err"), 12)
    res["catchup_polls"] = _tsv(os.path.join(raw, f"{s}.catchup.tsv"))[-200:]
    res["resync_log"] = _text(os.path.join(raw, f"{s}.resync-log.txt"), 200)
    res["resync_logged"] = _resync_from_log(res["resync_log"])
    # timelines for the plot, relative to the kill, in seconds
    res["timeline"] = {
        "t0_ms": t_load,
        "bin_ms": BIN_MS,
        "read_mbs": [round(v * 1024 / 1e6, 2) for v in rd],
        "write_mbs": [round(v * 1024 / 1e6, 2) for v in wr],
        "probe": [[r[0] - t_kill, r[1] - r[0], r[4]] for r in probe],
    }
    return res


def assemble(raw, out):
    meta = {r[0]: r[1] for r in _tsv(os.path.join(raw, "meta.tsv")) if len(r) >= 2}
    systems = {}
    for r in _tsv(os.path.join(raw, "systems.tsv"))[1:]:
        systems[r[0]] = {"status": r[1], "setup": r[2] if len(r) > 2 else "",
                         "timeouts": r[3] if len(r) > 3 else ""}
    for s in systems:
        if systems[s]["status"] in ("ok", "failed"):
            systems[s]["results"] = derive_system(raw, s)
    doc = {"meta": meta, "systems": systems}
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)


# ---------------------------------------------------------------- rendering

def _fmt(v, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if abs(v) >= 100:
        s = f"{v:.0f}"
    elif abs(v) >= 10:
        s = f"{v:.1f}"
    elif abs(v) < 0.1 and v != 0:
        s = f"{v:.2g}"
    else:
        s = f"{v:.2f}"
    return s + unit


def _ratio(v, ref, higher_better):
    if not isinstance(v, (int, float)) or not isinstance(ref, (int, float)):
        return "n/a"
    if v <= 0 or ref <= 0:  # a gap of 0 bins: no ratio, say who had none
        if v == ref:
            return "both 0"
        return "valorfs 0" if v <= 0 else ("peer 0" if ref <= 0 else "n/a")
    r = v / ref if higher_better else ref / v
    return f"{r:.2f}×" if r < 10 else f"{r:.0f}×"


def _errors(r):
    out = []
    for name, src in (("load", r.get("load")), ("down write", r.get("down_write")),
                      ("verify", r.get("verify"))):
        if src is None:
            out.append(f"{name}: no output")
            continue
        n = sum(j["total_err"] for j in src.values())
        e = [j["error"] for j in src.values() if j["error"]]
        out.append(f"{name}: {n}" + (f" (errno {','.join(map(str, e))})" if e else ""))
    for name, rc in (("down write", r.get("down_write_rc")), ("verify", r.get("verify_rc"))):
        if rc not in (None, "", "0"):
            out.append(f"**{name} exit status {rc}**")
    vb = sum(j["read_bytes"] for j in (r.get("verify") or {}).values())
    out.append(f"verify read {vb / 1048576:.0f} MiB")
    return "; ".join(out)


def _catchup(r):
    if r.get("catchup_s") is not None:
        return r["catchup_s"]
    if r.get("catchup_idle_s") is not None:
        return (f"> {r['load_stopped_after_restart_s']:.0f} under load; "
                f"{r['catchup_idle_s']:.0f} with the load stopped")
    if r.get("events", {}).get("restart"):
        return "not caught up"
    return None


def _replicas(r):
    rc = r.get("replicas_rc")
    if rc is None or rc == "":
        return "not checked"
    return {"0": "yes", "1": "**no**", "2": "not checked (no tool)"}.get(str(rc), f"check failed (rc={rc})")


def rows_of(doc):
    """(label, getter, higher_better, unit) of the main table."""
    def g(*path):
        def f(r):
            v = r
            for p in path:
                if v is None:
                    return None
                v = v.get(p) if isinstance(v, dict) else None
            return v
        return f
    return [
        ("probe: longest stall from the kill to the restart (s)", g("probe_kill", "longest_gap_s"), False),
        ("probe: first round started after the kill done after (s)", g("probe_kill", "first_ok_after_s"), False),
        ("fio: longest write gap from the kill to the restart (s, 500 ms bins)", g("fio_stall_kill_s", "write"), False),
        ("fio: longest read gap from the kill to the restart (s)", g("fio_stall_kill_s", "read"), False),
        ("probe: longest stall from the restart to the end (s)", g("probe_restart", "longest_gap_s"), False),
        ("fio: longest write gap from the restart to the end (s)", g("fio_stall_restart_s", "write"), False),
        ("load MB/s before the kill", g("throughput", "before", "total"), True),
        ("  of which reads (rd job)", g("throughput", "before", "read"), True),
        ("  of which writes (wr job)", g("throughput", "before", "write"), True),
        ("load MB/s while down (ratio to before)", g("throughput", "down", "total"), True),
        ("load MB/s during the catch-up", g("throughput", "resync", "total"), True),
        ("load MB/s after the catch-up", g("throughput", "after", "total"), True),
        ("written while down (MB)", lambda r: (r.get("written_while_down_bytes") or 0) / 1e6 or None, None),
        ("fio MB/s of the file written while down", g("down_write_mbs"), True),
        ("catch-up time after the restart, under load (s)", _catchup, False),
        ("returning server wrote to disk during catch-up (MB)",
         lambda r: (r.get("victim_io") or {}).get("write_bytes", 0) / 1e6 if r.get("victim_io") else None, None),
        ("resync speed (GB/s = that / catch-up time)", g("resync_gbs"), True),
        ("valorfs's own log: bytes pushed to the returning targets (MB)",
         lambda r: (r.get("resync_logged") or {}).get("bytes_pushed", 0) / 1e6 if r.get("resync_logged") else None, None),
        ("valorfs's own log: first target SYNCING to last chain done (s)", g("resync_logged", "span_s"), None),
        ("valorfs's own log: resync GB/s (pushed ÷ that span)", g("resync_logged", "gbs"), None),
    ]


def render_md(doc, path, png_name):
    meta = doc["meta"]
    systems = [s for s in SYSTEMS if s in doc["systems"]]
    res = {s: doc["systems"][s].get("results") or {} for s in systems}
    L = []
    L.append(f"# Failure recovery: valorfs vs MooseFS vs GlusterFS ({meta.get('date', '?')[:10]})")
    L.append("")
    L.append(f"Command: `{meta.get('command', '?')}` (mode {meta.get('mode', '?')}, "
             f"{meta.get('duration_s', '?')} s).  ")
    L.append(f"Machine: {meta.get('cpu', '?')}, {meta.get('cores', '?')}, {meta.get('hypervisor', '')} "
             f"guest, {meta.get('memory', '?')}, {meta.get('os', '?')}, Linux {meta.get('kernel', '?')}; "
             f"work directory on {meta.get('fs', '?')}.  ")
    built = f"built from {meta['valorfs_commit']}; " if meta.get("valorfs_commit") else ""
    L.append(f"valorfs: `{meta.get('valorfs_binary', '?')}` ({built}repo HEAD {meta.get('git', '?')})"
             f"{', up args ' + meta['valorfs_up_args'] if meta.get('valorfs_up_args') else ''}; "
             f"MooseFS {meta.get('pkg_moosefs-master', '?')}; GlusterFS {meta.get('pkg_glusterfs-server', '?')}; "
             f"{meta.get('fio', 'fio')}.  ")
    L.append(f"Load average at each setup: " + ", ".join(
        f"{LABEL.get(k[5:], k[5:])} {v}" for k, v in meta.items() if k.startswith("load_")) + ".")
    L.append("")
    L.append(f"Per system: load = fio `rd` (random 64 KiB O_DIRECT reads over {meta.get('set_size')}, "
             f"crc32c-verified) + `wr` (random 64 KiB O_DIRECT writes over {meta.get('set_size')}, "
             f"every 64 read back and verified), probe = 4 KiB write+fdatasync+read every 50 ms. "
             f"After {meta.get('before_s')} s: `kill -9` of storage server 1, write "
             f"{meta.get('down_write')} to a new file, restart after ≥ {meta.get('min_down_s')} s, wait "
             f"for the catch-up (cap {meta.get('resync_cap_s')} s), {meta.get('after_s')} s more load, "
             f"then the new file is read back with `fio --verify_only`.")
    L.append("")
    hdr = "| figure | " + " | ".join(LABEL[s] for s in systems)
    ratio_cols = [p for p in PEERS if p in systems] if "valorfs" in systems else []
    hdr += "".join(f" | valorfs ÷ {LABEL[p]}" for p in ratio_cols) + " |"
    L.append(hdr)
    L.append("|---|" + "---:|" * (len(systems) + len(ratio_cols)))
    for label, getter, hb in rows_of(doc):
        vals = {s: (getter(res[s]) if res[s].get("complete") else None) for s in systems}
        cells = []
        for s in systems:
            v = vals[s]
            c = _fmt(v)
            if "ratio to before" in label:
                rt = res[s].get("throughput", {}).get("down", {}).get("ratio_to_before")
                c += f" ({rt:.2f})" if rt is not None else ""
            elif label.startswith("load MB/s") and "before" not in label:
                p = {"during the catch-up": "resync", "after the catch-up": "after"}
                key = next((v2 for k2, v2 in p.items() if k2 in label), None)
                rt = res[s].get("throughput", {}).get(key, {}).get("ratio_to_before") if key else None
                c += f" ({rt:.2f})" if rt is not None else ""
            cells.append(c)
        rcells = []
        for p in ratio_cols:
            rcells.append(_ratio(vals["valorfs"], vals[p], hb) if hb is not None else "")
        L.append(f"| {label} | " + " | ".join(cells) + "".join(f" | {c}" for c in rcells) + " |")
    L.append("")
    L.append("Ratios in parentheses: that phase's throughput ÷ the same system's throughput before "
             "the kill. Ratio columns: > 1 means valorfs is better (shorter stall, more MB/s, faster "
             "catch-up).")
    L.append("")
    L.append("## Errors seen by the applications")
    L.append("")
    L.append("| system | fio errors (load; down write; verify of the down-written file) | probe errors after kill / after restart | replicas identical afterwards |")
    L.append("|---|---|---|---|")
    for s in systems:
        r = res[s]
        if not r.get("complete"):
            L.append(f"| {LABEL[s]} | did not run ({doc['systems'][s]['status']}) | |")
            continue
        pk = r.get("probe_kill") or {}
        pr = r.get("probe_restart") or {}
        L.append(f"| {LABEL[s]} | {_errors(r)} | {pk.get('errors', 'n/a')} {pk.get('error_kinds', '')} / "
                 f"{pr.get('errors', 'n/a')} {pr.get('error_kinds', '')} | {_replicas(r)} |")
    L.append("")
    L.append("## Setup and failure-detection settings")
    L.append("")
    for s in systems:
        d = doc["systems"][s]
        L.append(f"- **{LABEL[s]}** ({d['status']}): {d['setup']}  ")
        L.append(f"  Timeouts: {d['timeouts']}")
    L.append("")
    L.append("## How each figure is taken")
    L.append("")
    L.append("- *Stall*: the longest gap between two successful probe rounds that ends in the window "
             "(the normal gap is ~50 ms plus one round; a gap spanning the restart counts after it). *First round after the kill*: the end of the "
             "first successful probe round that started after `kill -9`, minus the kill time.")
    L.append("- *fio gaps*: the longest run of 500 ms bins in which no read (or write) of the load "
             "completed (from `--write_iops_log` with `--log_avg_msec=500 --log_unix_epoch=1`).")
    L.append("- *MB/s*: fio's 500 ms bandwidth samples of both jobs summed per bin, mean over the "
             "phase (before: from 2 s after the load starts to the kill; while down: kill to "
             "restart; catch-up: restart to caught up; after: caught up to the end of the load).")
    L.append("- *Catch-up*: valorfs — every target of the restarted node SERVING in `valorfs status "
             "--json`; MooseFS — 3 chunkservers connected and no chunk missing, endangered or "
             "undergoal in `mfscli -SIC`; GlusterFS — 3 bricks online and `gluster volume heal vbench "
             "statistics heal-count` 0 on every brick. Polled every 0.5 s (plus the poll's own time).")
    L.append("- *Resync speed*: `write_bytes` of the restarted process (`/proc/PID/io`, bytes it "
             "sent to the disk) from its start to the catch-up, ÷ the catch-up time. It includes "
             "the load's foreground writes the returning server received in that time, so for a "
             "short catch-up it is dominated by them.")
    L.append("")
    for s in systems:
        r = res[s]
        if r.get("replicas_text") and str(r.get("replicas_rc")) != "0":
            L.append(f"{LABEL[s]} replica check (first lines):")
            L.append("")
            L.append("```")
            L.extend(x[:200] for x in r["replicas_text"][:15])
            L.append("```")
            L.append("")
        if r.get("resync_log"):
            L.append(f"{LABEL[s]} log lines about the return (first {len(r['resync_log'])}):")
            L.append("")
            L.append("```")
            L.extend(x[:200] for x in r["resync_log"][:12])
            L.append("```")
            L.append("")
    L.append(f"![timeline]({png_name})")
    L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


def render_png(doc, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    systems = [s for s in SYSTEMS if (doc["systems"].get(s, {}).get("results") or {}).get("complete")]
    if not systems:
        return
    fig, axes = plt.subplots(len(systems), 1, figsize=(11, 3.2 * len(systems)), squeeze=False)
    for ax, s in zip(axes[:, 0], systems):
        r = doc["systems"][s]["results"]
        tl = r["timeline"]
        ev = r["events"]
        tk = ev["kill"]
        x = [(tl["t0_ms"] + i * tl["bin_ms"] - tk) / 1000 for i in range(len(tl["read_mbs"]))]
        ax.plot(x, tl["read_mbs"], label="fio read MB/s", lw=1)
        ax.plot(x, tl["write_mbs"], label="fio write MB/s", lw=1)
        ax.set_ylabel("MB/s")
        ax2 = ax.twinx()
        px = [p[0] / 1000 for p in tl["probe"]]
        py = [p[1] / 1000 for p in tl["probe"]]
        ax2.scatter(px, py, s=3, color="black", label="probe round (s)")
        bad = [(p[0] / 1000, p[1] / 1000) for p in tl["probe"] if p[2] != "ok"]
        if bad:
            ax2.scatter([b[0] for b in bad], [b[1] for b in bad], s=12, color="red", label="probe error")
        ax2.set_ylabel("probe round (s)")
        for name, color in (("kill", "red"), ("down_write_done", "gray"), ("restart", "green"),
                            ("caught_up", "blue")):
            if name in ev:
                ax.axvline((ev[name] - tk) / 1000, color=color, ls="--", lw=1, label=name)
        ax.set_title(f"{LABEL[s]}: time since kill -9 of storage server 1 (s)")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("assemble")
    a.add_argument("--raw", required=True)
    a.add_argument("--out", required=True)
    r = sub.add_parser("render")
    r.add_argument("json")
    r.add_argument("--md")
    r.add_argument("--png")
    args = ap.parse_args()
    if args.cmd == "assemble":
        assemble(args.raw, args.out)
        return
    with open(args.json) as f:
        doc = json.load(f)
    stem = os.path.splitext(args.json)[0]
    md = args.md or stem + ".md"
    png = args.png or stem + ".png"
    render_md(doc, md, os.path.basename(png))
    render_png(doc, png)


if __name__ == "__main__":
    main()
