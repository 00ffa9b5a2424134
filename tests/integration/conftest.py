"""Fixtures and helpers for the valorfs-fuse integration battery.

Every test that takes the `vfs` fixture runs once per engine configuration
(classic, xfuse, uring, a05). The fixture mounts a private tmpfs, starts
`valorfs-fuse -f --backend=passthrough:SRC MNT` on it, and on teardown
checks that the daemon stops cleanly, logged no error and produced no
sanitizer report. Nothing is left mounted or running, even on failure.
`disk_vfs` is the same over an ext4 image (loop device) as backing dir.

Environment:
  VALORFS_FUSE               the daemon (default <repo>/build/src/tools/valorfs-fuse)
  VALORFS_SANITIZER_LOG_DIR  a new file there (an ASan/UBSan/TSan report) fails the test
  VALORFS_TEST_TIMEOUT       seconds before a hung test's connection is aborted (45)

The test modules import the helpers below with `from conftest import ...`
(pytest puts this directory on sys.path).
"""
import atexit
import contextlib
import ctypes
import os
import pickle
import resource
import select
import signal
import subprocess
import tempfile
import threading
import time
import traceback
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BINARY = os.environ.get("VALORFS_FUSE", str(REPO / "build" / "src" / "tools" / "valorfs-fuse"))
URING_PARAM = Path("/sys/module/fuse/parameters/enable_uring")
SANITIZER_DIR = os.environ.get("VALORFS_SANITIZER_LOG_DIR")
# A hung FUSE request would block the whole run; past this many seconds the
# watchdog aborts the connection so the test fails instead of hanging.
TEST_TIMEOUT = float(os.environ.get("VALORFS_TEST_TIMEOUT", "45"))
# After this many hangs in one configuration its remaining tests fail at
# once, so a broken transport cannot stretch the run to hours.
MAX_HANGS = 2

CONFIGS = {
    "classic": ["--transport=classic"],
    "xfuse": ["--transport=xfuse"],
    # the engine's FUSE-over-io_uring transport itself: under the keeper
    # (the default) uring falls back to xfuse, see test_upgrade.py
    "uring": ["--transport=uring", "--no-keeper"],
    "a05": ["--transport=xfuse", "--classic-share=0.5", "--threads=2"],
}

# VALORFS_TEST_BACKEND=cluster runs the same battery on a real cluster
# (mgmtd, meta, 3 storage servers, chains of 3) started once with
# `valorfs up`; each test gets a fresh directory of that mount.
BACKEND = os.environ.get("VALORFS_TEST_BACKEND", "passthrough")
CLI = os.environ.get("VALORFS_CLI", str(REPO / "build" / "src" / "tools" / "valorfs"))
if BACKEND == "cluster":
    CONFIGS = {"cluster": []}

# Same umask for the mount and the reference run, whatever the caller has.
os.umask(0o022)

libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


# ---------------------------------------------------------------- mounts

def _unescape(field):
    """/proc/self/mountinfo escapes space, tab, newline and backslash as \\ooo."""
    out, i = [], 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_entry(path):
    """(major:minor, fstype) of the topmost mount at path, or None. Never
    touches path itself: a hung FUSE mount must not hang the check."""
    path = os.path.abspath(path)
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields = pre.split()
            if _unescape(fields[4]) == path:
                found = (fields[2], post.split()[0])
    return found


def mounts_below(root):
    root = os.path.abspath(root) + "/"
    with open("/proc/self/mountinfo") as f:
        return {p for p in (_unescape(line.split()[4]) for line in f) if p.startswith(root)}


def is_mounted(path):
    return mount_entry(path) is not None


def fuse_conn_id(path):
    ent = mount_entry(path)
    if ent and ent[1].startswith("fuse"):
        return int(ent[0].split(":")[1])
    return None


