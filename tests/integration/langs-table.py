#!/usr/bin/python3
"""langs/README.md's table of callbacks and helpers against the ABI
headers and the host sources.

Fails when a field of struct nbdkit_plugin (API 3) or struct
nbdkit_filter, or an nbdkit_* function of abi/nbdkit-common.h,
nbdkit-plugin.h or nbdkit-filter.h, has no row; when a row names
something the headers do not have; when a cell is empty or not one of
the known words; when a "no" or "n/a" has no note; and, for the script
hosts, when a callback marked "yes" is not set in the host's sources or
one marked "no" is, or a helper marked "yes" is not exported by the
host's module."""

import os
import re
import sys

SRC = os.environ.get("SRCDIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")
HOSTS = ["python", "lua", "ocaml"]
WORDS = {"yes", "no", "host", "n/a", "macro"}
errors = []


def read(*p):
    with open(os.path.join(SRC, *p)) as f:
        return f.read()


def uncomment(s):
    return re.sub(r"/\*.*?\*/", "", s, flags=re.S)


def struct_fields(text, name):
    m = re.search(r"struct %s \{(.*?)\n\};" % name, text, re.S)
    if not m:
        sys.exit("no struct %s found" % name)
    fields = []
    for decl in m.group(1).split(";"):
        decl = decl.strip()
        if not decl:
            continue
        f = re.search(r"\(\*\s*(\w+)\)", decl) or re.search(r"(\w+)$", decl)
        fields.append(f.group(1))
    return fields


raw = read("abi", "nbdkit-plugin.h")
end = "#endif /* NBDKIT_API_VERSION */"
if raw.count(end) != 1:
    sys.exit("abi/nbdkit-plugin.h: no single %r" % end)
head, after = raw.split(end)
# The API 3 layout (the older one follows "#else"), and what follows
# the version-dependent part.
v3 = uncomment(head.split("#if NBDKIT_API_VERSION >= 3", 1)[1].split("#else", 1)[0])
v3 += uncomment(after)
filter_h = uncomment(read("abi", "nbdkit-filter.h"))
common_h = uncomment(read("abi", "nbdkit-common.h"))
want = {
    "plugin": struct_fields(v3, "nbdkit_plugin"),
    "filter": struct_fields(filter_h, "nbdkit_filter"),
    "helper": sorted(set(
        re.findall(r"\b(nbdkit_\w+)\s*\(", common_h)
        + re.findall(r"\b(nbdkit_\w+)\s*\(", v3)
        + re.findall(r"\b(nbdkit_\w+)\s*\(", filter_h))),
}
for k, v in want.items():
    if len(v) < 20:
        sys.exit("parsed only %d %s entries from the headers: %s" % (len(v), k, v))

# The three tables of langs/README.md, by their headings.
readme = read("langs", "README.md")
tables = {}
for key, heading in (("plugin", "### Plugin fields"),
                     ("filter", "### Filter fields"),
                     ("helper", "### Helpers")):
    if heading not in readme:
        sys.exit("langs/README.md: no section %r" % heading)
    part = readme.split(heading, 1)[1]
    rows = {}
    for line in part.splitlines()[1:]:
        if line.startswith("#"):
            break
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in ("field", "function"):
            if cells[1:5] != ["C", "Python", "Lua", "OCaml"]:
                errors.append("%s: columns %s" % (heading, cells))
            continue
        name = cells[0].strip("`")
        if len(cells) != 6:
            errors.append("%s: row %s has %d cells, not 6" % (heading, name, len(cells)))
            continue
        if name in rows:
            errors.append("%s: %s twice" % (heading, name))
        rows[name] = cells[1:]
    tables[key] = rows

for key, names in want.items():
    rows = tables[key]
    for n in names:
        if n not in rows:
            errors.append("langs/README.md (%s table): no row for %s" % (key, n))
    for n in rows:
        if n not in names:
            errors.append("langs/README.md (%s table): %s is not in abi/" % (key, n))
    for n, cells in rows.items():
        for col, c in zip(["C"] + HOSTS, cells[:4]):
            if c not in WORDS:
                errors.append("%s %s, %s: cell %r is not one of %s"
                              % (key, n, col, c, sorted(WORDS)))
            if c in ("no", "n/a") and not cells[4]:
                errors.append("%s %s, %s: %r without a note" % (key, n, col, c))


# Which callbacks each host sets: "[.>]name =" in its plugin or
# filter sources, or the shared X-macro lists they expand.
def host_files(host, kind):
    d = os.path.join(SRC, "langs", host)
    return [os.path.join(d, f) for f in sorted(os.listdir(d))
            if f.startswith(kind) and f.endswith(".c")]


def set_fields(host, kind):
    text = "".join(open(f).read() for f in host_files(host, kind))
    s = set(re.findall(r"(?:\.|->)(\w+)\s*=(?!=)", text))
    s |= set(re.findall(r"\bSET \((\w+)\)", text))
    if re.search(r"\b%s_CALLBACKS\b" % kind.upper(), text):
        cb = uncomment(read("langs", "common", "callbacks.h"))
        m = re.search(r"#define %s_CALLBACKS\(X\)(.*?)(?:\n\n|#define)"
                      % kind.upper(), cb, re.S)
        s |= set(re.findall(r"X \((\w+)\)", m.group(1)))
    return s


for kind in ("plugin", "filter"):
    for i, host in enumerate(HOSTS):
        have = set_fields(host, kind)
        for n, cells in tables[kind].items():
            c = cells[1 + i]
            if n.startswith("_"):
                continue
            if c in ("yes", "host") and n not in have:
                errors.append("%s %s: %r for %s, but langs/%s sets no .%s"
                              % (kind, n, c, host, host, n))
            if c == "no" and n in have:
                errors.append("%s %s: 'no' for %s, but langs/%s sets .%s"
                              % (kind, n, host, host, n))

# Helpers: the script-side name must appear in the host's module.
SCRIPT_NAME = {
    "nbdkit_context_get_backend": ["backend"],
    "nbdkit_next_context_open": ["open_context", "next_context_open"],
    "nbdkit_next_context_close": ["close", "next_context_close"],
    "nbdkit_backend_list_exports": ["list_exports", "list_exports_below"],
    "nbdkit_backend_default_export": ["default_export", "default_export_below"],
    "nbdkit_extents_full": ["full", "extents_full"],
    "nbdkit_read_lend": ["read_lend", "read_data"],
}
MODULE = {
    "python": ["module.c", "next.c"],
    "lua": ["module.c", "next.c"],
    "ocaml": ["NBDKit.mli"],
}
for i, host in enumerate(HOSTS):
    text = "".join(read("langs", host, f) for f in MODULE[host])
    words = set(re.findall(r"\w+", text))
    for n, cells in tables["helper"].items():
        if cells[1 + i] != "yes":
            continue
        short = n[len("nbdkit_"):]
        names = SCRIPT_NAME.get(n, [short, short.replace("next_", "", 1)])
        if not any(x in words for x in names):
            errors.append("helper %s: 'yes' for %s, but langs/%s/%s has none of %s"
                          % (n, host, host, "+".join(MODULE[host]), names))

for e in errors:
    print("FAIL:", e)
if errors:
    sys.exit(1)
print("langs/README.md: %d plugin fields, %d filter fields, %d helpers, all present"
      % tuple(len(want[k]) for k in ("plugin", "filter", "helper")))
