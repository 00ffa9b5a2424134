"""Bounded concurrent stress run.

Threads and forked processes hammer the mount at once with a mix of
create/write/read/rename/unlink/mkdir/rmdir/stat/readdir on their own
subtrees, plus shared files updated under flock and shared files replaced
by rename. Every file starts with a header carrying its payload's length
and sha256, and every read verifies it; each worker also keeps a model of
its subtree and checks every result against it. At the end the mount, the
backing directory and the workers' models must all agree.

VALORFS_STRESS_SEED and VALORFS_STRESS_SECONDS override the defaults.
"""
import errno
import fcntl
import hashlib
import mmap
import os
import random
import stat
import struct
import threading
import time
from collections import Counter

from conftest import Child

SEED = int(os.environ.get("VALORFS_STRESS_SEED", "20240611"))
SECONDS = {"classic": 30, "xfuse": 30, "uring": 20, "a05": 20}
N_THREADS, N_PROCS, N_SHARED = 3, 3, 4
MAX_FILES, MAX_DIRS = 150, 40  # per worker: keeps the final check quick

MAGIC = b"VFS1"
HDR = struct.Struct("<4sQ32s")  # magic, payload length, sha256(payload)


class Bad(Exception):
    """A result that contradicts the model or a corrupt file."""


def make_blob(rng):
    r = rng.random()
    size = rng.randrange(0, 16 << 10) if r < 0.8 else (
        rng.randrange(16 << 10, 256 << 10) if r < 0.97 else rng.randrange(1 << 20, 2 << 20))
    payload = rng.randbytes(size)
    digest = hashlib.sha256(payload).digest()
    return HDR.pack(MAGIC, size, digest) + payload, digest.hex()


def check_blob(blob, where):
    """Return the payload digest if blob is a complete, intact file."""
    if len(blob) < HDR.size:
        raise Bad(f"{where}: {len(blob)} bytes, shorter than the header")
    magic, size, digest = HDR.unpack_from(blob)
    if magic != MAGIC:
        raise Bad(f"{where}: bad magic {magic!r}")
    if len(blob) != HDR.size + size:
        raise Bad(f"{where}: header says {size} payload bytes, file has {len(blob) - HDR.size}")
    if hashlib.sha256(blob[HDR.size:]).digest() != digest:
        raise Bad(f"{where}: payload does not match its checksum")
    return digest.hex()


def write_pieces(fd, blob, rng, ordered=True):
    """pwrite blob in random-sized pieces (in random order if not ordered)."""
    pieces, off = [], 0
    while off < len(blob):
        n = rng.choice((512, 4096, 10000, 65536, 200000))
        pieces.append((off, blob[off:off + n]))
        off += n
    if not ordered:
        rng.shuffle(pieces)
    for off, piece in pieces:
        if os.pwrite(fd, piece, off) != len(piece):
            raise Bad("short pwrite")


def read_all(path, rng):
    with open(path, "rb", buffering=0) as f:
        if rng.random() < 0.1 and os.fstat(f.fileno()).st_size > 0:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                return mm[:]
        chunks, size = [], rng.choice((4096, 65536, 1 << 20))
        while chunk := f.read(size):
            chunks.append(chunk)
        return b"".join(chunks)


