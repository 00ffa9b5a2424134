#!/usr/bin/env python3
"""garbage.py — throw malformed RPC traffic at a valorfs server.

    from garbage import hammer
    hammer("127.0.0.1:9000", probe_method=0x0106)   # e.g. MG_WHO_PRIMARY
    hammer(meta_addr, 0x0215, meta_req())           # META_STATFS

    python3 tests/cluster/garbage.py HOST:PORT PROBE_METHOD [SEED]
    (a meta method 0x02xx is probed with meta_req() as its payload)

hammer() opens TCP connections to the server and sends, each on its own
connection:
  (a) random bytes (at least one header's worth),
  (b) a well-formed header with a wrong magic,
  (c) a header announcing a 1 GiB payload,
  (d) a valid header and part of its payload, then half-closes,
  (e) a valid REQUEST frame for every method id declared in
      src/proto/*_proto.h, carrying random bytes as payload.
After (a)-(d) the server must close the connection (or answer with an
error frame); for (e) it must answer with a well-formed RESPONSE frame
echoing the request id with a non-zero status (or close). Finally a fresh
connection must still get a RESPONSE to a valid frame for probe_method
(payload probe_payload); its (status, payload) is returned.

Any violation raises AssertionError naming the step and the seed, so a
failure can be replayed with the same seed. Frame layout: src/rpc/rpc.h.
"""
import os
import random
import re
import socket
import struct
import sys

RPC_MAGIC = 0x43505256  # "VRPC"
RPC_VERSION = 1
KIND_REQUEST = 1
KIND_RESPONSE = 2
HDR = struct.Struct("<IBBHQiIII")  # magic version kind method id status timeout len reserved
assert HDR.size == 32
MAX_RESPONSE = 64 << 20  # larger than any answer to the requests sent here

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.join(HERE, "..", "..", "src", "proto")

# Request bodies of a fixed size (mgmtd_proto.h / storage_proto.h): random
# payloads avoid exactly these lengths, so a random request cannot decode.
FIXED_REQUEST_SIZES = {
    "MG_GET_ROUTING": 8, "MG_CREATE_TABLE": 12, "MG_SET_TARGET": 5,
    "MG_HEARTBEAT": 16, "MG_UNREGISTER": 16,  # with no target reports
    "STG_READ": 36, "STG_REMOVE": 40, "STG_QUERY": 24, "STG_CHUNK_META": 16,
    "STG_LIST": 28, "STG_SYNC": 4, "STG_TRUNCATE": 52,
}
# Requests with an empty body: a server may ignore a payload and answer.
EMPTY_REQUESTS = {"MG_WHO_PRIMARY", "STG_STATFS", "META_STATFS"}


def proto_methods(proto_dir=PROTO_DIR):
    """{name: id} for every method enum in src/proto/*_proto.h."""
    methods = {}
    for fn in sorted(os.listdir(proto_dir)):
        if not fn.endswith("_proto.h"):
            continue
        with open(os.path.join(proto_dir, fn)) as f:
            text = f.read()
        for block in re.findall(r"enum\s+\w+_method\s*\{(.*?)\}", text, re.S):
            for name, val in re.findall(r"\b([A-Z][A-Z0-9_]+)\s*=\s*(0x[0-9a-fA-F]+)", block):
                methods[name] = int(val, 16)
    if not methods:
        raise RuntimeError("no method ids found in " + proto_dir)
    return methods


def _split(addr):
    if isinstance(addr, tuple):
        return addr
    host, _, port = addr.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def _connect(addr, timeout):
    s = socket.create_connection(_split(addr), timeout=timeout)
    s.settimeout(timeout)
    return s


def header(method, rid, payload_len, kind=KIND_REQUEST, magic=RPC_MAGIC, status=0,
           timeout_ms=5000, version=RPC_VERSION):
    return HDR.pack(magic, version, kind, method, rid, status, timeout_ms, payload_len, 0)


def _recv_exact(s, n):
    """n bytes, or fewer if the peer closed first."""
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = s.recv(n - len(buf))
        except ConnectionResetError:
            break
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def read_frame(s):
    """('closed', None) or ('frame', (hdr_tuple, payload)); raises
    AssertionError on a malformed frame and socket.timeout when the server
    neither answers nor closes."""
    raw = _recv_exact(s, HDR.size)
    if len(raw) == 0:
        return "closed", None
    assert len(raw) == HDR.size, "server sent a partial header (%d bytes) and closed" % len(raw)
    h = HDR.unpack(raw)
    magic, version, kind, method, rid, status, timeout_ms, plen, reserved = h
    assert magic == RPC_MAGIC and version == RPC_VERSION, "bad magic/version in answer: %r" % (h,)
    assert kind == KIND_RESPONSE, "server answered with kind %d" % kind
    assert plen <= MAX_RESPONSE, "answer announces %d payload bytes" % plen
    payload = _recv_exact(s, plen)
    assert len(payload) == plen, "answer payload cut short (%d of %d)" % (len(payload), plen)
    return "frame", (h, payload)


def _expect_closed_or_error(s, what, seed):
    """After garbage: EOF, a reset, or error frames until EOF."""
    ctx = "%s (seed %d)" % (what, seed)
    for _ in range(16):
        try:
            kind, fr = read_frame(s)
        except socket.timeout:
            raise AssertionError(ctx + ": server neither answered nor closed the connection")
        except AssertionError as e:
            raise AssertionError(ctx + ": " + str(e))
        if kind == "closed":
            return
        status = fr[0][5]
        assert status != 0, ctx + ": answered garbage with status 0"
    raise AssertionError(ctx + ": server keeps answering garbage")


