#!/usr/bin/env python3
"""Assemble and render the metadata benchmark (bench/meta/run.sh).

  report.py assemble --raw RAWDIR --out RESULTS.json
  report.py render RESULTS.json [--md FILE] [--png FILE]

assemble reads run.sh's raw directory (meta.tsv, systems.tsv, index.tsv and
per run N.out = metaload's JSON, N.before / N.after = counter snapshots) and
writes one JSON with every run and, per run, the round trips per operation
derived from the counters. render writes the markdown tables and the plot.

Round trips per operation = (counter delta over the phase - idle rate x the
phase's window) / operations, where the idle rate comes from the system's
idle sample taken right after setup. Operations are metaload's successful
ops (for readdir: listings).
"""
import argparse
import json
import os
import sys

LABEL = {"lmdb": "valorfs LMDB", "lmdb-nosync": "valorfs LMDB kv-sync=none",
         "etcd1": "valorfs etcd ×1", "etcd3": "valorfs etcd ×3", "moosefs": "MooseFS"}
ORDER = ["lmdb", "lmdb-nosync", "etcd1", "etcd3", "moosefs"]
PHASES = ["create", "stat", "rename", "unlink", "readdir"]
ETCD_METHODS = ["Range", "Txn", "Put", "DeleteRange"]
MFS_OPS = ["statfs", "getattr", "setattr", "lookup", "mkdir", "rmdir", "symlink", "readlink",
           "mknod", "unlink", "rename", "link", "readdir", "open", "read", "write", "total"]


# --------------------------------------------------------------- assemble

def _tsv(path):
    with open(path) as f:
        head = f.readline().rstrip("\n").split("\t")
        return [dict(zip(head, line.rstrip("\n").split("\t"))) for line in f if line.strip()]


def _json_file(path):
    try:
        with open(path) as f:
            txt = f.read().strip()
        return json.loads(txt) if txt else None
    except (OSError, ValueError):
        return None


def _tail(path, n=5):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def _counters(snap):
    """Flatten one snapshot into {counter name: value}; None if unusable."""
    if not snap:
        return None
    if "etcd" in snap:
        out = {m: 0 for m in ETCD_METHODS}
        out["all"] = 0
        for member in snap["etcd"].values():
            for meth, v in member.items():
                out["all"] += v
                if meth in out:
                    out[meth] += v
        out["kv"] = sum(out[m] for m in ETCD_METHODS)
        return out if snap["etcd"] else None
    if "lmdb_txnid" in snap:
        return None if snap["lmdb_txnid"] is None else {"write_txns": snap["lmdb_txnid"]}
    if "mfs_ops" in snap:
        ops = snap["mfs_ops"]
        return dict(zip(MFS_OPS, ops)) if len(ops) == len(MFS_OPS) else None
    return None


def _delta(run):
    b, a = _counters(run.get("before")), _counters(run.get("after"))
    if b is None or a is None:
        return None, None
    d = {k: a[k] - b[k] for k in a if k in b}
    if any(v < 0 for v in d.values()):   # MooseFS's hourly counters rolled over
        return None, None
    return d, run["after"]["t"] - run["before"]["t"]


def derive(runs):
    idle = {}
    for r in runs:
        if r["phase"] == "idle":
            d, w = _delta(r)
            if d is not None and w > 0:
                idle[r["system"]] = {k: v / w for k, v in d.items()}
                r["idle_rate_per_s"] = idle[r["system"]]
    for r in runs:
        res = r.get("result")
        if r["phase"] == "idle" or not res or r["rc"] != "0":
            continue
        ops = res.get("listings", res.get("ops", 0))
        d, w = _delta(r)
        if d is None or not ops:
            r["round_trips"] = None
            continue
        base = idle.get(r["system"], {})
        per = {k: max(0.0, v - base.get(k, 0.0) * w) / ops for k, v in d.items()}
        r["round_trips"] = {"per_op": per, "raw_delta": d, "window_s": w, "ops": ops,
                            "idle_subtracted": {k: base.get(k, 0.0) * w for k in d}}


