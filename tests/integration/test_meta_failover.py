"""meta failover without a failed or doubled call (issue 6, item 5).

`valorfs up --kv=etcd --metas=2` (short leases) with a valorfs-fuse mount;
two metadata loops (tests/upgrade/load.py `meta`: O_EXCL creates, renames,
mkdir/rmdir, unlinks, each checked against a model, so a call applied twice
shows up as EEXIST/ENOENT or a listing mismatch) run in the mount while the
meta server the client is talking to is killed with SIGKILL at a random
moment, three times, and started again in between. The client resends the
calls that were in flight to the other meta server with their request ids;
meta answers a resend of an applied call from its de-duplication record.

Pass: zero failed calls in the loops, their models match the file system,
and every call finishes well inside the client's call deadline.

Environment (besides conftest's): VALORFS_CLI (the `valorfs` tool),
VALORFS_META_FAILOVER_KILLS (kills, default 3; each adds ~4 s).
Skipped when etcd is not installed. Ports: a base in 25000..25949.
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CLI, REPO, Scratch, free_base_port, is_mounted
from etcd_helpers import daemons, etcd_installed, processes_mentioning

pytestmark = [pytest.mark.skipif(not etcd_installed(), reason="etcd/etcdctl not installed"),
              pytest.mark.usefixtures("no_sanitizer_reports")]

LOAD = REPO / "tests" / "upgrade" / "load.py"
KILLS = int(os.environ.get("VALORFS_META_FAILOVER_KILLS", "3"))
LEASE_MS = 3000
PORT_LO, PORT_HI, PORT_SPAN = 25000, 25999, 50
LOOPS = 2


class FailoverCluster:
    """valorfs up: 1 etcd member, 1 mgmtd, 2 meta servers, storage, a mount."""

    def __init__(self):
        self.scratch = Scratch(size="4g")
        root = Path(self.scratch.root)
        self.data, self.mnt = root / "data", root / "mnt"
        self.mnt.mkdir()
        self.port = free_base_port(span=PORT_SPAN, lo=PORT_LO, hi=PORT_HI)
        self.mgmtd = f"127.0.0.1:{self.port}"
        out = subprocess.run([CLI, "up", f"--data={self.data}", f"--mount={self.mnt}",
                              f"--base-port={self.port}", f"--lease-ms={LEASE_MS}",
                              "--kv=etcd", "--metas=2", "--kv-sync=none",
                              "--meta-opt=--log-level=debug"],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            tail = self.logs_tail()
            self.close()
            raise AssertionError(f"valorfs up failed ({out.returncode}):\n{out.stdout}\n"
                                 f"{out.stderr}\n{tail}")

    def logs(self):
        return sorted((self.data / "log").glob("*.log"))

    def logs_tail(self, n=15):
        out = []
        for p in self.logs():
            lines = p.read_text(errors="replace").splitlines()[-n:]
            out.append(f"--- {p.name} ---\n" + "\n".join(lines))
        return "\n".join(out)

    def status(self):
        out = subprocess.run([CLI, "status", "--json", f"--mgmtd={self.mgmtd}"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, f"valorfs status failed: {out.stderr}"
        return json.loads(out.stdout)

    def alive_metas(self):
        return sorted(n["addr"] for n in self.status()["nodes"]
                      if n["type"] == "meta" and n["alive"])

    def close(self):
        subprocess.run([CLI, "down", f"--data={self.data}", "--force"], capture_output=True,
                       timeout=120)
        self.scratch.close()


@pytest.fixture(scope="module")
def cluster():
    c = FailoverCluster()
    try:
        yield c
    finally:
        c.close()



def listen_port(meta):
    addr = next(a.split("=", 1)[1] for a in meta.argv if a.startswith("--listen="))
    return int(addr.rsplit(":", 1)[1])


def client_meta_ports(mnt):
    """Ports of the meta servers the mount's daemon has connections to."""
    pids = {pid for pid, argv in processes_mentioning(str(mnt))
            if os.path.basename(argv[0]) == "valorfs-fuse"}
    out = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True,
                         text=True, timeout=10).stdout
    ports = set()
    for line in out.splitlines():
        if any(f"pid={p}," in line for p in pids):
            ports.add(int(line.split()[3].rsplit(":", 1)[1]))
    return ports


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout}s")


