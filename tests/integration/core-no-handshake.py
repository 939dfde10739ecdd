#!/usr/bin/python3
"""Transmission-only mode: --no-handshake --fd N -e NAME serves a socket
whose client has negotiated elsewhere (core/connection.c,
handshake_finish_export).  The server sends no greeting; the client
speaks transmission at once with compact requests and gets simple
replies.  With the test plugin, and the memory plugin too if built.

  - the first bytes from the server are the reply to our first request
    (no greeting);
  - a write then a read back return the bytes written, unaligned too;
  - flush works; a read past the end gets NBD_EINVAL;
  - NBD_CMD_DISC ends the connection and the server exits 0."""
import os
import socket

import nbdtest
import nbdtest_raw as rawnbd
import nbdtest_plug as tp

t = tp.Test()
builddir = os.environ.get("BUILDDIR", ".")
memory = os.path.join(builddir, "plugins", "nbdkit-memory-plugin.so")
plugins = [[tp.PLUGIN, "size=1M"]]
if os.path.exists(memory):
    plugins.append(["memory", "1M"])


def run(plugin):
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    fd = theirs.fileno()
    p = t.spawn([nbdtest.NBDKIT, "--no-handshake", "--fd", str(fd),
                 "-e", "foo", *plugin], pass_fds=[fd])
    theirs.close()

    c = rawnbd.Client(sock=mine, handshake=False)
    data = os.urandom(5000)
    c.send(rawnbd.CMD_WRITE, 1001, len(data), data=data)
    r = c.reply()
    assert r.kind == "simple" and r.error == 0, r
    c.send(rawnbd.CMD_READ, 1001, len(data))
    r = c.reply()
    assert r.kind == "simple" and r.error == 0 and r.data == data, r
    c.send(rawnbd.CMD_READ, 0, 1001)
    assert c.reply().data == bytes(1001)
    c.send(rawnbd.CMD_FLUSH, 0, 0)
    assert c.reply().error == 0
    c.send(rawnbd.CMD_READ, (1 << 20) - 512, 1024)
    assert c.reply().error == rawnbd.EINVAL
    c.send(rawnbd.CMD_DISC, 0, 0)
    assert p.wait(timeout=10) == 0, p.returncode
    assert mine.recv(1) == b"", "server did not close the connection"
    print("core-no-handshake (%s): OK" % plugin[0])


for plugin in plugins:
    run(plugin)
