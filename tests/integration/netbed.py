"""netbed — a valorfs cluster spread over simulated hosts on one machine.

Every simulated host is a network namespace with `lo` and one interface,
`eth0`, the end of a veth pair whose other end sits on a bridge in a
dedicated "switch" namespace. Nothing is added to the root namespace: the
hosts reach each other only through the switch, on a private /24
(10.231.<run>.0/24), and the switch has no address of its own.

    host m1    etcd (one member), mgmtd1, mgmtd2, meta1, meta2   10.231.R.10
    host s<i>  valorfs-storage, node 100+i, targets <node>*100+t 10.231.R.20+i
    host c1    valorfs-fuse --backend=cluster:<mgmtds>            10.231.R.100

Processes enter a host with `nsenter --net=/run/netns/NS`: only the network
namespace changes, so the FUSE mount made in c1 and every data directory
stay visible to the caller (`ip netns exec` would give them a private mount
namespace). Each service has its own data directory DATA/<host>/... and log
DATA/log/<host>-<service>.log.

Primitives: kill(host, service, sig), start(host, service), partition(host)
/ heal(host) (the host's veth end on the switch goes down / up: every
packet to and from the host is dropped, connections hang instead of being
reset, as when a cable is pulled), routing(), wait_* helpers, and
teardown(), which stops every process the bed started, unmounts, deletes
the namespaces and (if it made them) the data, whatever state a failed
setup left. The bed's state is kept in DATA/netbed.json so that
scripts/netbed (by hand) can find and stop a bed it started earlier.

Binaries (the same environment overrides as conftest.py):
  VALORFS_CLI      valorfs           (default <repo>/build/src/tools/valorfs)
  VALORFS_FUSE     valorfs-fuse      (default <repo>/build/src/tools/valorfs-fuse)
  VALORFS_MGMTD, VALORFS_META, VALORFS_STORAGE
                   the servers (default: src/<svc>/valorfs-<svc> of the
                   build tree VALORFS_CLI belongs to)
"""
import ctypes
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLI = os.environ.get("VALORFS_CLI", str(REPO / "build" / "src" / "tools" / "valorfs"))
FUSE = os.environ.get("VALORFS_FUSE", str(REPO / "build" / "src" / "tools" / "valorfs-fuse"))
_BUILD_SRC = Path(CLI).resolve().parent.parent
SERVERS = {svc: os.environ.get(f"VALORFS_{svc.upper()}",
                               str(_BUILD_SRC / svc / f"valorfs-{svc}"))
           for svc in ("mgmtd", "meta", "storage")}

MGMTD_PORT, META_PORT, STORAGE_PORT, ETCD_PORT, ETCD_PEER_PORT = 9000, 8200, 8300, 2379, 2380
STATE_FILE = "netbed.json"

_libc = ctypes.CDLL(None, use_errno=True)


def _pdeathsig():
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: the bed's owner died


def sh(*argv, check=True, timeout=30):
    """Run a command in the root namespace; its CompletedProcess."""
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} exited {p.returncode}: "
                           f"{p.stderr.strip() or p.stdout.strip()}")
    return p


