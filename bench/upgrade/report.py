#!/usr/bin/env python3
"""bench/upgrade/report.py - stalls around online upgrades and crash restarts.

  report.py analyze RAW --json FILE   read bench/upgrade/run.sh's raw directory
                                      (probe records, events, logs), write FILE
  report.py render FILE --md MD [--png PNG | --no-png]
                                      the results page (and a plot when
                                      matplotlib is installed) from FILE

Per target and event kind (upgrade, crash) the window of an event is
[start - before, end + after] (run.sh's --window-before-ms/--window-after-ms;
start/end: just before `valorfs upgrade` / kill -9, and when the upgrade
command returned / mount-info showed the new generation). An operation
belongs to a window when its [start, start + latency] overlaps it. The stall
of an event is the longest latency among its window's operations. Baseline:
the operations that overlap no window (the first 0.5 s of the probe, its
warm-up, left out). Benchmarks never assert: goals are reported, not checked.
"""
import argparse
import json
import os
import statistics
import struct
import sys

OPS = ["pread", "pwrite", "create", "stat", "unlink"]
KINDS = ["upgrade", "crash"]
GOAL_MS = {"upgrade": 50.0, "crash": 500.0}
WARMUP_NS = 500_000_000
# errnos of calls that were still waiting when run.sh aborted the FUSE
# connection at the end (ECONNABORTED, ENOTCONN): requests never answered
NEVER_ANSWERED = (103, 107)
LABELS = {
    "classic": "classic",
    "xfuse": "xfuse",
    "uring": "uring (falls back to xfuse under the keeper)",
    "cluster-xfuse": "cluster backend, xfuse",
}


def pct(sorted_vals, p):
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_vals:
        return None
    i = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


def lat_summary(lats_ns):
    s = sorted(lats_ns)
    return {
        "ops": len(s),
        "p50_us": None if not s else pct(s, 50) / 1e3,
        "p99_us": None if not s else pct(s, 99) / 1e3,
        "max_us": None if not s else s[-1] / 1e3,
    }


def read_tsv_kv(path):
    out = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("\t")
                out[k] = v
    return out


def read_text(path, default=""):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def read_events(path):
    cols = ["target", "kind", "k", "start_ns", "end_ns", "rc", "gen_before", "gen_after",
            "old_pid", "new_pid", "reported_ms", "message"]
    evs = []
    if not os.path.exists(path):
        return evs
    with open(path) as f:
        for line in f:
            e = dict(zip(cols, line.rstrip("\n").split("\t")))
            for c in ("k", "start_ns", "end_ns", "rc"):
                e[c] = int(e[c])
            e["reported_ms"] = None if e.get("reported_ms", "-") in ("-", "") else float(e["reported_ms"])
            evs.append(e)
    return evs


def log_counts(tdir):
    """warn/error lines of the daemons' and keeper's logs."""
    counts = {"warn": 0, "error": 0}
    samples = []
    for root, _, files in os.walk(tdir):
        for name in files:
            if not name.endswith(".log") or name in ("up.log", "down.log"):
                continue
            with open(os.path.join(root, name), errors="replace") as f:
                for line in f:
                    for lvl in counts:
                        if f"level={lvl}" in line:
                            counts[lvl] += 1
                            if len(samples) < 8:
                                samples.append(line.strip()[:300])
    return counts, samples


