#!/usr/bin/python3
"""Every language host (Python, Lua, OCaml; plugins and filters),
driven from one table: each documented return value of each callback,
the defaults of missing callbacks, "the layer below's" answers of a
filter that opened nothing below, and bad values (wrong types,
out-of-range and negative numbers, oversized strings, a pread of the
wrong length, an exception in every callback).

From the table the test writes one script per host whose callbacks
look up the case by export name, starts one server per script and
connects once per case with libnbd.  Each documented value must reach
the client as documented; each bad value must fail that connection or
request with an NBD error and log a line naming the callback (and the
script, when the host is the one to refuse it); the server must
survive every case.  Run under the ASan build too, where the hosts are
loaded into the sanitized server."""

import errno
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
from nbdtest import nbd  # noqa: E402

nbdtest.require_ours()
BUILDDIR = os.environ.get("BUILDDIR", ".")
MiB = 1 << 20


def built(kind, name):
    return os.path.exists(os.path.join(BUILDDIR, kind + "s",
                                       "nbdkit-%s-%s.so" % (name, kind)))


# ---- the table ----
#
# R(callback, case, expectation, py=..., lua=..., ml=...): the body of
# the callback for this case in each host (absent: the case does not
# apply to that host, e.g. a wrong type in OCaml).  Python and Lua
# bodies are statements; OCaml ones an expression of the callback's
# type.  In filters the same bodies run with `next` in scope.
#
# Expectations:
#   ("size", n)                   get_size is n
#   ("desc", s)                   export description s (None: none sent)
#   ("bs", min, pref, max)        block sizes the client sees
#   ("flag", name, bool)          a capability the client sees
#   ("read", off, n, bytes)       reading n bytes at off gives bytes
#   ("readerr", off, n, errno)    reading fails with errno
#   ("extents", off, n, list)     base:allocation as (off, len, flags)
#   ("fail", who)                 the connection is refused; the log
#                                 names the callback, and the script
#                                 too unless who == "core"
#   ("descerr",)                  no description (the callback failed),
#                                 the log names the script and callback
#   ("noext",)                    no base:allocation (SET_META_CONTEXT
#                                 failed), the log names both too
#   ("cmdok", cmd)                the command (CMD below) succeeds
#   ("cmderr", cmd, errno)        it fails with errno (None: any)
#   ("listerr",)                  NBD_OPT_LIST fails
#   ("logged",)                   the client sees nothing; the log
#                                 names the script and the callback
#                                 (close, finalize)
# Every error also leaves a log line naming the callback and the
# script (unless who is "core": then the callback).
#
# Filters run over the plugin made from the same table (Python over
# Python, Lua over Lua), so the layer below answers a case as the
# plugin does; then again with every case's export opened with
# open_none, where the layer below's answer is the plugin default.

class R:
    def __init__(self, cb, case, expect, py=None, lua=None, ml=None,
                 filters=True, fpy=None, flua=None, none_expect=None,
                 plugins=True):
        self.cb, self.case, self.expect = cb, case, expect
        self.code = {"py": py, "lua": lua, "ml": ml}
        # In filters: other bodies, and what a filter that opened
        # nothing below answers.
        self.fcode = {"py": fpy or py, "lua": flua or lua}
        self.none_expect = none_expect or expect
        self.filters, self.plugins = filters, plugins


