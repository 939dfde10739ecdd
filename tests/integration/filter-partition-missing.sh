#!/usr/bin/env bash
# partition filter: a partition that is not there is an error naming
# the table and the partition, and why (unused, the extended one, no
# extended partition, beyond the logical chain or the GPT).
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdinfo
truncate -s 1M disk

# expect ARGS... -- MESSAGE: serving fails with MESSAGE on stderr.
expect ()
{
  local args=() msg
  while [ "$1" != -- ]; do args+=("$1"); shift; done
  msg="$2"
  if t "$NBDKIT" -U - -r --filter=partition "${args[@]}" \
      --run 'nbdinfo --size "$uri"' > out 2> err; then
    fail "${args[*]}: served $(cat out)"
  fi
  grep -q "$msg" err || fail "${args[*]}: expected '$msg', got: $(cat err)"
}

expect partitioning disk disk partition-type=mbr partition=3 -- \
  "MBR partition 3 not found"
expect partitioning disk disk partition-type=mbr partition=5 -- \
  "MBR partition 5 not found: there is no extended partition"
expect partitioning disk disk disk disk disk partition-type=mbr partition=4 -- \
  "MBR partition 4 not found: it is the extended partition"
expect partitioning disk disk disk disk disk disk partition-type=mbr partition=8 -- \
  "MBR partition 8 not found: there are only 3 logical partitions"
expect partitioning disk disk partition-type=gpt partition=3 -- \
  "GPT partition 3 not found"
# The partitions that are there are served.
"$NBDKIT" -U - -r --filter=partition partitioning disk disk disk disk disk \
  disk partition-type=mbr partition=7 --run 'nbdinfo --size "$uri"' > size
assert_eq "logical partition 7 size" "$(cat size)" 1048576