class Worker:
    def __init__(self, wid, root, deadline, seed):
        self.wid, self.root, self.deadline = wid, root, deadline
        self.rng = random.Random(seed * 1000 + wid)
        self.base = f"w{wid}"
        self.files = {}  # relpath -> payload digest
        self.dirs = {self.base}
        self.ops = Counter()
        self.history = []
        self.n = 0

    def p(self, rel):
        return os.path.join(self.root, rel)

    def fresh(self, parent, kind):
        self.n += 1
        return f"{parent}/{kind}{self.n}"

    def children(self, d):
        return {k.rsplit("/", 1)[1] for k in list(self.files) + list(self.dirs)
                if k != d and k.rsplit("/", 1)[0] == d}

    # --- operations on the worker's own subtree
    def op_create(self):
        path = self.fresh(self.rng.choice(sorted(self.dirs)), "f")
        blob, digest = make_blob(self.rng)
        fd = os.open(self.p(path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            write_pieces(fd, blob, self.rng)
        finally:
            os.close(fd)
        self.files[path] = digest

    def op_overwrite(self):
        path = self.pick_file()
        blob, digest = make_blob(self.rng)
        if self.rng.random() < 0.5:
            with open(self.p(path), "wb") as f:  # O_TRUNC, then sequential writes
                f.write(blob)
        else:  # in place, out of order, then cut to size
            fd = os.open(self.p(path), os.O_RDWR)
            try:
                write_pieces(fd, blob, self.rng, ordered=False)
                os.ftruncate(fd, len(blob))
            finally:
                os.close(fd)
        self.files[path] = digest

    def op_read(self):
        path = self.pick_file()
        got = check_blob(read_all(self.p(path), self.rng), path)
        if got != self.files[path]:
            raise Bad(f"{path}: content of another version (want {self.files[path][:12]}, "
                      f"got {got[:12]})")

    def op_rename(self):
        if self.rng.random() < 0.7 or len(self.dirs) < 2:
            old = self.pick_file()
            new = self.fresh(self.rng.choice(sorted(self.dirs)), "f")
            os.rename(self.p(old), self.p(new))
            self.files[new] = self.files.pop(old)
            return
        old = self.rng.choice(sorted(self.dirs - {self.base}))
        targets = [d for d in self.dirs if d != old and not d.startswith(old + "/")]
        new = self.fresh(self.rng.choice(sorted(targets)), "d")
        os.rename(self.p(old), self.p(new))
        moved = lambda k: new + k[len(old):] if k == old or k.startswith(old + "/") else k
        self.dirs = {moved(d) for d in self.dirs}
        self.files = {moved(f): v for f, v in self.files.items()}

    def op_unlink(self):
        path = self.pick_file()
        os.unlink(self.p(path))
        del self.files[path]

    def op_mkdir(self):
        path = self.fresh(self.rng.choice(sorted(self.dirs)), "d")
        os.mkdir(self.p(path))
        self.dirs.add(path)

    def op_rmdir(self):
        if len(self.dirs) < 2:
            return
        path = self.rng.choice(sorted(self.dirs - {self.base}))
        empty = not self.children(path)
        try:
            os.rmdir(self.p(path))
        except OSError as e:
            if empty or e.errno != errno.ENOTEMPTY:
                raise
            return
        if not empty:
            raise Bad(f"rmdir {path} succeeded but it holds {sorted(self.children(path))}")
        self.dirs.remove(path)

    def op_stat(self):
        if self.files and self.rng.random() < 0.7:
            path = self.pick_file()
            st = os.lstat(self.p(path))
            with open(self.p(path), "rb") as f:
                size = HDR.size + HDR.unpack(f.read(HDR.size))[1]
            if not stat.S_ISREG(st.st_mode) or st.st_size != size:
                raise Bad(f"{path}: lstat size {st.st_size}, header says {size}")
        else:
            path = self.rng.choice(sorted(self.dirs))
            if not os.path.isdir(self.p(path)):
                raise Bad(f"{path} is not a directory")

    def op_readdir(self):
        d = self.rng.choice(sorted(self.dirs))
        got = {e.name: e.is_dir(follow_symlinks=False) for e in os.scandir(self.p(d))}
        want = {name: f"{d}/{name}" in self.dirs for name in self.children(d)}
        if got != want:
            raise Bad(f"readdir {d}: got {sorted(got.items())}, model {sorted(want.items())}")

    # --- shared files
    def op_shared_locked(self):
        path = self.p(f"shared/L{self.rng.randrange(N_SHARED)}")
        write = self.rng.random() < 0.4
        fd = os.open(path, os.O_RDWR if write else os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            if write:
                blob, _ = make_blob(self.rng)
                write_pieces(fd, blob, self.rng, ordered=False)
                os.ftruncate(fd, len(blob))
            else:
                size = os.fstat(fd).st_size
                check_blob(os.pread(fd, size + 1, 0), path)
        finally:
            os.close(fd)  # drops the flock

    def op_shared_replace(self):
        k = self.rng.randrange(N_SHARED)
        if self.rng.random() < 0.4:
            self.n += 1
            tmp = self.p(f"shared/tmp-{self.wid}-{self.n}")
            blob, _ = make_blob(self.rng)
            with open(tmp, "wb") as f:
                f.write(blob)
            os.rename(tmp, self.p(f"shared/R{k}"))  # atomic: readers see old or new
        else:
            check_blob(read_all(self.p(f"shared/R{k}"), self.rng), f"shared/R{k}")

    def pick_file(self):
        if not self.files:
            self.op_create()
        return self.rng.choice(sorted(self.files))

    OPS = [("create", 12), ("overwrite", 8), ("read", 20), ("rename", 8), ("unlink", 6),
           ("mkdir", 4), ("rmdir", 3), ("stat", 10), ("readdir", 6), ("shared_locked", 10),
           ("shared_replace", 10)]

    def run(self):
        os.mkdir(self.p(self.base))
        names = [n for n, _ in self.OPS]
        weights = [w for _, w in self.OPS]
        while time.time() < self.deadline:
            name = self.rng.choices(names, weights)[0]
            if name == "create" and len(self.files) >= MAX_FILES:
                name = "unlink"
            elif name == "mkdir" and len(self.dirs) >= MAX_DIRS:
                name = "rmdir"
            self.history = (self.history + [name])[-20:]
            try:
                getattr(self, "op_" + name)()
            except (OSError, Bad) as e:
                return self.result(f"worker {self.wid}: {name}: {e!r}; last ops {self.history}")
            self.ops[name] += 1
        return self.result(None)

    def result(self, error):
        return dict(wid=self.wid, files=self.files, dirs=sorted(self.dirs), ops=dict(self.ops),
                    error=error)


def run_worker(wid, root, deadline, seed):
    return Worker(wid, root, deadline, seed).run()


def walk(root):
    """relpath -> ("d", None) | ("f", bytes) for everything below root."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = ("d", None)
        for name in files:
            p = os.path.join(dirpath, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = ("f", f.read())
    return out


def test_stress(vfs):
    seconds = float(os.environ.get("VALORFS_STRESS_SECONDS", SECONDS[vfs.config]))
    print(f"stress: seed={SEED} seconds={seconds} threads={N_THREADS} processes={N_PROCS}")
    vfs.daemon.arm_watchdog(seconds + 180)  # the run plus a slow (sanitizer) final check
    root = str(vfs.mnt)
    os.mkdir(vfs.mnt / "shared")
    rng = random.Random(SEED)
    for k in range(N_SHARED):
        for kind in "LR":
            (vfs.mnt / "shared" / f"{kind}{k}").write_bytes(make_blob(rng)[0])

    deadline = time.time() + seconds
    # fork the processes before any thread exists
    procs = [Child(run_worker, wid, root, deadline, SEED) for wid in range(N_PROCS)]
    results, lock = [], threading.Lock()

    def thread_main(wid):
        r = run_worker(wid, root, deadline, SEED)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=thread_main, args=(N_PROCS + i,))
               for i in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
        assert not t.is_alive(), f"seed={SEED}: a worker thread hung"
    results += [c.join(seconds + 120) for c in procs]

    results.sort(key=lambda r: r["wid"])
    total = Counter()
    for r in results:
        total.update(r["ops"])
        print(f"worker {r['wid']}: {sum(r['ops'].values())} ops, {len(r['files'])} files, "
              f"{len(r['dirs'])} dirs")
    print(f"total ops: {sum(total.values())} {dict(total)}")
    errors = [r["error"] for r in results if r["error"]]
    assert not errors, f"seed={SEED}:\n" + "\n".join(errors)
    assert sum(total.values()) > 100 * len(results), f"seed={SEED}: too little progress {total}"

    # the final state: mount == backing dir == the workers' models
    via_mnt, via_src = walk(vfs.mnt), walk(vfs.src)
    assert sorted(via_mnt) == sorted(via_src), f"seed={SEED}: names differ"
    for rel in via_mnt:
        assert via_mnt[rel] == via_src[rel], f"seed={SEED}: {rel} differs mount vs backing"
        if via_mnt[rel][0] == "f":
            check_blob(via_mnt[rel][1], rel)
        st_m, st_s = os.lstat(vfs.mnt / rel), os.lstat(vfs.src / rel)
        assert (st_m.st_mode, st_m.st_size, st_m.st_ino, st_m.st_nlink) == \
            (st_s.st_mode, st_s.st_size, st_s.st_ino, st_s.st_nlink), rel
    model = {}
    for r in results:
        model.update({d: ("d", None) for d in r["dirs"]})
        model.update({f: ("f", digest) for f, digest in r["files"].items()})
    mine = {k: v for k, v in via_mnt.items() if not k.startswith("shared")}
    assert sorted(mine) == sorted(model), f"seed={SEED}: tree differs from the model"
    for rel, (kind, digest) in model.items():
        if kind == "f":
            assert check_blob(mine[rel][1], rel) == digest, f"seed={SEED}: {rel} stale content"
    leftovers = [k for k in via_mnt if k.startswith("shared/tmp-")]
    assert not leftovers, f"seed={SEED}: temp files not renamed away: {leftovers}"