BIG = "x" * 5000
ROWS = [
    # get_size
    R("get_size", "size_ok", ("size", 65536),
      py="return 65536", lua="return 65536", ml="65536L"),
    R("get_size", "size_zero", ("size", 0),
      py="return 0", lua="return 0", ml="0L"),
    R("get_size", "size_neg", ("fail", "host"),
      py="return -5", lua="return -5", ml="(-5L)"),
    R("get_size", "size_neg1", ("fail", "host"),
      py="return -1", lua="return -1", ml="(-1L)"),
    R("get_size", "size_huge", ("fail", "host"),
      py="return 1 << 64", lua="return 2^64"),
    R("get_size", "size_none", ("fail", "host"),
      py="return None", lua="return nil"),
    R("get_size", "size_str", ("fail", "host"),
      py="return 'abc'", lua="return 'abc'"),
    R("get_size", "size_float", ("fail", "host"),
      py="return 1.5", lua="return 1.5"),
    R("get_size", "size_exc", ("fail", "host"),
      py="raise RuntimeError('boom')", lua="error('boom')",
      ml="failwith \"boom\""),
    # export_description
    R("export_description", "desc_ok", ("desc", "hello"),
      py="return 'hello'", lua="return 'hello'", ml="\"hello\""),
    R("export_description", "desc_utf8", ("desc", "h\u00e9"),
      py="return 'h\u00e9'", lua="return 'h\\u{e9}'", ml="\"h\\xc3\\xa9\""),
    R("export_description", "desc_none", ("desc", None),
      py="return None", lua="return nil", filters=False),
    R("export_description", "desc_empty", ("desc", None),
      py="return ''", lua="return ''", ml="\"\""),
    R("export_description", "desc_below", ("desc", "below"),
      py="return 'below'", lua="return 'below'", fpy="return None",
      flua="return nil", none_expect=("desc", None)),
    R("export_description", "desc_long", ("descerr",),
      py="return 'x' * 5000", lua="return string.rep('x', 5000)",
      ml="String.make 5000 'x'"),
    R("export_description", "desc_nul", ("descerr",),
      py="return 'a\\0b'", lua="return 'a\\0b'", ml="\"a\\000b\""),
    R("export_description", "desc_int", ("descerr",),
      py="return 42", lua="return {}"),
    R("export_description", "desc_badutf8", ("descerr",),
      py="return '\\udcff'"),
    R("export_description", "desc_exc", ("descerr",),
      py="raise RuntimeError('boom')", lua="error('boom')",
      ml="failwith \"boom\""),
    # block_size
    R("block_size", "bs_ok", ("bs", 512, 4096, MiB),
      py="return (512, 4096, 1 << 20)",
      lua="return 512, 4096, 1 << 20",
      ml="{ minimum = 512; preferred = 4096; maximum = 1 lsl 20;"
         " maximum_virtual = 0L }"),
    R("block_size", "bs_four", ("bs", 512, 4096, MiB),
      py="return (512, 4096, 1 << 20, 1 << 30)",
      lua="return {minimum=512, preferred=4096, maximum=1 << 20,"
          " maximum_virtual=1 << 30}",
      ml="{ minimum = 512; preferred = 4096; maximum = 1 lsl 20;"
         " maximum_virtual = 1073741824L }"),
    R("block_size", "bs_none", ("bs", 1, 4096, 64 * MiB),
      py="return None", lua="return nil", filters=False),
    R("block_size", "bs_below", ("bs", 512, 4096, MiB),
      py="return (512, 4096, 1 << 20)", lua="return 512, 4096, 1 << 20",
      fpy="return None", flua="return nil",
      none_expect=("bs", 1, 4096, 64 * MiB)),
    R("block_size", "bs_zero", ("bs", 1, 4096, 64 * MiB),
      py="return (0, 0, 0)", lua="return 0, 0, 0",
      ml="{ minimum = 0; preferred = 0; maximum = 0;"
         " maximum_virtual = 0L }"),
    R("block_size", "bs_npow2", ("fail", "core"),
      py="return (3, 4096, 1 << 20)", lua="return 3, 4096, 1 << 20",
      ml="{ minimum = 3; preferred = 4096; maximum = 1 lsl 20;"
         " maximum_virtual = 0L }"),
    R("block_size", "bs_neg", ("fail", "host"),
      py="return (-1, 4096, 1 << 20)", lua="return -1, 4096, 1 << 20",
      ml="{ minimum = -1; preferred = 4096; maximum = 1 lsl 20;"
         " maximum_virtual = 0L }"),
    R("block_size", "bs_big", ("fail", "host"),
      py="return (512, 4096, (1 << 32) + 512)",
      lua="return 512, 4096, (1 << 32) + 512",
      ml="{ minimum = 512; preferred = 4096; maximum = (1 lsl 32) + 512;"
         " maximum_virtual = 0L }"),
    R("block_size", "bs_negvirt", ("fail", "host"),
      py="return (512, 4096, 1 << 20, -1)",
      lua="return 512, 4096, 1 << 20, -1",
      ml="{ minimum = 512; preferred = 4096; maximum = 1 lsl 20;"
         " maximum_virtual = -1L }"),
    R("block_size", "bs_short", ("fail", "core"),
      py="return (512, 4096)", lua="return {minimum=512, bogus=1}"),
    R("block_size", "bs_str", ("fail", "host"),
      py="return 'abc'", lua="return 'abc'"),
    R("block_size", "bs_exc", ("fail", "host"),
      py="raise RuntimeError('boom')", lua="error('boom')",
      ml="failwith \"boom\""),
    # capabilities
    R("can_write", "cw_true", ("flag", "can_write", True),
      py="return True", lua="return true", ml="true"),
    R("can_write", "cw_false", ("flag", "can_write", False),
      py="return False", lua="return false", ml="false"),
    # Python takes any truth value, as nbdkit's Python plugin does.
    R("can_write", "cw_int", ("flag", "can_write", False),
      py="return 0", lua="return 0"),
    R("can_write", "cw_str", ("fail", "host"), lua="return 'yes'"),
    R("can_write", "cw_none", ("fail", "host"), lua="return nil"),
    R("can_write", "cw_badbool", ("fail", "host"),
      py="class B:\n    def __bool__(self): raise ValueError('no')\n"
         "return B()"),
    R("can_write", "cw_exc", ("fail", "host"),
      py="raise RuntimeError('boom')", lua="error('boom')",
      ml="failwith \"boom\""),
    R("can_flush", "cf_true", ("flag", "can_flush", True),
      py="return True", lua="return true", ml="true"),
    R("can_flush", "cf_exc", ("fail", "host"),
      py="raise RuntimeError('boom')", lua="error('boom')",
      ml="failwith \"boom\""),
    R("is_rotational", "rot_true", ("flag", "is_rotational", True),
      py="return True", lua="return true", ml="true"),
    R("is_rotational", "rot_exc", ("fail", "host"),
      py="raise RuntimeError('boom')", lua="error('boom')",
      ml="failwith \"boom\""),
    R("can_multi_conn", "mc_true", ("flag", "can_multi_conn", True),
      py="return True", lua="return true", ml="true"),
    R("can_multi_conn", "mc_exc", ("fail", "host"),
      py="raise RuntimeError('boom')", lua="error('boom')",
      ml="failwith \"boom\""),
    R("can_trim", "trim_true", ("flag", "can_trim", True),
      py="return True", lua="return true", ml="true"),
    R("can_trim", "trim_exc", ("fail", "host"),
      py="raise RuntimeError('boom')", lua="error('boom')",
      ml="failwith \"boom\""),
    R("can_fast_zero", "fz_true", ("flag", "can_fast_zero", True),
      py="return True", lua="return true", ml="true"),
    R("can_fast_zero", "fz_exc", ("fail", "host"),
      py="raise RuntimeError('boom')", lua="error('boom')",
      ml="failwith \"boom\""),
    R("can_zero", "zero_none", ("flag", "can_zero", False),
      py="return nbdkit.ZERO_NONE", lua="return nbdkit.ZERO_NONE",
      ml="Zero_none"),
    R("can_zero", "zero_emulate", ("flag", "can_zero", True),
      py="return nbdkit.ZERO_EMULATE", lua="return nbdkit.ZERO_EMULATE",
      ml="Zero_emulate"),
    R("can_zero", "zero_true", ("flag", "can_zero", True),
      py="return True", lua="return true", ml="Zero_native"),
    R("can_zero", "zero_false", ("flag", "can_zero", False),
      py="return False", lua="return false"),
    R("can_zero", "zero_99", ("fail", "host"),
      py="return 99", lua="return 99"),
    R("can_zero", "zero_neg", ("fail", "host"),
      py="return -1", lua="return -1"),
    R("can_zero", "zero_exc", ("fail", "host"),
      py="raise RuntimeError('boom')", lua="error('boom')",
      ml="failwith \"boom\""),
    R("can_fua", "fua_none", ("flag", "can_fua", False),
      py="return nbdkit.FUA_NONE", lua="return nbdkit.FUA_NONE",
      ml="Fua_none"),
    R("can_fua", "fua_native", ("flag", "can_fua", True),
      py="return nbdkit.FUA_NATIVE", lua="return nbdkit.FUA_NATIVE",
      ml="Fua_native"),
    R("can_fua", "fua_3", ("fail", "host"),
      py="return 3", lua="return 3"),
    R("can_fua", "fua_exc", ("fail", "host"),
      py="raise RuntimeError('boom')", lua="error('boom')",
      ml="failwith \"boom\""),
    R("can_cache", "cache_native", ("flag", "can_cache", True),
      py="return nbdkit.CACHE_NATIVE", lua="return nbdkit.CACHE_NATIVE",
      ml="Cache_native"),
    R("can_cache", "cache_none", ("flag", "can_cache", False),
      py="return nbdkit.CACHE_NONE", lua="return nbdkit.CACHE_NONE",
      ml="Cache_none"),
    R("can_cache", "cache_exc", ("fail", "host"),
      py="raise RuntimeError('boom')", lua="error('boom')",
      ml="failwith \"boom\""),
    R("can_extents", "ext_none", ("flag", "can_meta_context", False),
      py="return nbdkit.EXTENTS_NONE", lua="return nbdkit.EXTENTS_NONE",
      ml="Extents_none"),
    R("can_extents", "ext_7", ("noext",),
      py="return 7", lua="return 7"),
    R("can_extents", "ext_exc", ("noext",),
      py="raise RuntimeError('boom')", lua="error('boom')",
      ml="failwith \"boom\""),
    # pread
    R("pread", "rd_ok", ("read", 0, 4096, b"A" * 4096),
      py="buf[:] = b'A' * len(buf)",
      lua="return string.rep('A', count)",
      ml="Bytes.fill buf 0 (Bytes.length buf) 'A'"),
    R("pread", "rd_short", ("readerr", 0, 4096, errno.EIO),
      py="buf[:] = b'A' * (len(buf) - 1)",
      lua="return string.rep('A', count - 1)"),
    R("pread", "rd_long", ("readerr", 0, 4096, errno.EIO),
      py="buf[:] = b'A' * (len(buf) + 1)",
      lua="return string.rep('A', count + 1)"),
    # (In Python the rest of the request is buf, which the script
    # may fill or not: not an error there.)
    R("pread", "rd_datashort", ("readerr", 0, 4096, errno.EIO),
      lua="nbdkit.read_data(offset, string.rep('A', 100))"),
    R("pread", "rd_int", ("readerr", 0, 4096, errno.EIO),
      lua="return 42"),
    R("pread", "rd_exc", ("readerr", 0, 4096, errno.EIO),
      py="raise RuntimeError('boom')", lua="error('boom')",
      ml="failwith \"boom\""),
    R("pread", "rd_enospc", ("readerr", 0, 4096, errno.ENOSPC),
      py="raise nbdkit.Error(errno.ENOSPC)",
      lua="error(nbdkit.errno('ENOSPC'))",
      ml="raise (NBDKit.Error (Unix.ENOSPC, \"full\"))"),
    R("pread", "rd_holeout", ("readerr", 0, 4096, None),
      py="nbdkit.read_hole(offset + 2048, 4096)",
      lua="nbdkit.read_hole(offset + 2048, 4096)"),
    R("pread", "rd_holeneg", ("readerr", 0, 4096, None),
      py="nbdkit.read_hole(-1, 4096)",
      lua="nbdkit.read_hole(-1, 4096)"),
    R("pread", "rd_lendout", ("readerr", 0, 4096, None),
      py="nbdkit.read_lend(offset + 4095, b'AB')",
      lua="nbdkit.read_data(offset + 4095, 'AB')"),
    R("pread", "rd_errat", ("readerr", 0, 4096, None),
      py="nbdkit.read_error_at(offset + 8192)\n"
         "raise RuntimeError('boom')",
      lua="nbdkit.read_error_at(offset + 8192) error('boom')"),
    # module functions given bad values raise, rather than sleeping
    # for 2^32-1 seconds
    R("pread", "rd_sleepneg", ("readerr", 0, 4096, errno.EIO),
      py="nbdkit.nanosleep(-1)", lua="nbdkit.nanosleep(-1)",
      ml="NBDKit.nanosleep (-1) 0"),
    R("pread", "rd_sleepnsec", ("readerr", 0, 4096, errno.EIO),
      py="nbdkit.nanosleep(0, -1)", lua="nbdkit.nanosleep(0, -1)",
      ml="NBDKit.nanosleep 0 (-1)"),
    # a filter reading far past the end of the layer below (or with
    # nothing below): an error, not an allocation of 4 EiB
    R("pread", "rd_nextbig", ("readerr", 0, 4096, errno.EIO),
      plugins=False, py="next.pread(1 << 62, 0)",
      lua="return next:pread(1 << 62, 0)"),
    # the other data callbacks, and close
    R("pwrite", "wr_exc", ("cmderr", "pwrite", errno.EIO),
      py="raise RuntimeError('boom')", lua="error('boom')",
      ml="failwith \"boom\""),
    R("pwrite", "wr_enospc", ("cmderr", "pwrite", errno.ENOSPC),
      py="raise nbdkit.Error(errno.ENOSPC)",
      lua="error(nbdkit.errno('ENOSPC'))",
      ml="raise (NBDKit.Error (Unix.ENOSPC, \"full\"))"),
    R("flush", "fl_exc", ("cmderr", "flush", errno.EIO),
      py="raise RuntimeError('boom')", lua="error('boom')",
      ml="failwith \"boom\""),
    R("trim", "tr_exc", ("cmderr", "trim", errno.EIO),
      py="raise RuntimeError('boom')", lua="error('boom')",
      ml="failwith \"boom\""),
    R("zero", "ze_exc", ("cmderr", "zero", errno.EIO),
      py="raise RuntimeError('boom')", lua="error('boom')",
      ml="failwith \"boom\""),
    R("zero", "ze_notsup", ("cmdok", "zero"),
      py="raise nbdkit.Error(errno.EOPNOTSUPP)",
      lua="error(nbdkit.errno('EOPNOTSUPP'))",
      ml="raise (NBDKit.Error (Unix.EOPNOTSUPP, \"no\"))"),
    R("cache", "ca_exc", ("cmderr", "cache", errno.EIO),
      py="raise RuntimeError('boom')", lua="error('boom')",
      ml="failwith \"boom\""),
    R("close", "cl_exc", ("logged",),
      py="raise RuntimeError('boom')", lua="error('boom')",
      ml="failwith \"boom\""),
    R("prepare", "pr_exc", ("fail", "host"), plugins=False,
      py="raise RuntimeError('boom')", lua="error('boom')"),
    R("finalize", "fi_exc", ("logged",), plugins=False,
      py="raise RuntimeError('boom')", lua="error('boom')"),
    # extents
    R("extents", "ex_ok", ("extents", 0, 8192,
                           [(0, 4096, 0), (4096, 4096, 3)]),
      py="return [(0, 4096, 0), (4096, 4096, nbdkit.EXTENT_HOLE |"
         " nbdkit.EXTENT_ZERO)]",
      lua="return {{0, 4096, 0}, {4096, 4096, 3}}",
      ml="[ { offset = 0L; length = 4096L; is_hole = false;"
         " is_zero = false }; { offset = 4096L; length = 4096L;"
         " is_hole = true; is_zero = true } ]"),
    R("extents", "ex_neglen", ("exterr",),
      py="return [(0, -4096, 0)]", lua="return {{0, -4096, 0}}",
      ml="[ { offset = 0L; length = -4096L; is_hole = false;"
         " is_zero = false } ]"),
    R("extents", "ex_type", ("exterr",),
      py="return [(0, 4096, -1)]", lua="return {{0, 4096, -1}}"),
    R("extents", "ex_negoff", ("exterr",),
      py="return [(-4096, 8192, 0)]", lua="return {{-4096, 8192, 0}}",
      ml="[ { offset = -4096L; length = 8192L; is_hole = false;"
         " is_zero = false } ]"),
    R("extents", "ex_addneg", ("exterr",),
      py="nbdkit.add_extent(0, -4096, 0)",
      lua="nbdkit.add_extent(0, -4096, 0)"),
    R("extents", "ex_addtype", ("exterr",),
      py="nbdkit.add_extent(0, 4096, -1)",
      lua="nbdkit.add_extent(0, 4096, -1)"),
    R("extents", "ex_bad", ("exterr",),
      py="return [(0, 4096)]", lua="return {{0}}"),
    R("extents", "ex_str", ("exterr",),
      py="return 42", lua="return 'abc'"),
    R("extents", "ex_exc", ("exterr",),
      py="raise RuntimeError('boom')", lua="error('boom')",
      ml="failwith \"boom\""),
]

