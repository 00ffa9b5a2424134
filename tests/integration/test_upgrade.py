"""Online upgrade and crash restart under load (issue 4's acceptance tests).

Real mounts through /dev/fuse held by valorfs-keeper, real processes, real
kill -9. While fio (random read/write, every block verified) and a metadata
loop (tests/upgrade/load.py) run, the daemon is upgraded with `valorfs
upgrade` and killed with SIGKILL, interleaved; the mount must never go
away, no system call may fail, every byte must read back, and afterwards
the lookup accounting must return to zero nodes and handles.

Environment (besides conftest's):
  VALORFS_CLI                   the `valorfs` tool (default <repo>/build/src/tools/valorfs)
  VALORFS_UPGRADE_EVENTS        upgrades (and as many kills) per transport (default 5)
  VALORFS_UPGRADE_NO_CLUSTER=1  skip the cluster-backend variant
Run only the cluster variant with `-k cluster`.
"""
import contextlib
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import (BINARY, CLI, REPO, abort_connection, Cluster, Daemon, Scratch, fuse_conn_id, is_mounted,
                      log_errors, sanitizer_problems, sanitizer_reports, uring_param, umount)

pytestmark = pytest.mark.usefixtures("no_sanitizer_reports")

LOAD = REPO / "tests" / "upgrade" / "load.py"
EVENTS = int(os.environ.get("VALORFS_UPGRADE_EVENTS", "5"))
# a hung request fails the test instead of blocking the run
LOAD_TEST_SECONDS = 150
SMALL_TEST_SECONDS = 45



# ---------------------------------------------------------------- keeper control

def cli(*args, timeout=60):
    p = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def mount_info(mnt):
    rc, out, err = cli("mount-info", mnt, "--json", timeout=15)
    assert rc == 0, f"valorfs mount-info {mnt} failed ({rc}): {err}"
    info = json.loads(out)
    assert "daemon_pid" in info, f"no daemon serves {mnt}: {info}"
    return info


