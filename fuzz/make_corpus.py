#!/usr/bin/env python3
"""make_corpus.py — write the seed corpora of the libFuzzer targets.

    python3 fuzz/make_corpus.py            # (re)writes fuzz/corpus/*

Seeds are valid requests of many opcodes, as the decoder expects them
(struct sizes from <linux/fuse.h> 7.38 + fuzz/../src/fuse/fuse_abi.h),
plus a few near misses. Each target gets its own shape:

  corpus/fuzz_decode_dev/   one /dev/fuse frame
  corpus/fuzz_decode_ring/  128-byte header area + 128-byte op area + payload
  corpus/fuzz_dispatch/     1 control byte (see fuzz_dispatch.c) + either shape

The output is deterministic; the directories are emptied first.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

# opcodes (linux/fuse.h, fuse_abi.h)
OP = dict(
    LOOKUP=1, FORGET=2, GETATTR=3, SETATTR=4, READLINK=5, SYMLINK=6, MKNOD=8,
    MKDIR=9, UNLINK=10, RMDIR=11, RENAME=12, LINK=13, OPEN=14, READ=15, WRITE=16,
    STATFS=17, RELEASE=18, FSYNC=20, SETXATTR=21, GETXATTR=22, LISTXATTR=23,
    REMOVEXATTR=24, FLUSH=25, INIT=26, OPENDIR=27, READDIR=28, RELEASEDIR=29,
    FSYNCDIR=30, GETLK=31, SETLK=32, SETLKW=33, ACCESS=34, CREATE=35,
    INTERRUPT=36, BMAP=37, DESTROY=38, IOCTL=39, POLL=40, NOTIFY_REPLY=41,
    BATCH_FORGET=42, FALLOCATE=43, READDIRPLUS=44, RENAME2=45, LSEEK=46,
    COPY_FILE_RANGE=47, SETUPMAPPING=48, REMOVEMAPPING=49, SYNCFS=50,
    TMPFILE=51, STATX=52, COPY_FILE_RANGE_64=53,
)

UNIQUE_RESEND = 1 << 63
HDR = struct.Struct("<IIQQIIIHH")  # fuse_in_header, 40 bytes
assert HDR.size == 40


def p(fmt, *vals):
    return struct.pack("<" + fmt, *vals)


def z(s):
    """A NUL-terminated name."""
    return s.encode() + b"\0"


# fixed op structs
def getattr_in(flags=0, fh=0): return p("IIQ", flags, 0, fh)                    # 16
def setattr_in(valid, size=0, mode=0): return p("IIQQQQQQIIIIIIII", valid, 0, 0, size, 0, 0, 0, 0, 0, 0, 0, mode, 0, 0, 0, 0)  # 88
def mknod_in(mode, rdev=0, umask=0o22): return p("IIII", mode, rdev, umask, 0)   # 16
def mkdir_in(mode, umask=0o22): return p("II", mode, umask)                     # 8
def rename_in(newdir): return p("Q", newdir)                                   # 8
def rename2_in(newdir, flags): return p("QII", newdir, flags, 0)                # 16
def link_in(old): return p("Q", old)                                           # 8
def open_in(flags, open_flags=0): return p("II", flags, open_flags)             # 8
def read_in(fh, off, size, flags=0): return p("QQIIQII", fh, off, size, 0, 0, flags, 0)  # 40
def write_in(fh, off, size, wflags=0): return p("QQIIQII", fh, off, size, wflags, 0, 0, 0)  # 40
def release_in(fh, flags=0): return p("QIIQ", fh, flags, 0, 0)                  # 24
def fsync_in(fh, flags=0): return p("QII", fh, flags, 0)                        # 16
def setxattr_in(size, flags=0): return p("IIII", size, flags, 0, 0)             # 16
def getxattr_in(size): return p("II", size, 0)                                 # 8
def flush_in(fh, owner=0): return p("QIIQ", fh, 0, 0, owner)                    # 24
def init_in(major, minor, flags, flags2=0, full=True):
    b = p("IIII", major, minor, 1 << 17, flags)
    return b + p("I11I", flags2, *([0] * 11)) if full else b               # 64 / 16
def lk_in(fh): return p("QQQQIIII", fh, 1, 0, 100, 1, 42, 0, 0)                 # 48
def access_in(mask): return p("II", mask, 0)                                   # 8
def create_in(flags, mode, umask=0o22): return p("IIII", flags, mode, umask, 0)  # 16
def interrupt_in(unique): return p("Q", unique)                                # 8
def bmap_in(block): return p("QII", block, 4096, 0)                             # 16
def ioctl_in(cmd): return p("QIIQII", 1, 0, cmd, 0, 0, 0)                      # 32
def poll_in(fh): return p("QQII", fh, 0, 0, 1)                                  # 24
def notify_retrieve_in(off, size): return p("QQIIQQ", 0, off, size, 0, 0, 0)    # 40
def batch_forget_in(count): return p("II", count, 0)                            # 8
def forget_one(node, n): return p("QQ", node, n)                                # 16
def fallocate_in(fh, off, length, mode=0): return p("QQQII", fh, off, length, mode, 0)  # 32
def lseek_in(fh, off, whence): return p("QQII", fh, off, whence, 0)             # 24
def cfr_in(fh_in, off_in, node_out, fh_out, off_out, length): return p("QQQQQQQ", fh_in, off_in, node_out, fh_out, off_out, length, 0)  # 56
def setupmapping_in(): return p("QQQQQ", 1, 0, 4096, 1, 0)                      # 40
def removemapping_in(count): return p("I", count)                               # 4
def syncfs_in(): return p("Q", 0)                                              # 8
def statx_in(): return p("IIQII", 0, 0, 0, 0, 0x7ff)                            # 24
def forget_in(n): return p("Q", n)                                             # 8


# (name, opcode, nodeid, op struct, tail bytes)
REQUESTS = [
    ("lookup", OP["LOOKUP"], 1, b"", z("hello.txt")),
    ("lookup-dotdot", OP["LOOKUP"], 5, b"", z("..")),
    ("forget", OP["FORGET"], 9, forget_in(3), b""),
    ("getattr", OP["GETATTR"], 1, getattr_in(), b""),
    ("getattr-fh", OP["GETATTR"], 9, getattr_in(1, 77), b""),
    ("setattr-size", OP["SETATTR"], 9, setattr_in(1 << 3, size=4096), b""),
    ("setattr-mode", OP["SETATTR"], 9, setattr_in(1 << 0, mode=0o100600), b""),
    ("readlink", OP["READLINK"], 12, b"", b""),
    ("symlink", OP["SYMLINK"], 1, b"", z("link") + z("../target/file")),
    ("mknod", OP["MKNOD"], 1, mknod_in(0o10644), z("fifo")),
    ("mkdir", OP["MKDIR"], 1, mkdir_in(0o755), z("dir")),
    ("unlink", OP["UNLINK"], 1, b"", z("old.txt")),
    ("rmdir", OP["RMDIR"], 1, b"", z("dir")),
    ("rename", OP["RENAME"], 1, rename_in(5), z("a") + z("b")),
    ("link", OP["LINK"], 1, link_in(9), z("hardlink")),
    ("open", OP["OPEN"], 9, open_in(0o2), b""),
    ("read", OP["READ"], 9, read_in(77, 0, 4096), b""),
    ("read-max", OP["READ"], 9, read_in(77, 1 << 20, 1 << 20), b""),
    ("read-too-big", OP["READ"], 9, read_in(77, 0, (1 << 20) + 1), b""),
    ("write", OP["WRITE"], 9, write_in(77, 0, 16), b"0123456789abcdef"),
    ("write-empty", OP["WRITE"], 9, write_in(77, 8192, 0), b""),
    ("write-short", OP["WRITE"], 9, write_in(77, 0, 17), b"0123456789abcdef"),
    ("statfs", OP["STATFS"], 1, b"", b""),
    ("release", OP["RELEASE"], 9, release_in(77, 0o2), b""),
    ("fsync", OP["FSYNC"], 9, fsync_in(77, 1), b""),
    ("setxattr", OP["SETXATTR"], 9, setxattr_in(5), z("user.key") + b"value"),
    ("setxattr-empty", OP["SETXATTR"], 9, setxattr_in(0), z("user.k")),
    ("getxattr", OP["GETXATTR"], 9, getxattr_in(64), z("user.key")),
    ("getxattr-size", OP["GETXATTR"], 9, getxattr_in(0), z("user.key")),
    ("listxattr", OP["LISTXATTR"], 9, getxattr_in(0), b""),
    ("listxattr-buf", OP["LISTXATTR"], 9, getxattr_in(256), b""),
    ("removexattr", OP["REMOVEXATTR"], 9, b"", z("user.key")),
    ("flush", OP["FLUSH"], 9, flush_in(77, 0x1234), b""),
    ("init", OP["INIT"], 0, init_in(7, 45, 1 << 30, 1 << 9), b""),
    ("init-old", OP["INIT"], 0, init_in(7, 31, 0, full=False), b""),
    ("opendir", OP["OPENDIR"], 1, open_in(0), b""),
    ("readdir", OP["READDIR"], 1, read_in(3, 0, 4096), b""),
    ("readdir-small", OP["READDIR"], 1, read_in(3, 2, 40), b""),
    ("readdirplus", OP["READDIRPLUS"], 1, read_in(3, 0, 4096), b""),
    ("readdirplus-small", OP["READDIRPLUS"], 1, read_in(3, 0, 200), b""),
    ("releasedir", OP["RELEASEDIR"], 1, release_in(3), b""),
    ("fsyncdir", OP["FSYNCDIR"], 1, fsync_in(3), b""),
    ("getlk", OP["GETLK"], 9, lk_in(77), b""),
    ("setlk", OP["SETLK"], 9, lk_in(77), b""),
    ("setlkw", OP["SETLKW"], 9, lk_in(77), b""),
    ("access", OP["ACCESS"], 9, access_in(4), b""),
    ("create", OP["CREATE"], 1, create_in(0o101, 0o100644), z("new.txt")),
    ("interrupt", OP["INTERRUPT"], 0, interrupt_in(41), b""),
    ("interrupt-self", OP["INTERRUPT"], 0, interrupt_in(1000), b""),
    ("bmap", OP["BMAP"], 9, bmap_in(3), b""),
    ("destroy", OP["DESTROY"], 0, b"", b""),
    ("ioctl", OP["IOCTL"], 9, ioctl_in(0x5401), b"\0" * 8),
    ("poll", OP["POLL"], 9, poll_in(77), b""),
    ("notify-reply", OP["NOTIFY_REPLY"], 9, notify_retrieve_in(0, 8), b"12345678"),
    ("batch-forget", OP["BATCH_FORGET"], 0, batch_forget_in(3),
     forget_one(5, 1) + forget_one(6, 2) + forget_one(7, 3)),
    ("batch-forget-empty", OP["BATCH_FORGET"], 0, batch_forget_in(0), b""),
    ("fallocate", OP["FALLOCATE"], 9, fallocate_in(77, 0, 1 << 20, 1), b""),
    ("rename2", OP["RENAME2"], 1, rename2_in(5, 1), z("from") + z("to")),
    ("rename2-exchange", OP["RENAME2"], 1, rename2_in(1, 2), z("x") + z("y")),
    ("lseek", OP["LSEEK"], 9, lseek_in(77, 100, 3), b""),
    ("copy-file-range", OP["COPY_FILE_RANGE"], 9, cfr_in(77, 0, 10, 78, 4096, 65536), b""),
    ("setupmapping", OP["SETUPMAPPING"], 9, setupmapping_in(), b""),
    ("removemapping", OP["REMOVEMAPPING"], 9, removemapping_in(1), p("QQ", 0, 4096)),
    ("syncfs", OP["SYNCFS"], 1, syncfs_in(), b""),
    ("tmpfile", OP["TMPFILE"], 1, create_in(0o2, 0o100600), z("")),
    ("statx", OP["STATX"], 9, statx_in(), b""),
    ("copy-file-range-64", OP["COPY_FILE_RANGE_64"], 9, cfr_in(77, 0, 10, 78, 0, 1 << 33), b""),
    ("unknown-opcode", 4000, 1, b"", b""),
]


def header(opcode, nodeid, length, unique=1000, extlen=0):
    return HDR.pack(length, opcode, unique, nodeid, 1000, 1000, 4242, extlen, 0)


def dev_frame(opcode, nodeid, op, tail, unique=1000, ext=b""):
    assert len(ext) % 8 == 0
    n = HDR.size + len(op) + len(tail) + len(ext)
    return header(opcode, nodeid, n, unique, len(ext) // 8) + op + tail + ext


def ring_entry(opcode, nodeid, op, tail, unique=1000, ext=b""):
    assert len(op) <= 128 and len(ext) % 8 == 0
    hdr = header(opcode, nodeid, 0, unique, len(ext) // 8)
    return hdr.ljust(128, b"\0") + op.ljust(128, b"\0") + tail + ext


def extras():
    """Near misses and less common header shapes, as (name, dev frame)."""
    secctx = p("II", 1, 0) + b"\0" * 8  # some extension bytes, a multiple of 8
    return [
        ("lookup-ext", dev_frame(OP["LOOKUP"], 1, b"", z("x"), ext=secctx)),
        ("mkdir-ext", dev_frame(OP["MKDIR"], 1, mkdir_in(0o755), z("d"), ext=secctx)),
        ("lookup-resend", dev_frame(OP["LOOKUP"], 1, b"", z("x"), unique=7 | UNIQUE_RESEND)),
        ("lookup-no-nul", dev_frame(OP["LOOKUP"], 1, b"", b"abc")),
        ("rename2-one-name", dev_frame(OP["RENAME2"], 1, rename2_in(5, 0), z("a"))),
        ("setxattr-short-value", dev_frame(OP["SETXATTR"], 9, setxattr_in(9), z("user.k") + b"abc")),
        ("batch-forget-short", dev_frame(OP["BATCH_FORGET"], 0, batch_forget_in(2), forget_one(5, 1))),
        ("write-truncated-op", dev_frame(OP["WRITE"], 9, write_in(1, 0, 0)[:20], b"")),
        ("forget-unique0", dev_frame(OP["FORGET"], 9, forget_in(1), b"", unique=0)),
        ("header-only", header(OP["GETATTR"], 1, 40)),
        ("bad-len", header(OP["GETATTR"], 1, 41) + getattr_in()),
    ]


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    for t in ("fuzz_decode_dev", "fuzz_decode_ring", "fuzz_dispatch"):
        d = os.path.join(CORPUS, t)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))

    n = 0
    for name, opcode, nodeid, op, tail in REQUESTS:
        unique = 1000
        if name == "interrupt-self":
            op = interrupt_in(unique)
        frame = dev_frame(opcode, nodeid, op, tail, unique)
        ring = ring_entry(opcode, nodeid, op, tail, unique)
        write("fuzz_decode_dev", name, frame)
        write("fuzz_decode_ring", name, ring)
        # control byte: bit0 no callbacks, bit1 ring shape, bit2 errors
        write("fuzz_dispatch", name, b"\x00" + frame)
        write("fuzz_dispatch", name + "-ring", b"\x02" + ring)
        write("fuzz_dispatch", name + "-noops", b"\x01" + frame)
        write("fuzz_dispatch", name + "-errors", b"\x04" + frame)
        n += 1
    for name, frame in extras():
        write("fuzz_decode_dev", name, frame)
        write("fuzz_dispatch", name, b"\x00" + frame)
        n += 1
    # ring-only shapes: payload with extensions, INIT (refused on a ring)
    write("fuzz_decode_ring", "lookup-ext",
          ring_entry(OP["LOOKUP"], 1, b"", z("x"), ext=b"\1" * 16))
    write("fuzz_decode_ring", "write-ext",
          ring_entry(OP["WRITE"], 9, write_in(1, 0, 4), b"data", ext=b"\2" * 8))
    print(f"wrote {n} requests into {os.path.relpath(CORPUS)}/", file=sys.stderr)


if __name__ == "__main__":
    main()