# Callbacks, their arguments per host, and the default answer when a
# case does not override them.
CBS = {
    # name: (py args, lua args, ml args, py default, lua default, ml default)
    "get_size": ("h", "h", "h", "return 1 << 20", "return 1 << 20",
                 "1048576L"),
    "export_description": ("h", "h", "h", "return None", "return nil",
                           "\"\""),
    "block_size": ("h", "h", "h _cr", "return None", "return nil",
                   "{ minimum = 0; preferred = 0; maximum = 0;"
                   " maximum_virtual = 0L }"),
    "can_write": ("h", "h", "h", "return True", "return true", "true"),
    "can_flush": ("h", "h", "h", "return True", "return true", "true"),
    "is_rotational": ("h", "h", "h", "return False", "return false",
                      "false"),
    "can_trim": ("h", "h", "h", "return True", "return true", "true"),
    "can_fast_zero": ("h", "h", "h", "return False", "return false",
                      "false"),
    "can_multi_conn": ("h", "h", "h", "return False", "return false",
                       "false"),
    "can_zero": ("h", "h", "h", "return nbdkit.ZERO_NATIVE",
                 "return nbdkit.ZERO_NATIVE", "Zero_native"),
    "can_fua": ("h", "h", "h", "return nbdkit.FUA_NONE",
                "return nbdkit.FUA_NONE", "Fua_none"),
    "can_cache": ("h", "h", "h", "return nbdkit.CACHE_NATIVE",
                  "return nbdkit.CACHE_NATIVE", "Cache_native"),
    "can_extents": ("h", "h", "h", "return nbdkit.EXTENTS_NATIVE",
                    "return nbdkit.EXTENTS_NATIVE", "Extents_native"),
    "pread": ("h, buf, offset, flags", "h, count, offset, flags",
              "h buf offset _flags", "buf[:] = bytes(len(buf))",
              "return string.rep('\\0', count)",
              "Bytes.fill buf 0 (Bytes.length buf) '\\000'"),
    "pwrite": ("h, buf, offset, flags", "h, buf, offset, flags",
               "h _buf _offset _flags", "pass", "", "()"),
    "flush": ("h, flags", "h, flags", "h _flags", "pass", "", "()"),
    "trim": ("h, count, offset, flags", "h, count, offset, flags",
             "h _count _offset _flags", "pass", "", "()"),
    "zero": ("h, count, offset, flags", "h, count, offset, flags",
             "h _count _offset _flags", "pass", "", "()"),
    "cache": ("h, count, offset, flags", "h, count, offset, flags",
              "h _count _offset _flags", "pass", "", "()"),
    "close": ("h", "h", "h", "pass", "", "()"),
    "extents": ("h, count, offset, flags", "h, count, offset, flags",
                "h count offset _flags", "return [(offset, count, 0)]",
                "return {{offset, count, 0}}",
                "[ { offset; length = count; is_hole = false;"
                " is_zero = false } ]"),
}

