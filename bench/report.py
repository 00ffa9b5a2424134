#!/usr/bin/env python3
"""Turn bench/run.sh outputs into the raw JSON, the markdown tables and the plot.

  report.py assemble --raw WORK/raw --out RESULTS.json   (called by run.sh)
  report.py render RESULTS.json [--md FILE] [--png FILE]  (regenerate .md/.png)

Ratios are "times better than the reference": value/ref for rates (ops/s,
IOPS, GB/s), ref/value for latencies and times, so > 1 always means better
than the reference. References: tmpfs, and the best Debian FUSE peer
(fuse-overlayfs, bindfs, mergerfs) for that figure.
"""
import argparse
import csv
import json
import math
import os
import sys

PEERS = ["fuse-overlayfs", "bindfs", "mergerfs"]
TARGET_ORDER = ["tmpfs", "valorfs-classic", "valorfs-xfuse", "valorfs-uring",
                "valorfs-a05", "fuse-overlayfs", "bindfs", "mergerfs"]
PCTS = ["50.000000", "90.000000", "99.000000", "99.900000", "99.990000"]


# --------------------------------------------------------------- assemble

def _read_tsv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _first_json(text):
    i = text.find("{")
    if i < 0:
        return None
    try:
        return json.JSONDecoder().raw_decode(text[i:])[0]
    except ValueError:
        return None


def _trim_fio(j):
    def side(s):
        clat = s.get("clat_ns", {})
        pct = clat.get("percentile", {})
        return {
            "io_bytes": s.get("io_bytes"), "bw_bytes": s.get("bw_bytes"),
            "iops": s.get("iops"), "runtime_ms": s.get("runtime"),
            "total_ios": s.get("total_ios"),
            "clat_ns": {"mean": clat.get("mean"), "stddev": clat.get("stddev"),
                        "min": clat.get("min"), "max": clat.get("max"),
                        "percentile": {k: pct[k] for k in PCTS if k in pct}},
        }
    jobs = []
    for job in j.get("jobs", []):
        d = {"jobname": job.get("jobname"), "error": job.get("error"),
             "job_options": job.get("job options"),
             "usr_cpu": job.get("usr_cpu"), "sys_cpu": job.get("sys_cpu"),
             "ctx": job.get("ctx")}
        for rw in ("read", "write"):
            if job.get(rw, {}).get("total_ios"):
                d[rw] = side(job[rw])
        jobs.append(d)
    return {"fio_version": j.get("fio version"), "global_options": j.get("global options"),
            "jobs": jobs}


