#!/usr/bin/env bash
# eval plugin: methods given inline, $1 the method as with sh; can_*
# answered from the methods given; missing=; other keys to config;
# $tmpdir shared by all calls.  Clients: nbdcopy, nbdinfo, qemu-img,
# nbdsh.  Also the sh plugin reading its script from stdin ("-").
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdcopy
requires nbdinfo

# A writable 1M disk kept in $tmpdir/disk, created by config.
head -c 1048576 /dev/urandom > orig.img
start_nbdkit ev eval \
  config='[ "$2" = file ] || { echo "EINVAL unknown key $2" >&2; exit 1; }
          cp "$3" $tmpdir/disk; echo $tmpdir > '"$tmpdir"'/evtmp' \
  get_size='stat -c %s $tmpdir/disk' \
  pread='dd if=$tmpdir/disk skip=$4 count=$3 iflag=skip_bytes,count_bytes status=none' \
  pwrite='dd of=$tmpdir/disk seek=$4 conv=notrunc oflag=seek_bytes status=none' \
  flush='echo "$1 $2" >> $tmpdir/log' \
  trim='echo "$1 $2 $3 $4 [$5]" >> $tmpdir/log' \
  thread_model='echo serialize_requests' \
  file=orig.img
evtmp=$(cat evtmp)
[ -f "$evtmp/disk" ] || fail "config did not run with \$tmpdir"

# can_write, can_flush, can_trim from pwrite, flush, trim; no zero given:
# can_zero emulated, no extents given: emulated (all data).
info=$(t nbdinfo "$uri")
echo "$info" | grep -q "is_read_only: false" || fail "not writable: $info"
echo "$info" | grep -q "can_flush: true" || fail "no flush: $info"
echo "$info" | grep -q "can_trim: true" || fail "no trim: $info"
echo "$info" | grep -q "can_cache: false" || fail "cache: $info"
assert_eq size "$(t nbdinfo --size "$uri")" 1048576

t nbdcopy "$uri" out.img
cmp out.img orig.img || fail "nbdcopy out differs"
head -c 1048576 /dev/urandom > new.img
t nbdcopy new.img "$uri"
cmp "$evtmp/disk" new.img || fail "nbdcopy in did not reach the disk"
if command -v qemu-img >/dev/null; then
  t qemu-img compare -f raw new.img -F raw "$uri" || fail "qemu-img compare"
fi
nbdsh_u "$uri" -c 'h.flush()' -c 'h.trim(512, 1024, nbd.CMD_FLAG_FUA)'
grep -q "^flush $" "$evtmp/log" || fail "flush not called: $(cat "$evtmp/log")"
# No can_fua given but flush is: FUA is emulated by a flush after.
assert_eq "calls" "$(tail -n 2 "$evtmp/log" | tr '\n' '|')" \
  "trim  512 1024 []|flush |"
# zero is emulated with pwrite.
nbdsh_u "$uri" -c 'h.zero(4096, 0)' -c 'assert h.pread(4096, 0) == bytes(4096)'
cmp -n 4096 "$evtmp/disk" /dev/zero || fail "zero did not write zeroes"
stop_nbdkit "$pid"
[ ! -e "$evtmp" ] || fail "\$tmpdir $evtmp not removed at exit"

# A key config refuses stops the server with the script's message.
if "$NBDKIT" eval get_size='echo 1' config='echo "EINVAL no $2" >&2; exit 1' \
    colour=red --run true 2> err.txt; then
  fail "a refused key was accepted"
fi
grep -q "config: no colour" err.txt || fail "message: $(cat err.txt)"
# A key with no config method at all.
if "$NBDKIT" eval get_size='echo 1' colour=red --run true 2> err.txt; then
  fail "a key without config was accepted"
fi
grep -q "unknown parameter 'colour'" err.txt || fail "message: $(cat err.txt)"

# missing= runs for every method not given; here it answers
# can_extents/can_zero etc. as false and reads zeroes.
start_nbdkit miss eval get_size='echo 64k' \
  missing='case "$1" in pread) head -c $3 /dev/zero ;; *) exit 2 ;; esac'
nbdsh_u "$uri" -c 'assert h.pread(100, 0) == bytes(100)' \
  -c 'assert h.is_read_only()'
stop_nbdkit "$pid"

# extents given inline, tri-state answers printed.
start_nbdkit ext eval get_size='echo 1M' \
  pread='head -c $3 /dev/zero' \
  can_fua='echo emulate' can_cache='echo native' cache='exit 0' \
  extents='echo 0 512K hole,zero; echo 512K 512K 0'
map=$(t nbdinfo --map "$uri")
echo "$map" | grep -Eq "^ +0 +524288 +3 +hole,zero" || fail "map: $map"
echo "$map" | grep -Eq "^ +524288 +524288 +0 +data" || fail "map: $map"
info=$(t nbdinfo "$uri")
echo "$info" | grep -q "can_cache: true" || fail "cache: $info"
stop_nbdkit "$pid"

# sh with the script on stdin, saved in $tmpdir.  (A background job's
# stdin would be /dev/null without the explicit redirection.)
cat > inline.txt <<'SCRIPT'
case "$1" in
  get_size) echo 4k ;;
  pread) printf 'inline%.0s' $(seq 1000) | head -c $3 ;;
  *) exit 2 ;;
esac
SCRIPT
"$NBDKIT" -U inline.sock -P inline.pid -f sh - < inline.txt &
pid=$!
register_pid "$pid"
wait_for_file inline.pid || fail "sh - did not start"
uri="nbd+unix:///?socket=$tmpdir/inline.sock"
nbdsh_u "$uri" -c 'assert h.get_size() == 4096' \
  -c 'assert h.pread(12, 0) == b"inlineinline"'
stop_nbdkit "$pid"
echo "eval-plugin: OK"
