"""The valorfs cluster on one machine, end to end: `valorfs up` starts mgmtd,
meta and 3 storage servers (chains of 3 replicas) and mounts it; these tests
write and read through real mounts, look at every replica of every chunk, and
talk raw RPC to the servers where a test must bypass the client.

Environment: VALORFS_CLUSTER_GIB (default 1) scales the big write test.
"""
import errno
import hashlib
import json
import os
import random
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import BINARY, CLI, Cluster, is_mounted, umount

MiB = 1 << 20
GIB = float(os.environ.get("VALORFS_CLUSTER_GIB", "1"))

RPC_MAGIC = 0x43505256
MG_GET_ROUTING = 0x0103
META_RENAME = 0x020B
STG_WRITE, STG_CHUNK_META = 0x0301, 0x0306
VF_E_STALE_CHAIN = 1001


# ------------------------------------------------------------ raw RPC

def rpc(addr, method, payload, timeout=10.0):
    """One call on a fresh connection: (status, payload)."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        hdr = struct.pack("<IBBHQiIII", RPC_MAGIC, 1, 1, method, 7, 0, int(timeout * 1000),
                          len(payload), 0)
        s.sendall(hdr + payload)
        got = _recv(s, 32)
        magic, ver, kind, meth, rid, status, _, plen, _ = struct.unpack("<IBBHQiIII", got)
        assert (magic, ver, kind, meth, rid) == (RPC_MAGIC, 1, 2, method, 7)
        return status, _recv(s, plen)


def _recv(s, n):
    buf = b""
    while len(buf) < n:
        part = s.recv(n - len(buf))
        if not part:
            raise ConnectionError("connection closed")
        buf += part
    return buf


def wstr(b):
    return struct.pack("<I", len(b)) + b


def meta_rename_raw(addr, parent, name, newparent, newname):
    user = struct.pack("<III", 0, 0, 0)  # root, no supplementary groups
    req = (user + struct.pack("<QQQ", 0, parent, newparent) + wstr(name.encode()) +
           wstr(newname.encode()) + struct.pack("<III", 0, 0, 0) + struct.pack("<Q", 0) +
           struct.pack("<III", 0, 0, 0) + struct.pack("<Q", 0) + struct.pack("<qqq", 0, 0, 0) +
           struct.pack("<QQ", 0, 0) + struct.pack("<III", 0, 0, 0) + wstr(b""))
    return rpc(addr, META_RENAME, req)[0]


def stg_write_raw(addr, target, chain, chain_version, ino, data):
    req = (struct.pack("<IIQ", target, chain, chain_version) + struct.pack("<QI", ino, 0) +
           struct.pack("<II", MiB, 0) + struct.pack("<QQ", 0, random.getrandbits(63)) +
           struct.pack("<B", 0) + wstr(data))  # flags 0: a client write
    return rpc(addr, STG_WRITE, req)


def stg_chunk_exists(addr, target, ino):
    status, resp = rpc(addr, STG_CHUNK_META, struct.pack("<IQI", target, ino, 0))
    assert status == 0, status
    return resp[12] == 1  # after the chunk id (u64 ino, u32 index): u8 exists


# ------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def live():
    c = Cluster(port=21000 + os.getpid() % 9000)
    try:
        yield c
    finally:
        c.close()


def status(c):
    out = subprocess.run([CLI, "status", "--json", f"--mgmtd={c.mgmtd}"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def layout(c, path):
    out = subprocess.run([CLI, "layout", "--chunks", "--json", f"--mgmtd={c.mgmtd}", str(path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode in (0, 3), out.stderr
    return json.loads(out.stdout)


class Client:
    """A second valorfs-fuse mount of the same cluster."""

    def __init__(self, c, mnt):
        self.mnt = Path(mnt)
        self.mnt.mkdir(exist_ok=True)
        self.log = c.data / "log" / f"client-{self.mnt.name}.log"
        out = subprocess.run([BINARY, f"--backend=cluster:{c.mgmtd}", f"--log-file={self.log}",
                              str(self.mnt)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"{out.stderr}\n{self.log.read_text(errors='replace')}"
        assert is_mounted(self.mnt)

    def close(self):
        deadline = time.monotonic() + 20
        while is_mounted(self.mnt) and time.monotonic() < deadline:
            if subprocess.run(["umount", str(self.mnt)], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        umount(self.mnt)


# ------------------------------------------------------------ tests

def test_status_shows_a_replicated_cluster(live):
    s = status(live)
    nodes = {n["id"]: n for n in s["nodes"]}
    assert sum(n["type"] == "storage" and n["alive"] for n in nodes.values()) == 3
    assert sum(n["type"] == "meta" and n["alive"] for n in nodes.values()) == 1
    assert len(s["tables"]) == 1 and s["tables"][0]["replicas"] == 3
    targets = {t["id"]: t for t in s["targets"]}
    assert len(s["chains"]) >= 2
    for ch in s["chains"]:
        assert len(ch["targets"]) == 3
        assert all(t["state"] == "serving" for t in ch["targets"])
        hosts = {targets[t["id"]]["node"] for t in ch["targets"]}
        assert len(hosts) == 3, f"chain {ch['id']} has two replicas on one server"
    # the human form shows the same chains
    out = subprocess.run([CLI, "status", f"--mgmtd={live.mgmtd}"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0 and "CHAINS" in out.stdout
    for ch in s["chains"]:
        assert str(ch["targets"][0]["id"]) in out.stdout


def _writer(path, nbytes, seed, result):
    rng = random.Random(seed)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = nbytes
        while left:
            n = min(left, MiB + 4096 * rng.randrange(4))  # not always chunk-aligned
            block = rng.randbytes(n)
            h.update(block)
            f.write(block)
            left -= n
    result[path] = h.hexdigest()


def _sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            h.update(block)
    return h.hexdigest()


def test_four_writers_remount_and_replicas(live):
    """1 GiB of random content from 4 concurrent writers survives unmount and
    remount byte for byte, and every chunk sits on all 3 targets of its chain
    with the same version, length and CRC32C."""
    d = live.mnt / "big"
    d.mkdir()
    per = int(GIB * 1024 / 4) * MiB
    shas = {}
    threads = [threading.Thread(target=_writer, args=(d / f"w{i}", per, i, shas))
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(shas) == 4
    # unmount (the daemon exits), then mount again with a new daemon
    out = subprocess.run(["umount", str(live.mnt)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 10
    while is_mounted(live.mnt) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not is_mounted(live.mnt)
    c2 = Client(live, live.mnt)  # remounts the same directory
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3")
        for i in range(4):
            p = d / f"w{i}"
            assert os.stat(p).st_size == per
            assert _sha(p) == shas[p], f"{p} differs after remount"
        for i in range(4):
            lay = layout(live, d / f"w{i}")
            assert lay["size"] == per
            assert len(lay["chunks"]) == per // lay["chunk_size"]
            assert len(set(lay["chains"])) == len(lay["chains"]) >= 2
            total = 0
            for ch in lay["chunks"]:
                reps = ch["replicas"]
                assert len(reps) == 3, ch
                assert all(r["status"] == "ok" and r["exists"] and not r["dirty"] for r in reps), ch
                assert len({(r["version"], r["len"], r["crc32c"]) for r in reps}) == 1, ch
                total += reps[0]["len"]
            assert total == per
    finally:
        pass  # the remounted client stays: it is the cluster's mount now


def test_two_clients_create_same_name_exactly_one_wins(live, tmp_path):
    base = live.mnt / "race"
    base.mkdir()
    other = Client(live, tmp_path / "client2")
    try:
        names = [f"n{i}" for i in range(150)]
        results = {0: [], 1: []}
        barrier = threading.Barrier(2)

        def go(idx, root):
            for n in names:
                barrier.wait()
                try:
                    fd = os.open(root / "race" / n, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                    os.write(fd, f"{idx}".encode())
                    os.close(fd)
                    results[idx].append(True)
                except OSError as e:
                    assert e.errno == errno.EEXIST, e
                    results[idx].append(False)

        ts = [threading.Thread(target=go, args=(0, live.mnt)),
              threading.Thread(target=go, args=(1, other.mnt))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for i, n in enumerate(names):
            assert results[0][i] != results[1][i], f"{n}: both or neither created it"
            winner = 0 if results[0][i] else 1
            assert (base / n).read_text() == str(winner)
        assert sorted(os.listdir(other.mnt / "race")) == sorted(names)
    finally:
        other.close()


def test_directory_listing_cache_sees_other_clients(live, tmp_path):
    """Listings may be cached by the kernel, but a change made through
    another client shows at the next opendir."""
    d = live.mnt / "lc"
    d.mkdir()
    for i in range(50):
        (d / f"a{i}").write_bytes(b"")
    other = Client(live, tmp_path / "client4")
    try:
        want = sorted(f"a{i}" for i in range(50))
        assert sorted(os.listdir(d)) == want
        assert sorted(os.listdir(d)) == want  # a cached repeat
        (other.mnt / "lc" / "new").write_bytes(b"x")
        os.unlink(other.mnt / "lc" / "a7")
        want = sorted(set(want) - {"a7"} | {"new"})
        assert sorted(os.listdir(d)) == want
    finally:
        other.close()


def test_rename_directory_into_its_own_subtree(live, tmp_path):
    a = live.mnt / "cyc" / "a"
    (a / "b" / "c").mkdir(parents=True)
    with pytest.raises(OSError) as e:
        os.rename(a, a / "b" / "c" / "a")
    assert e.value.errno == errno.EINVAL
    # the same through meta directly, past the kernel's own check
    meta = next(n["addr"] for n in status(live)["nodes"] if n["type"] == "meta")
    parent, c = os.stat(live.mnt / "cyc").st_ino, os.stat(a / "b" / "c").st_ino
    assert meta_rename_raw(meta, parent, "a", c, "a") == errno.EINVAL
    assert meta_rename_raw(meta, parent, "a", parent, "a2") == 0  # a legal one passes
    assert (live.mnt / "cyc" / "a2" / "b" / "c").is_dir()
    # two clients racing opposite moves: never both, never a cycle
    other = Client(live, tmp_path / "client3")
    try:
        for i in range(20):
            x, y = live.mnt / f"cx{i}", live.mnt / f"cy{i}"
            x.mkdir()
            y.mkdir()
            errs = []

            def mv(src, dst):
                try:
                    os.rename(src, dst)
                    errs.append(0)
                except OSError as e:
                    errs.append(e.errno)
            t1 = threading.Thread(target=mv, args=(x, y / "x"))
            t2 = threading.Thread(target=mv, args=(other.mnt / f"cy{i}", other.mnt / f"cx{i}" / "y"))
            t1.start(); t2.start(); t1.join(); t2.join()
            assert errs.count(0) == 1, f"round {i}: results {errs}"
            assert set(errs) - {0} <= {errno.EINVAL, errno.ENOENT}
            # the winner's own mount shows its move; the loser's did not happen
            winner_view = [(live.mnt / f"cy{i}" / "x").is_dir(),
                           (other.mnt / f"cx{i}" / "y").is_dir()]
            assert winner_view.count(True) == 1, f"round {i}: {winner_view}"
    finally:
        other.close()


def _replicas_exist(live, lay):
    """For each chunk of a layout: does each replica still hold it?"""
    s = status(live)
    tnode = {t["id"]: t["node"] for t in s["targets"]}
    naddr = {n["id"]: n["addr"] for n in s["nodes"]}
    out = []
    for ch in lay["chunks"]:
        for r in ch["replicas"]:
            addr = naddr[tnode[r["target"]]]
            st, resp = rpc(addr, STG_CHUNK_META, struct.pack("<IQI", r["target"], lay["ino"],
                                                             ch["index"]))
            assert st == 0, st
            out.append(resp[12] == 1)
    return out


def _wait(pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.25)
    return pred()


def test_unlinked_files_chunks_are_removed(live):
    """Deferred removal: the chunks of an unlinked file leave every replica;
    a file unlinked while open keeps its data until the last close."""
    d = live.mnt / "gc"
    d.mkdir()
    body = random.Random(7).randbytes(3 * MiB + 5)
    (d / "gone").write_bytes(body)
    lay = layout(live, d / "gone")
    assert all(_replicas_exist(live, lay)) and len(lay["chunks"]) == 4
    os.unlink(d / "gone")
    assert _wait(lambda: not any(_replicas_exist(live, lay))), "chunks outlived the file"

    (d / "open").write_bytes(body)
    lay = layout(live, d / "open")
    fd = os.open(d / "open", os.O_RDONLY)
    try:
        os.unlink(d / "open")
        time.sleep(2.5)  # a few collector periods
        assert all(_replicas_exist(live, lay)), "removed while still open"
        assert os.pread(fd, len(body) + 10, 0) == body
    finally:
        os.close(fd)
    assert _wait(lambda: not any(_replicas_exist(live, lay))), "chunks kept after last close"


def test_stale_chain_version_write_is_refused(live):
    s = status(live)
    ch = s["chains"][0]
    head = ch["targets"][0]["id"]
    node = next(t["node"] for t in s["targets"] if t["id"] == head)
    addr = next(n["addr"] for n in s["nodes"] if n["id"] == node)
    ino = random.getrandbits(62) | 1 << 62  # no file has it
    st, _ = stg_write_raw(addr, head, ch["id"], ch["version"] - 1, ino, b"stale" * 100)
    assert st == VF_E_STALE_CHAIN
    assert not stg_chunk_exists(addr, head, ino)
    # the same write with the current version is accepted and replicated
    st, _ = stg_write_raw(addr, head, ch["id"], ch["version"], ino, b"fresh" * 100)
    assert st == 0
    for t in ch["targets"]:
        tnode = next(x["node"] for x in s["targets"] if x["id"] == t["id"])
        taddr = next(n["addr"] for n in s["nodes"] if n["id"] == tnode)
        assert stg_chunk_exists(taddr, t["id"], ino)


def test_servers_survive_garbage(live):
    """Malformed frames, wrong magic/version/kind, oversized lengths, truncated
    payloads and random bodies for every method: each server closes or
    answers with an error, never crashes, and serves a valid call after."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
    import garbage
    s = status(live)
    probes = {"mgmtd": (0x0106, b""), "storage": (0x0309, b""),
              "meta": (0x0215, garbage.meta_req())}
    hit = set()
    for n in s["nodes"]:
        method, payload = probes[n["type"]]
        st, _ = garbage.hammer(n["addr"], method, payload, seed=n["id"])
        assert st == 0, f"{n['type']} {n['addr']}: probe after garbage answered {st}"
        hit.add(n["type"])
    mg = live.mgmtd
    st, _ = garbage.hammer(mg, *probes["mgmtd"], seed=1)
    assert st == 0
    assert hit == {"storage", "meta"}
    # everything still works afterwards, and every daemon is still running
    p = live.mnt / "after-garbage"
    p.write_bytes(b"still here" * 1000)
    assert p.read_bytes() == b"still here" * 1000
    after = status(live)
    assert all(n["alive"] for n in after["nodes"])
    assert len(after["nodes"]) == len(s["nodes"])