def pid_alive(pid):
    """pid runs (not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in "ZX"


def pid_cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def is_mounted(path):
    path = os.path.abspath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


class BedError(AssertionError):
    pass


class Bed:
    """One multi-host cluster. Bed(...).up() builds it; teardown() removes it.

    data       directory for everything (created; removed by teardown when
               the bed created it and keep_data is false)
    tie        kill the services if the creating process dies (tests); off
               for scripts/netbed, whose services outlive the command
    """

    def __init__(self, data, storage_hosts=3, targets=2, replicas=3, mgmtds=2, metas=2,
                 lease_ms=4000, election_ms=500, primary_lease_ms=1500, log_level="info",
                 mount=True, fuse_args=("--no-keeper",), run=None, tie=True, keep_data=False,
                 storage_args=(), meta_args=(), mgmtd_args=()):
        self.data = Path(data).resolve()
        self.run = run if run is not None else os.getpid() % 200 + 20
        self.prefix = f"vfs{os.getpid()}"
        self.subnet = f"10.231.{self.run}"
        self.nstorage, self.ntargets, self.replicas = storage_hosts, targets, replicas
        self.nmgmtds, self.nmetas = mgmtds, metas
        self.lease_ms, self.election_ms, self.primary_lease_ms = (lease_ms, election_ms,
                                                                  primary_lease_ms)
        self.log_level = log_level
        self.want_mount = mount
        self.fuse_args = list(fuse_args)
        self.storage_args, self.meta_args, self.mgmtd_args = (list(storage_args),
                                                              list(meta_args), list(mgmtd_args))
        self.tie = tie
        self.keep_data = keep_data
        self.made_data = False
        self.hosts = {}       # name -> {"ns", "ip", "port"}  (port: the switch-side veth)
        self.services = {}    # "host/svc" -> {"argv", "log", "pid"}
        self.procs = {}       # "host/svc" -> Popen (only in the process that started it)
        self.switch = None
        self.mnt = self.data / "mnt"

    # ------------------------------------------------------------ naming

    @property
    def mgmtd_addrs(self):
        ip = self.hosts["m1"]["ip"] if "m1" in self.hosts else f"{self.subnet}.10"
        return ",".join(f"{ip}:{MGMTD_PORT + i}" for i in range(self.nmgmtds))

    def ns_path(self, host):
        return f"/run/netns/{self.hosts[host]['ns']}"

    def log_path(self, host, svc):
        return self.data / "log" / f"{host}-{svc}.log"

    def storage_hosts(self):
        return [f"s{i}" for i in range(1, self.nstorage + 1)]

    def node_of(self, host):
        return 100 + int(host[1:])

    def targets_of(self, host):
        node = self.node_of(host)
        return [node * 100 + t for t in range(1, self.ntargets + 1)]

    def target_dir(self, host, target):
        return self.data / host / f"t{target}"

    def host_of_target(self, target):
        return f"s{target // 100 - 100}"

    # ------------------------------------------------------------ state

    def save(self):
        state = {k: getattr(self, k) for k in (
            "run", "prefix", "subnet", "nstorage", "ntargets", "replicas", "nmgmtds", "nmetas",
            "lease_ms", "election_ms", "primary_lease_ms", "log_level", "want_mount",
            "fuse_args", "storage_args", "meta_args", "mgmtd_args", "hosts", "services",
            "switch", "made_data", "keep_data")}
        state["mnt"] = str(self.mnt)
        tmp = self.data / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.rename(self.data / STATE_FILE)

    @classmethod
    def load(cls, data):
        """The bed an earlier process (scripts/netbed up) started in data."""
        data = Path(data).resolve()
        state = json.loads((data / STATE_FILE).read_text())
        bed = cls.__new__(cls)
        bed.data = data
        bed.procs = {}
        bed.tie = False
        for k, v in state.items():
            setattr(bed, k, v)
        bed.mnt = Path(state["mnt"])
        bed.nstorage, bed.ntargets = state["nstorage"], state["ntargets"]
        return bed

    # ------------------------------------------------------------ network

    def _add_ns(self, name):
        sh("ip", "netns", "add", name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def build_network(self):
        if (Path("/run/netns") / f"{self.prefix}-sw").exists():
            raise BedError(f"namespace {self.prefix}-sw exists: another bed of this process "
                           f"is up; tear it down first")
        self.switch = f"{self.prefix}-sw"
        self._add_ns(self.switch)
        self.save()
        sh("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.switch, "link", "set", "br0", "up")
        plan = [("m1", 10)] + [(h, 20 + int(h[1:])) for h in self.storage_hosts()] + [("c1", 100)]
        for host, octet in plan:
            ns = f"{self.prefix}-{host}"
            self.hosts[host] = {"ns": ns, "ip": f"{self.subnet}.{octet}", "port": f"v-{host}"}
            self._add_ns(ns)
            self.save()
            # both ends are created inside their namespaces: the root
            # namespace never sees them, so names cannot collide there
            sh("ip", "-n", self.switch, "link", "add", f"v-{host}", "type", "veth",
               "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", self.switch, "link", "set", f"v-{host}", "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.subnet}.{octet}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        self.save()

    def partition(self, host):
        """Drop every packet to and from host (its switch port goes down)."""
        sh("ip", "-n", self.switch, "link", "set", self.hosts[host]["port"], "down")

    def heal(self, host):
        sh("ip", "-n", self.switch, "link", "set", self.hosts[host]["port"], "up")
        sh("ip", "-n", self.switch, "link", "set", self.hosts[host]["port"], "master", "br0")

    def partitioned(self, host):
        out = sh("ip", "-n", self.switch, "-o", "link", "show", self.hosts[host]["port"]).stdout
        return "state DOWN" in out

    # ------------------------------------------------------------ processes

    def nsenter(self, host):
        return ["nsenter", f"--net={self.ns_path(host)}", "--"]

    def run_in(self, host, *argv, timeout=60, check=False):
        """Run a command on host to completion (CompletedProcess, text)."""
        p = subprocess.run([*self.nsenter(host), *map(str, argv)], capture_output=True,
                           text=True, timeout=timeout, cwd="/")
        if check and p.returncode != 0:
            raise BedError(f"on {host}: {' '.join(map(str, argv))} exited {p.returncode}:\n"
                           f"{p.stdout}{p.stderr}")
        return p

    def popen_in(self, host, argv, log, cwd="/"):
        """Start a command on host, output to log; the Popen (killed by the
        owner's death when the bed is tied to it)."""
        with open(log, "ab") as f:
            return subprocess.Popen([*self.nsenter(host), *map(str, argv)],
                                    stdin=subprocess.DEVNULL, stdout=f, stderr=f, cwd=cwd,
                                    preexec_fn=_pdeathsig if self.tie else None,
                                    start_new_session=not self.tie)

    def _argv(self, host, svc):
        ip = self.hosts[host]["ip"]
        m1 = self.hosts["m1"]["ip"]
        etcd = f"{m1}:{ETCD_PORT}"
        lvl = f"--log-level={self.log_level}"
        if svc == "etcd":
            d = self.data / host / "etcd"
            return ["etcd", "--name=netbed", f"--data-dir={d}",
                    f"--listen-client-urls=http://{ip}:{ETCD_PORT}",
                    f"--advertise-client-urls=http://{ip}:{ETCD_PORT}",
                    f"--listen-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
                    f"--initial-cluster=netbed=http://127.0.0.1:{ETCD_PEER_PORT}",
                    f"--initial-cluster-token={self.prefix}", "--initial-cluster-state=new",
                    "--max-txn-ops=10000", "--quota-backend-bytes=8589934592",
                    "--auto-compaction-mode=revision", "--auto-compaction-retention=100000",
                    "--unsafe-no-fsync", "--logger=zap", "--log-outputs=stderr"]
        if svc.startswith("mgmtd"):
            i = int(svc[5:])
            return [SERVERS["mgmtd"], f"--listen={ip}:{MGMTD_PORT + i - 1}", f"--node_id={i}",
                    f"--kv=etcd://{etcd}/valorfs/mgmtd/", f"--lease_ms={self.lease_ms}",
                    f"--election_ms={self.election_ms}",
                    f"--primary_lease_ms={self.primary_lease_ms}", lvl, *self.mgmtd_args]
        if svc.startswith("meta"):
            j = int(svc[4:])
            return [SERVERS["meta"], f"--listen={ip}:{META_PORT + j - 1}",
                    f"--node_id={49 + j}", f"--mgmtd={self.mgmtd_addrs}",
                    f"--kv=etcd://{etcd}/valorfs/meta/", "--lock_memory=false", lvl,
                    *self.meta_args]
        if svc == "storage":
            node = self.node_of(host)
            targets = ",".join(f"{t}:{self.target_dir(host, t)}" for t in self.targets_of(host))
            return [SERVERS["storage"], f"--listen={ip}:{STORAGE_PORT}", f"--node_id={node}",
                    f"--mgmtd={self.mgmtd_addrs}", f"--targets={targets}", lvl,
                    *self.storage_args]
        if svc == "fuse":
            return [FUSE, "-f", f"--backend=cluster:{self.mgmtd_addrs}", lvl, *self.fuse_args,
                    str(self.mnt)]
        raise BedError(f"unknown service {svc}")

    def start(self, host, svc):
        """Start (or restart) one service with the arguments it always has."""
        key = f"{host}/{svc}"
        old = self.services.get(key)
        if old and pid_alive(old["pid"]):
            raise BedError(f"{key} is already running (pid {old['pid']})")
        argv = self._argv(host, svc)
        log = self.log_path(host, svc)
        with open(log, "a") as f:
            f.write(f"--- netbed: start {key} at {time.time():.3f}\n")
        p = self.popen_in(host, argv, log)
        self.procs[key] = p
        self.services[key] = {"argv": argv, "log": str(log), "pid": p.pid,
                              "started": time.time()}
        self.save()
        return p.pid

    def pid(self, host, svc):
        s = self.services.get(f"{host}/{svc}")
        return s["pid"] if s else None

    def alive(self, host, svc):
        key = f"{host}/{svc}"
        if key in self.procs:
            return self.procs[key].poll() is None
        s = self.services.get(key)
        return bool(s) and self._ours(s) and pid_alive(s["pid"])

    @staticmethod
    def _ours(s):
        """The pid still runs what we started (not a recycled pid)."""
        return pid_cmdline(s["pid"])[:-1] == [str(a).encode() for a in s["argv"]]

    def kill(self, host, svc, sig=signal.SIGKILL, wait=10.0):
        """Send sig to a service; with wait, until it is gone (False if it
        did not go)."""
        key = f"{host}/{svc}"
        s = self.services.get(key)
        if not s or not self.alive(host, svc):
            return True
        os.kill(s["pid"], sig)
        if not wait:
            return True
        deadline = time.monotonic() + wait
        while self.alive(host, svc):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        with open(self.log_path(host, svc), "a") as f:
            f.write(f"--- netbed: {key} stopped by {signal.Signals(sig).name} "
                    f"at {time.time():.3f}\n")
        return True

    def stop(self, host, svc, grace=10.0):
        """SIGTERM, then SIGKILL after grace. True when it stopped on SIGTERM."""
        if self.kill(host, svc, signal.SIGTERM, wait=grace):
            return True
        self.kill(host, svc, signal.SIGKILL, wait=10.0)
        return False

    def log_text(self, host, svc):
        try:
            return self.log_path(host, svc).read_text(errors="replace")
        except OSError:
            return ""

    def logs_tail(self, n=20):
        out = []
        for p in sorted((self.data / "log").glob("*.log")):
            # etcd's own log is verbose JSON and rarely the culprit
            lines = p.read_text(errors="replace").splitlines()[-(5 if "etcd" in p.name else n):]
            out.append(f"--- {p.name} ---\n" + "\n".join(lines))
        return "\n".join(out)

    # ------------------------------------------------------------ cluster

    def cli(self, *args, timeout=60, host="c1"):
        """`valorfs ARGS --mgmtd=<all mgmtds>` on a host (default c1)."""
        return self.run_in(host, CLI, *args, f"--mgmtd={self.mgmtd_addrs}", timeout=timeout)

    def routing(self):
        """mgmtd's routing (valorfs status --json), or None when no mgmtd answers."""
        p = self.cli("status", "--json", timeout=20)
        if p.returncode != 0:
            return None
        return json.loads(p.stdout)

    def target_states(self, r=None):
        r = r or self.routing()
        return {t["id"]: t["state"] for t in r["targets"]} if r else {}

    def verify_chains(self, *extra, timeout=120):
        """(exit status, parsed JSON or None, raw output) of valorfs verify-chains."""
        p = self.cli("verify-chains", "--json", *extra, timeout=timeout)
        try:
            out = json.loads(p.stdout)
        except ValueError:
            out = None
        return p.returncode, out, p.stdout + p.stderr

    def wait_for(self, what, fn, timeout, interval=0.2):
        """fn() until truthy; its value. BedError with the last value and the
        logs' tails after timeout."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                last = fn()
            except (OSError, ValueError, subprocess.TimeoutExpired) as e:
                last = e
                if isinstance(e, ValueError):
                    last = f"ValueError: {e}"
            else:
                if last:
                    return last
            if time.monotonic() > deadline:
                raise BedError(f"timed out after {timeout}s waiting for {what}; last: {last}")
            time.sleep(interval)

    def wait_targets(self, targets, states, timeout):
        """Until every target in targets has a state in states (names such as
        "serving", "offline", as `valorfs status` names them); the routing then."""
        states = {s.lower() for s in ([states] if isinstance(states, str) else states)}

        def check():
            r = self.routing()
            if not r:
                return None
            st = self.target_states(r)
            return r if all(st.get(t) in states for t in targets) else None
        try:
            return self.wait_for(f"targets {targets} in {sorted(states)}", check, timeout)
        except BedError as e:
            r = self.routing()
            raise BedError(f"{e}\nstates now: {self.target_states(r) if r else 'no routing'}")

    def all_serving(self):
        r = self.routing()
        if not r or not r["chains"]:
            return None
        st = self.target_states(r)
        for c in r["chains"]:
            if len(c["targets"]) != self.replicas or \
                    any(st.get(t["id"]) != "serving" for t in c["targets"]):
                return None
        return r

    def primary_mgmtd(self):
        """The mgmtd service name ("mgmtd1"...) that acts as primary, or None."""
        r = self.routing()
        if not r:
            return None
        return f"mgmtd{r['primary']}" if r.get("primary") else None

    def _wait_etcd(self, timeout=30):
        ep = f"--endpoints=http://{self.hosts['m1']['ip']}:{ETCD_PORT}"

        def healthy():
            if not self.alive("m1", "etcd"):
                raise BedError("etcd exited during start-up:\n" + self.log_text("m1", "etcd")[-3000:])
            return self.run_in("m1", "etcdctl", ep, "--dial-timeout=1s",
                               "--command-timeout=2s", "endpoint", "health",
                               timeout=10).returncode == 0
        self.wait_for("etcd to answer", healthy, timeout)

    def _wait_nodes(self, node_type, count, svc_keys, timeout=30):
        """Until mgmtd's routing shows count alive nodes of node_type (None:
        until a primary answers); fails at once when a service exits."""
        def check():
            for key in svc_keys:
                host, svc = key.split("/")
                if not self.alive(host, svc):
                    raise BedError(f"{key} exited during start-up:\n"
                                   + self.log_text(host, svc)[-3000:])
            r = self.routing()
            if node_type is None or not r:
                return r
            return sum(1 for n in r["nodes"] if n["type"] == node_type and n["alive"]) >= count
        self.wait_for(f"{count} {node_type or 'mgmtd'} nodes", check, timeout)

    def up(self):
        """Build the network, start every service, create the chain table,
        mount. On failure everything started is torn down again."""
        try:
            if not self.data.exists():
                self.made_data = True
            self.data.mkdir(parents=True, exist_ok=True)
            (self.data / "log").mkdir(exist_ok=True)
            self.save()
            self.build_network()
            for host in ["m1", *self.storage_hosts()]:
                (self.data / host).mkdir(exist_ok=True)
            self.start("m1", "etcd")
            self._wait_etcd()
            for i in range(1, self.nmgmtds + 1):
                self.start("m1", f"mgmtd{i}")
            self._wait_nodes(None, 0, [f"m1/mgmtd{i}" for i in range(1, self.nmgmtds + 1)],
                             timeout=60)
            for h in self.storage_hosts():
                self.start(h, "storage")
            self._wait_nodes("storage", self.nstorage,
                             [f"{h}/storage" for h in self.storage_hosts()])
            r = self.routing()
            if not r["tables"]:
                p = self.cli("table", "create", "--id=1", f"--replicas={self.replicas}")
                if p.returncode != 0:
                    raise BedError(f"valorfs table create failed: {p.stdout}{p.stderr}")
            self.wait_for("every chain SERVING", self.all_serving, 30)
            for j in range(1, self.nmetas + 1):
                self.start("m1", f"meta{j}")
            self._wait_nodes("meta", self.nmetas,
                             [f"m1/meta{j}" for j in range(1, self.nmetas + 1)])
            if self.want_mount:
                self.mount()
        except BaseException:
            tail = self.logs_tail(15) if (self.data / "log").exists() else ""
            try:
                self.teardown()
            except Exception as e:  # the original error matters more
                tail += f"\n(teardown after the failed start also failed: {e})"
            if tail:
                print(f"netbed: start-up failed; logs:\n{tail}")
            raise
        return self

    def mount(self, timeout=30):
        self.mnt.mkdir(exist_ok=True)
        if is_mounted(self.mnt):
            raise BedError(f"{self.mnt} is already a mount point")
        self.start("c1", "fuse")
        deadline = time.monotonic() + timeout
        while not is_mounted(self.mnt):
            if not self.alive("c1", "fuse") or time.monotonic() > deadline:
                raise BedError("valorfs-fuse did not mount:\n" + self.log_text("c1", "fuse")[-3000:])
            time.sleep(0.05)
        os.stat(self.mnt)

    def unmount(self):
        if not self.services.get("c1/fuse"):
            return
        if self.alive("c1", "fuse"):
            self.stop("c1", "fuse", grace=15)
        if is_mounted(self.mnt):
            if sh("umount", self.mnt, check=False).returncode != 0:
                sh("umount", "-l", self.mnt, check=False)

    # ------------------------------------------------------------ teardown

    def teardown(self):
        """Stop everything, delete the namespaces (and data we made). Safe on
        a partly built bed and when called twice. Returns the problems seen
        (services that needed SIGKILL), for the caller to judge."""
        problems = []
        errors = []

        def step(fn, *a):
            try:
                fn(*a)
            except Exception as e:  # go on: everything else must still go
                errors.append(f"{fn.__name__}{a}: {e}")

        step(self.unmount)
        rank = ["c1/fuse", "meta", "storage", "mgmtd", "etcd"]  # clients first, the store last
        order = sorted(self.services,
                       key=lambda k: next((i for i, x in enumerate(rank) if x in k), len(rank)))

        def stop_one(key):
            host, svc = key.split("/")
            if self.alive(host, svc) and not self.stop(host, svc, grace=10):
                problems.append(f"{key} did not stop on SIGTERM within 10 s; killed")
        for key in order:
            step(stop_one, key)
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
            step(p.wait, 10)
        for host in list(self.hosts):
            ns = self.hosts[host]["ns"]
            if Path("/run/netns", ns).exists():
                step(sh, "ip", "netns", "del", ns)
        if self.switch and Path("/run/netns", self.switch).exists():
            step(sh, "ip", "netns", "del", self.switch)
        if not self.keep_data:
            if is_mounted(self.mnt):
                errors.append(f"{self.mnt} still mounted: data kept")
            elif self.made_data:
                shutil.rmtree(self.data, ignore_errors=True)
            else:  # a directory we were given: only what the bed put there
                for name in ["log", "m1", "c1", "mnt", *[f"s{i}" for i in range(1, 65)]]:
                    shutil.rmtree(self.data / name, ignore_errors=True)
                (self.data / STATE_FILE).unlink(missing_ok=True)
        elif (self.data / STATE_FILE).exists():
            self.services = {k: v for k, v in self.services.items() if pid_alive(v["pid"])}
            self.hosts = {}
            self.switch = None
            step(self.save)
        if errors:
            raise BedError("netbed teardown: " + "; ".join(errors))
        return problems

    # ------------------------------------------------------------ summary

    def describe(self):
        lines = [f"netbed {self.prefix}: data {self.data}, subnet {self.subnet}.0/24, "
                 f"switch namespace {self.switch}"]
        for host, h in self.hosts.items():
            svcs = [f"{k.split('/')[1]}(pid {v['pid']}{'' if self.alive(host, k.split('/')[1]) else ', DEAD'})"
                    for k, v in self.services.items() if k.startswith(host + "/")]
            lines.append(f"  {host:4} {h['ip']:15} ns {h['ns']:16} {' '.join(svcs)}")
        lines.append(f"  mgmtd: {self.mgmtd_addrs}")
        if self.want_mount:
            lines.append(f"  mount: {self.mnt} ({'mounted' if is_mounted(self.mnt) else 'not mounted'})")
        return "\n".join(lines)