# Callbacks of filters only (the server calls the layer below's itself).
FILTER_CBS = {
    "prepare": ("h, readonly", "h, readonly", None, "pass", "", None),
    "finalize": ("h", "h", None, "pass", "", None),
}
# Filter callbacks without next; the case functions get None/nil.
NO_NEXT = ("close",)

# A filter's default for each callback: the layer below's.
PYF_DEFAULT = {
    "prepare": "pass", "finalize": "pass", "close": "pass",
    "pread": "next.pread(buf, offset, flags)",
    "pwrite": "next.pwrite(buf, offset, flags)",
    "extents": "return next.extents(count, offset, flags)",
}
LUAF_DEFAULT = {
    "prepare": "return", "finalize": "return", "close": "return",
    "pread": "return next:pread(count, offset, flags)",
    "pwrite": "return next:pwrite(buf, offset, flags)",
    "extents": "return next:extents(count, offset, flags)",
}


def indent(body, n=4):
    return "\n".join(" " * n + ln for ln in body.split("\n"))


def py_script(filt):
    out = ["import errno", "import nbdkit", "API_VERSION = 3", ""]
    if filt:
        out.append("def open(next, readonly, exportname, tls):\n"
                   "    if exportname.startswith('none'):\n"
                   "        next.open_none()\n"
                   "    return exportname\n")
    else:
        out.append("def open(readonly, exportname, tls):\n"
                   "    return exportname\n")
    out.append("def _case(h):\n    return h[5:] if h.startswith('none_')"
               " else h\n")
    for r in ROWS:
        if r.code["py"] is None or not (r.filters if filt else r.plugins):
            continue
        args = {**CBS, **FILTER_CBS}[r.cb][0]
        out.append("def c_%s__%s(%s%s):\n%s\n" % (
            r.case, r.cb, "next, " if filt else "", args,
            indent(r.fcode["py"] if filt else r.code["py"])))
    for cb, (args, _, _, pydef, _, _) in (
            list(CBS.items()) + (list(FILTER_CBS.items()) if filt else [])):
        names = [a.strip() for a in args.split(",")]
        if filt:
            below = PYF_DEFAULT.get(cb, "return next.%s(%s)" % (
                cb, ", ".join(names[1:])))
            body = ("f = globals().get('c_%%s__%s' %% _case(h))\n"
                    "if f:\n    return f(%s, %s)\n"
                    "if h.startswith('none'):\n%s\n%s" % (
                        cb, "None" if cb in NO_NEXT else "next", args,
                        indent("return" if pydef == "pass" else pydef),
                        below))
            out.append("def %s(%s%s):\n%s\n" % (
                cb, "" if cb in NO_NEXT else "next, ", args, indent(body)))
        else:
            body = ("f = globals().get('c_%%s__%s' %% h)\n"
                    "if f:\n    return f(%s)\n%s" % (cb, args, pydef))
            out.append("def %s(%s):\n%s\n" % (cb, args, indent(body)))
    return "\n".join(out)