@pytest.mark.parametrize("fs", ["xfs", "ext4"])
def test_targets_on_loop_device_images(fs):
    """Storage servers on their own loop-device file systems, the way the
    report planned one machine to stand in for several storage nodes."""
    c = Cluster(port=30000 + os.getpid() % 5000 + (0 if fs == "xfs" else 50),
                extra=("--loop=320M", f"--fs={fs}", "--targets=1"))
    try:
        for i in (1, 2, 3):
            d = c.data / f"storage{i}"
            with open("/proc/self/mounts") as f:
                mounts = {line.split()[1]: line.split()[2] for line in f}
            assert mounts.get(str(d)) == fs, f"{d} is not an {fs} mount"
        body = random.Random(5).randbytes(5 * MiB + 123)
        (c.mnt / "f").write_bytes(body)
        Path("/proc/sys/vm/drop_caches").write_text("3")
        assert (c.mnt / "f").read_bytes() == body
        lay = layout(c, c.mnt / "f")
        assert len(lay["chunks"]) == 6
        for ch in lay["chunks"]:
            assert len({(r["len"], r["crc32c"]) for r in ch["replicas"]}) == 1
        # the chunk files really are on the images
        files = [p for i in (1, 2, 3) for p in (c.data / f"storage{i}").rglob("*.*")
                 if p.is_file() and "/data/" in str(p)]
        assert len(files) >= 6 * 3, f"chunk files on the images: {files}"
        out = subprocess.run([CLI, "down", f"--data={c.data}"], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        with open("/proc/self/mounts") as f:
            left = [line for line in f if str(c.data) in line or str(c.mnt) in line]
        assert not left, f"valorfs down left mounts behind: {left}"
    finally:
        c.close()
