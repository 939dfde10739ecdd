#!/usr/bin/env bash
# sh plugin: the errno name a failing script prints is read in either
# case; a name the protocol cannot carry, or a longer word that merely
# starts with a name, means EIO.  $tmpdir is the script's alone: the
# command of --run neither sees the plugin's nor loses its own.
. "$(dirname "$0")/functions.sh"
requires nbdsh --version

cat > plug.sh <<'EOF2'
#!/bin/bash
case "$1" in
  get_size) echo 1M ;;
  pread)
    case $(( $4 / 512 )) in
      0) echo eperm >&2; exit 1 ;;
      1) printf ENOMEM >&2; exit 1 ;;
      2) echo 'enospc: full' >&2; exit 1 ;;
      3) echo EPIPE >&2; exit 1 ;;
      4) echo EINVALID >&2; exit 1 ;;
      5) echo ENOENT gone >&2; exit 1 ;;
      6) echo Einval >&2; exit 1 ;;
      7) printf '%s' "$tmpdir" | dd bs=512 conv=sync 2>/dev/null ;;
    esac ;;
  *) exit 2 ;;
esac
EOF2
chmod +x plug.sh
start_nbdkit sh sh ./plug.sh
export uri
t nbdsh -c '
import errno, os
h.connect_uri(os.environ["uri"])
want = [errno.EPERM, errno.ENOMEM, errno.ENOSPC, errno.EIO, errno.EIO,
        errno.EIO, errno.EINVAL]
for i, e in enumerate(want):
    try:
        h.pread(1, i * 512)
        assert False, "pread %d succeeded" % i
    except nbd.Error as ex:
        assert ex.errnum == e, (i, ex.errnum, e)
d = h.pread(512, 7 * 512).rstrip(b"\0").decode()
assert d.startswith("/") and os.path.isdir(d), d
' || fail "errno names"

# --run's command: no $tmpdir from the plugin; an exported one stays.
t env -u tmpdir "$NBDKIT" -U - sh ./plug.sh --run 'test -z "${tmpdir+set}"' \
  || fail "the plugin's \$tmpdir leaked into --run"
tmpdir=/nowhere t "$NBDKIT" -U - sh ./plug.sh --run '
test "$tmpdir" = /nowhere &&
nbdsh -u "$uri" -c "d = h.pread(512, 3584).rstrip(b\"\\0\").decode(); assert d != \"/nowhere\" and d.startswith(\"/\"), d"' \
  || fail "\$tmpdir with an exported tmpdir"
echo "sh-errnames: OK"