def lua_script(filt):
    out = []
    if filt:
        out.append("function thread_model() return 'parallel' end\n"
                   "function open(ctx, readonly, exportname, tls)\n"
                   "  if exportname:sub(1, 4) == 'none' then\n"
                   "    ctx:open_none()\n  end\n  return exportname\nend\n")
    else:
        out.append("function open(readonly, exportname, tls)\n"
                   "  return exportname\nend\n")
    out.append("local function case(h)\n"
               "  if h:sub(1, 5) == 'none_' then return h:sub(6) end\n"
               "  return h\nend\n")
    for r in ROWS:
        if r.code["lua"] is None or not (r.filters if filt else r.plugins):
            continue
        args = {**CBS, **FILTER_CBS}[r.cb][1]
        out.append("function c_%s__%s(%s%s)\n%s\nend\n" % (
            r.case, r.cb, "next, " if filt else "", args,
            indent(r.fcode["lua"] if filt else r.code["lua"], 2)))
    for cb, (_, args, _, _, luadef, _) in (
            list(CBS.items()) + (list(FILTER_CBS.items()) if filt else [])):
        names = [a.strip() for a in args.split(",")]
        if filt:
            below = LUAF_DEFAULT.get(cb, "return next:%s(%s)" % (
                cb, ", ".join(names[1:])))
            nxt = "nil" if cb in NO_NEXT else "next"
            out.append(
                "function %s(%s%s)\n"
                "  local f = _G['c_' .. case(h) .. '__%s']\n"
                "  if f then return f(%s, %s) end\n"
                "  if h:sub(1, 4) == 'none' then\n%s\n  end\n  %s\nend\n" % (
                    cb, "" if cb in NO_NEXT else "next, ", args, cb, nxt,
                    args, indent(luadef or "return", 4), below))
        else:
            out.append(
                "function %s(%s)\n"
                "  local f = _G['c_' .. h .. '__%s']\n"
                "  if f then return f(%s) end\n%s\nend\n" % (
                    cb, args, cb, args, indent(luadef, 2)))
    return "\n".join(out)


def ml_script():
    out = ["open NBDKit", ""]
    labels = []
    for cb, (_, _, args, _, _, mldef) in CBS.items():
        arms = ["  | %s -> %s" % ('"%s"' % r.case, r.code["ml"])
                for r in ROWS if r.cb == cb and r.code["ml"] is not None]
        out.append("let %s %s =\n  match h with\n%s\n  | _ -> %s\n" % (
            cb, args, "\n".join(arms), mldef))
        labels.append("~%s" % cb)
    out.append("let () =\n  register_plugin ~name:\"values\"\n"
               "    ~open_connection:(fun _ro name _tls -> name)\n    " +
               "\n    ".join(labels) + "\n    ()\n")
    return "\n".join(out)


# ---- callbacks left out ----
#
# Scripts that define few callbacks: what the client sees is what the
# server assumes of a plugin without them (README: "if missing"), and
# a filter that opened nothing below and lacks them answers the same
# way, as a plugin with its callbacks would.

def defaults(can_write, flush, data):
    rows = [
        R("can_write", "", ("flag", "can_write", can_write)),
        R("can_flush", "", ("flag", "can_flush", flush)),
        R("can_fua", "", ("flag", "can_fua", flush)),
        R("can_zero", "", ("flag", "can_zero", can_write)),
        R("can_fast_zero", "", ("flag", "can_fast_zero", can_write)),
        R("can_trim", "", ("flag", "can_trim", False)),
        R("can_cache", "", ("flag", "can_cache", False)),
        R("is_rotational", "", ("flag", "is_rotational", False)),
        R("can_multi_conn", "", ("flag", "can_multi_conn", False)),
        R("export_description", "", ("desc", None)),
        R("block_size", "", ("bs", 1, 4096, 64 * MiB)),
        R("extents", "", ("extents", 0, 8192, [(0, 8192, 0)])),
        R("pread", "", ("read", 4096, 512, data * 512)),
    ]
    return rows


