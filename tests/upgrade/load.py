"""Load processes for tests/integration/test_upgrade.py.

    python3 load.py meta  DIR OUT    metadata loop in DIR (which it creates)
    python3 load.py watch MNT OUT    stat the mount point every ~2 ms

Both run until SIGUSR1, then write their result to OUT (JSON) and exit 0.
They never stop on an error: every failed system call (any exception) is
recorded with its errno and time, so the test can say which upgrade or
crash it followed.

meta: each iteration creates a file (O_EXCL) with fresh random contents,
writes, fsyncs, reads it back, renames it, stats it, rewrites part of an
older file, makes/renames/lists/removes a subdirectory with a file in it,
lists DIR against its model and unlinks the oldest files (a name must be
gone afterwards). Every non-idempotent call (create, mkdir, rename, unlink,
rmdir) fails with EEXIST/ENOENT if the file system replays it after a
crash, so de-duplication is checked too. OUT.pkl gets {name: bytes} of the
files that survive, for a byte-for-byte comparison by the test.

watch: besides stat() errors (ENOTCONN = the connection was lost) it
checks that MNT stays in /proc/self/mountinfo with the same FUSE device.
"""
import json
import os
import pickle
import random
import signal
import sys
import time

stop = False


def _on_usr1(signum, frame):
    global stop
    stop = True


class Failed(Exception):
    pass