def alive(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in "ZX"


def wait_generation(mnt, gen, timeout=15.0):
    """mount-info once the daemon of generation gen serves (until then the
    keeper answers by itself, with daemon=starting)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        rc, out, err = cli("mount-info", mnt, "--json", timeout=15)
        if rc == 0:
            last = json.loads(out)
            if last["generation"] >= gen and "daemon_pid" in last:
                return last
        else:
            last = err
        time.sleep(0.005)
    raise AssertionError(f"{mnt}: generation {gen} not serving within {timeout}s; last: {last}")


def upgrade(mnt, *extra):
    before = mount_info(mnt)
    t0 = time.monotonic()
    rc, out, err = cli("upgrade", mnt, *extra, timeout=100)
    took = time.monotonic() - t0
    assert rc == 0, f"valorfs upgrade {mnt} exited {rc}: {out}{err}"
    assert "upgraded: daemon pid" in out, out
    after = mount_info(mnt)
    # (a failed upgrade attempt also used a generation number)
    assert after["generation"] > before["generation"], (before, after)
    assert after["upgrades"] == before["upgrades"] + 1, (before, after)
    assert after["daemon_pid"] != before["daemon_pid"], (before, after)
    assert after["keeper_pid"] == before["keeper_pid"], (before, after)
    return after, took


def crash(mnt):
    before = mount_info(mnt)
    t0 = time.monotonic()
    pid = before["daemon_pid"]
    os.kill(pid, signal.SIGKILL)
    # mount-info asked while the keeper has not yet noticed the death is a
    # separate case (test_mount_info_races_a_crash); here: once it is reaped
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, f"killed daemon {pid} not reaped by the keeper"
        time.sleep(0.002)
    after = wait_generation(mnt, before["generation"] + 1)
    took = time.monotonic() - t0
    assert after["restarts"] == before["restarts"] + 1, (before, after)
    assert after["daemon_pid"] != before["daemon_pid"], (before, after)
    assert after["keeper_pid"] == before["keeper_pid"], (before, after)
    return after, took


def drop_caches_until_forgotten(mnt, timeout=10.0):
    """Make the kernel FORGET every node (nothing is open, no cwd inside);
    mount-info once nodes and handles are 0, or the last one seen."""
    deadline = time.monotonic() + timeout
    while True:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("2")
        time.sleep(0.05)  # FORGETs are asynchronous; we poll, the assert is below
        Path("/proc/sys/vm/drop_caches").write_text("2")
        info = mount_info(mnt)
        if (info["nodes"] == 0 and info["handles"] == 0) or time.monotonic() > deadline:
            return info
        time.sleep(0.2)


# ---------------------------------------------------------------- mounts

def _die_with_parent():
    import ctypes
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def keeper_mount(tmp_path, transport, watchdog=SMALL_TEST_SECONDS, extra=(), expected_errors=()):
    """A passthrough mount under the keeper on a private tmpfs: (scratch,
    src, mnt, daemon). Stopped, unmounted and checked for errors at the end,
    whatever happens; error lines containing one of expected_errors (what a
    test provokes on purpose) are allowed."""
    scratch = Scratch()
    d = None
    problems = []
    try:
        root = Path(scratch.root)
        src, mnt = root / "src", root / "mnt"
        src.mkdir()
        mnt.mkdir()
        d = Daemon(src, mnt, tmp_path / f"valorfs-{transport}.log",
                   [f"--transport={transport}", *extra])
        d.start()
        d.arm_watchdog(watchdog)
        os.stat(mnt)  # INIT done
        yield root, src, mnt, d
    finally:
        try:
            if d is not None and d.proc is not None:
                problems += d.stop()
        finally:
            scratch.close()
    if d is not None:
        problems += [f"daemon logged an error: {ln}" for ln in log_errors(d.log_text())
                     if not any(e in ln for e in expected_errors)]
        if problems:
            tail = "\n".join(d.log_text().splitlines()[-40:])
            pytest.fail("\n".join(problems) + f"\n--- log (tail) ---\n{tail}", pytrace=False)


class Procs:
    """Child processes that are killed, whatever happens, on exit."""

    def __init__(self):
        self.procs = []

    def start(self, argv, log, cwd="/"):
        with open(log, "ab") as f:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f, cwd=cwd,
                                 preexec_fn=_die_with_parent)
        self.procs.append(p)
        return p

    def close(self, mnt=None):
        """Kill them all; a process that does not die is stuck in a FUSE
        request nobody answers: say where, abort the connection, fail."""
        stuck = []
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                stuck.append(f"{' '.join(map(str, p.args[:3]))} (pid {p.pid}) did not die "
                              f"on SIGKILL within 10 s:\n{_where(p.pid)}")
        if stuck:
            waiting = _fuse_waiting(mnt) if mnt else "?"
            if mnt:
                abort_connection(mnt)
            for p in self.procs:
                p.wait()
            raise AssertionError("\n".join(stuck) + f"\nrequests waiting on the connection: "
                                 f"{waiting}")


def _where(pid):
    out = []
    for name in ("wchan", "stack"):
        try:
            out.append(f"  {name}: " + Path(f"/proc/{pid}/{name}").read_text().strip()
                       .replace("\n", "\n    "))
        except OSError as e:
            out.append(f"  {name}: {e}")
    return "\n".join(out)


def _fuse_waiting(mnt):
    conn = fuse_conn_id(mnt)
    try:
        return Path(f"/sys/fs/fuse/connections/{conn}/waiting").read_text().strip()
    except OSError as e:
        return str(e)


def fio_args(path, size, **over):
    opts = dict(name="v", filename=path, size=size, bs="4k", ioengine="psync",
                verify="crc32c", verify_fatal=1, exitall_on_error=1)
    opts.update(over)
    return [f"--{k}={v}" for k, v in opts.items()]


def fio_jobfile(path, size, seconds):
    """Fill the whole file (every block gets a verify header, so any block can
    be read back and checked), then random read/write for `seconds` with
    every written block re-read and verified in batches of 64."""
    return (f"[global]\nfilename={path}\nsize={size}\nbs=4k\nioengine=psync\n"
            "verify=crc32c\nverify_fatal=1\nexitall_on_error=1\nnumjobs=1\n"
            "[fill]\nrw=write\ndo_verify=1\n"
            f"[mix]\nstonewall\nrw=randrw\ndo_verify=1\nverify_backlog=64\n"
            f"time_based\nruntime={seconds}\n")


def fio_verify_pass(path, size, log):
    """Read every block of path and check its crc32c header."""
    p = subprocess.run(["fio", *fio_args(path, size, name="final", rw="read")],
                       capture_output=True, text=True, timeout=120, cwd="/")
    Path(log).write_text(p.stdout + p.stderr)
    return p.returncode, p.stdout + p.stderr


def stop_load(proc, out, events, timeout=30.0):
    """SIGUSR1 the load process and return its JSON result."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGUSR1)
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        where = ""
        with contextlib.suppress(OSError, ValueError):
            beat = json.loads(Path(str(out) + ".beat").read_text().strip())
            where = "\nthe call that hangs:\n" + describe([dict(beat, errno=None,
                                                                error="never returned")], events)
        raise AssertionError(f"load process {proc.args[2]} did not stop within {timeout}s "
                             f"(a hung system call){where}") from None
    assert rc == 0, f"load process {proc.args[2]} exited {rc}; see {out}.log"
    return json.loads(Path(out).read_text())


def describe(failures, events, limit=10):
    """Failures, each with the event (upgrade/crash) that came just before it."""
    lines = []
    for f in failures[:limit]:
        before = [e for e in events if e[0] <= f["t"]]
        near = (f"{before[-1][1]} #{len(before)} +{(f['t'] - before[-1][0]) * 1000:.0f} ms"
                if before else "before the first event")
        lines.append(f"  {f['op']} {f['path']}: errno={f['errno']} {f['error']} ({near})")
    if len(failures) > limit:
        lines.append(f"  ... {len(failures) - limit} more")
    return "\n".join(lines)


# ---------------------------------------------------------------- 1 + 5: under load

def run_under_load(mnt, work, tmp_path, upgrades, crashes, fio_size="64m"):
    """The core scenario; mnt is the mount point (for mount-info and the
    watcher), work a directory inside it for the load. Returns a summary."""
    mnt, work = Path(mnt), Path(work)
    info0 = mount_info(mnt)
    conn0 = fuse_conn_id(mnt)
    assert conn0 is not None
    fio_file = work / "fio.dat"
    meta_out, watch_out = tmp_path / "meta.json", tmp_path / "watch.json"
    events = []  # (time, what)
    schedule = []
    for i in range(max(upgrades, crashes)):
        schedule += ["upgrade"] * (i < upgrades) + ["crash"] * (i < crashes)
    # long enough for every event (each well under a second) plus margin:
    # fio must still be running after the last one
    fio_seconds = int(8 + 1.2 * len(schedule))
    procs = Procs()
    try:
        job = tmp_path / "fio.job"
        job.write_text(fio_jobfile(fio_file, fio_size, fio_seconds))
        fio = procs.start(["fio", "--output", str(tmp_path / "fio.out"), str(job)],
                          tmp_path / "fio.log")
        meta = procs.start([sys.executable, str(LOAD), "meta", str(work / "meta"),
                            str(meta_out)], str(meta_out) + ".log")
        watch = procs.start([sys.executable, str(LOAD), "watch", str(mnt), str(watch_out)],
                            str(watch_out) + ".log")
        # the fill phase first: the events should hit the random read/write mix
        deadline = time.monotonic() + 30
        while not (fio_file.exists() and fio_file.stat().st_size >= _bytes(fio_size)):
            assert fio.poll() is None, f"fio exited {fio.returncode} early:\n{_fio_out(tmp_path)}"
            assert time.monotonic() < deadline, "fio did not lay out its file within 30 s"
            time.sleep(0.05)
        time.sleep(1.0)
        rng = random.Random()
        timings = []
        early = []  # a load process that ended before the events did
        for what in schedule:
            time.sleep(rng.uniform(0.3, 0.5))  # load in flight at every event
            early = [f"{name} exited ({p.returncode}) before {what} #{len(events) + 1} "
                     f"(after {events[-1][1] if events else 'no event'})"
                     for name, p in (("fio", fio), ("metadata loop", meta), ("watcher", watch))
                     if p.poll() is not None]
            if early:
                break
            events.append((time.time(), what))
            _, took = upgrade(mnt) if what == "upgrade" else crash(mnt)
            timings.append((what, round(took, 3)))
            assert fuse_conn_id(mnt) == conn0, f"the FUSE connection changed after {what}"
        if not early and fio.poll() is not None:
            early.append("fio finished before the last event: the events were not under load; "
                         "raise fio_seconds")
        meta_res = stop_load(meta, meta_out, events)
        watch_res = stop_load(watch, watch_out, events)
        try:
            fio_rc = fio.wait(fio_seconds + 60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"fio did not finish {fio_seconds + 60}s after the events: a "
                                 f"request nobody answers? fio (pid {fio.pid}) is at\n"
                                 f"{_where(fio.pid)}\nrequests waiting on the connection: "
                                 f"{_fuse_waiting(mnt)}; events: {timings}") from None
    finally:
        procs.close(mnt)
    fio_text = _fio_out(tmp_path)
    problems = list(early)
    if fio_rc != 0:
        errs = [ln for ln in fio_text.splitlines() if "err=" in ln and "err= 0" not in ln
                or "verify" in ln.lower() or "error" in ln.lower()]
        problems.append(f"fio exited {fio_rc}:\n" + "\n".join(errs[:20]))
    for job_name in ("fill", "mix"):
        if not _fio_job_ok(fio_text, job_name):
            problems.append(f"fio job {job_name} did not report err= 0")
    if meta_res["failures"]:
        problems.append(f"metadata loop: {len(meta_res['failures'])} failed calls of "
                        f"{meta_res['calls']}:\n{describe(meta_res['failures'], events)}")
    if watch_res["failures"]:
        problems.append(f"watcher: {len(watch_res['failures'])} failures in "
                        f"{watch_res['stats']} stats:\n{describe(watch_res['failures'], events)}")
    assert not problems, "\n".join(problems) + f"\nevents: {timings}"
    assert meta_res["iterations"] >= len(schedule), f"metadata loop barely ran: {meta_res}"
    assert meta_res["verified"] > 0
    assert watch_res["stats"] > 100, watch_res

    # everything fio wrote, read back again and checked block by block
    rc, text = fio_verify_pass(fio_file, fio_size, tmp_path / "fio-final.log")
    assert rc == 0, f"final fio verify pass failed ({rc}):\n{text[-3000:]}"
    # the metadata loop's survivors, byte for byte
    survivors = pickle.loads(Path(str(meta_out) + ".pkl").read_bytes())
    assert len(survivors) == meta_res["files"] and survivors
    on_disk = sorted(os.listdir(work / "meta"))
    assert on_disk == sorted(survivors), (on_disk, sorted(survivors))
    for name, want in survivors.items():
        got = (work / "meta" / name).read_bytes()
        assert got == want, f"meta/{name}: {len(got)} bytes, want {len(want)}"
    info = mount_info(mnt)
    assert info["restarts"] - info0["restarts"] == crashes, info
    assert info["upgrades"] - info0["upgrades"] == upgrades, info
    assert info["generation"] - info0["generation"] >= upgrades + crashes, info
    assert fuse_conn_id(mnt) == conn0
    return {"timings": timings, "meta": meta_res, "watch": watch_res, "fio_file": fio_file,
            "survivors": survivors}


def _bytes(size):
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)