def assemble(raw, out):
    meta = {}
    with open(os.path.join(raw, "meta.tsv")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            meta[k] = v
    systems = []
    for s in _tsv(os.path.join(raw, "systems.tsv")):
        log = []
        if s.get("log") and os.path.exists(s["log"]):
            with open(s["log"], errors="replace") as f:
                log = [l.rstrip("\n") for l in f][:80]
        systems.append({"system": s["system"], "status": s["status"], "setup": s["setup"],
                        "log": log})
    runs = []
    for r in _tsv(os.path.join(raw, "index.tsv")):
        p = os.path.join(raw, r["seq"])
        runs.append({"seq": int(r["seq"]), "system": r["system"], "phase": r["phase"],
                     "threads": int(r["threads"]), "rc": r["rc"], "wall_s": float(r["wall_s"]),
                     "command": r["command"], "result": _json_file(p + ".out"),
                     "before": _json_file(p + ".before"), "after": _json_file(p + ".after"),
                     "stderr_tail": _tail(p + ".err")})
    derive(runs)
    with open(out, "w") as f:
        json.dump({"meta": meta, "systems": systems, "runs": runs}, f, indent=1)
        f.write("\n")


# --------------------------------------------------------------- render

def fmt_n(v):
    if v is None:
        return "—"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.1f}k"
    if v >= 1e3:
        return f"{v / 1e3:.2f}k"
    return f"{v:.0f}" if v >= 10 else f"{v:.1f}"


def fmt_us(v):
    if v is None:
        return "—"
    if v >= 1e4:
        return f"{v / 1e3:.1f} ms"
    return f"{v:.0f} µs"


def fmt_rt(v):
    return "—" if v is None else (f"{v:.2f}" if v < 10 else f"{v:.1f}")


class Res:
    def __init__(self, doc):
        self.doc = doc
        self.meta = doc["meta"]
        self.sys = {s["system"]: s for s in doc["systems"]}
        self.systems = [s for s in ORDER if s in self.sys] + \
            [s for s in self.sys if s not in ORDER]
        self.threads = sorted({r["threads"] for r in doc["runs"] if r["phase"] in PHASES})

    def run(self, system, phase, threads=None):
        for r in self.doc["runs"]:
            if r["system"] == system and r["phase"] == phase and \
                    (threads is None or r["threads"] == threads):
                return r
        return None

    def ok(self, r):
        return r and r["rc"] == "0" and r.get("result")

    def note(self, system, r):
        st = self.sys.get(system, {}).get("status")
        if st == "skipped":
            return "skipped"
        if st == "failed":
            return "setup failed"
        if not r:
            return "—"
        return {"skipped": "skipped", "124": "TIMEOUT", "lost": "MOUNT LOST"}.get(r["rc"], f"FAIL rc={r['rc']}")

    def rate(self, system, phase, t):
        r = self.run(system, phase, t)
        if not self.ok(r):
            return None, self.note(system, r)
        res = r["result"]
        v = res["listings_per_s"] if phase == "readdir" else res["ops_per_s"]
        flags = ""
        if res.get("capped"):
            flags += " (capped)"
        if res.get("errors"):
            flags += f" ({res['errors']} err)"
        return v, flags

    def rt_cell(self, system, phase, t):
        r = self.run(system, phase, t)
        if not self.ok(r):
            return "—"
        rt = r.get("round_trips")
        if rt is None:
            return "n/a"
        p = rt["per_op"]
        if "kv" in p:
            parts = [f"{m[0] if m != 'DeleteRange' else 'D'}{fmt_rt(p[m])}" for m in ETCD_METHODS
                     if p.get(m, 0) >= 0.005]
            return f"**{fmt_rt(p['kv'])}**" + (f" ({' '.join(parts)})" if parts else "")
        if "write_txns" in p:
            return f"**{fmt_rt(p['write_txns'])}** w, reads n/a"
        if "total" in p:
            parts = [f"{k} {fmt_rt(v)}" for k, v in p.items()
                     if k != "total" and v >= 0.005]
            return f"**{fmt_rt(p['total'])}**" + (f" ({', '.join(parts)})" if parts else "")
        return "n/a"