class Recorder:
    """Runs system calls, recording failures; OUT.beat always names the
    call in progress and when it started (a hung call stays there)."""

    def __init__(self, beat):
        self.failures = []
        self.calls = 0
        self.beat = os.open(beat, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def call(self, what, path, fn, *args):
        self.calls += 1
        os.pwrite(self.beat, json.dumps({"t": time.time(), "op": what,
                                         "path": str(path)}).encode().ljust(400), 0)
        try:
            return fn(*args)
        except OSError as e:
            self.failures.append({"op": what, "path": str(path), "errno": e.errno,
                                  "error": os.strerror(e.errno or 0) if e.errno else str(e),
                                  "t": time.time()})
            raise Failed from e
        except Exception as e:  # anything at all is a failure
            self.failures.append({"op": what, "path": str(path), "errno": None,
                                  "error": repr(e), "t": time.time()})
            raise Failed from e

    def mismatch(self, what, path, detail):
        self.failures.append({"op": what, "path": str(path), "errno": None,
                              "error": detail, "t": time.time()})
        raise Failed


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_all(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while True:
            b = os.read(fd, 1 << 16)
            if not b:
                return b"".join(chunks)
            chunks.append(b)
    finally:
        os.close(fd)


def meta_loop(root, out):
    rec = Recorder(out + ".beat")
    rng = random.Random(os.getpid())
    model = {}      # name in root -> bytes
    order = []      # creation order, for unlinking the oldest
    verified = 0
    iterations = 0
    os.mkdir(root)
    sizes = [0, 1, 100, 4095, 4096, 5000, 65536 + 17]

    def create(path, data):
        fd = rec.call("open(O_CREAT|O_EXCL)", path, os.open, path,
                      os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            rec.call("write", path, _write_all, fd, data)
            rec.call("fsync", path, os.fsync, fd)
        finally:
            rec.call("close", path, os.close, fd)

    def check(path, want):
        nonlocal verified
        got = rec.call("read", path, _read_all, path)
        if got != want:
            rec.mismatch("verify", path, f"read {len(got)} bytes, wrote {len(want)}; "
                         f"first difference at {_first_diff(got, want)}")
        verified += 1

    i = 0
    while not stop:
        i += 1
        dirty = []  # names whose state is unknown after a failure
        try:
            name = f"f{i}"
            path = os.path.join(root, name)
            data = rng.randbytes(rng.choice(sizes))
            dirty.append(name)
            create(path, data)
            check(path, data)
            new = f"r{i}"
            dirty.append(new)
            rec.call("rename", path, os.rename, path, os.path.join(root, new))
            st = rec.call("stat", new, os.stat, os.path.join(root, new))
            if st.st_size != len(data):
                rec.mismatch("stat", new, f"size {st.st_size}, want {len(data)}")
            model[new] = data
            order.append(new)
            dirty = []

            # rewrite the middle of an older file in place
            if len(order) > 2:
                old = order[rng.randrange(len(order) - 1)]
                p = os.path.join(root, old)
                dirty.append(old)
                body = bytearray(model[old])
                off = rng.randrange(len(body) + 1)
                patch = rng.randbytes(rng.choice([1, 512, 4096]))
                fd = rec.call("open(O_WRONLY)", p, os.open, p, os.O_WRONLY)
                try:
                    rec.call("pwrite", p, os.pwrite, fd, patch, off)
                    rec.call("fsync", p, os.fsync, fd)
                finally:
                    rec.call("close", p, os.close, fd)
                body[off:off + len(patch)] = patch
                model[old] = bytes(body)
                check(p, model[old])
                dirty = []

            # a directory's life: mkdir, a file in it, rename, list, unlink, rmdir
            d, e = os.path.join(root, f"d{i}"), os.path.join(root, f"e{i}")
            dirty += [f"d{i}", f"e{i}"]
            rec.call("mkdir", d, os.mkdir, d)
            inner = rng.randbytes(300)
            create(os.path.join(d, "x"), inner)
            rec.call("rename(dir)", d, os.rename, d, e)
            names = rec.call("listdir", e, os.listdir, e)
            if names != ["x"]:
                rec.mismatch("listdir", e, f"listed {names}, want ['x']")
            check(os.path.join(e, "x"), inner)
            rec.call("unlink", e + "/x", os.unlink, os.path.join(e, "x"))
            rec.call("rmdir", e, os.rmdir, e)
            dirty = []

            listed = set(rec.call("listdir", root, os.listdir, root))
            if listed != set(model):
                rec.mismatch("listdir", root, f"extra {sorted(listed - set(model))[:5]}, "
                             f"missing {sorted(set(model) - listed)[:5]}")

            while len(order) > 24:
                old = order.pop(0)
                dirty.append(old)
                p = os.path.join(root, old)
                check(p, model.pop(old))
                rec.call("unlink", p, os.unlink, p)
                try:
                    os.stat(p)
                except FileNotFoundError:
                    pass
                except OSError as e:
                    rec.mismatch("stat after unlink", p, f"errno={e.errno} {e.strerror}")
                else:
                    rec.mismatch("stat after unlink", p, "still exists")
                dirty = []
        except Failed:
            # forget whatever this iteration touched: its state is unknown
            for n in dirty:
                model.pop(n, None)
                if n in order:
                    order.remove(n)
                _remove_quietly(os.path.join(root, n))
        iterations = i

    # the survivors, for the byte-for-byte comparison
    for n in list(order):
        try:
            check(os.path.join(root, n), model[n])
        except Failed:
            model.pop(n)
    with open(out + ".pkl", "wb") as f:
        pickle.dump(model, f)
    return {"iterations": iterations, "calls": rec.calls, "verified": verified,
            "failures": rec.failures, "files": len(model)}


def _first_diff(a, b):
    for k in range(min(len(a), len(b))):
        if a[k] != b[k]:
            return k
    return min(len(a), len(b))


def _remove_quietly(path):
    try:
        if os.path.isdir(path):
            for n in os.listdir(path):
                os.unlink(os.path.join(path, n))
            os.rmdir(path)
        else:
            os.unlink(path)
    except OSError:
        pass


def _mount_dev(path):
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" - ")[0].split()
            if fields[4] == path:
                found = fields[2]
    return found


def watch_loop(mnt, out):
    mnt = os.path.abspath(mnt)
    dev = _mount_dev(mnt)
    failures, stats, worst, n = [], 0, 0.0, 0
    while not stop:
        n += 1
        t0 = time.monotonic()
        try:
            os.stat(mnt)
            os.listdir(mnt) if n % 16 == 0 else None
        except OSError as e:
            failures.append({"op": "stat", "path": mnt, "errno": e.errno,
                             "error": os.strerror(e.errno), "t": time.time()})
        worst = max(worst, time.monotonic() - t0)
        stats += 1
        if n % 8 == 0:
            now = _mount_dev(mnt)
            if now != dev:
                failures.append({"op": "mountinfo", "path": mnt, "errno": None,
                                 "error": f"mount device {dev} became {now}", "t": time.time()})
                dev = now
        time.sleep(0.002)
    return {"stats": stats, "worst_stat_s": worst, "failures": failures, "device": dev}


def main():
    signal.signal(signal.SIGUSR1, _on_usr1)
    kind, path, out = sys.argv[1:4]
    res = meta_loop(path, out) if kind == "meta" else watch_loop(path, out)
    with open(out + ".tmp", "w") as f:
        json.dump(res, f)
    os.rename(out + ".tmp", out)


if __name__ == "__main__":
    main()
