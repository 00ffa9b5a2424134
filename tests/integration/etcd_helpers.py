"""Helpers for the etcd tests (test_etcd.py): find the daemons `valorfs up`
started (pid files in DATA/run), kill and restart them with their own
command line, ask etcd who leads, poll mgmtd for who acts as primary, and
a metadata load loop that runs in its own process and records every call.

Run as a script, this file is that load loop:
    python3 etcd_helpers.py load DIR STOPFILE OUTFILE [keep]
It writes one JSON line per call to OUTFILE, flushed at once:
    {"t": start, "dt": seconds, "op": "create", "name": "f12", "errno": 0}
and a {"begin": ...} line before each call, so a call that never returns
shows as a begin without its result.
"""
import errno
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

ETCD = shutil.which("etcd")
ETCDCTL = shutil.which("etcdctl")


def etcd_installed():
    return ETCD is not None and ETCDCTL is not None


# ------------------------------------------------------------ processes

def proc_alive(pid):
    """True while pid runs (a zombie counts as dead: pid 1 may not reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except (OSError, IndexError):
        return False


def proc_cmdline(pid):
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]


def wait_dead(pid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while proc_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def arg_value(argv, name):
    """The value of --name=V or --name V in argv (None when absent)."""
    for i, a in enumerate(argv):
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
        if a == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
    return None


class Daemon:
    """One daemon `valorfs up` started: its pid file, pid, command line, cwd,
    environment and log (its stdout), read from /proc while it runs so it
    can be started again exactly the same way after a kill -9."""

    def __init__(self, pidfile):
        self.pidfile = Path(pidfile)
        self.name = self.pidfile.stem
        self.pid = int(self.pidfile.read_text().split()[0])
        self.argv = proc_cmdline(self.pid)
        if not self.argv:
            raise AssertionError(f"{self.name} (pid {self.pid}) is not running")
        self.cwd = os.readlink(f"/proc/{self.pid}/cwd")
        self.log = os.readlink(f"/proc/{self.pid}/fd/1")
        raw = Path(f"/proc/{self.pid}/environ").read_bytes()
        self.env = dict(kv.split("=", 1) for kv in raw.decode(errors="replace").split("\0")
                        if "=" in kv)

    @property
    def exe(self):
        return os.path.basename(self.argv[0])

    def alive(self):
        return proc_alive(self.pid)

    def kill(self, sig=signal.SIGKILL, timeout=10.0):
        if self.alive():
            os.kill(self.pid, sig)
        if not wait_dead(self.pid, timeout):
            raise AssertionError(f"{self.name} (pid {self.pid}) still runs {timeout}s after "
                                 f"{signal.Signals(sig).name}")

    def start(self, extra=()):
        """Start it again with the same command line (plus extra), detached
        the way `valorfs up` does (own session, reparented to init, stdout
        and stderr appended to its log), and point its pid file at it."""
        argv = [*self.argv, *extra]
        r, w = os.pipe()
        mid = os.fork()
        if mid == 0:
            try:
                os.close(r)
                os.setsid()
                pid = os.fork()
                if pid == 0:
                    try:
                        os.chdir(self.cwd)
                        null = os.open("/dev/null", os.O_RDONLY)
                        out = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                        os.dup2(null, 0)
                        os.dup2(out, 1)
                        os.dup2(out, 2)
                        os.closerange(3, 65536)
                        os.execve(argv[0], argv, self.env)
                    finally:
                        os._exit(127)
                os.write(w, struct.pack("<i", pid))
            finally:
                os._exit(0)
        os.close(w)
        data = os.read(r, 4)
        os.close(r)
        os.waitpid(mid, 0)
        assert len(data) == 4, f"could not start {self.name} again"
        self.pid = struct.unpack("<i", data)[0]
        self.argv = argv
        self.pidfile.write_text(f"{self.pid}\n")
        return self.pid


def daemons(data, exe_suffix):
    """The running daemons of the cluster in data whose binary name ends
    with exe_suffix ("etcd", "valorfs-mgmtd", "valorfs-meta"), by pid file
    name."""
    out = []
    for pf in sorted(Path(data, "run").glob("*.pid")):
        try:
            pid = int(pf.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        argv = proc_cmdline(pid)
        if argv and os.path.basename(argv[0]).endswith(exe_suffix) and proc_alive(pid):
            out.append(Daemon(pf))
    return out


def processes_mentioning(text):
    """(pid, argv) of every live process whose command line contains text."""
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid():
            argv = proc_cmdline(int(d))
            if any(text in a for a in argv) and proc_alive(int(d)):
                found.append((int(d), argv))
    return found


# ------------------------------------------------------------ etcd

class EtcdMember(Daemon):
    @property
    def client_url(self):
        url = arg_value(self.argv, "advertise-client-urls") or \
            arg_value(self.argv, "listen-client-urls")
        assert url, f"etcd member {self.name} has no client URL in {self.argv}"
        return url.split(",")[0]

    @property
    def member_name(self):
        return arg_value(self.argv, "name") or self.name


def etcd_members(data):
    members = [EtcdMember(d.pidfile) for d in daemons(data, "etcd")]
    return sorted(members, key=lambda m: m.client_url)


def etcdctl(endpoints, *args, timeout=10.0):
    return subprocess.run([ETCDCTL, f"--endpoints={','.join(endpoints)}",
                           "--dial-timeout=2s", "--command-timeout=3s", *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "ETCDCTL_API": "3"})


def endpoint_status(endpoints):
    """{endpoint: status dict} of the endpoints that answer."""
    out = etcdctl(endpoints, "endpoint", "status", "-w", "json")
    start = out.stdout.find("[")
    if start < 0:
        return {}
    try:
        items = json.loads(out.stdout[start:])
    except ValueError:
        return {}
    return {it["Endpoint"]: it["Status"] for it in items}


def leader(members, timeout=15.0):
    """The member that leads, once every live member agrees on one."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        live = [m for m in members if m.alive()]
        st = endpoint_status([m.client_url for m in live])
        last = st
        leaders = {s.get("leader", 0) for s in st.values()}
        if len(st) == len(live) and len(leaders) == 1 and 0 not in leaders:
            lead = leaders.pop()
            for m in live:
                if st[m.client_url]["header"]["member_id"] == lead:
                    return m
        time.sleep(0.2)
    raise AssertionError(f"no agreed etcd leader within {timeout}s; status: {last}")


