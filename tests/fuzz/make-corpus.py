#!/usr/bin/env python3
"""Write the fuzzers' seed corpora (small binary files).

    python3 tests/fuzz/make-corpus.py [DIR]     # DIR: tests/fuzz

corpus-handshake/: what a client sends from the start of a connection
(client flags, options, then requests), for fuzz-handshake.
corpus-transmission/: two bytes choosing the handshake the harness
makes (see "struct mode" in fuzz-server.c), then requests, for
fuzz-transmission.
corpus-plugin/: the same two bytes, a script for the plugin (a 16-bit
little-endian length, then the bytes fuzzplug.c takes its decisions
from), then requests, for fuzz-plugin.

The server under fuzzing serves fuzzplug.c's disk of 4 MiB + 3 bytes
(fuzz-plugin: 512 bytes less, through the offset filter).  Seeds are
regenerated, not edited: change this script and run it again.
"""

import os
import struct
import sys

IHAVEOPT = 0x49484156454F5054
REQ_MAGIC = 0x25609513
EXT_REQ_MAGIC = 0x21e41c71

(OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS, OPT_INFO, OPT_GO,
 OPT_SR, OPT_LIST_META, OPT_SET_META, OPT_EXT) = (1, 2, 3, 5, 6, 7, 8, 9,
                                                  10, 11)
READ, WRITE, DISC, FLUSH, TRIM, CACHE, ZERO, BLOCK_STATUS = range(8)
FUA, NO_HOLE, DF, REQ_ONE, FAST_ZERO, PAYLOAD_LEN = (1, 2, 4, 8, 16, 32)
SIZE = (4 << 20) + 3
CBT = b"qemu:dirty-bitmap:"

# The mode bytes (fuzz-server.c).
M_SR, M_EH, M_META_BASE, M_META_OWN = 1, 2, 4, 8
M_EXPORT_A, M_ASK_BS, M_EXPORT_NAME, M_ALT, M_READONLY = 16, 32, 64, 128, 256


def flags(no_zeroes=True):
    return struct.pack(">I", 3 if no_zeroes else 1)


def opt(o, data=b""):
    return struct.pack(">QII", IHAVEOPT, o, len(data)) + data


def go(name=b"", infos=(3,), o=OPT_GO):
    return opt(o, struct.pack(">I", len(name)) + name +
               struct.pack(">H", len(infos)) +
               b"".join(struct.pack(">H", i) for i in infos))


def meta(o, queries=(b"base:allocation",), name=b""):
    d = struct.pack(">I", len(name)) + name + struct.pack(">I", len(queries))
    for q in queries:
        d += struct.pack(">I", len(q)) + q
    return opt(o, d)


def req(cmd, offset=0, length=0, fl=0, data=b"", cookie=1):
    return struct.pack(">IHHQQI", REQ_MAGIC, fl, cmd, cookie, offset,
                       length) + data


def ereq(cmd, offset=0, length=0, fl=0, data=b"", cookie=1):
    if data:
        fl |= PAYLOAD_LEN
    return struct.pack(">IHHQQQ", EXT_REQ_MAGIC, fl, cmd, cookie, offset,
                       length) + data


def all_requests(r):
    """One of each command, through request builder r."""
    return (r(WRITE, 4096, 512, FUA, b"\xab" * 512, 1) +
            r(READ, 4096, 512, DF, cookie=2) +
            r(ZERO, 8192, 4096, NO_HOLE, cookie=3) +
            r(ZERO, 0, 65536, FAST_ZERO, cookie=4) +
            r(TRIM, 65536, 65536, cookie=5) +
            r(CACHE, 0, 4096, cookie=6) +
            r(BLOCK_STATUS, 0, SIZE, REQ_ONE, cookie=7) +
            r(FLUSH, cookie=8) +
            r(READ, SIZE - 1, 1, cookie=9) +
            r(DISC, cookie=10))


