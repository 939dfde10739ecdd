# The S3 plugin's disks are interchangeable with those of Debian's
# nbdkit S3 plugin (Python, boto3) on the same radosgw bucket: a disk
# written by ours reads the same through Debian's, and the reverse.
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/functions.sh"
. "$here/functions-s3.sh"
requires nbdcopy --version
requires nbdsh --version
requires_ours
debian=/usr/bin/nbdkit
[ -x $debian ] && [ -f /usr/lib/x86_64-linux-gnu/nbdkit/plugins/nbdkit-S3-plugin ] ||
  skip "Debian's nbdkit S3 plugin (nbdkit-plugin-python) is not installed"
# Debian's nbdkit embeds the system python3 and its boto3.
/usr/bin/python3 -c 'import boto3' 2>/dev/null || skip "python3-boto3 missing"

s3_setup
s3 mkbucket shared

osz=$((64 * 1024))
size=$((2 * 1024 * 1024))
disk="$S3ARGS bucket=shared key=disk size=$size object-size=$osz"

# Ours writes: unaligned pieces, partial objects, a zeroed range.
start_nbdkit ours S3 $disk
nbdsh_u "$uri" -c '
import os
OSZ = '$osz'
h.pwrite(os.urandom(5 * OSZ + 333), 100)
h.pwrite(os.urandom(1000), 20 * OSZ + 12345)
h.pwrite(os.urandom(OSZ), 31 * OSZ)
h.zero(OSZ + 10, 2 * OSZ - 5)
'
t nbdcopy "$uri" ours.img
stop_nbdkit "$pid"
cnt="$(s3 keys shared disk/ | wc -l)"
[ "$cnt" -gt 3 ] || fail "ours wrote only $cnt objects"

NBDKIT=$debian start_nbdkit debian-read S3 $disk
t nbdcopy "$uri" deb.img
stop_nbdkit "$pid"
cmp ours.img deb.img || fail "Debian's S3 plugin reads our disk differently"

# Debian writes (whole objects, as its block size demands) and trims.
head -c $size /dev/urandom > rand.img
NBDKIT=$debian start_nbdkit debian-write S3 $disk
t nbdcopy rand.img "$uri"
nbdsh_u "$uri" -c 'h.trim(2 * '$osz', 4 * '$osz')'
stop_nbdkit "$pid"
dd if=/dev/zero of=rand.img bs=$osz seek=4 count=2 conv=notrunc status=none

start_nbdkit ours-read S3 $disk
t nbdcopy "$uri" back.img
cmp rand.img back.img || fail "our S3 plugin reads Debian's disk differently"
# The trimmed objects read as holes without a request failing.
nbdsh_u "$uri" -c 'assert h.pread(2 * '$osz', 4 * '$osz') == bytearray(2 * '$osz')'
stop_nbdkit "$pid"