def _send_garbage(addr, data, what, seed, timeout, half_close=True):
    s = _connect(addr, timeout)
    try:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)  # no more bytes: a waiting server must give up
        except (BrokenPipeError, ConnectionResetError):
            return  # closed on us while sending: that is a refusal
        _expect_closed_or_error(s, what, seed)
    finally:
        s.close()


def meta_req(uid=0, gid=0, ino=0):
    """A minimal meta request (struct meta_req as meta_codec.c encodes it):
    credentials without groups, ino, every other field zero/empty — enough
    for META_STATFS or META_GETATTR as a probe."""
    return (struct.pack("<III", uid, gid, 0) + struct.pack("<QQQ", ino, 0, 0) +
            struct.pack("<II", 0, 0) +                       # name, newname
            struct.pack("<III", 0, 0, 0) + struct.pack("<Q", 0) +  # mode umask flags rdev
            struct.pack("<III", 0, 0, 0) +                   # valid uid gid
            struct.pack("<QqqqQQ", 0, 0, 0, 0, 0, 0) +       # size times session length_hint
            struct.pack("<III", 0, 0, 0) +                   # max_entries chunk_size stripe
            struct.pack("<I", 0))                            # data


def request(addr, method, payload=b"", rid=1, timeout=5.0):
    """One valid request on a fresh connection; returns (status, payload)."""
    s = _connect(addr, timeout)
    try:
        s.sendall(header(method, rid, len(payload)) + payload)
        kind, fr = read_frame(s)
        assert kind == "frame", "server closed the connection instead of answering method 0x%04x" % method
        h, body = fr
        assert h[4] == rid, "answer id %d, request id %d" % (h[4], rid)
        return h[5], body
    finally:
        s.close()


def hammer(addr, probe_method, probe_payload=b"", seed=None, timeout=5.0, rounds=3):
    """Run every attack against addr ("host:port"); see the module doc."""
    if seed is None:
        seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    methods = proto_methods()

    for r in range(rounds):
        # (a) random bytes, at least one header so the server must judge them
        n = rng.randrange(HDR.size, 4096)
        data = bytes(rng.randrange(256) for _ in range(n))
        if data[:4] == struct.pack("<I", RPC_MAGIC):
            data = b"\0" + data[1:]
        _send_garbage(addr, data, "random bytes #%d" % r, seed, timeout)

    # (b) wrong magic (and a wrong version, a wrong kind)
    m = rng.choice(sorted(methods.values()))
    _send_garbage(addr, header(m, 1, 0, magic=0xDEADBEEF), "wrong magic", seed, timeout,
                  half_close=False)
    _send_garbage(addr, header(m, 1, 0, version=99), "wrong version", seed, timeout,
                  half_close=False)
    _send_garbage(addr, header(m, 1, 0, kind=7), "wrong kind", seed, timeout,
                  half_close=False)

    # (c) 1 GiB announced; nothing follows
    _send_garbage(addr, header(m, 2, 1 << 30), "1 GiB payload", seed, timeout,
                  half_close=False)

    # (d) valid header, part of the payload, then no more
    _send_garbage(addr, header(m, 3, 1000) + bytes(rng.randrange(256) for _ in range(100)),
                  "truncated payload", seed, timeout)

    # (e) every known method with random bytes as its request
    for name, mid in sorted(methods.items()):
        n = rng.randrange(1, 300)
        if FIXED_REQUEST_SIZES.get(name) == n:
            n += 1
        payload = bytes(rng.randrange(256) for _ in range(n))
        rid = rng.randrange(1, 1 << 63)
        what = "method %s (0x%04x) with %d random bytes (seed %d)" % (name, mid, n, seed)
        s = _connect(addr, timeout)
        try:
            s.sendall(header(mid, rid, n) + payload)
            try:
                kind, fr = read_frame(s)
            except socket.timeout:
                raise AssertionError(what + ": no answer")
            except AssertionError as e:
                raise AssertionError(what + ": " + str(e))
            if kind == "frame":
                h, _ = fr
                assert h[4] == rid, what + ": answer id %d != %d" % (h[4], rid)
                if name not in EMPTY_REQUESTS:
                    assert h[5] != 0, what + ": decoded garbage and answered status 0"
        finally:
            s.close()

    # finally: the server still serves
    try:
        return request(addr, probe_method, probe_payload, rid=rng.randrange(1, 1 << 63),
                       timeout=timeout)
    except (OSError, AssertionError) as e:
        raise AssertionError("after the garbage (seed %d) the server no longer answers: %s"
                             % (seed, e))


def main(argv):
    if len(argv) not in (3, 4):
        print("usage: garbage.py HOST:PORT PROBE_METHOD [SEED]   (method: number, e.g. 0x0106)",
              file=sys.stderr)
        return 2
    seed = int(argv[3]) if len(argv) == 4 else None
    method = int(argv[2], 0)
    probe = meta_req() if method >> 8 == 0x02 else b""
    status, payload = hammer(argv[1], method, probe, seed=seed)
    print("ok: server survived; probe answered status %d with %d bytes" % (status, len(payload)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
