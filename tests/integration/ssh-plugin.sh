#!/usr/bin/env bash
# ssh plugin: data through a real OpenSSH server (tests/services/sshd.sh).
# Random data written with nbdcopy, nbdsh and qemu-img lands in the
# remote file (checked over ssh with sha256sum and dd), reads back the
# same (also when the server cuts reads short), flush works; identity
# and password authentication; config= and compression=; create=; a
# read-only SFTP server refuses writes with "permission denied".
. "$(dirname "$0")/functions.sh"
. "$SRCDIR/tests/services/sshd.sh"
requires nbdcopy
requires nbdsh
[ -x "$SSHD_BIN" ] || skip "$SSHD_BIN not installed"
requires_ours
pkg-config --exists libssh 2>/dev/null || skip "libssh not installed"
cd "$tmpdir"

mkdir sshd
sshd_start "$tmpdir/sshd" secret || fail "sshd did not start"
opts=(host=127.0.0.1 port="$SSHD_PORT" user="$SSHD_USER"
      known-hosts="$SSHD_KNOWN_HOSTS" config=)
remote_sha () { ssh_run sha256sum "$1" | cut -d' ' -f1; }

# The remote file is on this machine, but every check of it below goes
# through ssh, as it would for another host.
size=$((8 << 20))
truncate -s $size "$tmpdir/disk.img"
head -c $size /dev/urandom > src.img
sha_src=$(sha256sum < src.img | cut -d' ' -f1)

start_nbdkit key ssh "${opts[@]}" identity="$SSHD_KEY" "$tmpdir/disk.img"
key_uri=$uri
assert_eq "size" "$(t nbdinfo --size "$key_uri")" $size

# nbdcopy writes, the remote file has those bytes, nbdcopy reads them back.
t nbdcopy src.img "$key_uri"
assert_eq "remote sha256 after nbdcopy" "$(remote_sha "$tmpdir/disk.img")" "$sha_src"
t nbdcopy "$key_uri" back.img
cmp src.img back.img || fail "nbdcopy read back differs"
# Single connection too (multi-conn off).
t nbdcopy -C 1 --request-size=1048576 "$key_uri" back1.img
cmp src.img back1.img || fail "nbdcopy -C 1 read back differs"

# Reads larger than the server answers (OpenSSH: 255 KiB) come back
# cut, and are completed.
start_nbdkit bigread -v -D ssh.read_chunk=1048576 ssh "${opts[@]}" \
  identity="$SSHD_KEY" "$tmpdir/disk.img" 2> bigread.err
t nbdcopy -C 1 --request-size=4194304 "$uri" back2.img
cmp src.img back2.img || fail "reads of 1 MiB pieces differ"
grep -q "the server answers reads of" bigread.err \
  || { cat bigread.err; fail "no cut reads seen"; }
stop_nbdkit "$pid"

# nbdsh: unaligned writes, flush, FUA; reads across request pieces.
nbdsh_u "$key_uri" -c '
import os
assert h.can_flush() and h.can_fua() and h.can_multi_conn()
h.pwrite(b"hello over sftp", 12345)
h.flush()
big = os.urandom(3 << 20)          # larger than one SFTP request
h.pwrite(big, (1 << 20) + 7, nbd.CMD_FLAG_FUA)
assert h.pread(3 << 20, (1 << 20) + 7) == big
assert h.pread(15, 12345) == b"hello over sftp"
open("big.bin", "wb").write(big)
'
assert_eq "remote bytes at 12345" \
  "$(ssh_run dd if="$tmpdir/disk.img" bs=1 skip=12345 count=15 status=none)" \
  "hello over sftp"
ssh_run dd if="$tmpdir/disk.img" bs=1M iflag=skip_bytes,count_bytes \
  skip=$(((1 << 20) + 7)) count=$((3 << 20)) status=none > big.remote
cmp big.bin big.remote || fail "remote bytes of the 3 MiB write differ"

# qemu-img: write a fresh image into it, compare it through the server.
if command -v qemu-img >/dev/null; then
  head -c $size /dev/urandom > q.img
  t qemu-img convert -n -f raw -O raw q.img "$key_uri"
  t qemu-img compare -f raw -F raw q.img "$key_uri" >/dev/null \
    || fail "qemu-img compare differs"
  assert_eq "remote sha256 after qemu-img" "$(remote_sha "$tmpdir/disk.img")" \
    "$(sha256sum < q.img | cut -d' ' -f1)"
fi
stop_nbdkit "$pid"

