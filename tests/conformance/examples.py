#!/usr/bin/python3
# Run the example command lines of nbdkit's manual pages against a
# server (see examples.sh, which prepares the directories and calls
# this).  Nothing of upstream is kept: the pages are read from PODDIR,
# a temporary extraction.
#
#   examples.py list PODDIR                  print every example found
#   examples.py needs PODDIR SHIPPED         the services they need (http,
#                                            ssh, s3, nbd; see below)
#   examples.py run PODDIR WORK BINDIR SHIPPED [RESULTS]
#
# SHIPPED is a file naming the plugins and filters the server under
# test has ("plugin NAME" / "filter NAME" lines).  BINDIR holds the
# `nbdkit` wrapper that turns an example into a captive run with a
# check.  RESULTS gets "id<TAB>status<TAB>reason<TAB>where<TAB>command".

import concurrent.futures
import glob
import hashlib
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import urllib.parse

TIMEOUT = int(os.environ.get("EXAMPLES_TIMEOUT", "120"))
JOBS = int(os.environ.get("EXAMPLES_JOBS", "2"))
# Fixtures are made with the example's scratch directory as the current
# directory, which is the process's: one at a time.
CWD_LOCK = threading.Lock()
PODDIR = None
# The examples running (each the leader of its own process group), to
# kill on SIGTERM or SIGINT.
RUNNING = set()
RUNNING_LOCK = threading.Lock()
STOPPING = False


def stop(signum, frame):
    global STOPPING
    with RUNNING_LOCK:
        STOPPING = True
        for pid in RUNNING:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    os._exit(128 + signum)

# ----------------------------------------------------------------------
# Extraction.


def complete(text):
    """True if TEXT is a whole shell command (quotes closed, no
    trailing backslash)."""
    if text.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(text, comments=False, posix=True)
    except ValueError:
        return False
    return True


