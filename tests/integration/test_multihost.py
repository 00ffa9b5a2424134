"""Failures across hosts (issue 6), on the network-namespace bed (netbed.py).

Every test gets a fresh bed: 3 storage hosts (2 targets each, chain table 1
with chains of 3 replicas, one replica per host), host m1 with one etcd
member, two mgmtd and two meta servers, and host c1 with the FUSE mount.
Leases are short (T = 4 s: a storage server stops serving by itself after
T/2 without mgmtd, mgmtd takes its targets out after T).

  test_smoke                      write/read through the mount, replicas identical
  test_storage_kills_under_load   kill -9 and restart each storage host in turn
                                  (each must resync), then the primary mgmtd,
                                  then a meta server, while fio (verified) and the
                                  metadata loop of tests/upgrade/load.py run
  test_replaced_disk_under_load   the same for one host whose targets are wiped
                                  before the restart (an empty target resyncs)
  test_partition_under_load       a storage host's traffic is dropped: it stops
                                  serving by itself within T/2, is taken out,
                                  and resyncs after the heal
  test_flipped_byte_is_repaired   one byte of one replica's chunk file flipped:
                                  reads return the right bytes, the mismatch is
                                  logged and the replica repaired

Every fault test ends with the same proof: zero failed calls in the load
generators, fio's verification passed (during the load and again over the
whole file afterwards), the metadata loop's files byte for byte, and
`valorfs verify-chains`: every chain back to 3 serving replicas with the
same chunks (version, length, CRC32C).

Environment: VALORFS_CLI, VALORFS_FUSE (as conftest.py), VALORFS_MGMTD,
VALORFS_META, VALORFS_STORAGE (netbed.py), VALORFS_SANITIZER_LOG_DIR.
Needs root, etcd and fio.
"""
import contextlib
import hashlib
import json
import os
import pickle
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import Scratch, log_errors, sanitizer_problems, sanitizer_reports
from netbed import Bed, BedError, pid_alive
from test_upgrade import LOAD, _fio_job_ok, describe, fio_args, stop_load

LEASE_MS = 4000
# a mgmtd that lost its primary: the standby takes over after the old
# primary lease (1.5 s) lapses and one more lease length
ELECTION_MS, PRIMARY_LEASE_MS = 500, 1500
# 4k synchronous writes through the mount are chain writes (~150/s on the
# 2-core machine): 6 MiB takes ~10 s to lay out
FIO_SIZE = "6m"
FIO_ROUND_S = 6


pytestmark = pytest.mark.skipif(shutil.which("etcd") is None or shutil.which("fio") is None,
                                reason="needs etcd and fio (scripts/install-deps.sh)")


# ---------------------------------------------------------------- bed fixture