class MetaLoop:
    """tests/upgrade/load.py meta DIR OUT in its own process."""

    def __init__(self, d, out):
        self.out = Path(out)
        self.proc = subprocess.Popen([sys.executable, str(LOAD), "meta", str(d), str(out)],
                                     stdin=subprocess.DEVNULL)

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            beat = Path(str(self.out) + ".beat")
            raise AssertionError(f"the metadata loop hung; last call: "
                                 f"{beat.read_text(errors='replace').strip()}")
        assert self.proc.returncode == 0, f"the metadata loop exited {self.proc.returncode}"
        return json.loads(self.out.read_text())


def test_kill_meta_under_load_no_failed_or_doubled_call(cluster, tmp_path):
    c = cluster
    wait_until(lambda: len(c.alive_metas()) == 2, 30, "two meta servers alive")
    metas = {listen_port(m): m for m in daemons(c.data, "valorfs-meta")}
    assert len(metas) == 2, f"expected 2 meta daemons, found {sorted(metas)}"
    replays_before = sum(p.read_text(errors="replace").count("answered a retry from its record")
                         for p in c.logs() if p.name.startswith("meta"))
    rng = random.Random()
    loops = [MetaLoop(c.mnt / f"load{k}", tmp_path / f"load{k}.json") for k in range(LOOPS)]
    kills = []
    try:
        time.sleep(1.5)
        for k in range(KILLS):
            # the meta server the client uses now (it may hold both)
            used = client_meta_ports(c.mnt) & set(metas)
            port = rng.choice(sorted(used)) if used else rng.choice(sorted(metas))
            victim = metas[port]
            time.sleep(rng.uniform(0.2, 1.5))  # a random moment in the loops' calls
            victim.kill(signal.SIGKILL)
            kills.append((port, time.time()))
            # the loops go on through the other server
            time.sleep(rng.uniform(1.0, 2.5))
            assert all(lp.proc.poll() is None for lp in loops), "a metadata loop died"
            victim.start()
            wait_until(lambda: len(c.alive_metas()) == 2, 30,
                       f"the restarted meta server on port {port} is not alive again")
            time.sleep(1.0)
    finally:
        results = []
        errors = []
        for lp in loops:
            try:
                results.append(lp.stop())
            except AssertionError as e:
                errors.append(str(e))
    assert not errors, "\n".join(errors) + "\n" + c.logs_tail()
    failed = [f for r in results for f in r["failures"]]
    assert not failed, (f"{len(failed)} failed calls after kills at "
                        f"{[(p, round(t, 3)) for p, t in kills]}:\n" +
                        "\n".join(json.dumps(f) for f in failed[:20]) + "\n" + c.logs_tail())
    total = sum(r["calls"] for r in results)
    assert total > 200, f"the loops made only {total} calls: the load did not run"
    assert all(r["iterations"] > 5 for r in results), results
    replays = sum(p.read_text(errors="replace").count("answered a retry from its record")
                  for p in c.logs() if p.name.startswith("meta")) - replays_before
    fuse_log = "\n".join(p.read_text(errors="replace") for p in c.logs()
                         if p.name.startswith("fuse"))
    assert "giving up" not in fuse_log, "the client gave up on a meta call"
    print(f"\nmeta failover: {KILLS} kills, {total} calls, "
          f"{sum(r['iterations'] for r in results)} iterations, {replays} resends answered "
          f"from a de-duplication record")
    assert is_mounted(c.mnt)
