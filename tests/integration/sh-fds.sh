#!/usr/bin/env bash
# sh plugin: the script sees the descriptors the server inherited (as
# nbdkit: they are not closed) and none of the server's own (sockets,
# pipes, the log and stats filters' files), which are close-on-exec.
. "$(dirname "$0")/functions.sh"
requires nbdinfo --version
[ -d /proc/self/fd ] || skip "no /proc/self/fd"

cat > plug.sh <<'EOF2'
#!/bin/bash
case "$1" in
  get_size)
    # find runs in a child: the redirection opens nothing in this shell.
    find /proc/$$/fd -mindepth 1 -printf '%f %l\n' > "fds.$$"
    mv "fds.$$" fds.txt
    echo 512 ;;
  pread) dd if=/dev/zero count=$3 iflag=count_bytes 2>/dev/null ;;
  *) exit 2 ;;
esac
EOF2
chmod +x plug.sh

# fd 7 is inherited; it is not close-on-exec in the server's parent.
exec 7<plug.sh
start_nbdkit sh --filter=log --filter=stats sh ./plug.sh \
  logfile="$tmpdir/log.txt" statsfile="$tmpdir/stats.txt"
t nbdinfo --size "$uri" >/dev/null || fail "nbdinfo"
# What any child of this shell inherits (the test runner may pass some).
inherited=" $(/bin/bash -c 'cd /proc/$$/fd && echo *') "
exec 7<&-
[ -s fds.txt ] || fail "the script did not run"
sed 's/^/  | /' fds.txt
grep -q '^7 .*/plug.sh$' fds.txt || fail "inherited fd 7 was closed"
while read -r n target; do
  case "$n" in
    0|1|2) ;;
    *) case "$inherited" in *" $n "*) continue ;; esac
       case "$target" in
         */plug.sh) ;;   # the shell's own descriptor of its script
         *) fail "fd $n ($target) leaked into the script" ;;
       esac ;;
  esac
done < fds.txt
echo "sh-fds: OK"
