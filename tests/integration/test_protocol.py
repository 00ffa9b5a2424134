"""Checks of the daemon itself: command line, config file, start-up
failures, background mode, signals and shutdown under load, the uring
fallback, the classic/xfuse channel split, cache modes, the limits of the
settings and the fd limit.

These tests start valorfs-fuse themselves (on a private tmpfs from the
`scratch` fixture) and always stop it and unmount, whatever happens.
"""
import contextlib
import mmap
import os
import re
import resource
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import (BINARY, Child, Daemon, abort_connection, is_mounted, log_errors, umount,
                      uring_param)

pytestmark = pytest.mark.usefixtures("no_sanitizer_reports")



@pytest.fixture
def dirs(scratch):
    src, mnt = scratch / "src", scratch / "mnt"
    src.mkdir()
    mnt.mkdir()
    return scratch, src, mnt


def run_cli(*args, mnt=None, timeout=10):
    """Run valorfs-fuse expecting it to exit on its own; never leaves it
    running or mounted. Output goes to files, not pipes: a detached daemon
    keeps stderr open, and a pipe would never reach EOF."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([BINARY, *args], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"valorfs-fuse {' '.join(args)} did not exit within {timeout}s")
        finally:
            if mnt is not None and proc.returncode != 0 and is_mounted(mnt):
                umount(mnt)
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read().decode(), err.read().decode()


def lines(text):
    return [ln for ln in text.splitlines() if ln.strip()]


# These tests do little work: a hang is cut short sooner than in the battery,
# and after a few hangs the remaining daemon tests fail at once.
HANG_SECONDS, MAX_HANGS = 20, 2
_hangs = []


@pytest.fixture
def daemon(dirs):
    """Factory: start a foreground daemon with extra args; stopped at the end."""
    scratch, src, mnt = dirs
    started = []

    def start(*args):
        if len(_hangs) >= MAX_HANGS:
            pytest.fail(f"not run: the daemon already hung in {_hangs}", pytrace=False)
        d = Daemon(src, mnt, scratch / "daemon.log", args)
        started.append(d)
        d.start()
        d.arm_watchdog(HANG_SECONDS)
        os.stat(mnt)  # INIT done
        return d

    yield start
    problems = []
    for d in started:
        if d.proc is not None:
            problems += d.stop()  # also disarms its watchdog
            if d.hung:
                _hangs.append(" ".join(d.args))
        problems += [f"daemon logged an error: {ln}" for ln in log_errors(d.log_text())]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# ------------------------------------------------------------ command line

def test_help_mentions_every_transport():
    rc, out, err = run_cli("--help")
    assert rc == 0, err
    for word in ("--transport", "--classic-share", "--backend=passthrough:DIR", "--config"):
        assert word in out, f"--help does not mention {word}"
    opt = [ln for ln in out.splitlines() if ln.strip().startswith("--transport")]
    assert len(opt) == 1, out
    for t in ("classic", "xfuse", "uring"):
        assert re.search(rf"\b{t}\b", opt[0]), f"--transport line does not list {t}: {opt[0]}"
        assert re.search(rf"^\s+{t}:", out, re.M), f"--help does not describe {t}"
    rc, out, _ = run_cli("--version")
    assert rc == 0 and out.startswith("valorfs-fuse ")


@pytest.mark.parametrize("args, needle", [
    (["--threads=0"], "bad value '0' for --threads"),
    (["--classic-share=2"], "bad value '2' for --classic-share"),
    (["--transport=carrier-pigeon"], "bad value 'carrier-pigeon' for --transport"),
    (["--log-level=loud"], "bad value 'loud' for --log-level"),
    (["--no-such-option"], "unrecognized option"),
])
def test_bad_command_line(dirs, args, needle):
    _, src, mnt = dirs
    rc, _, err = run_cli("-f", *args, f"--backend=passthrough:{src}", str(mnt), mnt=mnt)
    assert rc != 0
    assert needle in err, err
    assert not is_mounted(mnt)


def test_missing_mountpoint_or_backend_argument(dirs):
    _, src, mnt = dirs
    rc, _, err = run_cli("-f", f"--backend=passthrough:{src}")
    assert rc != 0 and "missing MOUNTPOINT" in err
    rc, _, err = run_cli("-f", str(mnt), mnt=mnt)
    assert rc != 0 and "missing --backend" in err
    rc, _, err = run_cli("-f", "--backend=nfs:/x", str(mnt), mnt=mnt)
    assert rc != 0 and "unknown backend 'nfs:/x'" in err


# ------------------------------------------------------------ config file

CONFIG_ERRORS = [
    # (file body, line of the error, words the message must contain)
    ("[fuse]\ntransport = xfuse\nbogus_key = 1\n", 3, ["unknown key", "fuse.bogus_key"]),
    ("[nosuch]\nx = 1\n", 2, ["unknown key", "nosuch.x"]),
    ("# comment\n[fuse]\nthreads = many\n", 3, ["bad value", "many", "fuse.threads"]),
    ("[fuse]\nclassic_share = 1.5\n", 2, ["bad value", "1.5", "fuse.classic_share"]),
    ("[fuse]\n\n\ntransport = carrier-pigeon\n", 4, ["bad value", "carrier-pigeon"]),
    ("[passthrough]\ndirect_io = maybe\n", 2, ["bad value", "maybe"]),
    ("[log]\nlevel = loud\n", 2, ["bad value", "loud", "log.level"]),
    ("[fuse]\nthreads = 2\n[fuse\n", 3, ["syntax error"]),
]


@pytest.mark.parametrize("body, line, words", CONFIG_ERRORS,
                         ids=["unknown-key", "unknown-section", "bad-int", "bad-share",
                              "bad-transport", "bad-bool", "bad-level", "syntax"])
def test_bad_config_is_refused_with_file_and_line(dirs, body, line, words):
    scratch, src, mnt = dirs
    cfg = scratch / "valorfs.ini"
    cfg.write_text(body)
    rc, _, err = run_cli("-f", f"--config={cfg}", f"--backend=passthrough:{src}", str(mnt),
                         mnt=mnt)
    assert rc != 0, "a bad config must make the daemon exit non-zero"
    assert not is_mounted(mnt)
    msg = lines(err)
    assert len(msg) == 1, f"expected a one-line error, got:\n{err}"
    assert f"{cfg}:{line}:" in msg[0], f"error does not name {cfg}:{line}: {msg[0]}"
    for w in words:
        assert w in msg[0], f"{w!r} missing from: {msg[0]}"


def test_missing_config_file(dirs):
    scratch, src, mnt = dirs
    rc, _, err = run_cli("-f", f"--config={scratch}/nope.ini", f"--backend=passthrough:{src}",
                         str(mnt), mnt=mnt)
    assert rc != 0 and f"{scratch}/nope.ini" in err and "No such file" in err


def test_config_applies_and_command_line_wins(dirs, daemon):
    scratch, src, mnt = dirs
    cfg = scratch / "valorfs.ini"
    cfg.write_text("[fuse]\ntransport = classic\nthreads = 3\n[log]\nlevel = info\n")
    d = daemon(f"--config={cfg}", "--threads=2")
    want = "transport=classic channels=2 classic=2 xfuse=0"
    assert want in d.wait_log(want), d.log_text()


@pytest.mark.parametrize("args, nclassic, nxfuse", [
    (["--transport=xfuse", "--classic-share=0.5", "--threads=2"], 1, 1),
    (["--transport=xfuse", "--classic-share=0.25", "--threads=4"], 1, 3),
    (["--transport=xfuse", "--classic-share=1", "--threads=2"], 2, 0),
    (["--transport=xfuse", "--classic-share=0", "--threads=2"], 0, 2),
    (["--transport=classic", "--threads=3"], 3, 0),
    (["--transport=xfuse", "--threads=3"], 0, 3),
])
def test_classic_share_splits_channels(daemon, dirs, args, nclassic, nxfuse):
    _, src, mnt = dirs
    d = daemon(*args)
    split = f"channels={nclassic + nxfuse} classic={nclassic} xfuse={nxfuse}"
    assert split in d.wait_log(split), d.log_text()
    (mnt / "f").write_bytes(b"works")
    assert (src / "f").read_bytes() == b"works"
    assert d.stop() == []
    # the per-channel statistics at exit say what each channel really ran as
    modes = [ln.split("mode=")[1].split()[0] for ln in d.log_text().splitlines()
             if "msg=\"channel " in ln and "mode=" in ln]
    assert sorted(modes) == ["classic"] * nclassic + ["xfuse"] * nxfuse, d.log_text()


# ------------------------------------------------------------ start-up failures

def test_missing_backend_dir(dirs):
    scratch, _, mnt = dirs
    missing = scratch / "no-such-dir"
    rc, _, err = run_cli("-f", f"--backend=passthrough:{missing}", str(mnt), mnt=mnt)
    assert rc != 0
    msg = lines(err)
    assert len(msg) == 1, err
    assert str(missing) in msg[0] and "No such file or directory" in msg[0], msg[0]
    assert not is_mounted(mnt)


def test_missing_mount_point(dirs):
    scratch, src, _ = dirs
    missing = scratch / "no-mnt"
    rc, _, err = run_cli("-f", f"--backend=passthrough:{src}", str(missing))
    assert rc != 0 and str(missing) in err, err


def test_files_instead_of_directories(dirs):
    scratch, src, mnt = dirs
    f = scratch / "plain-file"
    f.write_bytes(b"")
    rc, _, err = run_cli("-f", f"--backend=passthrough:{f}", str(mnt), mnt=mnt)
    assert rc != 0 and str(f) in err and "Not a directory" in err, err
    rc, _, err = run_cli("-f", f"--backend=passthrough:{src}", str(f))
    assert rc != 0 and str(f) in err and "Not a directory" in err, err
    assert not is_mounted(mnt) and not is_mounted(f)


@pytest.mark.parametrize("args", [
    ["--threads=64", "--queue-depth=256"],
    ["--threads=1", "--queue-depth=1", "--max-spin-us=100000"],
    ["--transport=xfuse", "--max-spin-us=0"],
    ["--transport=uring", "--no-keeper", "--queue-depth=1"],
    ["--transport=uring", "--no-keeper", "--queue-depth=256", "--no-pin", "--max-spin-us=0"],
], ids=["64x256", "1x1-spin", "nospin", "uring-qd1", "uring-qd256"])
def test_extreme_valid_settings(daemon, dirs, args):
    """The limits the parser accepts must also work."""
    _, src, mnt = dirs
    with contextlib.ExitStack() as stack:
        if "--transport=uring" in args:
            stack.enter_context(uring_param("Y"))
        daemon(*args)
        kids = [Child(_churn, str(mnt), i) for i in range(6)]
        assert [k.join(60) for k in kids] == [True] * 6
    assert sorted(os.listdir(src)) == sorted(os.listdir(mnt))


def _churn(root, idx):
    body = os.urandom(100_000)
    for j in range(60):
        p = os.path.join(root, f"c{idx}-{j % 4}")
        with open(p, "wb") as f:
            f.write(body)
        with open(p, "rb") as f:
            assert f.read() == body
    return True


def test_background_mode(dirs):
    """Without -f the parent exits 0 only once the mount is live, and the
    detached daemon exits by itself when the file system is unmounted."""
    _, src, mnt = dirs
    rc, _, err = run_cli(f"--backend=passthrough:{src}", str(mnt))
    pid = None
    watchdog = threading.Timer(HANG_SECONDS, abort_connection, [mnt])
    watchdog.start()
    try:
        assert rc == 0, err
        assert is_mounted(mnt), "parent returned before the mount was live"
        pid = _daemon_pid(mnt)
        assert pid is not None, "cannot find the detached daemon"
        (mnt / "bg").write_bytes(b"bg")
        assert (src / "bg").read_bytes() == b"bg"
        subprocess.run(["umount", str(mnt)], check=True)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), "detached daemon still running 10s after umount"
    finally:
        watchdog.cancel()
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)
        umount(mnt)
    # a failing mount is reported by the parent's exit code
    rc, _, err = run_cli(f"--backend=passthrough:{src}", str(mnt) + "-missing")
    assert rc != 0, err


def _daemon_pid(mnt):
    # the detached child of the process we started: found by its unique mount path
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            argv = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0] == BINARY.encode() and str(mnt).encode() in argv:
            return int(p.name)
    return None


def _alive(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# ------------------------------------------------------------ signals

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
def test_signal_unmounts_cleanly(daemon, dirs, sig, busy):
    _, src, mnt = dirs
    d = daemon("--transport=xfuse")
    (mnt / "f").write_bytes(b"x")
    fd = os.open(mnt / "f", os.O_RDONLY) if busy else None  # keeps the mount busy
    try:
        problems = d.stop(sig)
        assert not problems, problems
        assert not is_mounted(mnt)
        assert "stopped (clean)" in d.log_text()
    finally:
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass  # ENOTCONN: the connection was aborted under the open file
    assert (src / "f").read_bytes() == b"x"


def test_external_umount_stops_daemon(daemon, dirs):
    _, _, mnt = dirs
    d = daemon()
    subprocess.run(["umount", str(mnt)], check=True)
    assert d.proc.wait(10) == 0
    assert "stopped (clean)" in d.log_text()


# ------------------------------------------------------------ uring fallback

def test_uring_falls_back_to_xfuse_when_disabled(daemon, dirs):
    _, src, mnt = dirs
    with uring_param("N"):
        d = daemon("--transport=uring", "--no-keeper")
        (mnt / "f").write_bytes(b"fallback")
        assert (src / "f").read_bytes() == b"fallback"
        assert (mnt / "f").read_bytes() == b"fallback"
        log = d.wait_log("transport=xfuse")
    why = [ln for ln in log.splitlines() if "xfuse" in ln and "uring" in ln and "fall" in ln]
    assert len(why) == 1, f"want one line explaining the fallback, log:\n{log}"
    assert "level=warn" in why[0]
    assert "io_uring=off" in log
    assert "transport=xfuse" in log


# ------------------------------------------------------------ modes and shutdown

def _workload(root):
    """A little of everything, checked against the backing dir by the caller."""
    root = Path(root)
    body = os.urandom(300_000)
    (root / "a").write_bytes(body)
    with open(root / "a", "ab") as f:
        f.write(b"appended")
    with open(root / "a", "r+b") as f:
        f.seek(5000)
        f.write(b"patched")
        with mmap.mmap(f.fileno(), 0) as mm:
            mm[0:4] = b"MMAP"
            mm.flush()
    os.truncate(root / "a", 250_000)
    os.mkdir(root / "d")
    os.rename(root / "a", root / "d" / "b")
    expect = bytearray(body + b"appended")
    expect[5000:5007] = b"patched"
    expect[0:4] = b"MMAP"
    return bytes(expect[:250_000])


@pytest.mark.parametrize("mode", ["--writeback-cache", "--direct-io", "--no-keep-cache"])
def test_cache_modes(daemon, dirs, mode):
    _, src, mnt = dirs
    d = daemon("--transport=xfuse", mode, "--attr-timeout=0.5", "--entry-timeout=0.5")
    if mode == "--writeback-cache":
        assert "writeback_cache=on" in d.log_text()
    expect = _workload(mnt)
    assert (mnt / "d" / "b").read_bytes() == expect
    assert d.stop() == []
    assert (src / "d" / "b").read_bytes() == expect


def _hammer(root, wid):
    """Write and read until the file system goes away; return op count."""
    n, body = 0, os.urandom(65536)
    dev = os.stat(root).st_dev
    try:
        # after the (lazy) unmount the path leads to the plain directory below
        while os.stat(root).st_dev == dev:
            p = os.path.join(root, f"h{wid}-{n % 8}")
            with open(p, "wb") as f:
                f.write(body)
            with open(p, "rb") as f:
                f.read()
            n += 1
    except OSError:
        pass
    return n


@pytest.mark.parametrize("transport", ["classic", "xfuse", "uring"])
def test_stop_under_load(daemon, dirs, transport):
    """SIGTERM while requests are in flight: exit 0, unmounted, no hang."""
    _, _, mnt = dirs
    with contextlib.ExitStack() as stack:
        if transport == "uring":
            stack.enter_context(uring_param("Y"))
        d = daemon(f"--transport={transport}")
        kids = [Child(_hammer, str(mnt), i) for i in range(4)]
        time.sleep(1.0)
        problems = d.stop()
        counts = [k.join(20) for k in kids]
    assert not problems, problems
    assert not is_mounted(mnt)
    assert all(c > 0 for c in counts), counts


# ------------------------------------------------------------ resources

def test_many_inodes_with_default_fd_limit(dirs):
    """Services often start with a soft RLIMIT_NOFILE of 1024 (the systemd
    default). The passthrough keeps one fd per inode the kernel knows, so
    the daemon has to raise its soft limit to serve a few thousand files."""
    scratch, src, mnt = dirs
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 8192:
        pytest.skip(f"hard RLIMIT_NOFILE is only {hard}")
    (src / "d").mkdir()
    for i in range(3000):
        (src / "d" / f"f{i}").write_bytes(b"")
    d = Daemon(src, mnt, scratch / "daemon.log", ["--transport=xfuse"], nofile=1024)
    failures = []
    try:
        d.start()
        for i in range(3000):
            try:
                os.lstat(mnt / "d" / f"f{i}")
            except OSError as e:
                failures.append((i, e.strerror))
        try:
            listed = len(os.listdir(mnt / "d"))
        except OSError as e:
            listed = e.strerror
    finally:
        problems = d.stop()
    assert not failures, (f"{len(failures)} of 3000 lstat() failed, first {failures[0]}; "
                          f"listdir: {listed}")
    assert listed == 3000
    assert not problems, problems
