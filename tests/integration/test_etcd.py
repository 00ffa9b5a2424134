"""valorfs metadata on etcd, end to end (issue 5): `valorfs up --kv=etcd`
starts a 3-member etcd on this machine, 2 meta servers and 3 mgmtd sharing
it, storage servers and a mount. The tests kill etcd members under a
metadata load loop, race creates of one name through two meta servers, kill
the primary mgmtd, and start against an etcd that is not there.

The POSIX battery on a 3-member etcd runs from scripts/test.sh
(VALORFS_TEST_BACKEND=cluster VALORFS_CLUSTER_UP_ARGS="--kv=etcd
--etcd-members=3" on test_posix.py).

Skipped only when etcd/etcdctl are not installed.
"""
import errno
import json
import multiprocessing
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import BINARY, CLI, Cluster, free_base_port, is_mounted, umount
from etcd_helpers import (LoadLoop, closed_port, daemons, describe, etcd_installed,
                          etcd_members, failures, leader, mgmtd_acting,
                          processes_mentioning, wait_rejoined)

pytestmark = [pytest.mark.skipif(not etcd_installed(), reason="etcd/etcdctl not installed"),
              pytest.mark.usefixtures("no_sanitizer_reports")]

# etcd's default op_timeout_ms (src/kv/kv.h): meta answers EIO after it
KV_OP_TIMEOUT_S = 5.0
# no call may take longer than this, outage or not (op timeout + meta/client slack)
CALL_BOUND_S = 20.0
# mgmtd election for the failover test: short, so a failover takes seconds
ELECTION_MS, PRIMARY_LEASE_MS = 500, 2000


# ------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def live():
    c = Cluster(extra=("--kv=etcd", "--etcd-members=3", "--metas=2", "--mgmtds=3"))
    try:
        yield c
    finally:
        c.close()



