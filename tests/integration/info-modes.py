#!/usr/bin/python3
"""info plugin: each mode's content through a real client."""
import base64
import os
import struct
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest

t = nbdtest.Test()

uri = t.start("en", "info")
h = t.connect(uri.replace("///", "///hello"))
assert h.get_size() == 5 and h.pread(5, 0) == b"hello"
assert h.is_read_only()
h = t.connect(uri)
assert h.get_size() == 0

uri = t.start("b64", "info", "mode=base64exportname")
blob = bytes(range(256))
h = t.connect(uri.replace("///", "///" + base64.b64encode(blob).decode()
                          .replace("/", "%2F").replace("+", "%2B")))
assert h.pread(256, 0) == blob

uri = t.start("addr", "info", "mode=address")
h = t.connect(uri)
assert h.pread(h.get_size(), 0) == b"unix"

for mode in ("time", "uptime", "conntime"):
    uri = t.start(mode, "info", mode)   # bare value: the magic key
    h = t.connect(uri)
    assert h.get_size() == 12
    sec, usec = struct.unpack(">QI", h.pread(12, 0))
    assert usec < 1000000
    if mode == "time":
        assert abs(sec - time.time()) < 60, sec
    else:
        assert sec < 60, (mode, sec)
print("info-modes: OK")