def abort_connection(mnt):
    """Abort the FUSE connection at mnt: blocked syscalls return ENOTCONN,
    so a hung test fails instead of hanging."""
    conn = fuse_conn_id(mnt)
    if conn is not None:
        try:
            Path(f"/sys/fs/fuse/connections/{conn}/abort").write_text("1")
        except OSError:
            pass


def umount(path):
    """Unmount path; fall back to a lazy unmount if it is busy."""
    if not is_mounted(path):
        return
    if subprocess.run(["umount", path], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", path], capture_output=True)


class Scratch:
    """A private tmpfs: each test starts on an empty, identical file system."""

    def __init__(self, size="8g"):
        self.root = tempfile.mkdtemp(prefix="vfs-posix-", dir="/tmp")
        try:
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                            self.root], check=True, capture_output=True)
        except BaseException:
            os.rmdir(self.root)
            raise
        _live_scratch.add(self)

    def close(self):
        # whatever is still mounted below (a FUSE mount, a loop-mounted
        # image) goes first, deepest first
        for path in sorted(mounts_below(self.root), key=len, reverse=True):
            umount(path)
        for _ in range(20):
            if not is_mounted(self.root):
                break
            if subprocess.run(["umount", self.root], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", self.root], capture_output=True)
        try:
            os.rmdir(self.root)
        except OSError:
            pass
        _live_scratch.discard(self)


# ---------------------------------------------------------------- daemon

def _die_with_parent():
    # If pytest itself dies, the daemon gets SIGTERM and unmounts.
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Daemon:
    """One valorfs-fuse process serving src at mnt, stderr in log."""

    def __init__(self, src, mnt, log, args, nofile=None):
        self.src, self.mnt, self.log = str(src), str(mnt), str(log)
        self.args = list(args)
        self.nofile = nofile  # soft RLIMIT_NOFILE to start the daemon with
        self.proc = None
        self.hung = False
        self.timeout = TEST_TIMEOUT
        self._timer = None

    def cmdline(self):
        return [BINARY, "-f", *self.args, f"--backend=passthrough:{self.src}", self.mnt]

    def start(self, timeout=10.0):
        def preexec():
            _die_with_parent()
            if self.nofile is not None:
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, hard))

        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(self.cmdline(), stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=logf, preexec_fn=preexec)
        _live_daemons.add(self)
        self.arm_watchdog(TEST_TIMEOUT)  # from the start: the first request may hang
        deadline = time.monotonic() + timeout
        while not is_mounted(self.mnt):
            if self.proc.poll() is not None:
                raise AssertionError(f"valorfs-fuse exited with {self.proc.returncode} before "
                                     f"mounting; log:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.mnt} not in /proc/mounts after {timeout}s; "
                                     f"log:\n{self.log_text()}")
            time.sleep(0.01)

    def arm_watchdog(self, seconds):
        if self._timer:
            self._timer.cancel()
        self.timeout = seconds
        self._timer = threading.Timer(seconds, self._watchdog)
        self._timer.daemon = True
        self._timer.start()

    def _watchdog(self):
        self.hung = True
        abort_connection(self.mnt)
        if self.proc.poll() is None:
            self.proc.kill()

    def log_text(self):
        try:
            return Path(self.log).read_text(errors="replace")
        except OSError:
            return ""

    def wait_log(self, text, timeout=5.0):
        """The log once it contains text (lines written after the daemon
        started serving may lag behind the first replies)."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log_text()) and time.monotonic() < deadline:
            time.sleep(0.01)
        return log

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Stop the daemon; return a list of problems (empty when clean)."""
        problems = []
        if self._timer:
            self._timer.cancel()
        if self.proc is None:
            return problems
        if self.hung:
            problems.append(f"watchdog: test ran longer than {self.timeout}s, connection aborted")
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
            if rc != 0 and not self.hung:
                problems.append(f"valorfs-fuse exited with {rc} after {signal.Signals(sig).name}")
        except subprocess.TimeoutExpired:
            problems.append(f"valorfs-fuse still running {timeout}s after "
                            f"{signal.Signals(sig).name}; killed")
            self.proc.kill()
            self.proc.wait()
        if is_mounted(self.mnt):
            problems.append(f"{self.mnt} still mounted after the daemon exited")
            umount(self.mnt)
        _live_daemons.discard(self)
        return problems