# config=: a host alias, its port, user, key and known hosts from an
# SSH client configuration file; compression on.
cat > ssh_config <<CONF
Host testalias
  Hostname 127.0.0.1
  Port $SSHD_PORT
  User $SSHD_USER
  IdentityFile $SSHD_KEY
  UserKnownHostsFile $SSHD_KNOWN_HOSTS
CONF
start_nbdkit conf ssh host=testalias config="$tmpdir/ssh_config" \
  compression=true timeout=20 "$tmpdir/disk.img"
t nbdcopy -C 1 "$uri" conf.img
assert_eq "read through config=" "$(sha256sum < conf.img | cut -d' ' -f1)" \
  "$(remote_sha "$tmpdir/disk.img")"
stop_nbdkit "$pid"
# Without the file, testalias is not a host: an error naming it.
start_nbdkit noconf ssh host=testalias config= "$tmpdir/disk.img" 2> noconf.err
if t nbdinfo --size "$uri" > /dev/null 2>&1; then fail "testalias resolved"; fi
grep -q "ssh [^ ]*testalias:22: cannot connect" noconf.err \
  || { cat noconf.err; fail "no error naming testalias"; }
stop_nbdkit "$pid"

# Password authentication (sshd's own, against a private copy of the
# shadow file: see tests/services/sshd.sh), the password from a file
# and from a file descriptor.
if [ -n "$SSHD_PASSWORD" ]; then
  printf '%s' "$SSHD_PASSWORD" > pw.txt
  start_nbdkit pw ssh "${opts[@]}" password=+"$tmpdir/pw.txt" "$tmpdir/disk.img"
  nbdsh_u "$uri" -c 'h.pwrite(b"by password", 0); h.flush()'
  assert_eq "remote bytes after password login" \
    "$(ssh_run head -c 11 "$tmpdir/disk.img")" "by password"
  stop_nbdkit "$pid"
  # The same password from an inherited file descriptor.
  start_nbdkit pwfd ssh "${opts[@]}" password=-3 "$tmpdir/disk.img" 3< pw.txt
  nbdsh_u "$uri" -c 'assert h.pread(11, 0) == b"by password"'
  stop_nbdkit "$pid"
  start_nbdkit badpw ssh "${opts[@]}" password=wrong "$tmpdir/disk.img" \
    2> badpw.err
  if t nbdinfo --size "$uri" >/dev/null 2>&1; then
    fail "a wrong password was accepted"
  fi
  grep -q "ssh $SSHD_USER@127.0.0.1:$SSHD_PORT: authentication failed" badpw.err \
    || { cat badpw.err; fail "no authentication error naming the host"; }
  stop_nbdkit "$pid"
else
  note "password authentication not tested (needs root and unshare -m)"
fi

# create=: the file is made on the first connection with its size and mode.
start_nbdkit create ssh "${opts[@]}" identity="$SSHD_KEY" \
  path="$tmpdir/new.img" create=true create-size=3M create-mode=0640
nbdsh_u "$uri" -c 'assert h.get_size() == 3 << 20; h.pwrite(b"new", 4096)'
assert_eq "created file" "$(ssh_run "stat -c '%s %a' $tmpdir/new.img")" \
  "$((3 << 20)) 640"
# A second connection opens it, and does not empty it again.
nbdsh_u "$uri" -c 'assert h.pread(3, 4096) == b"new"'
stop_nbdkit "$pid"

# A read-only SFTP server (a second sshd, the first one stopped):
# read-write is refused with a clear error, -r reads.
sha_now=$(remote_sha "$tmpdir/disk.img")
sshd_stop
mkdir sshd-ro
SSHD_SFTP_ARGS=-R
sshd_start "$tmpdir/sshd-ro" || fail "read-only sshd did not start"
ro_opts=(host=127.0.0.1 port="$SSHD_PORT" known-hosts="$SSHD_KNOWN_HOSTS"
         config= identity="$SSHD_KEY" "$tmpdir/disk.img")
start_nbdkit ro ssh "${ro_opts[@]}" 2> ro.err
if t nbdinfo --size "$uri" >/dev/null 2>&1; then
  fail "read-write open on a read-only server succeeded"
fi
grep -q "$tmpdir/disk.img: opening read-write: permission denied" ro.err \
  || { cat ro.err; fail "no permission denied error naming the path"; }
stop_nbdkit "$pid"
start_nbdkit ro2 -r ssh "${ro_opts[@]}"
t nbdcopy "$uri" ro.img
assert_eq "read-only read" "$(sha256sum < ro.img | cut -d' ' -f1)" "$sha_now"
stop_nbdkit "$pid"
echo "$testname: OK"