def render_md(res, path, png_name):
    m = res.meta
    quick = m.get("mode") == "quick"
    S = res.systems
    L = [f"# Metadata operations: valorfs (LMDB, etcd ×1, etcd ×3) vs MooseFS — "
         f"{m.get('date', '?')[:10]}" + (" (QUICK smoke run — not for conclusions)" if quick else ""),
         "",
         "Generated by `bench/meta/run.sh` (all systems one after the other in one run on this "
         "machine) and `bench/meta/report.py render` from the JSON next to this file. Every "
         "figure is as measured in this one run; benchmarks never assert times.", ""]
    L += ["## Machine and run", "", "| | |", "|---|---|"]
    rows = [("date", "date"), ("CPU", "cpu"), ("CPUs", "cores"), ("hypervisor", "hypervisor"),
            ("memory", "memory"), ("kernel", "kernel"), ("OS", "os"),
            ("data directories on", "fs"), ("etcd", "etcd_version"),
            ("moosefs-master / -client", None), ("valorfs", "valorfs_binary"),
            ("extra valorfs up options", "valorfs_up_args"), ("repo HEAD", "git"),
            ("CPU pinning", "pinning"), ("operations per phase (N)", "nops"),
            ("worker counts", "threads"), ("readdir directory entries", "big_n"),
            ("readdir passes", "passes"), ("phase cap (s)", "max_seconds"),
            ("cap of making the readdir directory (s)", "big_seconds"),
            ("workers making it", "big_threads"),
            ("idle counter sample (s)", "idle_s"), ("total run time (s)", "duration_s")]
    for label, k in rows:
        if k is None:
            val = f"{m.get('pkg_moosefs-master', '?')} / {m.get('pkg_moosefs-client', '?')}"
        else:
            val = m.get(k, "?") or "(none)"
        L.append(f"| {label} | {val} |")
    for s in S:
        if f"load_{s}" in m:
            L.append(f"| load average at start / end of {LABEL.get(s, s)} | "
                     f"{m[f'load_{s}']} / {m.get(f'load_after_{s}', '?')} |")
        if f"concurrent_tests_{s}" in m:
            L.append(f"| another session's scripts/test.sh running at the start of "
                     f"{LABEL.get(s, s)} | {m[f'concurrent_tests_{s}']} |")
    L += ["", f"Command: `{m.get('command', '?')}`", ""]

    head = "| operation | workers | " + " | ".join(LABEL.get(s, s) for s in S) + " |"
    sep = "|---|---:|" + "---:|" * len(S)
    L += ["## Operations per second", "",
          "Rate = operations / wall time of the phase (all workers start at one barrier; "
          "a phase stops at its cap, marked \"capped\", and the rate is over the operations "
          "done). "
          "readdir: listings of the whole "
          f"{m.get('big_n', '?')}-entry directory per second (each worker lists it once per "
          "pass; median pass). Higher is better.", "", head, sep]
    for ph in PHASES:
        for t in res.threads:
            cells = []
            for s in S:
                v, extra = res.rate(s, ph, t)
                cells.append(fmt_n(v) + extra if v is not None else extra)
            L.append(f"| {ph} | {t} | " + " | ".join(cells) + " |")
    for t in res.threads:
        cells = []
        for s in S:
            r = res.run(s, "readdir", t)
            cells.append(f"{fmt_n(r['result']['entries_per_s'])} ({r['result']['entries_per_listing']})"
                         if res.ok(r) else "—")
        L.append(f"| readdir entries/s (entries per listing) | {t} | " + " | ".join(cells) + " |")
    L += ["", "## Mean latency per operation", "",
          "Mean of every operation's own time (readdir: one whole listing). With one worker "
          "ops/s ≈ 1 / mean latency.", "", head, sep]
    for ph in PHASES:
        for t in res.threads:
            cells = []
            for s in S:
                r = res.run(s, ph, t)
                cells.append(fmt_us(r["result"]["lat_us"]["mean"]) if res.ok(r) else "—")
            L.append(f"| {ph} | {t} | " + " | ".join(cells) + " |")
    L += ["", "<details><summary>p50 / p99 latency (create, stat, rename, unlink)</summary>", "",
          head, sep]
    for ph in PHASES[:4]:
        for t in res.threads:
            cells = []
            for s in S:
                r = res.run(s, ph, t)
                if res.ok(r):
                    lat = r["result"]["lat_us"]
                    cells.append(f"{fmt_us(lat.get('p50'))} / {fmt_us(lat.get('p99'))}")
                else:
                    cells.append("—")
            L.append(f"| {ph} | {t} | " + " | ".join(cells) + " |")
    L += ["", "</details>", ""]

    L += ["## Where the time goes: round trips per operation", "",
          "- **etcd**: KV requests per operation — the sum over all members of "
          "`grpc_server_handled_total` (etcd's Prometheus endpoint `/metrics` on each client "
          "URL) for grpc_method Range, Txn, Put, DeleteRange, read before and after the "
          "phase; in brackets per method (R Range, T Txn, P Put, D DeleteRange).",
          "- **LMDB**: write transactions per operation (`w`): the change of meta's "
          "`mdb_stat -e` \"Last transaction ID\". LMDB counts no read transactions: n/a.",
          "- **MooseFS**: requests to mfsmaster per operation — its per-mount operation "
          "counters (`mfscli -SMO -m 1`, current hour; 16 request types, release and "
          "flush are not among them).",
          "- Every figure has the system's idle traffic (measured for "
          f"{m.get('idle_s', '?')} s after setup, e.g. mgmtd heartbeats) subtracted. "
          "readdir: per listing.", "", head, sep]
    for ph in PHASES + ["mkbig"]:
        for t in res.threads if ph != "mkbig" else sorted({r["threads"] for r in res.doc["runs"]
                                                          if r["phase"] == "mkbig"}):
            L.append(f"| {ph} | {t} | " + " | ".join(res.rt_cell(s, ph, t) for s in S) + " |")
    etcd = [s for s in S if any((res.run(s, ph, 1) or {}).get("round_trips") and
                                "kv" in res.run(s, ph, 1)["round_trips"]["per_op"] for ph in PHASES)]
    if etcd and 1 in res.threads:
        L += ["", "Mean latency per KV round trip with one worker (mean latency of the "
              "operation ÷ its KV requests; it includes meta's and the client's own work, so "
              "it is an upper bound of one etcd request):", "",
              "| operation | " + " | ".join(LABEL.get(s, s) for s in etcd) + " |",
              "|---|" + "---:|" * len(etcd)]
        for ph in PHASES:
            cells = []
            for s in etcd:
                r = res.run(s, ph, 1)
                rt = r and r.get("round_trips")
                kv = rt and rt["per_op"].get("kv")
                cells.append(fmt_us(r["result"]["lat_us"]["mean"] / kv) if res.ok(r) and kv
                             else "—")
            L.append(f"| {ph} | " + " | ".join(cells) + " |")
    idle = []
    for s in S:
        r = res.run(s, "idle")
        rate = r and r.get("idle_rate_per_s")
        if rate:
            key = "kv" if "kv" in rate else ("write_txns" if "write_txns" in rate else "total")
            idle.append(f"{LABEL.get(s, s)} {rate[key]:.1f}/s")
    if idle:
        L += ["", "Idle rates subtracted: " + ", ".join(idle) + "."]
    L.append("")

    L += ["## Setup of each system", "", "| system | status | setup |", "|---|---|---|"]
    for s in S:
        st = res.sys[s]
        L.append(f"| {LABEL.get(s, s)} | {st['status']} | {st['setup'].replace('|', '/')} |")
    mk = [(s, res.run(s, "mkbig")) for s in S]
    mk = [(s, r) for s, r in mk if res.ok(r)]
    if mk:
        L += ["", "readdir directory made by `mkbig` (mknod with "
              f"{mk[0][1]['threads']} workers into one directory): "
              + ", ".join(f"{LABEL.get(s, s)} {r['result']['ops']} entries at "
                          f"{fmt_n(r['result']['ops_per_s'])}/s"
                          + (" (capped)" if r["result"].get("capped") else "") for s, r in mk)
              + "."]
    L += ["", "## Exact commands", "",
          "`$WORK` is the work directory, `$WORK/mnt` the mount point. `metaload` is "
          "`bench/meta/metaload.c` compiled with `cc -O2 -Wall -Wextra -Werror -pthread`. "
          "`--drop-dentries` writes 2 to `/proc/sys/vm/drop_caches` before the phase (and "
          "before every readdir pass): the client's dentries and inodes (and with them "
          "cached directory listings) go, so every stat is a LOOKUP; the servers' open "
          "files (LMDB map, etcd's bbolt) keep their page cache.", "", "```"]
    seen = set()
    for r in res.doc["runs"]:
        key = (r["phase"], r["threads"])
        if key in seen or r["phase"] == "idle":
            continue
        seen.add(key)
        L.append(r["command"])
    L += ["```", ""]
    failed = [r for r in res.doc["runs"] if r["rc"] not in ("0", "skipped")]
    errs = [r for r in res.doc["runs"] if res.ok(r) and r["result"].get("errors")]
    if failed or errs:
        L += ["## Errors", ""]
        for r in failed:
            tail = (r.get("stderr_tail") or "").strip().splitlines()
            L.append(f"- {LABEL.get(r['system'], r['system'])} {r['phase']} T={r['threads']}: "
                     f"rc={r['rc']}" + (f" — `{tail[-1].strip()}`" if tail else ""))
        for r in errs:
            L.append(f"- {LABEL.get(r['system'], r['system'])} {r['phase']} T={r['threads']}: "
                     f"{r['result']['errors']} failed operations, first: "
                     f"`{r['result'].get('first_error', '')}`")
        L.append("")
    if png_name:
        L += ["## Plot", "", f"![metadata benchmark]({png_name})", ""]
    L += ["## Setup logs", ""]
    for s in S:
        lg = res.sys[s].get("log")
        if lg:
            L += [f"<details><summary>{LABEL.get(s, s)}</summary>", "", "```"]
            L += [l.replace("```", "'''") for l in lg]
            L += ["```", "", "</details>", ""]
    L += ["## Caveats", "",
          "- One machine: every server (meta, mgmtd, storage, etcd members, MooseFS master) "
          "shares the same CPUs and disk and talks over loopback; the 3-member etcd's "
          "members fsync to the same disk. The figures compare software paths, not a "
          "networked cluster.",
          "- Durability differs: valorfs LMDB (kv-sync=commit) and etcd flush every commit "
          "(etcd's WAL fsync; etcd 3.4 has no switch to turn it off); `kv-sync=none` and "
          "MooseFS's master (changelog written, not flushed per operation) do not.",
          "- Small VM (2 vCPUs), unpinned: runs are noisy; differences under ~20 % are within "
          "run-to-run variation. With one worker the latency includes waking idle vCPUs.",
          "- Each system runs with its defaults (caching included: MooseFS's mfsmount keeps "
          "its own attribute and directory caches in user space, which dropping the "
          "kernel's dentries does not clear).", ""]
    with open(path, "w") as f:
        f.write("\n".join(L))