def _fio_out(tmp_path):
    try:
        return (tmp_path / "fio.out").read_text(errors="replace") + \
            (tmp_path / "fio.log").read_text(errors="replace")
    except OSError:
        return ""


def _fio_job_ok(text, job):
    for line in text.splitlines():
        if line.startswith(f"{job}: (groupid"):
            return "err= 0" in line
    return False


@pytest.mark.parametrize("transport", ["classic", "xfuse", "uring"])
def test_upgrades_and_crashes_under_load(tmp_path, transport):
    with contextlib.ExitStack() as stack:
        if transport == "uring":
            stack.enter_context(uring_param("Y"))
        root, src, mnt, d = stack.enter_context(
            keeper_mount(tmp_path, transport, watchdog=LOAD_TEST_SECONDS))
        info = mount_info(mnt)
        if transport == "uring":
            log = d.wait_log("transport uring under the keeper")
            warn = [ln for ln in log.splitlines() if "transport uring under the keeper" in ln]
            assert len(warn) == 1 and "level=warn" in warn[0] and "xfuse" in warn[0], log
            assert info["transport"] == "xfuse", info
        else:
            assert info["transport"] == transport, info
        assert info["restarts"] == 0 and info["upgrades"] == 0, info

        res = run_under_load(mnt, mnt, tmp_path, EVENTS, EVENTS)

        # the backing files hold exactly what the mount showed
        assert (src / "fio.dat").read_bytes() == res["fio_file"].read_bytes()
        for name, want in res["survivors"].items():
            assert (src / "meta" / name).read_bytes() == want, name

        info = drop_caches_until_forgotten(mnt)
        assert info["nodes"] == 0 and info["handles"] == 0, \
            f"lookup accounting after drop_caches: {info}"
        assert info["restarts"] == EVENTS and info["upgrades"] == EVENTS, info
        assert info["generation"] == 1 + 2 * EVENTS, info  # no failed attempt here
        assert "level=warn" in d.log_text()  # the crashes were noticed...
        assert d.proc.poll() is None  # ...and the keeper is still the mount's owner