MIN_PY = """
import nbdkit
API_VERSION = 3
def get_size(h): return 1 << 20
def pread(h, buf, offset, flags): buf[:] = b"P" * len(buf)
"""
MIN_LUA = """
function get_size(h) return 1 << 20 end
function pread(h, count, offset, flags) return string.rep("P", count) end
"""
MIN_ML = """
let () =
  NBDKit.register_plugin ~name:"min"
    ~open_connection:(fun _ _ _ -> ())
    ~get_size:(fun () -> 1048576L)
    ~pread:(fun () buf _ _ -> Bytes.fill buf 0 (Bytes.length buf) 'P')
    ()
"""
ALONE_PY = """
import nbdkit
API_VERSION = 3
disk = bytearray(b"F" * (1 << 20))
def open(next, readonly, exportname, tls):
    next.open_none()
    return 1
def get_size(next, h): return len(disk)
def pread(next, h, buf, offset, flags):
    buf[:] = disk[offset:offset + len(buf)]
def pwrite(next, h, buf, offset, flags):
    disk[offset:offset + len(buf)] = buf
def flush(next, h, flags): pass
"""
ALONE_LUA = """
function open(ctx, readonly, exportname, tls)
  ctx:open_none()
  return 1
end
function get_size(next, h) return 1 << 20 end
function pread(next, h, count, offset, flags)
  return string.rep("F", count)
end
function pwrite(next, h, buf, offset, flags) end
function flush(next, h, flags) end
"""
NOPREAD_PY = """
def open(next, readonly, exportname, tls):
    next.open_none()
def get_size(next, h): return 1 << 20
"""
NOPREAD_LUA = """
function open(ctx, readonly, exportname, tls) ctx:open_none() end
function get_size(next, h) return 1 << 20 end
"""
# nbdkit's API 1: pread returns the data, which must be count bytes.
API1_PY = """
import nbdkit
def open(readonly): return 1
def get_size(h): return 1 << 20
def pread(h, count, offset):
    return {0: b"x" * (count - 1), 4096: b"x" * (count + 1),
            8192: "a str", 12288: None}.get(offset, bytes(count))
"""
# Server-wide callbacks that fail: listing fails, the default export
# cannot be resolved, preconnect refuses every client; a named export
# still works where only default_export fails.
SW_PY = """
import nbdkit
API_VERSION = 3
def list_exports(readonly, tls): raise RuntimeError("boom")
def default_export(readonly, tls): return "x" * 5000
def get_size(h): return 1 << 20
def pread(h, buf, offset, flags): buf[:] = bytes(len(buf))
"""
SW_LUA = """
function list_exports(readonly, tls) error("boom") end
function default_export(readonly, tls) return 42 end
function get_size(h) return 1 << 20 end
function pread(h, count, offset, flags) return string.rep("\\0", count) end
"""
SW_ML = """
let () =
  NBDKit.register_plugin ~name:"sw"
    ~list_exports:(fun _ _ -> failwith "boom")
    ~default_export:(fun _ _ -> "a\\000b")
    ~open_connection:(fun _ _ _ -> ())
    ~get_size:(fun () -> 1048576L)
    ~pread:(fun () buf _ _ -> Bytes.fill buf 0 (Bytes.length buf) '\\000')
    ()
"""
SW_ROWS = [
    R("list_exports", "named", ("listerr",)),
    R("default_export", "", ("fail", "host")),
    R("get_size", "named", ("size", MiB)),
]
PRE_PY = """
def preconnect(readonly): raise RuntimeError("go away")
def get_size(h): return 1 << 20
def pread(h, buf, offset, flags): buf[:] = bytes(len(buf))
"""
PRE_LUA = """
function preconnect(readonly) error("go away") end
function get_size(h) return 1 << 20 end
function pread(h, count, offset, flags) return string.rep("\\0", count) end
"""
PRE_ML = """
let () =
  NBDKit.register_plugin ~name:"pre"
    ~preconnect:(fun _ -> failwith "go away")
    ~open_connection:(fun _ _ _ -> ())
    ~get_size:(fun () -> 1048576L)
    ~pread:(fun () buf _ _ -> Bytes.fill buf 0 (Bytes.length buf) '\\000')
    ()
"""
PRE_ROWS = [R("preconnect", "", ("fail", "host"))]

API1_ROWS = [
    R("pread", "", ("readerr", 0, 4096, errno.EIO)),
    R("pread", "", ("readerr", 4096, 4096, errno.EIO)),
    R("pread", "", ("readerr", 8192, 4096, errno.EIO)),
    R("pread", "", ("readerr", 12288, 4096, errno.EIO)),
    R("pread", "", ("read", 16384, 4096, bytes(4096))),
]

# ---- callbacks before serving ----
#
# (host, callback, script): the callback fails (raises, or answers a
# value out of range); the server must refuse to start with exit
# status 1 (not a signal) and a message naming the script and the
# callback.
BASE = {
    "python": "import nbdkit\nAPI_VERSION = 3\n"
              "def get_size(h): return 1 << 20\n"
              "def pread(h, buf, offset, flags): buf[:] = bytes(len(buf))\n",
    "lua": "function get_size(h) return 1 << 20 end\n"
           "function pread(h, count, offset, flags)\n"
           "  return string.rep('\\0', count)\nend\n",
}
STARTUP = [
    ("python", "load", "def load(): raise RuntimeError('boom')\n"),
    ("python", "config_complete",
     "def config_complete(): raise RuntimeError('boom')\n"),
    ("python", "get_ready", "def get_ready(m): raise RuntimeError('boom')\n"),
    ("python", "thread_model", "def thread_model(): return 99\n"),
    ("python", "thread_model", "def thread_model(): return 'x'\n"),
    ("python", "thread_model",
     "def thread_model(): raise RuntimeError('boom')\n"),
    ("lua", "load", "function load() error('boom') end\n"),
    ("lua", "config_complete", "function config_complete() error('boom') end\n"),
    ("lua", "get_ready", "function get_ready(m) error('boom') end\n"),
    ("lua", "thread_model", "function thread_model() return 'bogus' end\n"),
    ("lua", "thread_model", "function thread_model() return 99 end\n"),
    ("lua", "thread_model", "function thread_model() error('boom') end\n"),
    ("ocaml", "config_complete", "let () = NBDKit.register_plugin"
     " ~name:\"s\" ~config_complete:(fun () -> failwith \"boom\")"
     " ~open_connection:(fun _ _ _ -> ()) ~get_size:(fun () -> 1L)"
     " ~pread:(fun () _ _ _ -> ()) ()\n"),
    ("ocaml", "get_ready", "let () = NBDKit.register_plugin"
     " ~name:\"s\" ~get_ready:(fun _ -> failwith \"boom\")"
     " ~open_connection:(fun _ _ _ -> ()) ~get_size:(fun () -> 1L)"
     " ~pread:(fun () _ _ _ -> ()) ()\n"),
]
EXT = {"python": "py", "lua": "lua", "ocaml": "ml"}