def _log_lines(path, limit=60):
    if not path or not os.path.exists(path):
        return []
    with open(path, errors="replace") as f:
        lines = [l.rstrip("\n") for l in f if "level=debug" not in l]
    lines = [l for l in lines if l.strip() and "unknown argument ignored" not in l]
    if len(lines) > limit:
        lines = lines[:limit // 2] + ["... (%d lines) ..." % (len(lines) - limit)] + lines[-limit // 2:]
    return lines


def assemble(raw, out):
    meta = {}
    with open(os.path.join(raw, "meta.tsv")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            meta[k] = v
    mounts = []
    for m in _read_tsv(os.path.join(raw, "mounts.tsv")):
        mounts.append({"target": m["target"], "label": m["label"], "status": m["status"],
                       "options": m["options"], "log": _log_lines(m.get("log"))})
    runs = []
    for r in _read_tsv(os.path.join(raw, "index.tsv")):
        rec = {"seq": int(r["seq"]), "target": r["target"], "workload": r["workload"],
               "variant": r["variant"], "tool": r["tool"], "rc": r["rc"],
               "seconds": float(r["seconds"]), "command": r["command"], "result": None}
        outp = os.path.join(raw, r["seq"] + ".out")
        errp = os.path.join(raw, r["seq"] + ".err")
        if os.path.exists(outp):
            with open(outp, errors="replace") as f:
                j = _first_json(f.read())
            if j is not None:
                rec["result"] = _trim_fio(j) if r["tool"] == "fio" else j
        if r["rc"] not in ("0", "skipped") and os.path.exists(errp):
            with open(errp, errors="replace") as f:
                rec["stderr_tail"] = f.read()[-2000:]
        runs.append(rec)
    doc = {"schema": "valorfs-bench/1", "meta": meta, "mounts": mounts, "runs": runs}
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


# --------------------------------------------------------------- metrics

def _fio_side(r):
    if not r or not r.get("jobs"):
        return None
    j = r["jobs"][0]
    return j.get("read") or j.get("write")


def _fio_iops(r):
    s = _fio_side(r)
    return s and s["iops"]


def _fio_pct(q):
    def f(r):
        s = _fio_side(r)
        v = s and s["clat_ns"]["percentile"].get(q)
        return v / 1e3 if v else None
    return f


def _fio_gbs(r):
    s = _fio_side(r)
    return s and s["bw_bytes"] / 1e9


def _get(*keys):
    def f(r):
        for k in keys:
            if not isinstance(r, dict) or k not in r:
                return None
            r = r[k]
        return r
    return f


# metric: (column label, better, formatter kind, extractor)
HI, LO = "higher", "lower"
M_STAT = ("stat ops/s", HI, "n", _get("stat", "ops_per_s"))
M_CREATE = ("create+unlink files/s", HI, "n", _get("create", "create_unlink_per_s"))
M_LIST = ("list entries/s", HI, "n", _get("list", "entries_per_s"))
M_LISTMS = ("list ms (median)", LO, "ms", _get("list", "median_ms"))
M_LIST1 = ("list ms (1st pass)", LO, "ms", _get("list", "first_ms"))
M_IOPS = ("IOPS", HI, "n", _fio_iops)
M_P50 = ("p50 µs", LO, "us", _fio_pct("50.000000"))
M_P99 = ("p99 µs", LO, "us", _fio_pct("99.000000"))
M_MB_IOPS = ("IOPS", HI, "n", _get("pread", "iops"))
M_MB_P50 = ("p50 µs", LO, "us", _get("pread", "p50_us"))
M_MB_P99 = ("p99 µs", LO, "us", _get("pread", "p99_us"))
M_GBS = ("GB/s", HI, "g", _fio_gbs)

# tables: (title, description, [(workload, variant, metric, column label override)])
def _tables(meta):
    n = meta.get("nfiles", "?")
    rt = meta.get("runtime_s", "?")
    t = []
    for v in ("unpinned", "pinned"):
        t.append((f"Metadata ({v})",
                  f"metabench, N={n}: stat of N existing files, create+close of N new files "
                  f"then unlink of them, opendir/readdir of the N-entry directory (5 passes; "
                  f"caches dropped before each phase){'; metabench pinned to CPU 0' if v == 'pinned' else ''}.",
                  [("metadata", v, m, None) for m in (M_STAT, M_CREATE, M_LIST, M_LISTMS, M_LIST1)]))
    for v, d in (("fio-1job-unpinned", "fio psync, 1 job, unpinned"),
                 ("fio-1job-pinned", "fio psync, 1 job, pinned (taskset -c 0)"),
                 ("fio-4jobs-unpinned", "fio psync, 4 jobs (aggregate IOPS, merged latency), unpinned"),
                 ("fio-4jobs-pinned", "fio psync, 4 jobs, all pinned to CPU 0")):
        t.append((f"4 KiB random read QD1 — {d}",
                  f"256 MiB file, O_DIRECT (every read reaches the daemon), time-based {rt} s.",
                  [("randread-qd1", v, m, None) for m in (M_IOPS, M_P50, M_P99)]))
    for v, d in (("metabench-unpinned", "unpinned"), ("metabench-pinned", "pinned to CPU 0")):
        t.append((f"4 KiB random pread QD1 — metabench, {d}",
                  f"Same file, O_DIRECT, {meta.get('metabench_pread_s', rt)} s, uniform random offsets, "
                  "per-op latency from clock_gettime around pread(2).",
                  [("randread-qd1", v, m, None) for m in (M_MB_IOPS, M_MB_P50, M_MB_P99)]))
    seq = meta.get("seq_size", "?")
    for w, d in (("seqread", "read"), ("seqwrite", "write")):
        t.append((f"1 MiB sequential {d} (GB/s)",
                  f"fio psync, bs=1M (page-aligned buffer), {seq} file. cold: fresh mount, drop_caches"
                  f"{' (valorfs also --no-keep-cache)' if w == 'seqread' else ', new file'}; "
                  f"warm: {'second read pass after a first' if w == 'seqread' else 'second write pass over the file written by a first'}"
                  f"{'; end_fsync=1' if w == 'seqwrite' else ''}.",
                  [(w, "cold", M_GBS, "cold GB/s"), (w, "warm", M_GBS, "warm GB/s")]))
    sweep = [s for s in meta.get("sweep", "").split(",") if s]
    if sweep:
        t.append(("Thread-count sweep — 4 KiB random read QD1 per job, IOPS",
                  f"fio psync, O_DIRECT, numjobs = {', '.join(sweep)}, {rt} s each, unpinned; "
                  "valorfs-classic and valorfs-xfuse remounted with --threads=numjobs, "
                  "the others run with their defaults.",
                  [("sweep", f"jobs={j}", M_IOPS, f"{j} jobs IOPS") for j in sweep]))
    return t


# headline figures for the plot: (panel title, workload, variant, metric)
PLOT = [
    ("stat ops/s (unpinned)", "metadata", "unpinned", M_STAT),
    ("create+unlink /s (unpinned)", "metadata", "unpinned", M_CREATE),
    ("list entries/s (unpinned)", "metadata", "unpinned", M_LIST),
    ("QD1 4K read IOPS, 1 job, unpinned", "randread-qd1", "fio-1job-unpinned", M_IOPS),
    ("QD1 4K read IOPS, 1 job, pinned", "randread-qd1", "fio-1job-pinned", M_IOPS),
    ("QD1 4K read p99, 1 job, unpinned", "randread-qd1", "fio-1job-unpinned", M_P99),
    ("QD1 4K read IOPS, 4 jobs, unpinned", "randread-qd1", "fio-4jobs-unpinned", M_IOPS),
    ("seq read GB/s, cold", "seqread", "cold", M_GBS),
    ("seq read GB/s, warm", "seqread", "warm", M_GBS),
    ("seq write GB/s, cold", "seqwrite", "cold", M_GBS),
    ("seq write GB/s, warm", "seqwrite", "warm", M_GBS),
    ("sweep IOPS, 8 jobs", "sweep", "jobs=8", M_IOPS),
]


class Data:
    def __init__(self, doc):
        self.doc = doc
        self.meta = doc["meta"]
        self.runs = {}   # (target, workload, variant) -> [runs] (several with --repeat)
        for r in doc["runs"]:
            self.runs.setdefault((r["target"], r["workload"], r["variant"]), []).append(r)
        present = {r["target"] for r in doc["runs"]} | {m["target"] for m in doc["mounts"]}
        self.targets = [t for t in TARGET_ORDER if t in present] + \
            sorted(present - set(TARGET_ORDER))
        self.status = {}
        for m in doc["mounts"]:
            s = self.status.setdefault(m["target"], set())
            s.add(m["status"])

    def value(self, target, workload, variant, metric):
        """The figure; with repeated runs the median over the runs that worked."""
        vals = []
        for r in self.runs.get((target, workload, variant), []):
            if r["rc"] != "0" or r["result"] is None:
                continue
            try:
                v = metric[3](r["result"])
            except (KeyError, TypeError, IndexError):
                continue
            if isinstance(v, (int, float)) and v > 0:
                vals.append(v)
        if not vals:
            return None
        vals.sort()
        n = len(vals)
        return vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2

    def cell_note(self, target, workload, variant):
        rs = self.runs.get((target, workload, variant))
        if not rs:
            return "—"
        r = rs[-1]
        if r["rc"] == "skipped":
            return "skipped"
        if r["rc"] in ("124", "137"):
            return "TIMEOUT"
        if r["rc"] != "0":
            return "FAIL"
        return "—"

    def best_peer(self, workload, variant, metric):
        vals = [(self.value(p, workload, variant, metric), p) for p in PEERS]
        vals = [(v, p) for v, p in vals if v is not None]
        if not vals:
            return None, None
        return (max if metric[1] == HI else min)(vals)

    @staticmethod
    def ratio(v, ref, better):
        if v is None or ref is None:
            return None
        return v / ref if better == HI else ref / v

    def label(self, t):
        st = self.status.get(t, set())
        if st and st <= {"failed"}:
            return t + " (MOUNT FAILED)"
        if "failed" in st:
            return t + " (a mount FAILED)"
        if "fallback" in st:
            return t + " (FALLBACK)"
        return t


def fmt(v, kind):
    if v is None:
        return None
    if kind == "n":
        if v >= 1e6:
            return f"{v / 1e6:.2f}M"
        if v >= 1e4:
            return f"{v / 1e3:.1f}k"
        if v >= 1e3:
            return f"{v / 1e3:.2f}k"
        return f"{v:.0f}"
    if kind == "us":
        return f"{v:.0f}" if v >= 100 else f"{v:.1f}"
    if kind == "ms":
        return f"{v:.1f}" if v >= 10 else f"{v:.2f}"
    if kind == "g":
        return f"{v:.2f}"
    return f"{v:.3g}"


def fmt_ratio(r):
    if r is None:
        return "—"
    if r >= 100:
        return f"{r:.0f}×"
    return f"{r:.3g}×"


# --------------------------------------------------------------- markdown

def render_md(d, path, png_name):
    m = d.meta
    L = []
    quick = m.get("mode") == "quick"
    L.append(f"# valorfs FUSE engine benchmark — {m.get('date', '?')[:10]}"
             + (" (QUICK smoke run: small N, short jobs — not for conclusions)" if quick else ""))
    L.append("")
    L.append("Generated by `bench/run.sh` and `bench/report.py` from the raw JSON next to this "
             "file (`report.py render` regenerates this page and the plot).")
    L.append("")
    L.append("## Machine and tools")
    L.append("")
    L.append("| | |")
    L.append("|---|---|")
    rows = [("date", "date"), ("kernel (uname -r)", "kernel"), ("CPUs (nproc)", "nproc"),
            ("CPU model", "cpu"), ("memory", "memory"), ("OS", "os"),
            ("fio", "fio"), ("fuse-overlayfs", "fuse-overlayfs"), ("bindfs", "bindfs"),
            ("mergerfs", "mergerfs"), ("fusermount3", "fusermount3"),
            ("valorfs-fuse", "valorfs-fuse"), ("valorfs binary", "valorfs_binary"),
            ("repo HEAD at run time", "git"),
            ("fuse enable_uring", "enable_uring"), ("mode", "mode"),
            ("time-based fio job", "runtime_s"), ("metadata N", "nfiles"),
            ("sequential file", "seq_size"), ("random-read repeats", "repeat"), ("random-read file", "rand_size"),
            ("pinned CPU", "pin_cpu"), ("total run time (s)", "duration_s")]
    for label, k in rows:
        L.append(f"| {label} | {m.get(k, '?')} |")
    L.append("")
    L.append(f"Command line: `{m.get('command', '?')}`")
    L.append("")
    L.append("## Targets and mount options")
    L.append("")
    L.append("All targets serve the same directory on one tmpfs (`$WORK/tmpfs/data`). "
             "FUSE passthrough (kernel data path bypass) is not used by valorfs here, so every "
             "data request goes through the daemon.")
    L.append("")
    L.append("| target | mount | status | command |")
    L.append("|---|---|---|---|")
    for mt in d.doc["mounts"]:
        L.append(f"| {mt['target']} | {mt['label']} | {mt['status']} | `{mt['options']}` |")
    L.append("")
    L.append("## How to read the tables")
    L.append("")
    L.append("Each figure is followed by two ratios, \"times better than\": **×tmpfs** against "
             "tmpfs itself and **×peer** against the best Debian FUSE peer "
             "(fuse-overlayfs, bindfs, mergerfs) for that figure. For rates "
             "ratio = value/reference, for latencies and times ratio = reference/value, "
             "so > 1 is always better. The best peer is named under each table. "
             "FAIL / TIMEOUT / skipped mark runs that did not produce a figure "
             "(see the raw JSON). A target marked FALLBACK did not get what it asked for "
             "(valorfs-uring without io_uring=on in its log).")
    if int(m.get("repeat", "1") or 1) > 1:
        L.append(f"Random-read figures (QD1 tables and sweep) are medians of {m['repeat']} runs; "
                 "every run is in the raw JSON.")
        L.append("")
    for title, desc, cols in _tables(m):
        L.append(f"### {title}")
        L.append("")
        L.append(desc)
        L.append("")
        head = ["target"]
        for (w, v, met, lab) in cols:
            head += [lab or met[0], "×tmpfs", "×peer"]
        L.append("| " + " | ".join(head) + " |")
        L.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        bests = []
        for (w, v, met, lab) in cols:
            bests.append(d.best_peer(w, v, met))
        for t in d.targets:
            row = [d.label(t)]
            for (w, v, met, lab), (bv, bp) in zip(cols, bests):
                val = d.value(t, w, v, met)
                ref = d.value("tmpfs", w, v, met)
                row.append(fmt(val, met[2]) or d.cell_note(t, w, v))
                row.append(fmt_ratio(d.ratio(val, ref, met[1])))
                row.append(fmt_ratio(d.ratio(val, bv, met[1])))
            L.append("| " + " | ".join(row) + " |")
        L.append("")
        bp = [f"{lab or met[0]}: {p} ({fmt(b, met[2])})" for (w, v, met, lab), (b, p) in zip(cols, bests) if p]
        L.append("Best peer — " + ("; ".join(bp) if bp else "none available") + ".")
        L.append("")
    # notable log lines of valorfs mounts
    notes = []
    for mt in d.doc["mounts"]:
        bad = [l for l in mt["log"] if "level=error" in l or "level=warn" in l
               or "run.sh:" in l or "fallback" in l.lower()]
        if bad:
            notes.append((mt["target"], mt["label"], bad))
    failed = [r for r in d.doc["runs"] if r["rc"] not in ("0", "skipped")]
    skipped = {}
    for r in d.doc["runs"]:
        if r["rc"] == "skipped":
            skipped[r["target"]] = skipped.get(r["target"], 0) + 1
    if notes or failed or skipped:
        L.append("## Errors and warnings")
        L.append("")
        for t, k in skipped.items():
            L.append(f"- {t}: {k} runs skipped after the target was marked broken "
                     "(timeout or daemon death)")
        for r in failed:
            tail = (r.get("stderr_tail") or "").strip().splitlines()
            L.append(f"- {r['target']} {r['workload']}/{r['variant']}: rc={r['rc']}"
                     + (f" — `{tail[-1].strip()}`" if tail else ""))
        for t, lab, lines in notes:
            L.append(f"- {t} ({lab}) log:")
            for l in lines[:10]:
                L.append(f"  - `{l}`")
        L.append("")
    if png_name:
        L.append("## Plot")
        L.append("")
        L.append(f"![ratios]({png_name})")
        L.append("")
    L.append("## Caveats")
    L.append("")
    L.append("- Virtual machine with 2 vCPUs whose idle vCPUs halt: waking one costs tens of "
             "microseconds, so pinning changes QD1 figures a lot. Pinned = the benchmark process "
             "(fio or metabench) on CPU 0; daemons are never pinned by the harness "
             "(valorfs-uring pins its own queue threads).")
    L.append("- Random reads use O_DIRECT: buffered reads would fill the FUSE page cache within "
             "a few seconds and then measure the page cache, not the transport.")
    L.append("- tmpfs cannot be \"cold\": its pages are the file. Peers' page-cache policies "
             "differ: bindfs (libfuse 2, no kernel_cache) and mergerfs cache.files=partial "
             "drop a file's cache on open, so their warm read equals a cold read; "
             "valorfs keeps the cache across opens unless --no-keep-cache.")
    L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


# --------------------------------------------------------------- plot

def render_png(d, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.transforms  # noqa: F401
    from matplotlib.gridspec import GridSpec

    targets = d.targets
    ncol = 3
    nrow = math.ceil(len(PLOT) / ncol)
    fig = plt.figure(figsize=(17, 3.1 * nrow + 4.2))
    gs = GridSpec(nrow + 1, ncol, figure=fig, height_ratios=[1] * nrow + [1.25],
                  hspace=0.75, wspace=0.55, top=0.92, bottom=0.04)
    y = list(range(len(targets)))
    h = 0.38
    for i, (title, w, v, met) in enumerate(PLOT):
        ax = fig.add_subplot(gs[i // ncol, i % ncol])
        bv, bp = d.best_peer(w, v, met)
        ref = d.value("tmpfs", w, v, met)
        rt, rp, vals = [], [], []
        for t in targets:
            val = d.value(t, w, v, met)
            vals.append(val)
            rt.append(d.ratio(val, ref, met[1]))
            rp.append(d.ratio(val, bv, met[1]))
        pos = [r for r in rt + rp if r]
        if not pos:
            ax.set_title(title + "\n(no data)", fontsize=9)
            ax.set_axis_off()
            continue
        # bars grow from 1 (= as good as the reference) to the ratio, left = worse
        ax.barh([j - h / 2 for j in y], [(r - 1) if r else 0 for r in rt], h, left=1,
                color="#9ecae1", label="× tmpfs")
        ax.barh([j + h / 2 for j in y], [(r - 1) if r else 0 for r in rp], h, left=1,
                color="#e6550d", label="× best peer")
        ax.set_xscale("log")
        lo, hi = min(pos), max(pos)
        ax.set_xlim(min(lo, 1) / 2, max(hi, 1) * 2)
        ax.axvline(1, color="black", lw=0.8)
        ax.set_yticks(y)
        ax.set_yticklabels([d.label(t) for t in targets], fontsize=8)
        ax.invert_yaxis()
        ax.tick_params(axis="x", labelsize=7)
        # raw values in a column right of the axes
        tr = matplotlib.transforms.blended_transform_factory(ax.transAxes, ax.transData)
        for j, val in enumerate(vals):
            txt = fmt(val, met[2]) if val is not None else d.cell_note(targets[j], w, v)
            ax.text(1.02, j, txt, va="center", ha="left", fontsize=7, transform=tr)
        unit = "lower is better" if met[1] == LO else "higher is better"
        ax.set_title(f"{title}\n(best peer: {bp or '-'}; raw value {unit})", fontsize=9)
        ax.set_xlabel("times better than reference (log)", fontsize=7)
        if i == 0:
            fig.legend(*ax.get_legend_handles_labels(), loc="upper center", ncol=2,
                       fontsize=9, bbox_to_anchor=(0.5, 0.955), frameon=False)
    # sweep line plot (absolute IOPS)
    ax = fig.add_subplot(gs[nrow, :])
    sweep = [s for s in d.meta.get("sweep", "").split(",") if s]
    any_line = False
    for t in targets:
        xs, ys = [], []
        for j in sweep:
            val = d.value(t, "sweep", f"jobs={j}", M_IOPS)
            if val is not None:
                xs.append(int(j))
                ys.append(val)
        if xs:
            style = "-o" if t.startswith("valorfs") else "--s"
            ax.plot(xs, ys, style, label=d.label(t), lw=2 if t.startswith("valorfs") else 1.2)
            any_line = True
    if any_line:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks([int(j) for j in sweep])
        ax.set_xticklabels(sweep)
        ax.set_xlabel("fio numjobs (valorfs classic/xfuse: --threads = numjobs)")
        ax.set_ylabel("IOPS (4 KiB random read, QD1 per job)")
        ax.set_title("Thread-count sweep (absolute IOPS, log scale)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, ncol=4, loc="best")
    else:
        ax.set_axis_off()
    m = d.meta
    fig.suptitle(f"valorfs FUSE engine vs tmpfs and Debian FUSE peers — {m.get('date', '')[:10]}, "
                 f"{m.get('mode', '')} run, kernel {m.get('kernel', '')}, {m.get('nproc', '')} CPUs\n"
                 "bars: ratio \"times better than\" tmpfs (blue) and the best of fuse-overlayfs/"
                 "bindfs/mergerfs (orange), log scale; 1 = equal", fontsize=11)
    fig.savefig(path, dpi=90, bbox_inches="tight")


# --------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("assemble", help="build the raw JSON from a run.sh work directory")
    a.add_argument("--raw", required=True)
    a.add_argument("--out", required=True)
    r = sub.add_parser("render", help="write the markdown and the PNG from the raw JSON")
    r.add_argument("json")
    r.add_argument("--md")
    r.add_argument("--png")
    r.add_argument("--no-png", action="store_true")
    args = ap.parse_args()
    if args.cmd == "assemble":
        assemble(args.raw, args.out)
        return 0
    with open(args.json) as f:
        d = Data(json.load(f))
    stem = args.json[:-5] if args.json.endswith(".json") else args.json
    md = args.md or stem + ".md"
    png = None if args.no_png else (args.png or stem + ".png")
    if png:
        render_png(d, png)
    rel = os.path.relpath(png, os.path.dirname(os.path.abspath(md)) or ".") if png else None
    render_md(d, md, rel)
    print(md, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
