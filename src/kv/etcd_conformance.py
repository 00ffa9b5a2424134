#!/usr/bin/env python3
"""Run a KV test program against a real etcd.

Starts a private single-member etcd on free loopback ports in a temporary
directory, runs PROGRAM with its arguments, where "{uri}" is replaced by
etcd://127.0.0.1:PORT/test-PID/ (the URI is also in the environment as
VALORFS_TEST_KV_URI), and stops etcd again. Exits 77 (meson's "skipped")
when etcd is not installed.
Usage: etcd_conformance.py PROGRAM [ARG...]     e.g.  test_kv {uri}
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    etcd = shutil.which("etcd")
    if not etcd:
        print("etcd not installed: skipped")
        return 77
    prog = sys.argv[1:]
    # etcd's data on tmpfs: the tests check our engine, not the disk's fsync.
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="kv-etcd.", dir=base) as d:
        cport, pport = free_port(), free_port()
        curl, purl = f"http://127.0.0.1:{cport}", f"http://127.0.0.1:{pport}"
        log = open(os.path.join(d, "etcd.log"), "wb")
        p = subprocess.Popen([etcd, "--name=conf", f"--data-dir={d}/data",
                              f"--listen-client-urls={curl}", f"--advertise-client-urls={curl}",
                              f"--listen-peer-urls={purl}", f"--initial-advertise-peer-urls={purl}",
                              f"--initial-cluster=conf={purl}", "--max-txn-ops=10000",
                              "--logger=zap", "--log-outputs=stderr"],
                             stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    req = urllib.request.Request(f"{curl}/v3/kv/range", data=b'{"key":"AA=="}')
                    urllib.request.urlopen(req, timeout=1).read()
                    break
                except OSError:
                    if p.poll() is not None or time.monotonic() > deadline:
                        print(open(os.path.join(d, "etcd.log")).read()[-3000:])
                        print("etcd did not start")
                        return 1
                    time.sleep(0.1)
            uri = f"etcd://127.0.0.1:{cport}/test-{os.getpid()}/"
            argv = [a.replace("{uri}", uri) for a in prog]
            print(f"running {' '.join(argv)}", flush=True)
            return subprocess.run(argv, env=dict(os.environ, VALORFS_TEST_KV_URI=uri)).returncode
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


if __name__ == "__main__":
    sys.exit(main())