# list_exports: every documented form, seen by NBD_OPT_LIST.
LIST_PY = """
import nbdkit
API_VERSION = 3
import os
form = os.environ["FORM"]
def list_exports(readonly, tls):
    if form == "names": return ["a", "b"]
    if form == "tuples": return [("a", "desc a"), "b"]
    if form == "none": return None
    if form == "default":
        nbdkit.use_default_export()
        return
    nbdkit.add_export("a", "desc a")
    nbdkit.add_export("b")
def default_export(readonly, tls): return "a"
def get_size(h): return 1 << 20
def pread(h, buf, offset, flags): buf[:] = bytes(len(buf))
"""
LIST_LUA = """
local form = os.getenv("FORM")
function list_exports(readonly, tls)
  if form == "names" then return { "a", "b" } end
  if form == "tuples" then
    return { { name = "a", description = "desc a" }, { "b" } }
  end
  if form == "none" then return nil end
  if form == "default" then nbdkit.use_default_export() return end
  nbdkit.add_export("a", "desc a")
  nbdkit.add_export("b")
end
function default_export(readonly, tls) return "a" end
function get_size(h) return 1 << 20 end
function pread(h, count, offset, flags) return string.rep("\\0", count) end
"""
LIST_FORMS = [
    ("names", [("a", ""), ("b", "")]),
    ("tuples", [("a", "desc a"), ("b", "")]),
    ("add", [("a", "desc a"), ("b", "")]),
    ("none", [("a", "")]),
    ("default", [("a", "")]),
]


# ---- the client side ----

FLAG = {
    "can_write": lambda h: not h.is_read_only(),
    "can_flush": lambda h: h.can_flush(),
    "is_rotational": lambda h: h.is_rotational(),
    "can_trim": lambda h: h.can_trim(),
    "can_zero": lambda h: h.can_zero(),
    "can_fast_zero": lambda h: h.can_fast_zero(),
    "can_fua": lambda h: h.can_fua(),
    "can_multi_conn": lambda h: h.can_multi_conn(),
    "can_cache": lambda h: h.can_cache(),
    "can_meta_context":
        lambda h: h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION),
}

CMD = {
    "pwrite": lambda h: h.pwrite(b"W" * 4096, 0),
    "flush": lambda h: h.flush(),
    "trim": lambda h: h.trim(4096, 0),
    "zero": lambda h: h.zero(4096, 0),
    "cache": lambda h: h.cache(4096, 0),
}
# Expectations where the log must name the callback (and the script,
# unless the core refused the value).
LOGGED = ("fail", "descerr", "noext", "readerr", "exterr", "cmderr",
          "logged", "listerr")

failures = []


def connect(uri, name):
    h = nbd.NBD()
    h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.set_full_info(True)
    h.connect_uri(uri.replace(":///?", ":///%s?" % name))
    return h


def log_since(log, pos):
    with open(log, "rb") as f:
        f.seek(pos)
        return f.read().decode("utf-8", "replace")


def run_case(label, uri, proc, log, script, name, r, none):
    pos = os.path.getsize(log)
    expect = r.none_expect if none else r.expect
    kind = expect[0]
    what = "%s %s (%s)" % (label, r.case, r.cb)
    try:
        try:
            h = connect(uri, name)
        except nbd.Error as e:
            if kind != "fail":
                raise AssertionError("connection refused: %s" % e)
            h = None
        if kind == "fail":
            if h is not None:
                raise AssertionError("connection accepted")
        elif kind == "size":
            assert h.get_size() == expect[1], h.get_size()
        elif kind == "desc":
            try:
                d = h.get_export_description()
            except nbd.Error:
                d = None
            assert d == expect[1], "description %r" % d
        elif kind == "descerr":
            try:
                d = h.get_export_description()
            except nbd.Error:
                d = None
            assert d is None, "description %r" % d
        elif kind == "noext":
            assert not h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
        elif kind == "bs":
            got = (h.get_block_size(nbd.SIZE_MINIMUM),
                   h.get_block_size(nbd.SIZE_PREFERRED),
                   h.get_block_size(nbd.SIZE_MAXIMUM))
            assert got == tuple(expect[1:]), "block sizes %r" % (got,)
        elif kind == "flag":
            got = FLAG[expect[1]](h)
            assert got == expect[2], "%s is %r" % (expect[1], got)
        elif kind == "read":
            _, off, n, want = expect
            assert h.pread(n, off) == want, "wrong data"
        elif kind == "readerr":
            _, off, n, e = expect
            nbdtest.expect_error(lambda: h.pread(n, off), e, what)
        elif kind == "extents":
            _, off, n, want = expect
            got = nbdtest.check_extents(h, off, n)
            assert got == want, "extents %r" % (got,)
        elif kind == "exterr":
            nbdtest.expect_error(
                lambda: nbdtest.check_extents(h, 0, 8192), None, what)
        elif kind == "listerr":
            h.shutdown()
            h = nbd.NBD()
            h.set_opt_mode(True)
            h.connect_uri(uri)
            nbdtest.expect_error(lambda: h.opt_list(lambda n, d: 0), None,
                                 what)
            h.opt_abort()
            h = None
        elif kind == "cmdok":
            CMD[expect[1]](h)
        elif kind == "cmderr":
            nbdtest.expect_error(lambda: CMD[expect[1]](h), expect[2], what)
        if h is not None:
            h.shutdown()
        if kind in LOGGED:
            # close and finalize run after the client has gone.
            deadline = time.time() + 20
            while True:
                text = log_since(log, pos)
                if (r.cb in text and (expect[-1] == "core" or
                                      os.path.basename(script) in text)):
                    break
                if time.time() > deadline:
                    raise AssertionError("no log line names %s and the"
                                         " script: %r" % (r.cb, text))
                time.sleep(0.05)
    except (AssertionError, nbd.Error) as e:
        failures.append("%s: %s" % (what, e))
    if proc.poll() is not None:
        failures.append("%s: the server died (exit %d)" %
                        (what, proc.returncode))
        return False
    return True


def run_host(t, label, script, args, rows, prefix=""):
    """Serve SCRIPT (ARGS), run each case of ROWS on export PREFIX+case;
    PREFIX "none_" makes filters open nothing below."""
    log = t.path(label + ".log")
    sock = t.path(label + ".sock")
    pid = t.path(label + ".pid")
    started = time.time()
    with open(log, "wb") as logf:
        p = t.spawn([nbdtest.NBDKIT, "-U", sock, "-P", pid, "-f", *args],
                    stderr=logf)
    deadline = time.time() + 30
    while not (os.path.exists(pid) and os.path.getsize(pid)):
        if p.poll() is not None or time.time() > deadline:
            print(log_since(log, 0), file=sys.stderr)
            failures.append("%s: the server did not start" % label)
            return
        time.sleep(0.05)
    uri = "nbd+unix:///?socket=" + sock
    ran = 0
    for r in rows:
        if not run_case(label, uri, p, log, script, prefix + r.case, r,
                        prefix == "none_"):
            print(log_since(log, 0)[-3000:], file=sys.stderr)
            return
        ran += 1
    print("%s: %d cases, %.1f s" % (label, ran, time.time() - started))