def analyze_target(tdir, name, before_ns, after_ns):
    res = {"name": name, "label": LABELS.get(name, name),
           "status": read_text(os.path.join(tdir, "status"), "missing"),
           "command": read_text(os.path.join(tdir, "command")),
           "probe": read_text(os.path.join(tdir, "probe.out")),
           "notes": read_text(os.path.join(tdir, "notes"))}
    mi = read_text(os.path.join(tdir, "mount-info.json"))
    try:
        res["mount_info_end"] = json.loads(mi) if mi else None
    except ValueError:
        res["mount_info_end"] = mi
    res["log_counts"], res["log_samples"] = log_counts(tdir)
    events = read_events(os.path.join(tdir, "events.tsv"))
    res["events"] = events
    rec_path = os.path.join(tdir, "records.bin")
    if not os.path.exists(rec_path):
        return res
    with open(rec_path, "rb") as f:
        raw = f.read()
    recs = sorted(struct.iter_unpack("<qqBBhi", raw))  # (start, lat, op, thread, _, err)
    if not recs:
        return res
    t_first = recs[0][0]
    res["ops_total"] = len(recs)
    res["duration_s"] = (recs[-1][0] + recs[-1][1] - t_first) / 1e9
    res["failed_total"] = sum(1 for r in recs if r[5])
    res["failed_by_op"] = {}
    res["failed_errnos"] = {}
    for r in recs:
        if r[5]:
            op = OPS[r[2]] if r[2] < len(OPS) else str(r[2])
            res["failed_by_op"][op] = res["failed_by_op"].get(op, 0) + 1
            res["failed_errnos"][str(r[5])] = res["failed_errnos"].get(str(r[5]), 0) + 1

    windows = [(e["start_ns"] - before_ns, e["end_ns"] + after_ns, i) for i, e in enumerate(events)]
    windows.sort()
    per_event = [[] for _ in events]  # (lat, start, op, err)
    baseline = []
    wi = 0
    for r in recs:
        start, lat, op, _, _, err = r
        end = start + lat
        # windows are sorted by start and (with the default gap) disjoint:
        # skip those that ended before this op started (ops are sorted by start)
        while wi < len(windows) and windows[wi][1] < start:
            wi += 1
        # an op belongs to the first window it overlaps (a request that is
        # never answered would otherwise be the stall of every later event)
        hit = False
        for ws, we, idx in windows[wi:wi + 3]:
            if start <= we and end >= ws:
                per_event[idx].append((lat, start, op, err))
                hit = True
                break
        if not hit and not err and start - t_first >= WARMUP_NS:
            baseline.append(lat)
    res["baseline"] = lat_summary(baseline)

    res["kinds"] = {}
    for kind in KINDS:
        idxs = [i for i, e in enumerate(events) if e["kind"] == kind]
        if not idxs:
            continue
        win_lats = []
        stalls = []
        failed = 0
        hung = 0
        for i in idxs:
            ops = per_event[i]
            win_lats.extend(o[0] for o in ops)
            failed += sum(1 for o in ops if o[3])
            hung += sum(1 for o in ops if o[3] in NEVER_ANSWERED)
            e = events[i]
            if ops:
                worst = max(ops)
                stall = {"k": e["k"], "stall_ms": worst[0] / 1e6, "op": OPS[worst[2]] if worst[2] < len(OPS) else str(worst[2]),
                         "op_start_rel_ms": (worst[1] - e["start_ns"]) / 1e6, "ops": len(ops),
                         "never_answered": worst[3] in NEVER_ANSWERED}
            else:
                stall = {"k": e["k"], "stall_ms": None, "op": None, "op_start_rel_ms": None, "ops": 0}
            stall["event_ms"] = (e["end_ns"] - e["start_ns"]) / 1e6
            stall["reported_ms"] = e["reported_ms"]
            stall["rc"] = e["rc"]
            stall["generation"] = e.get("gen_after")
            stalls.append(stall)
        vals = [s["stall_ms"] for s in stalls if s["stall_ms"] is not None]
        k = {
            "events": len(idxs),
            "events_failed": sum(1 for s in stalls if s["rc"] != 0),
            "window": lat_summary(win_lats),
            "stall_median_ms": statistics.median(vals) if vals else None,
            "stall_worst_ms": max(vals) if vals else None,
            "failed_ops": failed,
            "never_answered_ops": hung,
            "events_without_ops": sum(1 for s in stalls if not s["ops"]),
            "per_event": stalls,
            "goal_ms": GOAL_MS[kind],
        }
        ev_ms = [s["event_ms"] for s in stalls]
        k["event_ms_median"] = statistics.median(ev_ms) if ev_ms else None
        rep = [s["reported_ms"] for s in stalls if s["reported_ms"] is not None]
        k["reported_ms_median"] = statistics.median(rep) if rep else None
        k["goal_met"] = (k["stall_worst_ms"] is not None and k["stall_worst_ms"] < GOAL_MS[kind]
                         and k["events_failed"] == 0 and failed == 0)
        res["kinds"][kind] = k
    return res