class LimitExceeded(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds, what):
    """SIGALRM after seconds: the test fails (and its bed is torn down)
    instead of hanging the run."""
    def on_alarm(signum, frame):
        raise LimitExceeded(f"{what} took longer than {seconds}s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def bed(request, tmp_path):
    """A fresh bed on a private tmpfs, the test limited to its @limit; torn
    down whatever happens, its logs copied to tmp_path/logs first (and
    their tails printed: pytest shows them when the test failed)."""
    seconds = getattr(request.function, "limit_s", 120)
    san_before = sanitizer_reports()
    scratch = Scratch(size="6g")
    b = Bed(Path(scratch.root) / "bed", storage_hosts=3, targets=2, replicas=3, mgmtds=2,
            metas=2, lease_ms=LEASE_MS, election_ms=ELECTION_MS,
            primary_lease_ms=PRIMARY_LEASE_MS)
    problems = []
    try:
        with time_limit(seconds, request.node.name):
            b.up()
            yield b
    finally:
        try:
            if (b.data / "log").exists():
                print(f"--- bed logs (copied to {tmp_path / 'logs'}) ---\n{b.logs_tail(40)}")
                shutil.copytree(b.data / "log", tmp_path / "logs", dirs_exist_ok=True)
            problems += b.teardown()
        finally:
            scratch.close()
    leftovers = [ns for ns in os.listdir("/run/netns") if ns.startswith(b.prefix + "-")] \
        if os.path.isdir("/run/netns") else []
    problems += [f"namespace {ns} left behind" for ns in leftovers]
    problems += [f"{key} (pid {s['pid']}) still runs after teardown"
                 for key, s in b.services.items() if pid_alive(s["pid"]) and b._ours(s)]
    problems += sanitizer_problems(san_before)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def limit(seconds):
    """The test's time limit (the bed fixture's alarm)."""
    def mark(fn):
        fn.limit_s = seconds
        return fn
    return mark


# ---------------------------------------------------------------- helpers

def wait_all_serving(bed, timeout=60):
    return bed.wait_for("every chain with 3 serving replicas", bed.all_serving, timeout)


def assert_chains_identical(bed):
    """verify-chains: every chain's replicas serving and identical."""
    wait_all_serving(bed)
    rc, out, raw = bed.verify_chains()
    assert rc == 0 and out and out["ok"], f"valorfs verify-chains exited {rc}:\n{raw}"
    for c in out["chains"]:
        assert len(c["targets"]) == 3 and all(t["state"] == "serving" for t in c["targets"]), c
        assert len({t["chunks"] for t in c["targets"]}) == 1 and c["ndiffering"] == 0, c
    return out


def fadvise_dontneed(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_fresh(path):
    """path's bytes through the mount, not from the page cache."""
    fadvise_dontneed(path)
    return Path(path).read_bytes()


def log_time(line):
    """The ts= of a log line, as a Unix time."""
    m = re.search(r"ts=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z", line)
    return datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=timezone.utc).timestamp() if m else None


def storage_targets(bed, host):
    return bed.targets_of(host)


def other_storage(bed, host):
    return [t for h in bed.storage_hosts() if h != host for t in bed.targets_of(h)]


# ---------------------------------------------------------------- load

class Load:
    """fio (rounds of random read/write, every block verified) and the
    metadata loop, both running in host c1 on the mount until stop()."""

    def __init__(self, bed, tmp_path):
        self.bed, self.tmp = bed, tmp_path
        self.work = bed.mnt / "load"
        self.work.mkdir()
        self.fio_file = self.work / "fio.dat"
        self.meta_out = tmp_path / "meta.json"
        self.ref = {}             # path -> bytes written outside the load
        self.events = []          # (time, what), for describe()
        self.rounds = []          # (rc, output, "fill"|"mix") of each fio run
        self._stop = threading.Event()
        self._fio_proc = None
        self.meta = None
        self.thread = None

    def _fio_job(self, phase):
        """phase "fill": write every block once (each gets a verify header,
        so any block can be checked later) and read it all back; "mix":
        random read/write for FIO_ROUND_S, written blocks re-read and
        verified in batches of 64."""
        job = (f"[global]\nfilename={self.fio_file}\nsize={FIO_SIZE}\nbs=4k\nioengine=psync\n"
               "verify=crc32c\nverify_fatal=1\nexitall_on_error=1\nnumjobs=1\n"
               "verify_state_save=0\n")  # (no state files left in the cwd)
        if phase == "fill":
            return job + "[fill]\nrw=write\ndo_verify=1\n"
        return job + (f"[mix]\nrw=randrw\ndo_verify=1\nverify_backlog=64\ntime_based\n"
                      f"runtime={FIO_ROUND_S}\n")

    def _fio(self, n, phase):
        job = self.tmp / f"fio{n}.job"
        job.write_text(self._fio_job(phase))
        out = self.tmp / f"fio{n}.out"
        self._fio_proc = self.bed.popen_in("c1", ["fio", "--output", out, job],
                                           self.tmp / f"fio{n}.log")
        rc = self._fio_proc.wait()
        text = out.read_text(errors="replace") if out.exists() else ""
        text += (self.tmp / f"fio{n}.log").read_text(errors="replace")
        self.rounds.append((rc, text, phase))
        return rc

    def _fio_loop(self):
        n = 1
        while not self._stop.is_set():
            n += 1
            if self._fio(n, "mix") != 0:
                return

    def start(self):
        # the file is laid out first, so the events hit random read/write
        t0 = time.monotonic()
        if self._fio(1, "fill") != 0:
            raise AssertionError(f"fio could not lay out its file:\n{self.rounds[-1][1][-3000:]}")
        self.thread = threading.Thread(target=self._fio_loop, daemon=True)
        self.thread.start()
        self.meta = self.bed.popen_in("c1", [sys.executable, LOAD, "meta", self.work / "meta",
                                             self.meta_out], str(self.meta_out) + ".log")
        self.event(f"load running (fio laid out {FIO_SIZE} in {time.monotonic() - t0:.1f}s)")
        time.sleep(1.0)

    def event(self, what):
        self.events.append((time.time(), what))
        print(f"{time.strftime('%H:%M:%S')} {what}", flush=True)

    def check_running(self, after):
        problems = []
        if self.meta.poll() is not None:
            problems.append(f"the metadata loop exited ({self.meta.returncode}) after {after}")
        if self.rounds and self.rounds[-1][0] != 0:
            problems.append(f"fio failed after {after}:\n{self.rounds[-1][1][-3000:]}")
        assert not problems, "\n".join(problems)

    def stop(self, timeout=90):
        """Stop both; the metadata loop's result. Fails on any failed call."""
        self._stop.set()
        self.event("stopping the load")
        meta_res = stop_load(self.meta, self.meta_out, self.events, timeout=60)
        self.thread.join(timeout)
        self.event(f"load stopped after {len(self.rounds)} fio rounds")
        assert not self.thread.is_alive(), \
            f"fio did not finish within {timeout}s after the events (a hung request?)"
        problems = []
        for i, (rc, text, phase) in enumerate(self.rounds, 1):
            if rc != 0:
                errs = [ln for ln in text.splitlines() if "err=" in ln or "verify" in ln.lower()
                        or "error" in ln.lower()]
                problems.append(f"fio round {i} ({phase}) exited {rc}:\n" + "\n".join(errs[:20]))
            elif not _fio_job_ok(text, phase):
                problems.append(f"fio round {i}: job {phase} did not report err= 0")
        if meta_res["failures"]:
            problems.append(f"metadata loop: {len(meta_res['failures'])} failed calls of "
                            f"{meta_res['calls']}:\n{describe(meta_res['failures'], self.events)}")
        assert not problems, "\n".join(problems) + f"\nevents: {self.events}"
        assert len(self.rounds) >= 2 and meta_res["verified"] > 0, (self.rounds, meta_res)
        return meta_res

    def verify_after(self, meta_res):
        """Every block fio wrote, and every file the metadata loop kept."""
        fadvise_dontneed(self.fio_file)
        p = self.bed.run_in("c1", "fio", *fio_args(self.fio_file, FIO_SIZE, name="final",
                                                   rw="read", verify_state_save=0),
                            timeout=120)
        assert p.returncode == 0, f"final fio verify pass failed:\n{(p.stdout + p.stderr)[-3000:]}"
        self.event("final fio verify pass done")
        survivors = pickle.loads(Path(str(self.meta_out) + ".pkl").read_bytes())
        assert survivors and len(survivors) == meta_res["files"]
        assert sorted(os.listdir(self.work / "meta")) == sorted(survivors)
        for name, want in survivors.items():
            got = read_fresh(self.work / "meta" / name)
            assert got == want, f"meta/{name}: {len(got)} bytes differ from the {len(want)} written"

    def close(self):
        """Whatever happened: nothing of the load keeps running."""
        self._stop.set()
        for p in (self.meta, self._fio_proc):  # (the fio loop ends with its round)
            if p is not None and p.poll() is None:
                p.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(10)


@contextlib.contextmanager
def under_load(bed, tmp_path):
    load = Load(bed, tmp_path)
    try:
        load.start()
        yield load
    finally:
        load.close()


def reference_files(bed, rng, n=4):
    """Files written (and fsynced) before the faults: path -> bytes."""
    ref = {}
    (bed.mnt / "ref").mkdir(exist_ok=True)
    for i in range(n):
        data = rng.randbytes(rng.choice([1, 4096, 700_000, 2_500_000]))
        path = bed.mnt / "ref" / f"r{i}"
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        ref[path] = data
    return ref


def check_reference(ref):
    for path, want in ref.items():
        got = read_fresh(path)
        assert got == want, f"{path}: {len(got)} bytes read differ from the {len(want)} written"


def write_while_out(bed, load, host):
    """A file written (and fsynced) while host's targets are out of their
    chains: the returning replicas must get it by resync. Kept in
    load.ref for check_reference()."""
    data = random.Random(host).randbytes(2_500_000)  # chunks on both chains
    path = bed.mnt / "ref" / f"while-{host}-out-{len(load.ref)}"
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    load.ref[path] = data
    time.sleep(1.0)  # and the load's writes


def kill_and_resync(bed, load, host, wipe=False):
    """kill -9 host's storage server, wait until mgmtd took its targets out,
    restart it (after wiping its targets: a replaced disk), wait until they
    serve again. Returns the seconds (offline, serving again)."""
    mine = bed.targets_of(host)
    load.event(f"kill -9 {host}/storage")
    t0 = time.monotonic()
    assert bed.kill(host, "storage", signal.SIGKILL)
    bed.wait_targets(mine, "offline", timeout=LEASE_MS / 1000 * 3 + 10)
    t_off = time.monotonic() - t0
    load.check_running(f"{host} went offline")
    write_while_out(bed, load, host)
    if wipe:
        for t in mine:
            shutil.rmtree(bed.target_dir(host, t))
        load.event(f"wiped {host}'s targets")
    load.event(f"restart {host}/storage")
    bed.start(host, "storage")
    bed.wait_targets(mine, "serving", timeout=90)
    wait_all_serving(bed, timeout=30)
    t_back = time.monotonic() - t0
    load.event(f"{host} serving again")
    load.check_running(f"{host} resynced")
    return round(t_off, 1), round(t_back, 1)


# ---------------------------------------------------------------- 1: smoke

@limit(90)
def test_smoke(bed):
    # only the namespaces' addresses: the root namespace has none of them
    root_addrs = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    assert bed.subnet + "." not in root_addrs
    for host, h in bed.hosts.items():
        out = bed.run_in(host, "ip", "-o", "-4", "addr", check=True).stdout
        addrs = sorted(re.findall(r"inet (\S+)", out))
        assert addrs == sorted(["127.0.0.1/8", f"{h['ip']}/24"]), (host, addrs)
    r = bed.routing()
    for n in r["nodes"]:
        assert n["addr"].startswith(bed.subnet + "."), n
    assert [t["replicas"] for t in r["tables"]] == [3] and len(r["chains"]) == 2, r

    rng = random.Random(6)
    files = {}
    (bed.mnt / "d" / "e").mkdir(parents=True)
    for i, size in enumerate([0, 1, 4095, 4096, 65537, 1 << 20, (1 << 20) + 17, 5_000_000]):
        data = rng.randbytes(size)
        path = bed.mnt / ("d/e" if i % 2 else "d") / f"f{i}"
        path.write_bytes(data)
        files[path] = data
    # in place, across a chunk boundary
    p = bed.mnt / "d" / "e" / "f7"
    with open(p, "r+b") as f:
        f.seek((1 << 20) - 100)
        f.write(b"x" * 300)
        os.fsync(f.fileno())
    files[p] = files[p][:(1 << 20) - 100] + b"x" * 300 + files[p][(1 << 20) + 200:]
    for path, want in files.items():
        assert read_fresh(path) == want, path
    assert sorted(os.listdir(bed.mnt / "d")) == ["e", "f0", "f2", "f4", "f6"]

    out = assert_chains_identical(bed)
    assert sum(c["chunks"] for c in out["chains"]) >= 10, out  # the files are there
    errors = [ln for h, s in (k.split("/") for k in bed.services)
              for ln in log_errors(bed.log_text(h, s))]
    assert not errors, "\n".join(errors)

    # teardown leaves nothing: no namespace, process or mount
    prefix, pids = bed.prefix, [s["pid"] for s in bed.services.values()]
    assert not bed.teardown()
    assert not [ns for ns in os.listdir("/run/netns") if ns.startswith(prefix + "-")]
    assert not [pid for pid in pids if pid_alive(pid)]
    assert not bed.data.exists()


# ---------------------------------------------------------------- 2: kills

@limit(330)
def test_storage_kills_under_load(bed, tmp_path):
    rng = random.Random(62)
    ref = reference_files(bed, rng)
    timings = {}
    with under_load(bed, tmp_path) as load:
        for host in bed.storage_hosts():
            timings[host] = kill_and_resync(bed, load, host)

        # the primary mgmtd: the standby takes over through the KV lease
        primary = bed.primary_mgmtd()
        assert primary in ("mgmtd1", "mgmtd2"), primary
        standby = "mgmtd2" if primary == "mgmtd1" else "mgmtd1"
        load.event(f"kill -9 {primary} (primary)")
        t0 = time.monotonic()
        assert bed.kill("m1", primary, signal.SIGKILL)
        bed.wait_for(f"{standby} to act as primary",
                     lambda: bed.primary_mgmtd() == standby, timeout=30)
        timings["mgmtd failover"] = round(time.monotonic() - t0, 1)
        load.event(f"{standby} is primary")
        bed.start("m1", primary)  # back as a standby: the primary keeps its lease
        time.sleep(2 * PRIMARY_LEASE_MS / 1000)
        assert bed.primary_mgmtd() == standby, "the restarted mgmtd took over from a live primary"
        load.check_running("mgmtd failover")
        wait_all_serving(bed, timeout=30)

        # one of the two meta servers: clients move to the other
        load.event("kill -9 meta1")
        assert bed.kill("m1", "meta1", signal.SIGKILL)
        time.sleep(LEASE_MS / 1000 + 2)  # load keeps going on meta2 alone
        load.check_running("meta1 died")
        meta_res = load.stop()
    print(f"timings (s): {timings}; metadata loop: {meta_res['iterations']} iterations, "
          f"{meta_res['calls']} calls; fio rounds: {len(load.rounds)}")
    assert not bed.alive("m1", "meta1") and bed.alive("m1", "meta2")
    load.verify_after(meta_res)
    check_reference({**ref, **load.ref})
    assert_chains_identical(bed)


@limit(150)
def test_replaced_disk_under_load(bed, tmp_path):
    rng = random.Random(63)
    ref = reference_files(bed, rng)
    with under_load(bed, tmp_path) as load:
        t = kill_and_resync(bed, load, "s2", wipe=True)
        meta_res = load.stop()
    print(f"s2 offline after {t[0]} s, serving again after {t[1]} s")
    load.verify_after(meta_res)
    check_reference({**ref, **load.ref})
    out = assert_chains_identical(bed)
    # the empty targets got every chunk back
    for c in out["chains"]:
        assert c["chunks"] > 0, c


# ---------------------------------------------------------------- 3: partition

STG_READ, VF_E_NOT_SERVING = 0x0302, 1004

PROBE = r"""
import socket, struct, sys
addr, port, target, chain, version = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:6])
payload = struct.pack("<IIQQIII", target, chain, version, 1, 0, 0, 4096)
with socket.create_connection((addr, port), timeout=5) as s:
    s.settimeout(10)
    s.sendall(struct.pack("<IBBHQiIII", 0x43505256, 1, 1, 0x0302, 7, 0, 8000, len(payload), 0)
              + payload)
    hdr = b""
    while len(hdr) < 32:
        part = s.recv(32 - len(hdr))
        if not part:
            raise SystemExit("connection closed")
        hdr += part
print(struct.unpack("<IBBHQiIII", hdr)[5])
"""


def probe_status(bed, host, routing):
    """The status a read addressed to one of host's own targets gets, asked
    from inside host (which a partition does not cut off from itself)."""
    target = bed.targets_of(host)[0]
    tgt = next(t for t in routing["targets"] if t["id"] == target)
    chain = next(c for c in routing["chains"] if c["id"] == tgt["chain"])
    p = bed.run_in(host, sys.executable, "-c", PROBE, bed.hosts[host]["ip"], 8300, target,
                   chain["id"], chain["version"], timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    return int(p.stdout.strip())


@limit(150)
def test_partition_under_load(bed, tmp_path):
    rng = random.Random(64)
    ref = reference_files(bed, rng)
    host = "s1"
    mine = bed.targets_of(host)
    with under_load(bed, tmp_path) as load:
        routing = bed.routing()
        assert probe_status(bed, host, routing) == 0  # serving before
        lost_before = bed.log_text(host, "storage").count("lease lost")
        load.event(f"partition {host}")
        t_cut = time.time()
        bed.partition(host)
        # stops serving by itself: T/2 after its last renewal, which came
        # at most one heartbeat (T/6) before the cut; 1 s margin
        limit_s = LEASE_MS / 2000 + 1.0
        log = bed.wait_for(f"{host} to log that its lease is lost",
                           lambda: (t := bed.log_text(host, "storage")).count("lease lost")
                           > lost_before and t, timeout=limit_s + 10)
        line = [ln for ln in log.splitlines() if "lease lost" in ln][-1]
        t_lost = log_time(line)
        assert t_lost is not None and t_lost - t_cut <= limit_s, \
            f"{host} stopped serving {t_lost - t_cut:.2f}s after the cut (limit {limit_s}s): {line}"
        assert probe_status(bed, host, routing) == VF_E_NOT_SERVING
        # mgmtd takes it out after T
        bed.wait_targets(mine, "offline", timeout=LEASE_MS / 1000 * 3 + 10)
        load.check_running(f"{host} partitioned")
        write_while_out(bed, load, host)
        load.event(f"heal {host}")
        bed.heal(host)
        bed.wait_targets(mine, "serving", timeout=90)
        wait_all_serving(bed, timeout=30)
        load.event(f"{host} serving again")
        time.sleep(1.0)
        load.check_running(f"{host} resynced")
        meta_res = load.stop()
    print(f"{host} stopped serving {t_lost - t_cut:.2f}s after the cut")
    load.verify_after(meta_res)
    check_reference({**ref, **load.ref})
    assert_chains_identical(bed)


# ---------------------------------------------------------------- 4: flipped byte

@limit(90)
def test_flipped_byte_is_repaired(bed):
    rng = random.Random(65)
    data = rng.randbytes(100_000)  # one chunk, read whole by one request
    path = bed.mnt / "victim"
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    ino = os.stat(path).st_ino
    rel = Path("data") / f"{ino % 256:02x}" / f"{ino:x}.0"
    replicas = {(h, t): bed.target_dir(h, t) / rel for h in bed.storage_hosts()
                for t in bed.targets_of(h) if (bed.target_dir(h, t) / rel).exists()}
    assert len(replicas) == 3, f"chunk 0 of ino {ino:x} on {sorted(replicas)}, want 3 replicas"
    for f in replicas.values():
        assert f.read_bytes()[:len(data)] == data, f

    (host, target), bad = sorted(replicas.items())[1]
    with open(bad, "r+b") as f:
        f.seek(12345)
        byte = f.read(1)
        f.seek(12345)
        f.write(bytes([byte[0] ^ 0x5A]))
        f.flush()
        os.fsync(f.fileno())
    mismatches_before = bed.log_text(host, "storage").count("checksum mismatch")

    # reads rotate over the replicas: several reads reach the bad one, and
    # every one returns the right bytes
    for i in range(3 * len(replicas)):
        assert read_fresh(path) == data, f"read {i} returned wrong bytes"
    bed.wait_for(f"{host} to report the CRC32C mismatch of target {target}",
                 lambda: bed.log_text(host, "storage").count("checksum mismatch")
                 > mismatches_before, timeout=10)
    bed.wait_for(f"target {target}'s copy repaired on disk",
                 lambda: bad.exists() and bad.read_bytes()[:len(data)] == data, timeout=30)
    assert_chains_identical(bed)
    for f in replicas.values():
        assert hashlib.sha256(f.read_bytes()[:len(data)]).digest() == \
            hashlib.sha256(data).digest(), f
    assert read_fresh(path) == data