_live_daemons = set()
_live_scratch = set()


def _on_sigterm(signum, frame):
    # e.g. timeout(1): unwind like Ctrl-C, so fixtures and atexit clean up
    raise KeyboardInterrupt


signal.signal(signal.SIGTERM, _on_sigterm)


@atexit.register
def _cleanup_everything():
    # Last resort (e.g. Ctrl-C in the middle of a test).
    for d in list(_live_daemons):
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
        umount(d.mnt)
    for s in list(_live_scratch):
        s.close()


def sanitizer_reports():
    if not SANITIZER_DIR or not os.path.isdir(SANITIZER_DIR):
        return set()
    return set(os.listdir(SANITIZER_DIR))


def sanitizer_problems(before):
    new = sorted(sanitizer_reports() - before)
    out = []
    for name in new:
        text = Path(SANITIZER_DIR, name).read_text(errors="replace")
        out.append(f"sanitizer report {name}:\n{text[:4000]}")
    return out


def log_errors(text):
    return [line for line in text.splitlines() if "level=error" in line]


# ---------------------------------------------------------------- fixture

class Vfs:
    """What a test gets: the backing dir, the mount, the daemon log, and a
    reference dir on the same plain tmpfs for running the same operations."""

    def __init__(self, config, scratch, log, disk=False):
        root = Path(scratch.root)
        self.config = config
        self.scratch = scratch
        self.src = root / "src"
        self.mnt = root / "mnt"
        self.ref = root / "ref"
        self.log = Path(log)
        for d in (self.src, self.mnt, self.ref):
            d.mkdir()
        self.disk = None
        if disk:
            # ext4 in a loop-mounted image: unlike tmpfs, the passthrough
            # moves this data through the channel's io_uring
            img = root / "ext4.img"
            with open(img, "wb") as f:
                f.truncate(1 << 30)
            subprocess.run(["mkfs.ext4", "-q", "-F", str(img)], check=True, capture_output=True)
            subprocess.run(["mount", "-o", "loop", str(img), str(self.src)], check=True,
                           capture_output=True)
            self.disk = self.src
            (self.src / "lost+found").rmdir()
        self.daemon = Daemon(self.src, self.mnt, self.log, CONFIGS[config])

    def log_text(self):
        return self.daemon.log_text()


@contextlib.contextmanager
def uring_param(value):
    """Set /sys/module/fuse/parameters/enable_uring for a while (it is read
    at mount time); skip if the kernel has no FUSE-over-io_uring."""
    if not URING_PARAM.exists():
        pytest.skip(f"{URING_PARAM} does not exist: this kernel has no FUSE-over-io_uring")
    saved = URING_PARAM.read_text().strip()
    URING_PARAM.write_text(value)
    try:
        yield
    finally:
        URING_PARAM.write_text(saved)


@pytest.fixture(params=list(CONFIGS))
def vfs(request, tmp_path):
    if BACKEND == "cluster":
        yield from _serve_cluster(request, tmp_path)
        return
    with contextlib.ExitStack() as stack:
        if request.param == "uring":
            stack.enter_context(uring_param("Y"))
        yield from _serve(request.param, tmp_path)


@pytest.fixture(params=list(CONFIGS))
def disk_vfs(request, tmp_path):
    """Like vfs, but the backing dir is an ext4 file system (loop device)."""
    if BACKEND == "cluster":
        pytest.skip("passthrough only: the cluster's storage targets are its disks")
    with contextlib.ExitStack() as stack:
        if request.param == "uring":
            stack.enter_context(uring_param("Y"))
        yield from _serve(request.param, tmp_path, disk=True)