def cmd_analyze(args):
    raw = args.raw
    machine = read_tsv_kv(os.path.join(raw, "machine.tsv"))
    before_ns = int(float(machine.get("window_before_ms", 50)) * 1e6)
    after_ns = int(float(machine.get("window_after_ms", 1000)) * 1e6)
    targets = [t for t in machine.get("targets", "").split(",") if t]
    doc = {"machine": machine, "targets": []}
    for t in targets:
        tdir = os.path.join(raw, t)
        if os.path.isdir(tdir):
            doc["targets"].append(analyze_target(tdir, t, before_ns, after_ns))
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=False)
        f.write("\n")


def f_us(v):
    if v is None:
        return "–"
    if v >= 1000:
        return f"{v / 1000:.1f} ms"
    return f"{v:.0f} µs"


def f_ms(v):
    if v is None:
        return "–"
    if v >= 100:
        return f"{v:.0f} ms"
    return f"{v:.1f} ms"


def failed_cell(k):
    v = str(k["failed_ops"])
    if k.get("never_answered_ops"):
        v += f" ({k['never_answered_ops']} never answered)"
    if k.get("events_without_ops"):
        v += f"; {k['events_without_ops']} events with no op in their window"
    return v


def render_md(doc, path, png_name):
    m = doc["machine"]
    L = []
    L.append(f"# valorfs online upgrade and crash restart: application stalls — {m.get('date', '')[:10]}")
    L.append("")
    L.append("Generated by `bench/upgrade/run.sh` and `bench/upgrade/report.py` from the JSON next to this file "
             "(`report.py render` regenerates this page). Every figure is as measured in this one run; "
             "benchmarks never assert times.")
    L.append("")
    L.append("## Machine")
    L.append("")
    L.append("| | |")
    L.append("|---|---|")
    rows = [("date", "date"), ("kernel (uname -r)", "kernel"), ("CPU (lscpu model)", "cpu"), ("CPUs", "cores"),
            ("hypervisor", "hypervisor"), ("memory", "memory"), ("OS", "os"), ("valorfs-fuse", "valorfs_fuse"),
            ("build directory", "build"), ("repo HEAD at run time", "head"), ("fuse enable_uring", "enable_uring"),
            ("probe compiler", "cc"), ("probe threads", "threads"), ("events per kind", "events"),
            ("gap between events (s)", "gap_s"), ("steady state before/after (s)", "steady_s"),
            ("window (ms before start / after end)", None), ("load average at start / end", None),
            ("total run time (s)", "total_s")]
    for label, key in rows:
        if key is None and label.startswith("window"):
            v = f"{m.get('window_before_ms', '?')} / {m.get('window_after_ms', '?')}"
        elif key is None:
            v = f"{m.get('load_start', '?')} / {m.get('load_end', '?')}"
        else:
            v = m.get(key, "")
        L.append(f"| {label} | {v} |")
    L.append("")
    L.append(f"Command: `{m.get('command', 'bench/upgrade/run.sh')}`")
    L.append("")
    L.append("## Method")
    L.append("")
    L.append(f"The probe (`bench/upgrade/probe.c`, {m.get('threads', '?')} threads) loops pread 4 KiB and pwrite 4 KiB "
             "at random offsets of a pre-written 16 MiB file per thread opened with `O_DIRECT` (so each reaches the "
             "daemon), create (open `O_CREAT|O_EXCL` + close), stat and unlink of a fresh name, timing each with "
             "`CLOCK_MONOTONIC`. After a steady state, run.sh does "
             f"{m.get('events', '?')} graceful upgrades (`valorfs upgrade MNT`) then {m.get('events', '?')} crashes "
             "(`kill -9` of the daemon pid from `valorfs mount-info MNT --json`; the keeper starts the next generation), "
             f"{m.get('gap_s', '?')} s apart. An event's window is [start − {m.get('window_before_ms', '?')} ms, "
             f"end + {m.get('window_after_ms', '?')} ms]; start is taken just before the upgrade command / the kill, "
             "end when the upgrade command returned / mount-info showed the new generation. An operation is in a "
             "window when its execution overlaps it. **Stall** of an event = the longest latency of an operation in "
             "its window; an operation counts for the first window it overlaps only. Baseline = successful operations outside "
             "every window (the probe's first 0.5 s left out). A call still blocked 10 s after the probe is told to stop is "
             "a request the daemon never answered: run.sh then aborts the FUSE connection, the call fails with "
             "ECONNABORTED/ENOTCONN and is reported as never answered. "
             "Goals (issue 4): graceful upgrade stall < 50 ms, crash restart stall < 500 ms, no failed operation.")
    L.append("")
    L.append("## Results")
    L.append("")
    L.append("Latency p50 / p99 / max of the operations inside the event windows, side by side with the steady-state "
             "baseline of the same mount; stall per event as median and worst over the events.")
    L.append("")
    L.append("| transport | event | events (failed) | window ops | window p50 / p99 / max | baseline p50 / p99 / max "
             "| stall median | stall worst | failed ops | goal | met? |")
    L.append("|---|---|---:|---:|---|---|---:|---:|---:|---:|:---:|")
    verdicts = []
    for t in doc["targets"]:
        if t.get("status") != "ok" or "kinds" not in t:
            L.append(f"| {t['label']} | – | – | – | – | – | – | – | – | – | {t.get('status')} |")
            continue
        b = t["baseline"]
        for kind in KINDS:
            k = t["kinds"].get(kind)
            if not k:
                continue
            w = k["window"]
            met = "**met**" if k["goal_met"] else "not met"
            verdicts.append((t["label"], kind, k))
            L.append(f"| {t['label']} | {kind} | {k['events']} ({k['events_failed']}) | {w['ops']} | "
                     f"{f_us(w['p50_us'])} / {f_us(w['p99_us'])} / {f_us(w['max_us'])} | "
                     f"{f_us(b['p50_us'])} / {f_us(b['p99_us'])} / {f_us(b['max_us'])} | "
                     f"{f_ms(k['stall_median_ms'])} | {f_ms(k['stall_worst_ms'])} | {failed_cell(k)} | "
                     f"< {k['goal_ms']:.0f} ms | {met} |")
    L.append("")
    for label, kind, k in verdicts:
        extra = ""
        if kind == "upgrade" and k.get("reported_ms_median") is not None:
            extra = f"; `valorfs upgrade` reported a median hand-over of {k['reported_ms_median']:.0f} ms"
        if kind == "crash" and k.get("event_ms_median") is not None:
            extra = f"; kill → new generation visible in mount-info: median {k['event_ms_median']:.0f} ms (5 ms polling)"
        if k.get("never_answered_ops"):
            extra += (f"; **{k['never_answered_ops']} operation(s) were never answered** (still waiting at the end of "
                      "the run, failed by aborting the connection; their latency is bounded by the run's end)")
        L.append(f"- **{label}, {kind}**: worst stall {f_ms(k['stall_worst_ms'])} against < {k['goal_ms']:.0f} ms — "
                 f"{'met' if k['goal_met'] else 'not met'}{extra}.")
    L.append("")
    L.append("## Per event")
    L.append("")
    L.append("Stall (ms) of each event in order, with the operation that stalled longest and where it started "
             "relative to the event's start (negative: it was already running).")
    L.append("")
    for t in doc["targets"]:
        for kind in KINDS:
            k = t.get("kinds", {}).get(kind)
            if not k:
                continue
            L.append(f"**{t['label']}, {kind}**: " + ", ".join(
                f"{f_ms(s['stall_ms'])} ({s['op']} @ {s['op_start_rel_ms']:+.0f} ms{', never answered' if s.get('never_answered') else ''})"
                if s["stall_ms"] is not None
                else "no ops" for s in k["per_event"]))
            L.append("")
    L.append("## Failures, logs and mounts")
    L.append("")
    L.append("| transport | ops total | failed ops (by op / errno) | daemon+keeper log warn / error lines | mount-info at the end | probe |")
    L.append("|---|---:|---|---:|---|---|")
    for t in doc["targets"]:
        fails = t.get("failed_total", "–")
        if t.get("failed_total"):
            fails = f"{fails} ({t['failed_by_op']} / {t['failed_errnos']})"
        mi = t.get("mount_info_end")
        if isinstance(mi, dict):
            mi = ", ".join(f"{k}={mi.get(k)}" for k in ("transport", "generation", "restarts", "upgrades", "nodes", "handles"))
        lc = t.get("log_counts", {})
        L.append(f"| {t['label']} | {t.get('ops_total', '–')} | {fails} | {lc.get('warn', 0)} / {lc.get('error', 0)} | "
                 f"{mi or '–'} | {t.get('probe', '').replace('|', '/')} |")
    L.append("")
    for t in doc["targets"]:
        if t.get("log_samples"):
            L.append(f"Log lines (warn/error, first {len(t['log_samples'])}) of {t['label']}:")
            L.append("")
            L.append("```")
            L.extend(t["log_samples"])
            L.append("```")
            L.append("")
        if t.get("notes"):
            L.append(f"Notes for {t['label']}: {t['notes']}")
            L.append("")
    L.append("## Mount commands")
    L.append("")
    for t in doc["targets"]:
        L.append(f"- {t['label']}: `{t.get('command', '')}`")
    L.append("")
    if png_name:
        L.append(f"![stall per event]({png_name})")
    else:
        L.append("(No plot: python3-matplotlib is not installed on this machine.)")
    L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