t = nbdtest.Test()
# Some 40 servers, six OCaml scripts to compile: more than the usual
# 50 s on a loaded machine (tests/CMakeLists.txt gives this test more).
signal.alarm(170)
os.environ["XDG_CACHE_HOME"] = t.path("cache")
only = os.environ.get("HOSTS", "py,pyf,lua,luaf,ml").split(",")


def write(name, text):
    path = t.path(name)
    with open(path, "w") as f:
        f.write(text)
    return path


def rows_for(host, filt):
    return [r for r in ROWS
            if r.code[host] is not None and
            (r.filters if filt else r.plugins)]


py_plugin = write("values.py", py_script(False))
lua_plugin = write("values.lua", lua_script(False))
if "py" in only and built("plugin", "python"):
    run_host(t, "py", py_plugin, ["python", py_plugin],
             rows_for("py", False))
if "lua" in only and built("plugin", "lua"):
    run_host(t, "lua", lua_plugin, ["lua", lua_plugin],
             rows_for("lua", False))
if "ml" in only and built("plugin", "ocaml"):
    s = write("values.ml", ml_script())
    run_host(t, "ml", s, ["ocaml", s], rows_for("ml", False))
if "pyf" in only and built("filter", "python"):
    s = write("filter.py", py_script(True))
    rows = rows_for("py", True)
    args = ["--filter=" + s, "python", py_plugin]
    run_host(t, "pyf", s, args, rows)
    run_host(t, "pyf-none", s, args, rows, prefix="none_")
if "luaf" in only and built("filter", "lua"):
    s = write("filter.lua", lua_script(True))
    rows = rows_for("lua", True)
    args = ["--filter=" + s, "lua", lua_plugin]
    run_host(t, "luaf", s, args, rows)
    run_host(t, "luaf-none", s, args, rows, prefix="none_")

for host, kind, sw, pre in (("py", "python", SW_PY, PRE_PY),
                            ("lua", "lua", SW_LUA, PRE_LUA),
                            ("ml", "ocaml", SW_ML, PRE_ML)):
    if host in only and built("plugin", kind):
        ext = {"py": "py", "lua": "lua", "ml": "ml"}[host]
        s = write("sw." + ext, sw)
        run_host(t, host + "-sw", s, [kind, s], SW_ROWS)
        s = write("pre." + ext, pre)
        run_host(t, host + "-pre", s, [kind, s], PRE_ROWS)
if "py" in only and built("plugin", "python"):
    s = write("min.py", MIN_PY)
    run_host(t, "py-min", s, ["python", s], defaults(False, False, b"P"))
    s = write("api1.py", API1_PY)
    run_host(t, "py-api1", s, ["python", s], API1_ROWS)
if "lua" in only and built("plugin", "lua"):
    s = write("min.lua", MIN_LUA)
    run_host(t, "lua-min", s, ["lua", s], defaults(False, False, b"P"))
if "ml" in only and built("plugin", "ocaml"):
    s = write("min.ml", MIN_ML)
    run_host(t, "ml-min", s, ["ocaml", s], defaults(False, False, b"P"))
if "pyf" in only and built("filter", "python"):
    s = write("alone.py", ALONE_PY)
    run_host(t, "pyf-alone", s, ["--filter=" + s, "memory", "1M"],
             defaults(True, True, b"F"))
    s = write("nopread.py", NOPREAD_PY)
    run_host(t, "pyf-nopread", s, ["--filter=" + s, "memory", "1M"],
             [R("open", "", ("fail", "host"))])
if "luaf" in only and built("filter", "lua"):
    s = write("alone.lua", ALONE_LUA)
    run_host(t, "luaf-alone", s, ["--filter=" + s, "memory", "1M"],
             defaults(True, True, b"F"))
    s = write("nopread.lua", NOPREAD_LUA)
    run_host(t, "luaf-nopread", s, ["--filter=" + s, "memory", "1M"],
             [R("open", "", ("fail", "host"))])

def run_startup(t):
    import subprocess
    for i, (kind, cb, body) in enumerate(STARTUP):
        if kind not in only_kinds or not built("plugin", kind):
            continue
        script = t.path("start%d.%s" % (i, EXT[kind]))
        with open(script, "w") as f:
            f.write(BASE.get(kind, "") + body)
        p = subprocess.run([nbdtest.NBDKIT, "-U", t.path("start.sock"),
                            kind, script, "--run", "true"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=60)
        err = p.stderr.decode("utf-8", "replace")
        what = "%s %s (start %d)" % (kind, cb, i)
        if p.returncode != 1:
            failures.append("%s: exit %d, expected 1: %s" %
                            (what, p.returncode, err))
        elif cb not in err or os.path.basename(script) not in err:
            failures.append("%s: no message naming %s and the script: %r" %
                            (what, cb, err))
    print("startup: %d cases" % len(STARTUP))


def run_lists(t):
    for kind, text in (("python", LIST_PY), ("lua", LIST_LUA)):
        if kind not in only_kinds or not built("plugin", kind):
            continue
        script = t.path("list." + EXT[kind])
        with open(script, "w") as f:
            f.write(text)
        for form, want in LIST_FORMS:
            os.environ["FORM"] = form
            uri = t.start("list-%s-%s" % (kind, form), kind, script)
            h = nbd.NBD()
            h.set_opt_mode(True)
            h.connect_uri(uri)
            got = []
            h.opt_list(lambda n, d: got.append((n, d)) or 0)
            h.opt_abort()
            if got != want:
                failures.append("%s list_exports %s: %r, expected %r" %
                                (kind, form, got, want))
    print("list_exports: %d forms" % len(LIST_FORMS))


only_kinds = {"py": "python", "lua": "lua", "ml": "ocaml"}
only_kinds = [only_kinds[h] for h in only if h in only_kinds]
run_startup(t)
run_lists(t)

for f in failures:
    print("FAIL: " + f, file=sys.stderr)
sys.exit(1 if failures else 0)