_hangs = {}


def _serve(config, tmp_path, disk=False):
    if _hangs.get(config, 0) >= MAX_HANGS:
        pytest.fail(f"not run: {config} already hung in {MAX_HANGS} tests", pytrace=False)
    san_before = sanitizer_reports()
    problems = []
    scratch = Scratch()
    v = None
    try:
        v = Vfs(config, scratch, tmp_path / f"valorfs-{config}.log", disk)
        v.daemon.start()
        os.stat(v.mnt)  # the first request: INIT is done and logged after it
        if config == "uring":
            assert "io_uring=on" in v.log_text(), \
                f"uring requested but the ring is not in use; log:\n{v.log_text()}"
        yield v
    finally:
        try:
            if v is not None and v.daemon.proc is not None:
                problems += v.daemon.stop()
                _hangs[config] = _hangs.get(config, 0) + v.daemon.hung
        finally:
            scratch.close()  # also unmounts the ext4 image (and frees its loop device)
    if v is not None:
        problems += [f"daemon logged an error: {line}" for line in log_errors(v.log_text())]
    problems += sanitizer_problems(san_before)
    if problems:
        tail = "\n".join(v.log_text().splitlines()[-30:]) if v else ""
        pytest.fail("\n".join(problems) + f"\n--- daemon log (tail) ---\n{tail}", pytrace=False)


@pytest.fixture
def scratch():
    """A bare private tmpfs (for tests that start daemons themselves)."""
    s = Scratch()
    try:
        yield Path(s.root)
    finally:
        s.close()


# ---------------------------------------------------------------- children

class Child:
    """fn(*args) run in a forked child, optionally as another uid/gid.

    join() returns fn's result; an OSError in the child is raised again
    with the same errno, anything else becomes an AssertionError with the
    child's traceback."""

    def __init__(self, fn, *args, uid=None, gid=None, groups=()):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                try:
                    if gid is not None:
                        os.setgroups(list(groups))
                        os.setresgid(gid, gid, gid)
                    if uid is not None:
                        os.setresuid(uid, uid, uid)
                    res = ("ok", fn(*args))
                except OSError as e:
                    res = ("oserror", e.errno, str(e))
                except BaseException:
                    res = ("exc", traceback.format_exc())
                data = pickle.dumps(res)
                while data:
                    data = data[os.write(w, data):]
            finally:
                os._exit(0)
        os.close(w)
        self.pid, self.fd = pid, r

    def join(self, timeout=60.0):
        chunks, deadline = [], time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                    os.kill(self.pid, signal.SIGKILL)
                    raise AssertionError(f"child {self.pid} did not finish within {timeout}s")
                chunk = os.read(self.fd, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(self.fd)
            os.waitpid(self.pid, 0)
        if not chunks:
            raise AssertionError(f"child {self.pid} died without a result")
        res = pickle.loads(b"".join(chunks))
        if res[0] == "ok":
            return res[1]
        if res[0] == "oserror":
            raise OSError(res[1], res[2])
        raise AssertionError("child failed:\n" + res[1])


def in_child(fn, *args, uid=None, gid=None, groups=(), timeout=60.0):
    return Child(fn, *args, uid=uid, gid=gid, groups=groups).join(timeout)


# ---------------------------------------------------------------- cluster

@pytest.fixture
def no_sanitizer_reports():
    """Fails the test when a sanitizer report appeared while it ran (a
    module opts in with pytest.mark.usefixtures("no_sanitizer_reports"))."""
    before = sanitizer_reports()
    yield
    problems = sanitizer_problems(before)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def free_base_port(span=40, lo=20000, hi=60000):
    """A base port in [lo, hi) with base..base+span all free on 127.0.0.1
    (every test cluster gets its own range, so two clusters never share a
    port)."""
    import random
    import socket
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(lo, hi - span)
        socks = []
        try:
            for p in range(base, base + span):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError(f"no free port range in {lo}..{hi} on 127.0.0.1")


class Cluster:
    """One `valorfs up` cluster for the whole session, on a private tmpfs."""

    def __init__(self, port=None, extra=()):
        self.scratch = Scratch(size="12g")
        root = Path(self.scratch.root)
        self.data, self.mnt = root / "data", root / "mnt"
        self.mnt.mkdir()
        # (a fixed port could collide with another test cluster); up to P+43 with
        # --mgmtds (P+20+i) and local etcd members (P+30+i, P+40+i)
        port = free_base_port(span=50)
        out = subprocess.run([CLI, "up", f"--data={self.data}", f"--mount={self.mnt}",
                              f"--base-port={port}", "--lease-ms=20000", *extra,
                              *os.environ.get("VALORFS_CLUSTER_UP_ARGS", "").split()],
                             capture_output=True, text=True, timeout=180)
        if out.returncode != 0:
            logs = self.logs_tail()
            self.close()
            raise AssertionError(f"valorfs up failed ({out.returncode}):\n{out.stdout}\n"
                                 f"{out.stderr}\n{logs}")
        self.mgmtd = f"127.0.0.1:{port}"
        self.count = 0
        _live_scratch.discard(self.scratch)  # closed by close(), after `down`

    def logs(self):
        return sorted((self.data / "log").glob("*.log"))

    def logs_tail(self, n=15):
        out = []
        for p in self.logs():
            lines = p.read_text(errors="replace").splitlines()[-n:]
            out.append(f"--- {p.name} ---\n" + "\n".join(lines))
        return "\n".join(out)

    def log_text(self):
        return "\n".join(p.read_text(errors="replace") for p in self.logs())

    def dead_daemons(self):
        """Names of the daemons `valorfs up` started that are gone."""
        dead = []
        for pidfile in sorted((self.data / "run").glob("*.pid")):
            pid = int(pidfile.read_text().split()[0])
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] in "ZX":
                        dead.append(pidfile.stem)
            except OSError:
                dead.append(pidfile.stem)
        return dead

    def close(self):
        subprocess.run([CLI, "down", f"--data={self.data}", "--force"], capture_output=True,
                       timeout=120)
        self.scratch.close()