def handshake_seeds():
    yield "go-read", flags() + go() + req(READ, 0, 4096) + req(DISC)
    yield "export-name", (flags() + opt(OPT_EXPORT_NAME) +
                          req(WRITE, 0, 16, 0, b"0123456789abcdef") +
                          req(READ, 0, 16, cookie=2) + req(DISC))
    yield "export-name-zeroes", (flags(False) + opt(OPT_EXPORT_NAME) +
                                 req(READ, 0, 512) + req(DISC))
    yield "structured", (flags() + opt(OPT_SR) +
                         meta(OPT_SET_META) + go(infos=(0, 1, 2, 3)) +
                         all_requests(req))
    yield "extended", (flags() + opt(OPT_EXT) + meta(OPT_SET_META) + go() +
                       all_requests(ereq))
    yield "list-info", (flags() + opt(OPT_LIST) + go(o=OPT_INFO) +
                        opt(OPT_SR) + meta(OPT_LIST_META, ()) +
                        meta(OPT_LIST_META, (b"base:",)) +
                        opt(OPT_ABORT))
    yield "cbt-list", (flags() + opt(OPT_SR) + meta(OPT_LIST_META, ()) +
                       meta(OPT_LIST_META, (b"qemu:",)) +
                       meta(OPT_LIST_META, (CBT,), b"a") +
                       meta(OPT_SET_META, (b"base:allocation", b"qemu:",
                                           b"qemu:dirty-bitmap:x")) +
                       opt(OPT_ABORT))
    yield "cbt-status", (flags() + opt(OPT_EXT) +
                         meta(OPT_LIST_META, (CBT,)) +
                         meta(OPT_SET_META, (b"base:allocation",)) +
                         go() + ereq(WRITE, 0, 8, 0, b"12345678") +
                         ereq(BLOCK_STATUS, 0, SIZE, cookie=2) +
                         ereq(DISC, cookie=3))
    yield "starttls", flags() + opt(OPT_STARTTLS) + go() + req(DISC)
    yield "unknown-opt", (flags() + opt(0x1234, b"xyz") + opt(OPT_SR, b"x") +
                          go(b"\0a") + go() + req(DISC))
    yield "meta-no-sr", (flags() + meta(OPT_SET_META) + go() +
                         req(BLOCK_STATUS, 0, 4096) + req(DISC))
    yield "bad-requests", (flags() + opt(OPT_SR) + go() +
                           req(READ, SIZE, 1) + req(WRITE, SIZE - 1, 2, 0,
                                                    b"zz", 2) +
                           req(99, 0, 0, cookie=3) +
                           req(READ, 0, 0xffffffff, cookie=4) +
                           req(READ, 0, 16, 0x8000, cookie=5) + req(DISC))


def mode(m):
    return struct.pack("<H", m)


def transmission_seeds():
    yield "structured", mode(M_SR | M_META_BASE | M_META_OWN |
                             M_ASK_BS) + all_requests(req)
    yield "extended", mode(M_EH | M_META_BASE | M_META_OWN) + \
        all_requests(ereq)
    yield "extended-a", mode(M_EH | M_EXPORT_A | M_ASK_BS) + \
        all_requests(ereq)
    yield "export-name", mode(M_EXPORT_NAME) + all_requests(req)
    yield "readonly", mode(M_SR | M_READONLY) + all_requests(req)
    yield "ext-bad", mode(M_EH | M_META_BASE) + (
        ereq(READ, 0, 1 << 40) + ereq(WRITE, 0, 16, PAYLOAD_LEN, b"x" * 16,
                                      2) +
        ereq(BLOCK_STATUS, SIZE - 1, 1 << 33, cookie=3) +
        ereq(WRITE, 0, 1 << 62, cookie=4))
    for name, data in raw_transmission_seeds():
        yield name, mode(M_ALT) + data


def raw_transmission_seeds():
    yield "read", req(READ, 0, 4096) + req(DISC)
    yield "write-read", (req(WRITE, 512, 8, FUA, b"abcdefgh") +
                         req(READ, 512, 8, cookie=2))
    yield "all", all_requests(req)
    yield "past-end", (req(READ, SIZE - 4, 8) +
                       req(WRITE, SIZE, 4, 0, b"abcd", 2) +
                       req(ZERO, SIZE - 1, 2, cookie=3) +
                       req(TRIM, 1 << 63, 1, cookie=4))
    yield "big", (req(READ, 0, 0xffffffff) +
                  req(WRITE, 0, 1 << 25, 0, b"x" * 64, 2))
    yield "unknown", (req(77, 0, 512) + req(READ, 0, 512, 0xffff, cookie=2) +
                      req(FLUSH, 1, 1, cookie=3))
    yield "bad-magic", b"\x25\x60\x95\x14" + b"\0" * 24
    yield "zero-length", (req(READ, 0, 0) + req(WRITE, 0, 0, cookie=2) +
                          req(ZERO, 0, 0, cookie=3) + req(TRIM, 0, 0,
                                                          cookie=4))
    yield "truncated", req(WRITE, 0, 4096, 0, b"y" * 100)


