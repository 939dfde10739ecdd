#!/usr/bin/python3
# Run the example command lines of nbdkit's manual pages against a
# server (see examples.sh, which prepares the directories and calls
# this).  Nothing of upstream is kept: the pages are read from PODDIR,
# a temporary extraction.
#
#   examples.py list PODDIR                  print every example found
#   examples.py run PODDIR WORK BINDIR SHIPPED [RESULTS]
#
# SHIPPED is a file naming the plugins and filters the server under
# test has ("plugin NAME" / "filter NAME" lines).  BINDIR holds the
# `nbdkit` wrapper that turns an example into a captive run with a
# check.  RESULTS gets "id<TAB>status<TAB>reason<TAB>where<TAB>command".

import concurrent.futures
import glob
import os
import re
import shlex
import signal
import subprocess
import sys
import threading

TIMEOUT = int(os.environ.get("EXAMPLES_TIMEOUT", "120"))
JOBS = int(os.environ.get("EXAMPLES_JOBS", "2"))
# Fixtures are made with the example's scratch directory as the current
# directory, which is the process's: one at a time.
CWD_LOCK = threading.Lock()
PODDIR = None

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
                        "script": script, "setup": "\n".join(setup)})
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


def skip_reason(cmd, plugin, filters, args, info, shipped):
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
    if re.search(r"https?://|example\.com|docker://|magnet:|\.torrent\b", c) or \
       re.search(r"\b(hostname|host|server)=", c):
        return "needs the network or a remote server"
    if plugin == "nbd" and re.search(r"\bsocket=", c):
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
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, **kw)


def make_disk(path, kind, opts):
    """Make PATH, a disk of some KIND, in the current directory."""
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    if os.path.exists(path):
        return
    for ext, tool in ((".xz", ["xz", "--block-size=1MiB", "-T1"]),
                      (".gz", ["gzip"])):
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
        sh("tar", "-cf", os.path.abspath(path), "-C", tmp, entry)
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
        sh("qemu-img", "create", "-f", "luks", "--object",
           "secret,id=sec0,data=" + pw, "-o", "key-secret=sec0,iter-time=10",
           path, "16M")
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
    why = skip_reason(cmd, plugin, filters, args, info, shipped)
    if not why and not info and \
       re.search(r"https?://|example\.com", ex.get("setup", "")):
        why = "needs the network or a remote server (%s)" % \
            ex["setup"].split("\n")[-1]
    if why:
        return ("SKIP", why)
    scratch = os.path.join(work, "ex", str(n))
    os.makedirs(scratch, exist_ok=True)
    cmd = rewrite(cmd, scratch)
    plugin, filters, args, info = analyse(cmd)
    with CWD_LOCK:
        old = os.getcwd()
        try:
            os.chdir(scratch)
            make_fixtures(ex, plugin, filters, args, scratch)
            prepare_tls(cmd, scratch)
        except (subprocess.CalledProcessError, OSError) as e:
            return ("SKIP", "could not make the example's files: %s" % e)
        finally:
            os.chdir(old)
    env = dict(os.environ)
    env["PATH"] = bindir + ":" + env["PATH"]
    env["tmpdir"] = scratch
    env["sock"] = os.path.join(scratch, "sock")
    env["URL"] = "file://" + scratch
    env["HOME"] = scratch
    env.pop("NBDKIT_DEBUG", None)
    with open(os.path.join(scratch, "command"), "w") as f:
        f.write(cmd + "\n")
    p = subprocess.Popen(["bash", "-c", cmd], cwd=scratch, env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = p.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return ("FAIL", "timeout after %ds" % TIMEOUT)
    finally:
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
    if len(sys.argv) >= 3 and sys.argv[1] == "list":
        for ex in extract(sys.argv[2]):
            print("%s\t%s" % (ex["where"], ex["cmd"].replace("\n", "\\n")))
        return
    if len(sys.argv) < 6 or sys.argv[1] != "run":
        sys.exit("usage: examples.py run PODDIR WORK BINDIR SHIPPED [RESULTS]")
    global PODDIR
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
