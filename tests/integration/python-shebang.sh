#!/usr/bin/env bash
# Python host: executable scripts, with "#!NBDKIT python" (nbdkit's own
# form) and "#!/usr/bin/env nbdkit" (a .py name picks the host), taking
# server options and parameters on their command line; and a script
# running in a daemonized server (after_fork is called in the child,
# threads work there).
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdsh

body='
import threading
import nbdkit
API_VERSION = 3
size = nbdkit.Param("size", nbdkit.SIZE, default="64k")
params = [size]
forked = []
def after_fork():
    forked.append(1)
def get_size(h):
    return size.value
def export_description(h):
    # A Python thread started in the server (after the fork).
    t = threading.Thread(target=forked.append, args=(2,))
    t.start(); t.join()
    return "forked=%d" % len(forked)
def pread(h, buf, offset, flags):
    buf[:] = b"S" * len(buf)
'

printf '#!%s python\n%s' "$NBDKIT" "$body" > plain
chmod +x plain
./plain -U - size=1M --run 'nbdsh -u "$uri" -c "
assert h.get_size() == 1 << 20
assert h.pread(4, 0) == b\"SSSS\"
"' || fail "#!$NBDKIT python"

mkdir bin
ln -s "$NBDKIT" bin/nbdkit
printf '#!/usr/bin/env nbdkit\n%s' "$body" > env.py
chmod +x env.py
PATH="$tmpdir/bin:$PATH" ./env.py -U - --run 'nbdsh -u "$uri" -c "
assert h.get_size() == 65536
"' || fail "#!/usr/bin/env nbdkit"
PATH="$tmpdir/bin:$PATH" ./env.py --help | grep -q "size=<SIZE>" ||
  fail "./env.py --help"

# Daemonized: after_fork ran in the child, and threads work there.
"$NBDKIT" -U "$tmpdir/d.sock" -P "$tmpdir/d.pid" ./env.py
wait_for_file "$tmpdir/d.pid" || fail "the daemon wrote no pidfile"
register_pidfile "$tmpdir/d.pid"
got="$(t nbdinfo "nbd+unix:///?socket=$tmpdir/d.sock" |
       sed -n 's/^\tdescription: //p')"
assert_eq "after_fork in the daemon" "$got" "forked=2"
echo "python-shebang: OK"