def render_png(doc, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, kind in zip(axes, KINDS):
        for t in doc["targets"]:
            k = t.get("kinds", {}).get(kind)
            if not k:
                continue
            xs = [s["k"] for s in k["per_event"] if s["stall_ms"] is not None]
            ys = [s["stall_ms"] for s in k["per_event"] if s["stall_ms"] is not None]
            ax.plot(xs, ys, marker="o", label=t["label"])
            ax.axhline(GOAL_MS[kind], color="red", linestyle="--", linewidth=1)
        ax.set_yscale("log")
        ax.set_title(f"{kind}: stall per event (goal < {GOAL_MS[kind]:.0f} ms, dashed)")
        ax.set_xlabel("event #")
        ax.set_ylabel("longest op latency in window (ms)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def cmd_render(args):
    with open(args.json) as f:
        doc = json.load(f)
    md = args.md or os.path.splitext(args.json)[0] + ".md"
    png = None
    if not args.no_png:
        png = args.png or os.path.splitext(args.json)[0] + ".png"
        try:
            render_png(doc, png)
        except ImportError:
            print("report.py: matplotlib not installed; no plot", file=sys.stderr)
            png = None
    render_md(doc, md, os.path.basename(png) if png else None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("analyze")
    a.add_argument("raw")
    a.add_argument("--json", required=True)
    r = sub.add_parser("render")
    r.add_argument("json")
    r.add_argument("--md")
    r.add_argument("--png")
    r.add_argument("--no-png", action="store_true")
    args = ap.parse_args()
    cmd_analyze(args) if args.cmd == "analyze" else cmd_render(args)


if __name__ == "__main__":
    main()