def render_png(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    S = [s for s in res.systems if res.sys[s]["status"] == "ok"] or res.systems
    colors = {"lmdb": "#e6550d", "lmdb-nosync": "#fdae6b", "etcd1": "#31a354",
              "etcd3": "#a1d99b", "moosefs": "#6baed6"}
    T = res.threads
    fig, axes = plt.subplots(len(T), len(PHASES), figsize=(3.2 * len(PHASES), 3.4 * len(T)),
                             squeeze=False)
    for i, t in enumerate(T):
        for j, ph in enumerate(PHASES):
            ax = axes[i][j]
            vals = [res.rate(s, ph, t)[0] for s in S]
            xs = list(range(len(S)))
            ax.bar(xs, [v or 0 for v in vals], color=[colors.get(s, "#999") for s in S])
            top = max([v for v in vals if v] or [1])
            ax.set_ylim(0, top * 1.25)
            for x, v in zip(xs, vals):
                ax.text(x, (v or 0) + top * 0.02, fmt_n(v), ha="center", va="bottom", fontsize=7)
            ax.set_xticks(xs)
            ax.set_xticklabels([LABEL.get(s, s).replace("valorfs ", "").replace(" kv-sync=none",
                                                                              "\nnosync")
                                for s in S], fontsize=7, rotation=30)
            unit = "listings/s" if ph == "readdir" else "ops/s"
            ax.set_title(f"{ph}, {t} worker{'s' if t > 1 else ''} ({unit})", fontsize=9)
            ax.tick_params(axis="y", labelsize=7)
            ax.grid(True, axis="y", alpha=0.3)
    m = res.meta
    fig.suptitle(f"Metadata operations per second — valorfs (LMDB / etcd) vs MooseFS, one machine, "
                 f"{m.get('date', '')[:10]}, {m.get('nproc', '')} CPUs (higher is better)",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=90)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
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
        return 0
    with open(args.json) as f:
        res = Res(json.load(f))
    stem = os.path.splitext(args.json)[0]
    png = args.png or stem + ".png"
    try:
        render_png(res, png)
        png_name = os.path.basename(png)
    except Exception as e:  # the tables matter more than the plot
        print(f"report.py: no plot: {e}", file=sys.stderr)
        png_name = None
    render_md(res, args.md or stem + ".md", png_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