def test_mount_info_races_a_crash(tmp_path):
    """A mount-info question the keeper passes to a daemon that dies before
    answering must not leave the keeper answering 'daemon=starting' forever."""
    with keeper_mount(tmp_path, "xfuse") as (root, src, mnt, d):
        for i in range(5):
            before = mount_info(mnt)
            # in flight to the daemon while it dies
            asks = [subprocess.Popen([CLI, "mount-info", str(mnt), "--json"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    for _ in range(3)]
            os.kill(before["daemon_pid"], signal.SIGKILL)
            for p in asks:
                p.wait(30)
            after = wait_generation(mnt, before["generation"] + 1)
            assert after["restarts"] == before["restarts"] + 1, (i, before, after)
            _serves(mnt, src, f"r{i}")


# ---------------------------------------------------------------- 2, 3: failed upgrades

def _serves(mnt, src, tag):
    p = mnt / f"probe-{tag}"
    p.write_bytes(tag.encode() * 100)
    assert p.read_bytes() == tag.encode() * 100
    assert (src / f"probe-{tag}").read_bytes() == tag.encode() * 100


def test_corrupt_snapshot_is_refused(tmp_path):
    refused = "handoff state refused: snapshot checksum mismatch"
    with keeper_mount(tmp_path, "xfuse", expected_errors=(refused,)) as (root, src, mnt, d):
        _serves(mnt, src, "a")
        keep = os.open(mnt / "probe-a", os.O_RDWR)  # a handle in the snapshot
        try:
            before = mount_info(mnt)
            rc, out, err = cli("upgrade", mnt, "--test-corrupt-snapshot", timeout=100)
            assert rc == 1, f"upgrade with a corrupt snapshot exited {rc}: {out}{err}"
            assert "checksum mismatch" in err, err
            assert f"the running daemon (pid {before['daemon_pid']}) keeps serving" in err, err
            after = mount_info(mnt)
            assert after["daemon_pid"] == before["daemon_pid"], (before, after)
            assert after["generation"] == before["generation"], (before, after)
            assert after["upgrades"] == before["upgrades"], (before, after)
            assert alive(before["daemon_pid"])
            _serves(mnt, src, "b")
            os.pwrite(keep, b"XY", 3)
            assert os.pread(keep, 6, 0) == b"aaaXYa"
            after, _ = upgrade(mnt)  # and a normal upgrade still works
            _serves(mnt, src, "c")
            assert os.pread(keep, 6, 0) == b"aaaXYa"
            assert sum(refused in ln for ln in log_errors(d.log_text())) == 1, d.log_text()
        finally:
            os.close(keep)


@pytest.mark.parametrize("binary", ["/nonexistent", "/bin/false", "/bin/true"])
def test_upgrade_to_a_bad_binary_fails_cleanly(tmp_path, binary):
    with keeper_mount(tmp_path, "xfuse") as (root, src, mnt, d):
        _serves(mnt, src, "a")
        before = mount_info(mnt)
        rc, out, err = cli("upgrade", mnt, f"--binary={binary}", timeout=100)
        assert rc == 1, f"upgrade to {binary} exited {rc}: {out}{err}"
        assert out == "" and err.startswith("valorfs upgrade: "), (out, err)
        assert len(err.strip().splitlines()) == 1, err
        if binary == "/nonexistent":
            assert "No such file or directory" in err, err
        else:
            assert f"the running daemon (pid {before['daemon_pid']}) keeps serving" in err, err
        after = mount_info(mnt)
        for key in ("daemon_pid", "generation", "upgrades", "restarts", "keeper_pid"):
            assert after[key] == before[key], (key, before, after)
        _serves(mnt, src, "b")
        upgrade(mnt)  # the real binary still upgrades
        _serves(mnt, src, "c")


# ---------------------------------------------------------------- 4: fds held open

@pytest.mark.parametrize("transport", ["classic", "xfuse"])
def test_open_fds_survive_upgrades_and_crashes(tmp_path, transport):
    with keeper_mount(tmp_path, transport) as (root, src, mnt, d):
        (mnt / "dir").mkdir()
        names = {f"n{i}" for i in range(40)}
        for n in names:
            (mnt / "dir" / n).write_bytes(n.encode())
        fd = os.open(mnt / "held", os.O_RDWR | os.O_CREAT, 0o644)
        dfd = os.open(mnt / "dir", os.O_RDONLY | os.O_DIRECTORY)
        want = bytearray()
        try:
            def write(tag, n):
                chunk = (tag * n)[:n]
                os.pwrite(fd, chunk, len(want))
                want.extend(chunk)

            def check(step):
                assert os.pread(fd, len(want) + 10, 0) == bytes(want), f"file fd after {step}"
                assert os.fstat(fd).st_size == len(want), step
                assert set(os.listdir(dfd)) == names, f"directory fd after {step}"
                with os.scandir(dfd) as it:
                    assert {e.name for e in it} == names, f"scandir(fd) after {step}"

            write(b"before-", 10_000)
            check("writing")
            steps = ["upgrade", "crash", "upgrade", "crash", "crash", "upgrade"]
            for i, step in enumerate(steps):
                upgrade(mnt) if step == "upgrade" else crash(mnt)
                check(f"{step} #{i + 1}")
                write(f"after-{step}-{i}-".encode(), 5000 + 777 * i)
                os.fsync(fd)
                check(f"writing after {step} #{i + 1}")
                # the directory keeps changing under the held fd too
                (mnt / "dir" / f"m{i}").write_bytes(b"m")
                names.add(f"m{i}")
            info = mount_info(mnt)
            assert info["handles"] >= 2, f"two handles are open: {info}"
            assert info["restarts"] == 3 and info["upgrades"] == 3, info
        finally:
            os.close(fd)
            os.close(dfd)
        assert (src / "held").read_bytes() == bytes(want)
        info = drop_caches_until_forgotten(mnt)
        assert info["nodes"] == 0 and info["handles"] == 0, info


# ---------------------------------------------------------------- 5: cluster backend

@pytest.mark.skipif(os.environ.get("VALORFS_UPGRADE_NO_CLUSTER") == "1",
                    reason="VALORFS_UPGRADE_NO_CLUSTER=1")
def test_cluster_upgrades_and_crashes_under_load(tmp_path):
    san_before = sanitizer_reports()
    c = Cluster(extra=["--transport=xfuse"])
    try:
        errors_before = len(log_errors(c.log_text()))
        info0 = mount_info(c.mnt)
        assert info0["transport"] == "xfuse", info0
        work = c.mnt / "upgrade"
        work.mkdir()
        n = max(1, min(EVENTS, 3))
        run_under_load(c.mnt, work, tmp_path, n, n, fio_size="32m")
        info = drop_caches_until_forgotten(c.mnt)
        assert info["nodes"] == 0 and info["handles"] == 0, \
            f"lookup accounting after drop_caches: {info}"
        problems = [f"a cluster daemon logged an error: {ln}"
                    for ln in log_errors(c.log_text())[errors_before:]]
        problems += [f"cluster daemon {name} died" for name in c.dead_daemons()]
        assert not problems, "\n".join(problems) + "\n" + c.logs_tail()
    except BaseException:
        print(c.logs_tail(40))
        raise
    finally:
        c.close()
    assert not sanitizer_problems(san_before)