def status(c, mgmtd=None):
    out = subprocess.run([CLI, "status", "--json", f"--mgmtd={mgmtd or c.mgmtd}"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"valorfs status failed: {out.stderr}"
    return json.loads(out.stdout)


def healthy(c):
    """Every daemon of the cluster runs and the mount takes a write."""
    dead = c.dead_daemons()
    assert not dead, f"cluster daemons died earlier: {dead}\n{c.logs_tail()}"
    p = c.mnt / f"health-{time.monotonic_ns()}"
    p.write_bytes(b"ok")
    assert p.read_bytes() == b"ok"
    p.unlink()


def restart_dead(members):
    """Bring back members a failed test left dead, so later tests start
    from a whole cluster."""
    for m in members:
        if not m.alive():
            m.start()


class PinnedMount:
    """A valorfs-fuse mount of the cluster that talks to one meta server."""

    def __init__(self, c, mnt, meta_addr):
        self.mnt = Path(mnt)
        self.mnt.mkdir(exist_ok=True)
        self.log = c.data / "log" / f"client-{self.mnt.name}.log"
        out = subprocess.run([BINARY, f"--backend=cluster:{c.mgmtd}", f"--meta-addrs={meta_addr}",
                              f"--log-file={self.log}", str(self.mnt)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"{out.stderr}\n{self.log.read_text(errors='replace')}"
        assert is_mounted(self.mnt)

    def pids(self):
        return [pid for pid, argv in processes_mentioning(str(self.mnt))
                if any(a.startswith("--meta-addrs=") for a in argv)]

    def close(self):
        deadline = time.monotonic() + 20
        while is_mounted(self.mnt) and time.monotonic() < deadline:
            if subprocess.run(["umount", str(self.mnt)], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        umount(self.mnt)


def peer_ports(pids):
    """Remote ports of the established TCP connections of pids."""
    out = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True,
                         text=True, timeout=10).stdout
    ports = set()
    for line in out.splitlines():
        if any(f"pid={p}," in line for p in pids):
            fields = line.split()
            ports.add(int(fields[3].rsplit(":", 1)[1]))
    return ports


# ------------------------------------------------------------ etcd unreachable at start

def _no_leftovers(*needles):
    left = [p for n in needles for p in processes_mentioning(n)]
    for pid, _ in left:
        os.kill(pid, signal.SIGKILL)
    return left


def test_up_with_unreachable_etcd_fails_fast(tmp_path):
    port = closed_port()
    data = tmp_path / "data"
    uri = f"etcd://127.0.0.1:{port}"
    t0 = time.monotonic()
    try:
        out = subprocess.run([CLI, "up", f"--data={data}", "--no-mount",
                              f"--base-port={free_base_port()}", f"--kv={uri}"],
                             capture_output=True, text=True, timeout=60)
        took = time.monotonic() - t0
        assert out.returncode != 0, f"valorfs up succeeded with no etcd at {uri}:\n{out.stdout}"
        assert took < 15, f"valorfs up took {took:.1f}s to give up on {uri}"
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        named = [line for line in lines if "etcd" in line.lower()]
        assert named, f"no error line names etcd:\n{out.stderr}"
    finally:
        left = _no_leftovers(str(data), f"127.0.0.1:{port}")
        subprocess.run([CLI, "down", f"--data={data}", "--force"], capture_output=True,
                       timeout=60)
    assert not left, f"valorfs up left processes behind: {left}"


@pytest.mark.parametrize("svc", ["meta", "mgmtd"])
def test_daemon_with_unreachable_etcd_fails_fast(svc, tmp_path):
    port = closed_port()
    uri = f"etcd://127.0.0.1:{port}"
    exe = Path(CLI).resolve().parent.parent / svc / f"valorfs-{svc}"
    assert exe.exists(), f"{exe} not built"
    args = [str(exe), f"--listen=127.0.0.1:{closed_port()}", f"--kv={uri}"]
    if svc == "meta":
        args += ["--node_id=50", f"--mgmtd=127.0.0.1:{closed_port()}"]
    t0 = time.monotonic()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        pytest.fail(f"valorfs-{svc} still running 20s after start with no etcd at {uri}:\n"
                    f"{stderr[-2000:]}")
    took = time.monotonic() - t0
    assert proc.returncode != 0, f"valorfs-{svc} exited 0 with no etcd at {uri}"
    assert took < 15, f"valorfs-{svc} took {took:.1f}s to give up on {uri}"
    lines = [line for line in (stdout + stderr).splitlines() if line.strip()]
    errors = [line for line in lines if "etcd" in line.lower() and
              ("level=error" in line or not line.startswith("ts="))]
    assert errors, f"no error line names etcd:\n{stderr}"
    assert str(port) in errors[-1], f"the error line does not name the endpoint: {errors[-1]}"


# ------------------------------------------------------------ two meta servers

def _racer(idx, root, names, barrier, q):
    res = {}
    for n in names:
        barrier.wait(timeout=60)
        try:
            fd = os.open(os.path.join(root, n), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            try:
                os.write(fd, str(idx).encode())
            finally:
                os.close(fd)
            res[n] = 0
        except OSError as e:
            res[n] = e.errno
    q.put((idx, res))


def test_two_meta_servers_create_same_name_exactly_one_wins(live, tmp_path):
    healthy(live)
    metas = sorted(n["addr"] for n in status(live)["nodes"] if n["type"] == "meta" and n["alive"])
    assert len(metas) == 2, f"expected 2 live meta servers, status shows {metas}"
    mounts = []
    try:
        for i, addr in enumerate(metas):
            mounts.append(PinnedMount(live, tmp_path / f"pin{i}", addr))
        (mounts[0].mnt / "race").mkdir()
        deadline = time.monotonic() + 5
        while not (mounts[1].mnt / "race").is_dir() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (mounts[1].mnt / "race").is_dir(), "a directory made through meta 1 is not " \
                                                  "seen through meta 2"
        # each mount really talks to its own meta server and not the other
        for i, m in enumerate(mounts):
            own, other = int(metas[i].rsplit(":", 1)[1]), int(metas[1 - i].rsplit(":", 1)[1])
            ports = peer_ports(m.pids())
            assert own in ports and other not in ports, \
                f"mount {i} (pids {m.pids()}) connects to ports {sorted(ports)}; " \
                f"pinned to {metas[i]}, the other meta is {metas[1 - i]}"

        names = [f"n{i}" for i in range(200)]
        ctx = multiprocessing.get_context("fork")
        barrier, q = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_racer, args=(i, str(m.mnt / "race"), names, barrier, q))
                 for i, m in enumerate(mounts)]
        for p in procs:
            p.start()
        try:
            got = dict(q.get(timeout=180) for _ in procs)
        finally:
            for p in procs:
                p.join(10)
                if p.is_alive():
                    p.kill()
                    p.join()
        bad = []
        for n in names:
            r = (got[0][n], got[1][n])
            if sorted(r) != [0, errno.EEXIST]:
                bad.append(f"{n}: {[errno.errorcode.get(e, e) if e else 'created' for e in r]}")
        assert not bad, f"{len(bad)} of {len(names)} names not created exactly once " \
                        f"(the other EEXIST):\n" + "\n".join(bad[:20])
        time.sleep(1.2)  # past the kernel's entry/attr cache
        for m in mounts:
            listed = os.listdir(m.mnt / "race")
            assert sorted(listed) == sorted(names), \
                f"{m.mnt}: listing differs: extra {sorted(set(listed) - set(names))[:10]}, " \
                f"missing {sorted(set(names) - set(listed))[:10]}, {len(listed)} entries"
        for n in names:
            winner = 0 if got[0][n] == 0 else 1
            for m in mounts:
                body = (m.mnt / "race" / n).read_bytes()
                assert body == str(winner).encode(), \
                    f"{n}: created through meta {winner}, reads {body!r} through {m.mnt}"
    finally:
        for m in mounts:
            m.close()


# ------------------------------------------------------------ one etcd member down

def test_kill_one_etcd_member_under_load_no_failed_operation(live, tmp_path):
    healthy(live)
    members = etcd_members(live.data)
    assert len(members) == 3, f"expected 3 etcd members, found {[m.name for m in members]}"
    loop = LoadLoop(live.mnt / "load-one", tmp_path)
    windows = []
    try:
        loop.wait_progress(30)
        for role in ("follower", "leader"):
            lead = leader(members)
            victim = lead if role == "leader" else next(m for m in members if m is not lead)
            victim.kill()
            t_kill = time.time()
            if role == "leader":
                new = leader([m for m in members if m is not victim])
                assert new is not victim
            loop.wait_progress(60, timeout=60)  # calls go on while it is down
            time.sleep(1.0)
            victim.start()
            windows.append((role, t_kill, time.time()))
            wait_rejoined(victim, members)
            loop.wait_progress(30)
    finally:
        results, pending = loop.stop()
        restart_dead(members)
    assert pending is None, f"a call never returned: {pending}"
    fails = failures(results)
    assert not fails, f"{len(fails)} of {len(results)} calls failed with one etcd member down:\n" \
                      f"{describe(fails)}"
    for role, t0, t1 in windows:
        during = [r for r in results if t0 <= r["t"] < t1]
        assert len(during) >= 60, f"only {len(during)} calls ran while the {role} was down"
    slow = [r for r in results if r["dt"] > CALL_BOUND_S]
    assert not slow, f"calls took longer than {CALL_BOUND_S}s:\n{describe(slow)}"


# ------------------------------------------------------------ two etcd members down

def _round_state(results):
    """{round: {op: errno}} of a load loop's calls (the first call of each
    op; stat appears twice in a round, only create/rename/unlink matter)."""
    rounds = {}
    for r in results:
        m = re.fullmatch(r"[fg](\d+)", r["name"])
        if m:
            rounds.setdefault(int(m.group(1)), {}).setdefault(r["op"], r["errno"])
    return rounds


def _check_not_partial(d, results):
    """After recovery: every listed name stats, no round left both names,
    and each name is where the outcomes of the calls put it."""
    problems = []
    listed = os.listdir(d)
    for n in listed:
        if not re.fullmatch(r"[fg]\d+", n):
            problems.append(f"unexpected name {n!r}")
        try:
            os.lstat(d / n)
        except OSError as e:
            problems.append(f"{n} is listed but stat fails: {errno.errorcode.get(e.errno)}")
    names = set(listed)
    for i, ops in sorted(_round_state(results).items()):
        f, g = f"f{i}" in names, f"g{i}" in names
        c, r, u = ops.get("create"), ops.get("rename"), ops.get("unlink")
        where = f"round {i} (create {c}, rename {r}, unlink {u}; f{i} {'exists' if f else 'absent'}, " \
                f"g{i} {'exists' if g else 'absent'})"
        # a round stops at its first failed call: rename ran only after a
        # successful create, unlink only after a successful rename
        if f and g:
            problems.append(f"{where}: both names exist")
        elif g and r is None:
            problems.append(f"{where}: g{i} exists but was never renamed to")
        elif u == 0 and (f or g):
            problems.append(f"{where}: unlinked, but a name is left")
        elif r == 0 and f:
            problems.append(f"{where}: renamed, yet f{i} is still there")
        elif r == 0 and u is None and not g:
            problems.append(f"{where}: renamed to g{i}, which is gone")
        elif r not in (None, 0) and not (f or g):
            problems.append(f"{where}: the rename failed and left neither name")
        elif c == 0 and r is None and not f:
            problems.append(f"{where}: created (and not renamed), yet f{i} is gone")
        if c == 0 and (f or g):
            body = (d / (f"f{i}" if f else f"g{i}")).read_bytes()
            if body != f"round {i}\n".encode():
                problems.append(f"{where}: content {body!r}")
    return problems


def test_kill_two_etcd_members_fails_with_eio_then_resumes(live, tmp_path):
    healthy(live)
    members = etcd_members(live.data)
    assert len(members) == 3
    d = live.mnt / "load-two"
    loop = LoadLoop(d, tmp_path, keep=True)
    t_down = t_up = t_ok = None
    try:
        loop.wait_progress(30)
        lead = leader(members)
        victims = [lead, next(m for m in members if m is not lead)]
        for v in victims:
            v.kill()
        t_down = time.time()
        # calls fail, each within the bound; wait for a few failures
        deadline = time.monotonic() + 3 * CALL_BOUND_S
        while len(failures(loop.results())) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        for v in victims:
            v.start()
        t_up = time.time()
        for v in victims:
            wait_rejoined(v, members, timeout=60)
        t_ok = time.time()
        # operations resume: 40 calls that started after the members rejoined
        deadline = time.monotonic() + 60
        while sum(r["t"] >= t_ok for r in loop.results()) < 40 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        results, pending = loop.stop(timeout=2 * CALL_BOUND_S)
        restart_dead(members)
    assert pending is None, f"a call never returned (hang): {pending}"
    slow = [r for r in results if r["dt"] > CALL_BOUND_S]
    assert not slow, f"calls took longer than {CALL_BOUND_S}s:\n{describe(slow)}"
    fails = failures(results)
    assert fails, "no call failed while two of three etcd members were down " \
                  f"({sum(t_down <= r['t'] < t_up for r in results)} calls in that time)"
    not_eio = [r for r in fails if r["errno"] != errno.EIO]
    assert not not_eio, f"failures other than EIO:\n{describe(not_eio)}"
    early = [r for r in fails if r["t"] + r["dt"] < t_down]
    assert not early, f"calls failed before any member was killed:\n{describe(early)}"
    after = [r for r in results if r["t"] >= t_ok]
    assert len(after) >= 40, f"only {len(after)} calls ran in 60s after etcd came back"
    late = failures(after)
    assert not late, f"calls still fail after the members rejoined:\n{describe(late)}"
    time.sleep(1.2)  # past the kernel's entry/attr cache
    problems = _check_not_partial(d, results)
    assert not problems, "partial metadata after the outage:\n" + "\n".join(problems[:30])


# ------------------------------------------------------------ mgmtd election

class PrimaryPoller:
    """Polls every mgmtd every 50 ms: which of them acts as primary."""

    def __init__(self, addrs):
        self.addrs = list(addrs)
        self.samples = []  # (time, {addr: True/False/None})
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            t = time.time()
            self.samples.append((t, {a: mgmtd_acting(a) for a in self.addrs}))
            self._stop.wait(max(0.0, 0.05 - (time.time() - t)))

    def acting(self):
        if not self.samples:
            return []
        return [a for a, v in self.samples[-1][1].items() if v]

    def wait_acting(self, exclude, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            a = [x for x in self.acting() if x not in exclude]
            if a:
                return a[0]
            time.sleep(0.02)
        return None

    def stop(self):
        self._stop.set()
        self._t.join(10)

    def double_primaries(self):
        return [(t, s) for t, s in self.samples if sum(bool(v) for v in s.values()) > 1]


def test_mgmtd_failover_at_most_one_primary(live, tmp_path):
    healthy(live)
    mg = daemons(live.data, "valorfs-mgmtd")
    assert len(mg) == 3, f"expected 3 mgmtd, found {[d.name for d in mg]}"
    addr = {d.name: next(a.split("=", 1)[1] for a in d.argv if a.startswith("--listen="))
            for d in mg}
    # a short primary lease, so a failover takes seconds: start them again with it
    for d in mg:
        d.kill(signal.SIGTERM, timeout=30)
    for d in mg:
        d.start(extra=[f"--election_ms={ELECTION_MS}", f"--primary_lease_ms={PRIMARY_LEASE_MS}"])
    poller = PrimaryPoller(addr.values())
    bound = (2 * PRIMARY_LEASE_MS + 2 * ELECTION_MS) / 1000 + 3.0
    killed = []
    try:
        first = poller.wait_acting((), timeout=60)
        assert first, f"no mgmtd acts as primary 60s after a restart:\n{live.logs_tail()}"
        for _ in range(2):
            primary = next(d for d in mg if addr[d.name] == poller.wait_acting(killed, 5))
            # the cluster serves through this primary before it dies
            _wait_nodes_alive(live, addr[primary.name])
            primary.kill()
            killed.append(addr[primary.name])
            t_kill = time.monotonic()
            new = poller.wait_acting(killed, timeout=bound)
            took = time.monotonic() - t_kill
            assert new, f"no new primary within {bound:.1f}s of killing {addr[primary.name]}; " \
                        f"last poll {poller.samples[-1][1]}\n{live.logs_tail()}"
            p = live.mnt / f"after-failover-{len(killed)}"
            p.write_bytes(b"x" * 100000)
            assert p.read_bytes() == b"x" * 100000
            _wait_nodes_alive(live, new)
            print(f"failover {addr[primary.name]} -> {new} in {took:.2f}s")
    finally:
        poller.stop()
    doubles = poller.double_primaries()
    assert not doubles, f"{len(doubles)} polls saw two primaries, first: {doubles[0]}"
    assert len(poller.samples) > 50, "the poller barely ran"


def _wait_nodes_alive(c, mgmtd, timeout=30.0):
    """Every meta and storage server holds a lease from this primary."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            s = status(c, mgmtd)
            last = s
            nodes = [n for n in s["nodes"] if n["type"] in ("meta", "storage")]
            if len(nodes) == 2 + 3 and all(n["alive"] for n in nodes):  # metas + storage
                return
        except AssertionError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"not every meta/storage server is alive at mgmtd {mgmtd} within "
                         f"{timeout}s: {last and last['nodes']}")
