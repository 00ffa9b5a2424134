#!/usr/bin/env python3
"""Render the cluster benchmark (bench/cluster/run.sh) results.

  report.py render RESULTS.json [--md FILE] [--png FILE]

The JSON is the one bench/report.py assembles from run.sh's raw directory
(same schema as the FUSE engine benchmark: meta, mounts, runs); this file only
picks the cluster figures out of it and writes the markdown table and the
plot. Helpers (fio JSON access, number formatting) come from bench/report.py.
Ratios are valorfs / peer for every figure here (all are rates: higher is
better), so a ratio >= the target means the target is met.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import report as base  # noqa: E402  bench/report.py

SYSTEMS = ["valorfs", "moosefs", "glusterfs"]
LABEL = {"valorfs": "valorfs", "moosefs": "MooseFS", "glusterfs": "GlusterFS"}
PEERS = ["moosefs", "glusterfs"]
TARGET = {"throughput": 2.0, "metadata": 3.0}


def _mib_s(r):
    s = base._fio_side(r)
    return s and s["bw_bytes"] / 1048576


def _iops(r):
    s = base._fio_side(r)
    return s and s["iops"]


def _lat_us(q):
    def f(r):
        s = base._fio_side(r)
        v = s and s["clat_ns"]["percentile"].get(q)
        return v / 1e3 if v else None
    return f


# (key, label, workload, variant or None = the non-setup run, getter, format, class)
METRICS = [
    ("seqwrite", "seq write 1 MiB (MiB/s)", "seqwrite", None, _mib_s, "g1", "throughput"),
    ("seqread", "seq read 1 MiB, cold (MiB/s)", "seqread", None, _mib_s, "g1", "throughput"),
    ("rand1", "4 KiB rand read QD1, 1 job (IOPS)", "randread", "jobs=1", _iops, "n", "throughput"),
    ("rand4", "4 KiB rand read QD1, 4 jobs (IOPS)", "randread", "jobs=4", _iops, "n", "throughput"),
    ("create", "create+close (files/s)", "metadata", None, base._get("create", "create_close_per_s"), "n", "metadata"),
    ("stat", "stat, cold (ops/s)", "metadata", None, base._get("stat", "ops_per_s"), "n", "metadata"),
    ("unlink", "unlink (files/s)", "metadata", None, base._get("create", "unlink_per_s"), "n", "metadata"),
    ("list1", "list N-entry dir, cold 1st pass (entries/s)", "metadata", None,
     base._get("list", "first_entries_per_s"), "n", "metadata"),
    ("list", "list N-entry dir, median of 5 (entries/s)", "metadata", None,
     base._get("list", "entries_per_s"), "n", "metadata"),
]
EXTRA = [
    ("rand1 p50 (µs)", "randread", "jobs=1", _lat_us("50.000000")),
    ("rand1 p99 (µs)", "randread", "jobs=1", _lat_us("99.000000")),
    ("rand4 p50 (µs)", "randread", "jobs=4", _lat_us("50.000000")),
    ("rand4 p99 (µs)", "randread", "jobs=4", _lat_us("99.000000")),
    ("seq write wall time incl. fsync (s)", "seqwrite", None, None),
]


def fmt(v, kind):
    if v is None:
        return None
    if kind == "g1":
        return f"{v:.1f}" if v < 1000 else f"{v:.0f}"
    return base.fmt(v, kind)


class Results:
    def __init__(self, doc):
        self.doc = doc
        self.meta = doc["meta"]
        self.mounts = {m["target"]: m for m in doc["mounts"]}

    def run(self, system, workload, variant):
        for r in self.doc["runs"]:
            if r["target"] != system or r["workload"] != workload:
                continue
            if variant is None and r["variant"] == "setup":
                continue
            if variant is not None and r["variant"] != variant:
                continue
            return r
        return None

    def value(self, system, metric):
        _, _, w, v, get, _, _ = metric
        r = self.run(system, w, v)
        if not r or r["rc"] != "0" or not r.get("result"):
            return None
        try:
            return get(r["result"])
        except (KeyError, TypeError, IndexError):
            return None

    def note(self, system, metric):
        m = self.mounts.get(system)
        if not m:
            return "not run"
        if m["status"] == "skipped":
            return "not built" if m["options"].startswith("not built") else "skipped"
        if m["status"] != "ok":
            return "setup failed"
        r = self.run(system, metric[2], metric[3])
        if not r:
            return "—"
        if r["rc"] == "skipped":
            return "skipped"
        if r["rc"] == "124":
            return "TIMEOUT"
        return "FAIL" if r["rc"] != "0" else "—"

    def cell(self, system, metric):
        v = self.value(system, metric)
        return fmt(v, metric[5]) if v is not None else self.note(system, metric)

    def ratio(self, metric, peer):
        a, b = self.value("valorfs", metric), self.value(peer, metric)
        if a is None or b is None or b == 0:
            return None
        return a / b

    def verdict(self, metric):
        """'met', 'NOT met' or None (not measurable) for one figure."""
        need = TARGET[metric[6]]
        rs = [self.ratio(metric, p) for p in PEERS]
        if any(r is None for r in rs):
            return None
        return "met" if all(r >= need for r in rs) else "NOT met"


def render_md(res, path, png_name):
    m = res.meta
    quick = m.get("mode") == "quick"
    L = [f"# valorfs vs MooseFS vs GlusterFS — 3 storage servers, 3 replicas — {m.get('date', '?')[:10]}"
         + (" (QUICK smoke run: small sizes, short jobs — not for conclusions)" if quick else ""),
         "",
         "Generated by `bench/cluster/run.sh` (one run, the three systems one after the other on "
         "this machine) and `bench/cluster/report.py render` from the JSON next to this file. "
         "Every figure is as measured in this one run; benchmarks never assert times.",
         ""]
    if m.get("note"):
        L += [f"**Note on this run:** {m['note']}", ""]
    L += ["## Machine", "", "| | |", "|---|---|"]
    rows = [("date", "date"), ("CPU (lscpu model)", "cpu"), ("CPUs", "cores"),
            ("hypervisor", "hypervisor"), ("memory", "memory"), ("kernel", "kernel"), ("OS", "os"),
            ("data directories on", "fs"), ("fio", "fio"),
            ("moosefs-master / -chunkserver / -client", None),
            ("glusterfs-server / -client", None), ("valorfs", "valorfs_binary"),
            ("repo HEAD at run time", "git"), ("CPU pinning", "pinning"), ("network", "netns"),
            ("mode", "mode"), ("sequential file", "seq_size"), ("random-read job (s)", "runtime_s"),
            ("metadata N", "nfiles"), ("total run time (s)", "duration_s")]
    rows += [(f"load average (1/5/15 min) at start / end of {LABEL[s]}", None) for s in SYSTEMS
             if f"load_{s}" in m]
    for label, k in rows:
        if label.startswith("moosefs-master"):
            val = " / ".join(m.get(f"pkg_moosefs-{p}", "?") for p in ("master", "chunkserver", "client"))
        elif label.startswith("glusterfs-server"):
            val = " / ".join(m.get(f"pkg_glusterfs-{p}", "?") for p in ("server", "client"))
        elif label.startswith("load average"):
            s = next(x for x in SYSTEMS if label.endswith(LABEL[x]))
            val = f"{m.get('load_' + s, '?')} / {m.get('load_after_' + s, '?')}"
        else:
            val = m.get(k, "?")
        L.append(f"| {label} | {val} |")
    L += ["", f"Command: `{m.get('command', '?')}`", ""]

    L += ["## Results", "",
          "valorfs ÷ peer is the valorfs figure divided by the peer's (all figures are rates, "
          "higher is better). Targets: ≥ 2× both peers on throughput (sequential and random "
          "read/write), ≥ 3× both peers on metadata operations.", ""]
    head = ["workload"] + [LABEL[s] for s in SYSTEMS] + ["valorfs ÷ MooseFS", "valorfs ÷ GlusterFS",
                                                         "target", "met?"]
    L.append("| " + " | ".join(head) + " |")
    L.append("|---|" + "---:|" * 5 + ":---:|:---:|")
    for met in METRICS:
        row = [met[1].replace("N-entry", f"{m.get('nfiles', 'N')}-entry")]
        row += [res.cell(s, met) for s in SYSTEMS]
        row += [base.fmt_ratio(res.ratio(met, p)) for p in PEERS]
        row.append(f"≥ {TARGET[met[6]]:g}×")
        v = res.verdict(met)
        row.append("**met**" if v == "met" else ("not met" if v else "—"))
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    verdicts = [(met, res.verdict(met)) for met in METRICS]
    if all(v is None for _, v in verdicts):
        L.append("**Targets: not evaluated** — valorfs has no figures in this run "
                 f"({res.note('valorfs', METRICS[0])}); the peers' figures stand on their own.")
    else:
        for cls in ("throughput", "metadata"):
            vs = [(met, v) for met, v in verdicts if met[6] == cls]
            ok = [met[0] for met, v in vs if v == "met"]
            bad = [met[0] for met, v in vs if v == "NOT met"]
            na = [met[0] for met, v in vs if v is None]
            L.append(f"- **{cls}** (≥ {TARGET[cls]:g}× both peers): met on {len(ok)} of {len(vs)}"
                     + (f"; not met: {', '.join(bad)}" if bad else "")
                     + (f"; no figure: {', '.join(na)}" if na else "") + ".")
    L.append("")

    L += ["### Latency and detail", "", "| | " + " | ".join(LABEL[s] for s in SYSTEMS) + " |",
          "|---|" + "---:|" * len(SYSTEMS)]
    for label, w, v, get in EXTRA:
        cells = []
        for s in SYSTEMS:
            r = res.run(s, w, v)
            if not r or r["rc"] != "0":
                cells.append("—")
            elif get is None:
                cells.append(f"{r['seconds']:.1f}")
            else:
                try:
                    x = get(r["result"])
                except (KeyError, TypeError, IndexError):
                    x = None
                cells.append(base.fmt(x, "us") if x is not None else "—")
        L.append(f"| {label} | " + " | ".join(cells) + " |")
    capped = [f"{LABEL[s]} {k}" for s in SYSTEMS for k in ("stat", "create")
              if (res.run(s, "metadata", None) or {}).get("result")
              and res.run(s, "metadata", None)["result"].get(k, {}).get("capped")]
    L.append("")
    if capped:
        L += [f"Capped metadata phases (hit the time cap, rate over the files done): {', '.join(capped)}.", ""]

    L += ["## Setup of each system", "",
          "All data directories are plain directories under one work directory on the same "
          f"file system ({m.get('fs', '?')}), one per storage server. MooseFS and GlusterFS "
          "refuse loopback addresses (MooseFS: \"localhost can't be used for connecting with "
          "master\"; GlusterFS bricks likewise), so they run in a network namespace made by "
          "the script whose only interface is its own loopback, carrying 198.18.0.0/24; their "
          "FUSE clients run in it too, the mounts are in the host's mount namespace.", "",
          "| system | status | setup |", "|---|---|---|"]
    for s in SYSTEMS:
        mt = res.mounts.get(s)
        if mt:
            L.append(f"| {LABEL[s]} | {mt['status']} | {mt['options'].replace('|', '/')} |")
        else:
            L.append(f"| {LABEL[s]} | not selected | |")
    L += ["", "## Exact commands", "",
          "`$WORK` is the work directory, `$WORK/mnt` the mount point of the system under test. "
          "`echo 3 > /proc/sys/vm/drop_caches` (after `sync`) runs before the sequential write, "
          "before the sequential read and before each random-read job; metabench drops caches "
          "itself before each phase (`--drop-caches`).", "", "```"]
    seen = set()
    for r in res.doc["runs"]:
        key = (r["workload"], r["variant"])
        if key in seen:
            continue
        seen.add(key)
        L.append(f"# {r['workload']} {r['variant']}")
        L.append(r["command"])
    L += ["```", ""]

    failed = [r for r in res.doc["runs"] if r["rc"] not in ("0", "skipped")]
    if failed:
        L += ["## Errors", ""]
        for r in failed:
            tail = (r.get("stderr_tail") or "").strip().splitlines()
            L.append(f"- {LABEL.get(r['target'], r['target'])} {r['workload']}/{r['variant']}: "
                     f"rc={r['rc']}" + (f" — `{tail[-1].strip()}`" if tail else ""))
        L.append("")
    if png_name:
        L += ["## Plot", "", f"![cluster benchmark]({png_name})", ""]
    L += ["## Setup logs (replica checks)", ""]
    for s in SYSTEMS:
        mt = res.mounts.get(s)
        if not mt or not mt["log"]:
            continue
        L += [f"<details><summary>{LABEL[s]}</summary>", "", "```"]
        L += [l.replace("```", "'''") for l in mt["log"]]
        L += ["```", "", "</details>", ""]
    L += ["## Caveats", "",
          "- One machine: the \"3 storage servers\" of each system are 3 processes sharing "
          "the same CPUs, memory and disk; replication traffic goes over loopback. The figures "
          "compare software paths, not a networked cluster.",
          "- Small VM (2 vCPUs): runs are noisy; differences under ~20 % are within "
          "run-to-run variation. Nothing is pinned. Other load on the machine during the run "
          "(see the load averages above) slows whichever system is measured at that moment.",
          "- Random reads use O_DIRECT so every read reaches the file system (a buffered "
          "time-based job would soon read the page cache); the file is the 1 MiB-written "
          "sequential file.",
          "- `drop_caches` empties the kernel caches (client page cache and the storage "
          "servers' file caches) but not caches inside user-space clients.",
          "- Peers run with their default mount and volume options (listed above).", ""]
    with open(path, "w") as f:
        f.write("\n".join(L))


def render_png(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"valorfs": "#e6550d", "moosefs": "#6baed6", "glusterfs": "#74c476"}
    fig, axes = plt.subplots(3, 3, figsize=(14, 10))
    for ax, met in zip(axes.flat, METRICS):
        vals = [res.value(s, met) for s in SYSTEMS]
        xs = list(range(len(SYSTEMS)))
        ax.bar(xs, [v or 0 for v in vals], color=[colors[s] for s in SYSTEMS])
        ax.set_xticks(xs)
        ax.set_xticklabels([LABEL[s] for s in SYSTEMS], fontsize=9)
        top = max([v for v in vals if v] or [1])
        ax.set_ylim(0, top * 1.25)
        for x, s, v in zip(xs, SYSTEMS, vals):
            txt = fmt(v, met[5]) if v is not None else res.note(s, met)
            ax.text(x, (v or 0) + top * 0.02, txt, ha="center", va="bottom", fontsize=8)
        rs = [res.ratio(met, p) for p in PEERS]
        sub = ", ".join(f"{base.fmt_ratio(r)} {LABEL[p]}" for r, p in zip(rs, PEERS) if r)
        ax.set_title(met[1].replace("N-entry", f"{res.meta.get('nfiles', 'N')}-entry")
                     + (f"\nvalorfs = {sub} (target {TARGET[met[6]]:g}×)" if sub else ""), fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    m = res.meta
    fig.suptitle(f"valorfs vs MooseFS vs GlusterFS, 3 storage servers, 3 replicas, one machine — "
                 f"{m.get('date', '')[:10]}, {m.get('mode', '')} run, {m.get('nproc', '')} CPUs, "
                 f"kernel {m.get('kernel', '')} (higher is better)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=90)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="write the markdown and the PNG from the JSON")
    r.add_argument("json")
    r.add_argument("--md")
    r.add_argument("--png")
    r.add_argument("--no-png", action="store_true")
    args = ap.parse_args()
    with open(args.json) as f:
        res = Results(json.load(f))
    stem = args.json[:-5] if args.json.endswith(".json") else args.json
    md = args.md or stem + ".md"
    png = None if args.no_png else (args.png or stem + ".png")
    if png:
        render_png(res, png)
    rel = os.path.relpath(png, os.path.dirname(os.path.abspath(md)) or ".") if png else None
    render_md(res, md, rel)
    print(md, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