def script(layout=0, *b):
    """The layout byte (fuzzplug.c: blocks of 2^((bits 0-4 + 12) mod 23)
    bytes, so 0 is 4 KiB and 11 is one byte; bit 5: alternating types),
    then decisions."""
    return struct.pack("<H", len(b) + 1) + bytes((layout,) + b)


def plugin_seeds():
    # Decisions in the order fuzzplug.c takes them: the handshake's open,
    # get_size, block_size, capabilities, ... (13 of them without the
    # filters, 14 with base:allocation, 5 through the filters, which
    # ask fewer), then each request's.
    yield "plain", mode(M_SR | M_META_BASE) + script() + all_requests(req)
    yield "plain-ext", mode(M_EH | M_META_BASE) + script() + \
        all_requests(ereq)
    yield "bare", mode(M_EH | M_META_BASE | M_ALT) + script() + \
        all_requests(ereq)
    yield "many-extents", mode(M_EH | M_META_BASE | M_ALT) + \
        script(0x2b, *([0] * 14 + [2])) + ereq(BLOCK_STATUS, 0, SIZE) + \
        req(DISC)
    yield "many-extents-sr", mode(M_SR | M_META_BASE | M_ALT) + \
        script(0x2b, *([0] * 14 + [2])) + req(BLOCK_STATUS, 0, SIZE - 3) + \
        req(DISC)
    # Checked by the harness: extended headers, no filters, the layout's
    # blocks (case 1) and script-sized pieces (case 7).
    for layout in (0x00, 0x0b, 0x2c, 0x4f, 0x3f):
        yield "layout-%02x" % layout, mode(M_EH | M_META_BASE | M_ALT) + \
            script(layout, *([0] * 14 + [1, 0, 0, 7, 200, 3, 9, 1, 140,
                                          2, 0])) + \
            ereq(BLOCK_STATUS, 1000, 1 << 20) + \
            ereq(BLOCK_STATUS, 4096, 65536, REQ_ONE, cookie=2) + \
            ereq(DISC, cookie=3)
    for k in range(1, 8):
        yield "read-%d" % k, mode(M_SR | M_ALT) + \
            script(0, *([0] * 13 + [k, 3, 2, 9, 3, 200, 4, 1, 7, 3, 8])) + \
            req(READ, 1000, 65536) + req(READ, 0, 512, cookie=2) + \
            req(DISC)
    # Checked by the harness: read data is the disk's or zero.
    for k in range(1, 8):
        yield "read-ext-%d" % k, mode(M_EH | M_META_BASE | M_ALT) + \
            script(0, *([0] * 14 + [0, k, 3, 2, 9, 3, 200, 4, 1, 7, 3, 8])) + \
            ereq(READ, 1000, 65536) + ereq(READ, 70000, 65536, cookie=2) + \
            ereq(READ, 0, 512, cookie=3) + ereq(DISC, cookie=4)
    yield "read-chain", mode(M_SR) + \
        script(0, *([0] * 5 + [7, 3, 2, 9, 3, 200, 4, 1, 7, 3, 8] * 4)) + \
        req(READ, 1000, 65536) + req(READ, 0, 512, cookie=2) + req(DISC)
    yield "fail-caps", mode(M_SR | M_ASK_BS) + \
        script(0, 0, 0, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1) + all_requests(req)


def main():
    top = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(
        os.path.abspath(__file__))
    for name, seeds in (("corpus-handshake", handshake_seeds()),
                        ("corpus-transmission", transmission_seeds()),
                        ("corpus-plugin", plugin_seeds())):
        d = os.path.join(top, name)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        for seed, data in seeds:
            with open(os.path.join(d, seed), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
