#!/usr/bin/env python3
"""Run the KV conformance suite (test_kv) against a real etcd.

Starts a private single-member etcd on free loopback ports in a temporary
directory, runs `test_kv etcd://127.0.0.1:PORT/conformance-PID/`, and stops
etcd again. Exits 77 (meson's "skipped") when etcd is not installed.
Usage: etcd_conformance.py PATH/TO/test_kv
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
    test_kv = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="kv-etcd.") as d:
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
            uri = f"etcd://127.0.0.1:{cport}/conformance-{os.getpid()}/"
            print(f"running {test_kv} {uri}", flush=True)
            return subprocess.run([test_kv, uri]).returncode
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


if __name__ == "__main__":
    sys.exit(main())