def wait_rejoined(member, members, timeout=30.0):
    """member answers, follows the same leader as the others and has caught
    up with the leader's raft index."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        st = endpoint_status([m.client_url for m in members if m.alive()])
        last = st
        mine = st.get(member.client_url)
        if mine and len(st) == len(members):
            leaders = {s.get("leader", 0) for s in st.values()}
            lead = next((s for s in st.values() if s["header"]["member_id"] in leaders), None)
            if len(leaders) == 1 and 0 not in leaders and lead and \
                    mine.get("raftIndex", 0) >= lead.get("raftIndex", 0) - 50:
                return
        time.sleep(0.25)
    raise AssertionError(f"etcd member {member.member_name} ({member.client_url}) did not "
                         f"rejoin within {timeout}s; status: {last}")


def closed_port():
    """A port on 127.0.0.1 nothing listens on (bound then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ------------------------------------------------------------ mgmtd

RPC_MAGIC = 0x43505256
MG_GET_ROUTING, MG_WHO_PRIMARY = 0x0103, 0x0106
VF_E_NOT_PRIMARY = 1002


def rpc(addr, method, payload, timeout=1.0):
    """One call on a fresh connection: (status, payload)."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack("<IBBHQiIII", RPC_MAGIC, 1, 1, method, 9, 0,
                              int(timeout * 1000), len(payload), 0) + payload)
        hdr = _recv(s, 32)
        magic, ver, kind, meth, rid, status, _, plen, _ = struct.unpack("<IBBHQiIII", hdr)
        assert (magic, ver, kind, meth, rid) == (RPC_MAGIC, 1, 2, method, 9)
        return status, _recv(s, plen)


def _recv(s, n):
    buf = b""
    while len(buf) < n:
        part = s.recv(n - len(buf))
        if not part:
            raise ConnectionError("connection closed")
        buf += part
    return buf


def mgmtd_acting(addr):
    """True if the mgmtd at addr serves as primary (answers a routing fetch),
    False if it refuses as a standby, None if it does not answer."""
    try:
        st, _ = rpc(addr, MG_GET_ROUTING, struct.pack("<Q", (1 << 64) - 1))
    except (OSError, ConnectionError, AssertionError):
        return None
    if st == 0:
        return True
    if st == VF_E_NOT_PRIMARY:
        return False
    return None


# ------------------------------------------------------------ load loop

def _record(out, **kw):
    out.write(json.dumps(kw) + "\n")
    out.flush()


def _call(out, op, name, fn):
    t = time.time()
    _record(out, begin=op, name=name, t=t)
    try:
        res = fn()
        err = 0
    except OSError as e:
        res, err = None, e.errno
    _record(out, t=t, dt=time.time() - t, op=op, name=name, errno=err)
    return err, res


def load_loop(d, stop, outfile, keep=False):
    """Metadata operations in d until the file stop exists. Each round i:
    create f<i> (O_EXCL) with a line of content, stat it, rename it to g<i>,
    stat g<i>, list d, and unlink g<i> (odd rounds with keep: the file stays,
    so a later check can see what each rename left). A round stops at its
    first failed call; every call is recorded."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    i = 0
    with open(outfile, "a") as out:
        while not os.path.exists(stop):
            f, g = d / f"f{i}", d / f"g{i}"

            def create():
                fd = os.open(f, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                try:
                    os.write(fd, f"round {i}\n".encode())
                finally:
                    os.close(fd)
            steps = [("create", f.name, create),
                     ("stat", f.name, lambda: os.stat(f)),
                     ("rename", f.name, lambda: os.rename(f, g)),
                     ("stat", g.name, lambda: os.stat(g)),
                     ("readdir", d.name, lambda: os.listdir(d))]
            if not (keep and i % 2):
                steps.append(("unlink", g.name, lambda: os.unlink(g)))
            for op, name, fn in steps:
                if _call(out, op, name, fn)[0]:
                    break
            i += 1


def read_results(outfile):
    """(results, unfinished begin or None) from a load loop's output."""
    results, pending = [], None
    with open(outfile) as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a torn last line of a killed loop
            if "begin" in rec:
                pending = rec
            else:
                results.append(rec)
                pending = None
    return results, pending


class LoadLoop:
    """load_loop in its own process (python3 this-file load ...)."""

    def __init__(self, d, workdir, keep=False):
        self.stopfile = Path(workdir) / f"stop-{os.getpid()}-{time.monotonic_ns()}"
        self.outfile = Path(workdir) / f"load-{time.monotonic_ns()}.jsonl"
        self.outfile.write_text("")
        self.proc = subprocess.Popen([sys.executable, __file__, "load", str(d), str(self.stopfile),
                                      str(self.outfile), "keep" if keep else ""],
                                     stdin=subprocess.DEVNULL)

    def results(self):
        return read_results(self.outfile)[0]

    def count(self):
        return len(self.results())

    def wait_progress(self, n, timeout=30.0):
        """Wait until n more calls finished."""
        start = self.count()
        deadline = time.monotonic() + timeout
        while self.count() < start + n:
            if self.proc.poll() is not None:
                raise AssertionError(f"the load loop exited ({self.proc.returncode})")
            if time.monotonic() > deadline:
                raise AssertionError(f"the load loop made {self.count() - start} of {n} calls "
                                     f"in {timeout}s; last: {read_results(self.outfile)[1]}")
            time.sleep(0.05)

    def stop(self, timeout=30.0):
        """Stop and return (results, call still pending or None). A loop
        stuck in a call is killed after timeout."""
        self.stopfile.write_text("")
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        finally:
            try:
                self.stopfile.unlink()
            except OSError:
                pass
        return read_results(self.outfile)


def failures(results):
    return [r for r in results if r["errno"]]


def describe(recs, limit=20):
    return "\n".join(f"  t={r['t']:.3f} dt={r['dt']:.3f}s {r['op']} {r['name']}: "
                     f"{errno.errorcode.get(r['errno'], r['errno'])}" for r in recs[:limit])


if __name__ == "__main__" and len(sys.argv) >= 5 and sys.argv[1] == "load":
    import ctypes
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: never outlive the test
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    load_loop(sys.argv[2], sys.argv[3], sys.argv[4], keep=len(sys.argv) > 5 and
              sys.argv[5] == "keep")