def extract(poddir):
    pods = sorted(glob.glob(os.path.join(poddir, "docs", "*.pod")) +
                  glob.glob(os.path.join(poddir, "plugins", "*", "*.pod")) +
                  glob.glob(os.path.join(poddir, "filters", "*", "*.pod")))
    start = re.compile(r"^(\s+)(\$ |# )?nbdkit(\s|$)")
    out = []
    for pod in pods:
        with open(pod, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
        rel = os.path.relpath(pod, poddir)
        script = None          # last verbatim block that is a #! script
        named = {}             # #! scripts the text names by path (F</tmp/auth.sh>)
        i = 0
        while i < len(lines):
            line = lines[i]
            if re.match(r"^\s+#!", line):
                blk = []
                j = i
                while j < len(lines) and (lines[j].startswith((" ", "\t")) or lines[j] == ""):
                    if lines[j] == "" and j + 1 < len(lines) and not lines[j + 1].startswith((" ", "\t")):
                        break
                    blk.append(lines[j])
                    j += 1
                ind = len(line) - len(line.lstrip())
                script = "\n".join(l[ind:] for l in blk).rstrip() + "\n"
                # The paragraph before the block names the file.
                k = i - 1
                while k >= 0 and lines[k].strip() == "":
                    k -= 1
                para = []
                while k >= 0 and lines[k].strip() != "" and not lines[k].startswith((" ", "\t")):
                    para.insert(0, lines[k])
                    k -= 1
                m = re.search(r"F<(/[^>]+)>", " ".join(para))
                if m:
                    named[m.group(1)] = script
            m = start.match(line)
            if not m:
                i += 1
                continue
            ind = len(m.group(1))
            first = line[ind + len(m.group(2) or ""):]
            cmd = [first]
            # Variables the example exports just before it.
            k = i - 1
            while k >= 0 and re.match(r"^\s+(\$ )?export \w+=", lines[k]):
                cmd.insert(0, re.sub(r"^\s+(\$ )?", "", lines[k]))
                k -= 1
            # Shell variables the paragraph sets before it (URL="..."):
            # not run, but they tell what the example needs.
            setup = []
            if k > 0 and lines[k] == "":
                k -= 1
            while k >= 0 and re.match(r"^\s+[A-Z_][A-Z0-9_]*=", lines[k]):
                setup.insert(0, lines[k].strip())
                k -= 1
            lineno = i + 1
            i += 1
            heredoc = re.search(r"<<-?\s*'?\"?(\w+)'?\"?", first)
            if heredoc:
                end = heredoc.group(1)
                while i < len(lines):
                    l = lines[i][ind:] if lines[i][:ind].strip() == "" else lines[i]
                    cmd.append(l)
                    i += 1
                    if l.strip() == end:
                        break
            else:
                while not complete("\n".join(cmd)) and i < len(lines):
                    l = lines[i]
                    if l.strip() == "" and not l.startswith((" ", "\t")) and \
                       i + 1 < len(lines) and not lines[i + 1].startswith((" ", "\t")):
                        break
                    cmd.append(l[ind:] if l[:ind].strip() == "" else l)
                    i += 1
            text = "\n".join(cmd).rstrip()
            out.append({"where": "%s:%d" % (rel, lineno), "cmd": text,
                        "script": script, "setup": "\n".join(setup),
                        "named": dict(named)})
    return out


# ----------------------------------------------------------------------
# Analysis.

OPTS_WITH_ARG = {"-D", "--debug", "-e", "--export", "--export-name",
                 "--exportname", "--filter", "-g", "--group", "-i",
                 "--ip-addr", "--ipaddr", "--log", "--mask-handshake",
                 "-P", "--pid-file", "--pidfile", "-p", "--port", "--run",
                 "--selinux-label", "-t", "--threads", "--tls",
                 "--tls-certificates", "--tls-psk", "-U", "--unix", "-u",
                 "--user"}
INFO_OPTS = {"--help", "--version", "-V", "--dump-config", "--dump-plugin"}


def placeholder(cmd, words):
    """Why CMD is a synopsis line rather than an example, or None."""
    body = cmd.split("<<")[0]
    # What is quoted is a value (a script, an expression), not synopsis.
    body = re.sub(r"'[^']*'|\"[^\"]*\"", "''", body)
    if "<<" in cmd and re.search(r"^\s*\.\.\.", cmd, re.M):
        return "synopsis (a script left out)"
    if re.search(r"^nbdkit \S+( \S+)? {3,}\S", cmd):
        return "a table, not a command"
    if re.search(r"\[|\.\.\.|\{|<[A-Z]+>", body):
        return "synopsis ([...], { } or ...)"
    if re.search(r"\S\|\S", body):
        return "synopsis (alternatives with |)"
    for w in words:
        v = w.split("=", 1)[1] if "=" in w and not w.startswith("-") else w
        for part in re.split(r"[:,]", v):
            if re.fullmatch(r"[A-Z]{2,}[A-Z_]*[a-z]*", part) and part != "EOF":
                return "synopsis (placeholder %s)" % part
    return None


def words_of(cmd):
    first = cmd.split("<<")[0]
    first = re.sub(r"^(export [^\n]*\n)+", "", first)
    first = first.split(" | ")[0].split(" && ")[0]
    first = first.replace("\\\n", " ")
    try:
        return shlex.split(first)
    except ValueError:
        return first.split()


def analyse(cmd):
    """Return (plugin, filters, args, info) of an nbdkit command line."""
    w = words_of(cmd)
    if w and w[0] == "nbdkit":
        w = w[1:]
    plugin = None
    filters = []
    args = []
    info = False
    i = 0
    while i < len(w):
        a = w[i]
        if a in INFO_OPTS:
            info = True
        if a.startswith("--filter="):
            filters.append(a.split("=", 1)[1])
        elif a == "--filter" and i + 1 < len(w):
            filters.append(w[i + 1])
            i += 1
        elif a in OPTS_WITH_ARG:
            i += 1
        elif a.startswith("-") and a != "-" and plugin is None:
            pass
        elif a.startswith("-") and a != "-":
            pass
        elif plugin is None:
            plugin = a
        else:
            args.append(a)
        i += 1
    return plugin, filters, args, info


def skip_reason(cmd, plugin, filters, args, info, shipped, setup=""):
    # The example's --run command is replaced by the check: what it
    # needs does not matter.
    c = re.sub(r"--run[= ]+('[^']*'|\"[^\"]*\"|\S+)", "", cmd)
    if plugin and plugin not in shipped["plugin"]:
        if "/" in plugin or plugin.endswith(".so"):
            return "a plugin the reader builds (%s)" % plugin
        return "unshipped plugin %s" % plugin
    for f in filters:
        if f not in shipped["filter"]:
            return "unshipped filter %s" % f
    if info:
        return None
    svc = service_of(c, plugin, setup)
    if svc:
        if not os.environ.get("EX_SVC_" + svc):
            return "needs a remote server: the local %s did not start (%s)" % \
                (SERVICES[svc], os.environ.get("EX_SVC_%s_WHY" % svc, "not started"))
    elif re.search(r"https?://|example\.com|docker://|magnet:|\.torrent\b", c) or \
            re.search(r"\b(hostname|host|server)=", c):
        return "needs the network or a remote server"
    elif plugin == "nbd" and re.search(r"\bsocket=", c):
        return "needs another NBD server started by the surrounding script"
    if re.search(r"--vsock\b", c):
        return "needs a vsock device"
    if re.search(r"/dev/(?!null\b|zero\b|urandom\b|random\b)", c):
        return "needs a device"
    if re.search(r"password=-(\s|$)", c):
        return "needs an interactive terminal"
    if "--selinux-label" in c:
        return "needs SELinux"
    if re.search(r"--tls(=on|=require|\s)", c) and \
       not re.search(r"--tls-(certificates|psk)", c):
        return "needs TLS certificates installed in the system directory"
    if "ext2file=exportname" in c:
        return "the client must name the export (ext2file=exportname)"
    if re.search(r"\bos=|virt-builder", c):
        return "needs virt-builder and the network"
    return None


# ----------------------------------------------------------------------
# Fixtures.

def sh(*cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace").strip().split("\n")[-1]
        raise OSError("%s failed: %s" % (" ".join(cmd[:3]), err[:160]))


def make_disk(path, kind, opts):
    """Make PATH, a disk of some KIND, in the current directory."""
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    if os.path.exists(path):
        return
    for ext, tool in ((".xz", ["xz", "--block-size=1MiB", "-T1"]),
                      (".gz", ["gzip", "-n"])):
        if path.endswith(ext):
            inner = path[:-len(ext)]
            make_disk(inner, kind, opts)
            sh(*tool, inner)
            return
    if path.endswith((".tar", ".ova")):
        entry = opts.get("tar-entry", "disk.img")
        tmp = path + ".d"
        os.makedirs(tmp, exist_ok=True)
        make_disk(os.path.join(tmp, entry), kind, opts)
        # The same bytes at each run, for the comparison of servers.
        sh("tar", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner",
           "-cf", os.path.abspath(path), "-C", tmp, entry)
        return
    if path.endswith(".qcow2"):
        if kind == "plain":
            sh("qemu-img", "create", "-f", "qcow2", path, "64M")
        else:
            make_disk(path + ".raw", kind, opts)
            sh("qemu-img", "convert", "-f", "raw", "-O", "qcow2", path + ".raw", path)
        return
    if kind == "sh-script" or path.endswith(".ml"):
        kind = "plain" if kind == "sh-script" else kind
        path_ml = path.endswith(".ml")
        with open(path, "w") as f:
            if path_ml:
                f.write("let open_connection _ = ()\n"
                        "let get_size () = 1048576L\n"
                        "let pread () count _ _ = String.make count '\\000'\n"
                        "let () = NBDKit.register_plugin ~name:\"example\"\n"
                        "  ~open_connection ~get_size ~pread ()\n")
            else:
                f.write(opts.get("script") or
                        '#!/bin/bash\ncase "$1" in get_size) echo 1M ;;\n'
                        ' pread) dd if=/dev/zero count=$3 iflag=count_bytes ;;\n'
                        ' *) exit 2 ;; esac\n')
        os.chmod(path, 0o755)
        return
    if path.endswith(".map"):
        with open(path, "w") as f:
            f.write("# Mapfile\n0x00000000 +\n0x00000000 0x04000000 +\n")
        return
    if path.endswith(".sh"):
        with open(path, "w") as f:
            f.write(opts.get("script") or
                    '#!/bin/bash\ncase "$1" in get_size) echo 1M ;;\n'
                    ' pread) dd if=/dev/zero count=$3 iflag=count_bytes ;;\n'
                    ' *) exit 2 ;; esac\n')
        os.chmod(path, 0o755)
        return
    if path.endswith(".py"):
        with open(path, "w") as f:
            f.write("def open(readonly):\n    return 1\n"
                    "def get_size(h):\n    return 1048576\n"
                    "def pread(h, buf, offset, flags):\n"
                    "    buf[:] = bytearray(len(buf))\n")
        return
    if path.endswith(".lua"):
        with open(path, "w") as f:
            f.write("function open(readonly) return 1 end\n"
                    "function get_size(h) return 1048576 end\n"
                    "function pread(h, count, offset, flags)\n"
                    "  return string.rep('\\0', count) end\n")
        return
    if path.endswith((".c", ".cpp")):
        with open(path, "w") as f:
            f.write("#define NBDKIT_API_VERSION 2\n#include <string.h>\n"
                    "#include <nbdkit-plugin.h>\n"
                    "static void *ex_open (int ro) { return NBDKIT_HANDLE_NOT_NEEDED; }\n"
                    "static int64_t ex_size (void *h) { return 1048576; }\n"
                    "static int ex_pread (void *h, void *b, uint32_t n, uint64_t o,\n"
                    "                     uint32_t f) { memset (b, 0, n); return 0; }\n"
                    "static struct nbdkit_plugin plugin = { .name = \"example\",\n"
                    "  .open = ex_open, .get_size = ex_size, .pread = ex_pread };\n"
                    "NBDKIT_REGISTER_PLUGIN (plugin)\n")
        return
    if kind == "ext2" or kind == "ext2-part":
        inner = opts.get("ext2file", "/disk.raw").lstrip("/")
        tree = path + ".tree"
        os.makedirs(os.path.join(tree, os.path.dirname(inner)), exist_ok=True)
        sh("truncate", "-s", "4M", os.path.join(tree, inner))
        if kind == "ext2":
            sh("truncate", "-s", "32M", path)
            sh("mke2fs", "-q", "-F", "-t", "ext2", "-d", tree, path)
        else:
            sh("truncate", "-s", "40M", path)
            subprocess.run(["sfdisk", "-q", path], input=b"label: dos\n2048,,L\n",
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            sh("mke2fs", "-q", "-F", "-t", "ext2", "-E", "offset=%d" % (2048 * 512),
               "-d", tree, path, "%dk" % ((40 * 1024 * 1024 - 2048 * 512) // 1024))
        return
    if kind == "partitioned":
        sh("truncate", "-s", "128M", path)
        subprocess.run(["sfdisk", "-q", path], input=b"label: dos\n2048,,L\n",
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return
    if kind == "luks-part":
        make_disk(path + ".luks", "luks", opts)
        make_disk(path, "partitioned", opts)
        sh("dd", "if=" + path + ".luks", "of=" + path, "bs=512", "seek=2048",
           "conv=notrunc,sparse")
        return
    if kind == "luks":
        pw = opts.get("passphrase", "")
        if pw.startswith("+"):
            with open(pw[1:]) as f:
                pw = f.read().rstrip("\n")
        luks = ["--object", "secret,id=sec0,data=" + pw,
                "-o", "key-secret=sec0,iter-time=10"]
        if opts.get("remote"):
            # The pattern disk, encrypted, for the served bytes to be known.
            pattern_disk(path + ".raw")
            make = ["qemu-img", "convert", "-f", "raw", "-O", "luks"] + luks + \
                [path + ".raw", path]
        else:
            make = ["qemu-img", "create", "-f", "luks"] + luks + [path, "16M"]
        # qemu times its key derivation and gives up now and then
        # ("Unable to get accurate CPU usage"): try again.
        for attempt in range(5):
            try:
                sh(*make)
                break
            except OSError:
                if attempt == 4:
                    raise
        if opts.get("remote"):
            os.unlink(path + ".raw")
        return
    if opts.get("remote"):
        pattern_disk(path)
        return
    sh("truncate", "-s", "128M", path)


def make_fixtures(ex, plugin, filters, args, scratch):
    opts = {}
    pos = []
    for a in args:
        if "=" in a and re.match(r"^[\w-]+=", a):
            k, v = a.split("=", 1)
            opts[k] = v
        else:
            pos.append(a)
    opts["script"] = ex.get("script")
    os.makedirs(os.path.join(scratch, "tmp"), exist_ok=True)
    pw = opts.get("passphrase", "")
    if pw.startswith("+"):
        os.makedirs(os.path.dirname(pw[1:]) or ".", exist_ok=True)
        with open(pw[1:], "w") as f:
            f.write("secret\n")
    kind = "plain"
    if "ext2" in filters:
        kind = "ext2-part" if "partition" in filters else "ext2"
    elif "luks" in filters:
        kind = "luks-part" if "partition" in filters else "luks"
    elif "partition" in filters:
        kind = "partitioned"
    files = []
    dirs = []
    if plugin in ("file", "split", "partitioning"):
        files += [opts[k] for k in ("file",) if k in opts] + \
            [p for p in pos if p != "-"]
        if "dir" in opts:
            dirs.append(opts["dir"])
    elif plugin in ("floppy", "iso", "linuxdisk"):
        dirs += [opts[k] for k in ("dir",) if k in opts] + pos
    elif plugin == "ondemand":
        if "dir" in opts:
            os.makedirs(opts["dir"], exist_ok=True)
    elif plugin == "sh":
        for p in pos[:1]:
            if p != "-":
                make_disk(p, "sh-script", opts)
    elif plugin == "eval" and "file" in opts:
        files.append(opts["file"])
    elif plugin in ("python", "lua", "ocaml", "cc"):
        files += [p for p in pos[:1] if p != "-"] + \
            [opts[k] for k in ("script", "file") if k in opts and opts[k] and "\n" not in opts[k]][:0]
    elif plugin == "tmpdisk" and "base" in opts:
        files.append(opts["base"])
    elif plugin == "data":
        for m in re.finditer(r"<(\w[\w.]*)", " ".join(args)):
            p = m.group(1)
            if not os.path.exists(p):
                with open(p, "wb") as f:
                    f.write(b"\x5a" * 512)
    elif plugin == "nbd":
        for a in args:
            if a.startswith("arg=") and a.endswith(".qcow2"):
                files.append(a[4:])
    # Upstream's example sources, by their path in its tree (the
    # examples compile them in a configured tree, with -I.).
    if re.search(r"plugins/\w+/\w+\.c\b", ex["cmd"]) and not os.path.exists("config.h"):
        with open("config.h", "w") as f:
            f.write('#define PACKAGE_VERSION "examples"\n')
    for m in re.finditer(r"plugins/\w+/\w+\.c\b", ex["cmd"]):
        src = os.path.join(PODDIR, m.group(0))
        if os.path.exists(src) and not os.path.exists(m.group(0)):
            os.makedirs(os.path.dirname(m.group(0)), exist_ok=True)
            with open(src, "rb") as a, open(m.group(0), "wb") as b:
                b.write(a.read())
    for k in ("ddrescue-mapfile", "extentlist"):
        if k in opts:
            files.append(opts[k])
    for f in files:
        make_disk(f, kind, opts)
    for d in dirs:
        os.makedirs(d, exist_ok=True)
        for n in ("file1", "file2", "hello.txt"):
            p = os.path.join(d, n)
            if not os.path.exists(p):
                with open(p, "wb") as fh:
                    fh.write(b"hello\n" * 1024)


# ----------------------------------------------------------------------
# Remote services.
#
# examples.sh starts, once per run, the servers the examples of the
# remote plugins need (curl: nginx, ssh: sshd, S3: Ceph's radosgw, nbd:
# a second server of ours) and exports where they are: EX_SVC_<name>=1
# when one is up, EX_SVC_<name>_WHY why not.  Each such example has its
# URL, host, endpoint or socket pointed at the local service, which
# serves a disk made for it (PATTERN_SIZE bytes, the first MiB a
# pattern); "expect" in the scratch directory then holds the size and
# MD5 of the first MiB the server must serve.

SERVICES = {"http": "web server (nginx)", "ssh": "SSH server (sshd)",
            "s3": "S3 endpoint (Ceph radosgw)", "nbd": "second NBD server"}
PATTERN_SIZE = 8 << 20
PATTERN = bytes(i % 251 for i in range(1 << 20))


def service_of(cmd, plugin, setup=""):
    """The local service example CMD needs, or None."""
    if plugin == "curl" and (re.search(r"https?://", cmd) or
                             re.search(r"^URL=.*https?://", setup, re.M)):
        return "http"
    if plugin == "ssh" and re.search(r"\bhost=", cmd):
        return "ssh"
    if plugin == "S3" and re.search(r"\bendpoint-url=", cmd):
        return "s3"
    cmd = re.sub(r"--run[= ]+('[^']*'|\"[^\"]*\"|\S+)", "", cmd)
    if plugin == "nbd" and re.search(r"(?<![\w-])(socket|hostname)=", cmd):
        return "nbd"
    return None


def needed(poddir, shipped):
    """The services the examples selected (EXAMPLES_ONLY) need."""
    only = os.environ.get("EXAMPLES_ONLY")
    out = set()
    for ex in extract(poddir):
        if only and not re.search(only, ex["where"] + " " + ex["cmd"]):
            continue
        cmd = ex["cmd"]
        plugin, filters, args, info = analyse(cmd)
        if info or placeholder(cmd, words_of(cmd)) or plugin not in shipped["plugin"]:
            continue
        svc = service_of(cmd, plugin, ex.get("setup", ""))
        if svc:
            out.add(svc)
    return sorted(out)


def pattern_disk(path, size=PATTERN_SIZE):
    with open(path, "wb") as f:
        f.write(PATTERN)
        f.truncate(size)


def parse_size(v):
    m = re.fullmatch(r"(\d+)([kKmMgGtT]?)", v)
    if not m:
        raise ValueError("size %s" % v)
    return int(m.group(1)) << (10 * " KMGT".index(m.group(2).upper() or " "))


def kind_of(filters):
    if "ext2" in filters:
        return "ext2-part" if "partition" in filters else "ext2"
    if "luks" in filters:
        return "luks-part" if "partition" in filters else "luks"
    if "partition" in filters:
        return "partitioned"
    return "plain"


def serves_inner(name, filters):
    """True if a server of NAME through FILTERS serves the disk inside."""
    for ext, f in ((".gz", "gzip"), (".xz", "xz")):
        if name.endswith(ext):
            if f not in filters:
                return False
            name = name[:-len(ext)]
    return not name.endswith((".tar", ".ova")) or "tar" in filters


def setup_url(setup):
    """The URL=... of the lines before an example, with the variables
    those lines set replaced."""
    vals = {}
    for line in setup.split("\n"):
        m = re.match(r"([A-Z_][A-Z0-9_]*)=(.*)$", line)
        if m:
            v = m.group(2).strip("\"'")
            v = re.sub(r"\$(\w+)", lambda x: vals.get(x.group(1), x.group(0)), v)
            vals[m.group(1)] = v
    return vals.get("URL", "")


def remote_fixtures(ex, cmd, plugin, filters, args, scratch, env):
    """Point CMD at its local service and make what it serves there.
    Returns the new command; sets ENV's variables for it."""
    svc = service_of(cmd, plugin, ex.get("setup", ""))
    if not svc:
        return cmd
    E = os.environ
    opts = {}
    pos = []
    for a in args:
        if re.match(r"^[\w-]+=", a):
            k, v = a.split("=", 1)
            opts[k] = v
        else:
            pos.append(a)
    ropts = dict(opts, remote=True, script=None)
    kind = kind_of(filters)
    expect = kind in ("plain", "luks")
    size = PATTERN_SIZE
    if svc == "http":
        http, https = E["EX_HTTP_URL"], E["EX_HTTPS_URL"]
        # The web server's root is the work directory.
        rel = os.path.relpath(scratch, E["EX_HTTP_ROOT"])
        # The plugin checks the certificate (the service's CA is not
        # the system's) unless the example says sslverify=false.
        base = https if re.search(r"\bsslverify=(false|0|no)\b", cmd) else http
        # Where the web server wants the cookie or the token the
        # example's script gets (examples.sh).
        loc = "cookie" if "cookie-script=" in cmd else \
            "bearer" if "header-script=" in cmd else "data"
        target = next((a.split("=", 1)[1] if a.startswith("url=") else a
                       for a in args if re.match(r"^(url=)?https?://", a)), None)
        if target:
            u = urllib.parse.urlsplit(target)
        else:
            u = urllib.parse.urlsplit(setup_url(ex.get("setup", "")))
        name = os.path.basename(u.path)
        if not target or "$" in name or not name:
            name = "layer.tar.gz" if "gzip" in filters else "disk.img"
        query = u.query if "$" not in u.query else ""
        new = "%s/%s/%s/www/%s%s" % (base, loc, rel, name, "?" + query if query else "")
        if target:
            cmd = cmd.replace(target, new, 1)
        else:
            env["URL"] = new
        make_disk(os.path.join("www", name), kind, ropts)
        expect = expect and serves_inner(name, filters)
        # Other servers the example's scripts call (a login service
        # returning a token): the web server answers those paths.
        local = re.compile(r"https?://(?!127\.0\.0\.1[:/])[\w.-]+(:\d+)?")
        cmd = local.sub(http, cmd)
        for path, text in ex.get("named", {}).items():
            if path in ex["cmd"]:
                dest = rewrite(" " + path, scratch).strip()
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with open(dest, "w") as f:
                    f.write(local.sub(http, text))
                os.chmod(dest, 0o755)
    elif svc == "ssh":
        cmd = re.sub(r"\bhost=\S+",
                     "host=127.0.0.1 port=%s user=%s identity=%s known-hosts=%s" %
                     (E["EX_SSH_PORT"], E["EX_SSH_USER"], E["EX_SSH_KEY"],
                      E["EX_SSH_KNOWN_HOSTS"]), cmd, count=1)
        path = opts.get("path") or (pos[0] if pos else None)
        if not path:
            raise OSError("no remote path in the example")
        make_disk(path, kind, ropts)
    elif svc == "s3":
        cmd = re.sub(r"\bendpoint-url=\S+", "endpoint-url=" + E["EX_RGW_ENDPOINT"],
                     cmd, count=1)
        # radosgw wants bucket names in lower case, as AWS does.
        bucket = opts.get("bucket", "").lower()
        cmd = re.sub(r"\bbucket=\S+", "bucket=" + bucket, cmd, count=1)
        # The credentials where both servers look by default.
        os.makedirs(".aws", exist_ok=True)
        with open(".aws/credentials", "w") as f:
            f.write("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n" %
                    (E["EX_RGW_ACCESS_KEY"], E["EX_RGW_SECRET_KEY"]))
        import boto3
        s3 = boto3.client("s3", endpoint_url=E["EX_RGW_ENDPOINT"],
                          aws_access_key_id=E["EX_RGW_ACCESS_KEY"],
                          aws_secret_access_key=E["EX_RGW_SECRET_KEY"],
                          region_name="us-east-1")
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        key = opts["key"]
        if "size" in opts:
            # A disk of objects KEY/%016x: the first MiB is there.
            size = parse_size(opts["size"])
            osz = parse_size(opts.get("object-size", "1M"))
            for i in range(len(PATTERN) // osz):
                s3.put_object(Bucket=bucket, Key="%s/%016x" % (key, i),
                              Body=PATTERN[i * osz:(i + 1) * osz])
        else:
            s3.put_object(Bucket=bucket, Key=key,
                          Body=PATTERN + bytes(PATTERN_SIZE - len(PATTERN)))
    elif svc == "nbd":
        m = re.search(r"(?<![\w-])socket=(\S+)", cmd)
        if m:
            path = env["sock"] if m.group(1) in ("$sock", "${sock}") else m.group(1)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.symlink(E["EX_NBD_SOCK"], path)
        tls = " tls-certificates=" + E["EX_NBD_PKI"] \
            if re.search(r"\btls=(require|on)\b", cmd) else ""
        cmd = re.sub(r"(?<![\w-])hostname=\S+",
                     "hostname=127.0.0.1 port=%s%s" % (E["EX_NBD_PORT"], tls),
                     cmd, count=1)
    if expect:
        with open("expect", "w") as f:
            f.write("%d %s\n" % (size, hashlib.md5(PATTERN).hexdigest()))
    return cmd


# ----------------------------------------------------------------------
# Running.

def rewrite(cmd, scratch):
    """Point absolute scratch-like paths of the example into SCRATCH."""
    cmd = cmd.replace("$PWD", scratch)
    cmd = re.sub(r"(?<=[\s=+'\"])/(path/to|tmp|var/tmp|certs)(?=[/\s'\"]|$)",
                 lambda m: scratch + "/" + m.group(1), cmd)
    # A server left in the background would outlive the example.
    cmd = re.sub(r"\s*&\s*$", "", cmd)
    return cmd


def first_error(text):
    lines = [l for l in text.splitlines() if l.strip()]
    for l in lines:
        if re.search(r"error|cannot|could not|failed|unknown|invalid|not found", l, re.I) \
           and not l.startswith("+"):
            return l.strip()[:200]
    return lines[0].strip()[:200] if lines else ""


def prepare_tls(cmd, scratch):
    m = re.search(r"--tls-certificates[= ](\S+)", cmd)
    if m:
        d = m.group(1)
        d = d if os.path.isabs(d) else os.path.join(scratch, d)
        os.makedirs(d, exist_ok=True)
        subprocess.run(["bash", os.environ["EXAMPLES_PKI"], d], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    m = re.search(r"--tls-psk[= ](\S+)", cmd)
    if m:
        f = m.group(1)
        f = f if os.path.isabs(f) else os.path.join(scratch, f)
        os.makedirs(os.path.dirname(f), exist_ok=True)
        user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        sh("psktool", "-u", user, "-p", f)


def run_one(n, ex, work, bindir, shipped):
    cmd = ex["cmd"]
    plugin, filters, args, info = analyse(cmd)
    why = placeholder(cmd, words_of(cmd))
    if why:
        return ("SYNOPSIS", why)
    why = skip_reason(cmd, plugin, filters, args, info, shipped, ex.get("setup", ""))
    if not why and not info and \
       not service_of(cmd, plugin, ex.get("setup", "")) and \
       re.search(r"https?://|example\.com", ex.get("setup", "")):
        why = "needs the network or a remote server (%s)" % \
            ex["setup"].split("\n")[-1]
    if why:
        return ("SKIP", why)
    scratch = os.path.join(work, "ex", str(n))
    os.makedirs(scratch, exist_ok=True)
    cmd = rewrite(cmd, scratch)
    plugin, filters, args, info = analyse(cmd)
    extra = {"sock": os.path.join(scratch, "sock")}
    with CWD_LOCK:
        old = os.getcwd()
        try:
            os.chdir(scratch)
            if not service_of(cmd, plugin, ex.get("setup", "")):
                make_fixtures(ex, plugin, filters, args, scratch)
            else:
                # The passphrase file and the like, then the remote disk.
                make_fixtures(ex, plugin, filters, [a for a in args if "=" in a
                                                     and not a.startswith("path=")],
                              scratch)
                cmd = remote_fixtures(ex, cmd, plugin, filters, args, scratch, extra)
            prepare_tls(cmd, scratch)
        except Exception as e:  # a fixture that cannot be made is a SKIP
            return ("SKIP", "could not make the example's files: %s" % e)
        finally:
            os.chdir(old)
    env = dict(os.environ)
    env["PATH"] = bindir + ":" + env["PATH"]
    env["tmpdir"] = scratch
    env["sock"] = os.path.join(scratch, "sock")
    env["URL"] = "file://" + scratch
    env["HOME"] = scratch
    env.update(extra)
    env.pop("NBDKIT_DEBUG", None)
    with open(os.path.join(scratch, "command"), "w") as f:
        f.write(cmd + "\n")
    with RUNNING_LOCK:
        if STOPPING:
            return ("SKIP", "interrupted")
        p = subprocess.Popen(["bash", "-c", cmd], cwd=scratch, env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
        RUNNING.add(p.pid)
    try:
        out, err = p.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return ("FAIL", "timeout after %ds" % TIMEOUT)
    finally:
        with RUNNING_LOCK:
            RUNNING.discard(p.pid)
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    text = err.decode(errors="replace")
    with open(os.path.join(scratch, "log"), "w") as f:
        f.write(out.decode(errors="replace") + "\n---- stderr\n" + text)
    if p.returncode == 0 and not info and \
       not os.path.exists(os.path.join(scratch, "check-ok")):
        return ("FAIL", first_error(text) or
                "the server stopped before the check finished")
    if p.returncode == 0:
        digest = ""
        try:
            with open(os.path.join(scratch, "digest")) as f:
                digest = f.read().strip()
        except OSError:
            pass
        return ("PASS", "", digest)
    return ("FAIL", first_error(text) or "exit %d" % p.returncode)


def load_shipped(path):
    s = {"plugin": set(), "filter": set()}
    with open(path) as f:
        for line in f:
            k, _, v = line.strip().partition(" ")
            if k in s:
                s[k].add(v)
    return s


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "needs":
        print(" ".join(needed(sys.argv[2], load_shipped(sys.argv[3]))))
        return
    if len(sys.argv) >= 3 and sys.argv[1] == "list":
        for ex in extract(sys.argv[2]):
            print("%s\t%s" % (ex["where"], ex["cmd"].replace("\n", "\\n")))
        return
    if len(sys.argv) < 6 or sys.argv[1] != "run":
        sys.exit("usage: examples.py run PODDIR WORK BINDIR SHIPPED [RESULTS]")
    global PODDIR
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    poddir, work, bindir, shipped_f = sys.argv[2:6]
    PODDIR = poddir
    results = sys.argv[6] if len(sys.argv) > 6 else None
    only = os.environ.get("EXAMPLES_ONLY")
    shipped = load_shipped(shipped_f)
    seen = {}
    exs = []
    for ex in extract(poddir):
        key = re.sub(r"\s+", " ", ex["cmd"])
        if key in seen:
            seen[key]["also"].append(ex["where"])
            continue
        ex["also"] = []
        seen[key] = ex
        exs.append(ex)
    todo = [(n, ex) for n, ex in enumerate(exs, 1)
            if not only or re.search(only, ex["where"] + " " + ex["cmd"])]
    res = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=JOBS) as pool:
        futs = {pool.submit(run_one, n, ex, work, bindir, shipped): n for n, ex in todo}
        for fut in concurrent.futures.as_completed(futs):
            res[futs[fut]] = fut.result()
    counts = {}
    lines = []
    for n, ex in todo:
        st, why, digest = (res[n] + ("",))[:3]
        counts[st] = counts.get(st, 0) + 1
        one = re.sub(r"\s+", " ", ex["cmd"])
        lines.append("%d\t%s\t%s\t%s\t%s\t%s" % (n, st, why, ex["where"], one, digest))
        if st == "SYNOPSIS" and not os.environ.get("EXAMPLES_VERBOSE"):
            continue
        print("%s: %s  %s%s" % (st, ex["where"], one[:110],
                                ("\n      (%s)" % why) if why else ""))
    if results:
        with open(results, "w") as f:
            f.write("\n".join(lines) + "\n")
    print("%d passed, %d failed, %d skipped (%d synopsis lines not run)" %
          (counts.get("PASS", 0), counts.get("FAIL", 0), counts.get("SKIP", 0),
           counts.get("SYNOPSIS", 0)))


if __name__ == "__main__":
    main()