_cluster = None


def cluster():
    global _cluster
    if _cluster is None:
        _cluster = Cluster()
    return _cluster


@atexit.register
def _stop_cluster():
    if _cluster is not None:
        _cluster.close()


class ClusterVfs:
    """The Vfs interface over a directory of the shared cluster mount: the
    mount is its own backing tree (src == mnt)."""

    def __init__(self, c, scratch, name):
        self.config = "cluster"
        self.scratch = scratch
        self.cluster = c
        self.mnt = c.mnt / name
        self.mnt.mkdir()
        self.src = self.mnt
        self.ref = Path(scratch.root) / "ref"
        self.ref.mkdir()
        self.log = c.data / "log" / "fuse.log"
        self.disk = None
        self.daemon = None

    def log_text(self):
        return self.cluster.log_text()


def _serve_cluster(request, tmp_path):
    c = cluster()
    if c.dead_daemons():
        pytest.fail(f"cluster daemons died earlier: {c.dead_daemons()}", pytrace=False)
    c.count += 1
    san_before = sanitizer_reports()
    errors_before = len(log_errors(c.log_text()))
    scratch = Scratch()
    try:
        yield ClusterVfs(c, scratch, f"t{c.count}-{request.node.name[:60]}".replace("/", "_"))
    finally:
        scratch.close()
    problems = [f"a cluster daemon logged an error: {line}"
                for line in log_errors(c.log_text())[errors_before:]]
    problems += [f"cluster daemon {name} died during the test" for name in c.dead_daemons()]
    problems += sanitizer_problems(san_before)
    if problems:
        pytest.fail("\n".join(problems) + f"\n{c.logs_tail()}", pytrace=False)
