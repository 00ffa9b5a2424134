"""A full storage target (issue 6): writes fail with ENOSPC, cleanly.

Each storage server of a real `valorfs up` cluster keeps its target on its
own small loop-device file system. When one replica's disk is full, a write
that needs room there fails with ENOSPC in the application, no replica
applies it (so the chain stays identical), files written before read back
byte for byte, and once room is made writes work again.
"""
import errno
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CLI, Cluster

MiB = 1 << 20


def verify_chains(c):
    out = subprocess.run([CLI, "verify-chains", f"--mgmtd={c.mgmtd}"], capture_output=True,
                         text=True, timeout=60)
    return out.returncode, out.stdout + out.stderr


def write_until_enospc(path, limit):
    """Writes 1 MiB blocks until ENOSPC; returns (bytes written, errno)."""
    block = os.urandom(MiB)
    done = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while done < limit:
            try:
                done += os.write(fd, block)
            except OSError as e:
                return done, e.errno
        try:
            os.fsync(fd)
        except OSError as e:
            return done, e.errno
        return done, 0
    finally:
        try:
            os.close(fd)
        except OSError:
            pass


@pytest.fixture(scope="module")
def small():
    c = Cluster(extra=["--loop=64M", "--targets=1", "--lease-ms=4000"])
    try:
        yield c
    finally:
        c.close()


def test_full_replica_fails_writes_cleanly(small):
    c = small
    before = os.urandom(3 * MiB + 123)
    (c.mnt / "before").write_bytes(before)
    # the middle replica's disk fills with something else: a write it took
    # and could not store would leave it behind the tail, which applies
    # first; it must refuse before forwarding instead
    mid_fs = c.data / "storage2"
    assert os.path.ismount(mid_fs), "valorfs up --loop mounts each server's image"
    ballast = mid_fs / "ballast"
    st = os.statvfs(mid_fs)
    room = st.f_bavail * st.f_frsize
    with open(ballast, "wb") as f:
        f.write(b"\0" * max(room - 2 * MiB, 0))
        f.flush()
        os.fsync(f.fileno())

    written, err = write_until_enospc(c.mnt / "big", 200 * MiB)
    assert err == errno.ENOSPC, f"wrote {written} bytes, then errno {err}"
    assert written < 8 * MiB
    # nothing half-applied: every replica holds the same chunks
    rc, out = verify_chains(c)
    assert rc == 0, out
    # what was there before is intact, and small metadata work still goes
    assert (c.mnt / "before").read_bytes() == before
    (c.mnt / "dir").mkdir()
    assert sorted(p.name for p in c.mnt.iterdir()) == ["before", "big", "dir"]
    log = c.log_text()
    assert "full: write of" in log, "the refusing server says why"

    # room again: writes go through
    ballast.unlink()
    os.sync()
    after = os.urandom(6 * MiB)
    deadline = time.monotonic() + 20
    while True:
        try:
            (c.mnt / "after").write_bytes(after)
            break
        except OSError as e:
            assert e.errno == errno.ENOSPC and time.monotonic() < deadline, e
            time.sleep(0.5)
    subprocess.run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"], check=True)
    assert (c.mnt / "after").read_bytes() == after
    assert (c.mnt / "before").read_bytes() == before
    rc, out = verify_chains(c)
    assert rc == 0, out
