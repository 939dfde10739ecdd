#!/usr/bin/env python3
"""Write the fuzzers' seed corpora (small binary files).

    python3 tests/fuzz/make-corpus.py [DIR]     # DIR: tests/fuzz

corpus-handshake/: what a client sends from the start of a connection
(client flags, options, then requests), for fuzz-handshake.
corpus-transmission/: requests only, for fuzz-transmission (the server
skips the handshake, as with --no-handshake; replies are simple).

The server under fuzzing serves a 1 MiB memory export.  Seeds are
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
SIZE = 1 << 20


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


def transmission_seeds():
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


def main():
    top = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(
        os.path.abspath(__file__))
    for name, seeds in (("corpus-handshake", handshake_seeds()),
                        ("corpus-transmission", transmission_seeds())):
        d = os.path.join(top, name)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        for seed, data in seeds:
            with open(os.path.join(d, seed), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
