/* test_request.c: unit tests for core/request.c, the checks every
 * request passes before it reaches the backend (request_validate), the
 * errno to NBD error mapping (nbd_errno) and command names.
 *
 * request_validate is driven by tables over a few connection profiles
 * (what was negotiated, export size, block sizes).  The expected
 * answers come from the NBD protocol document (see
 * /work/notes/proto-facts.md §6): unknown commands and flags get
 * EINVAL, FUA is valid on every command once SEND_FUA is advertised,
 * writes to a read-only export get EPERM, writes past the end ENOSPC
 * and other commands past the end EINVAL, broken block size
 * constraints EINVAL unless the sizes are only advisory.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "internal.h"
#include "protocol.h"
#include "request.h"
#include "stub_log.h"

#define KiB UINT64_C (1024)
#define MiB (KiB * 1024)
#define GiB (MiB * 1024)

/* Every SEND_* flag a full read-write export advertises. */
#define ALL_SEND                                                               \
  (NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA                \
   | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_DF        \
   | NBD_FLAG_SEND_CACHE | NBD_FLAG_SEND_FAST_ZERO)

/* Connection profiles the tables refer to. */
enum profile {
  P_FULL,     /* everything advertised, structured replies, 1 MiB */
  P_BARE,     /* nothing optional advertised, simple replies */
  P_EXT,      /* like FULL with extended headers, 1 TiB */
  P_RO,       /* read-only: no write flags advertised */
  P_RO_FLAGS, /* read-only but advertising trim and zero anyway */
  P_NOMETA,   /* like FULL, no meta context selected */
  P_BS,       /* minimum 512, maximum 64K, maximum_virtual 1M, 128 MiB */
  P_ADV,      /* P_BS with advisory block sizes */
  P_HUGE,     /* like FULL, size INT64_MAX */
  NPROFILES
};

static const char *profile_names[NPROFILES] = {
  "full", "bare", "ext", "ro", "ro-flags", "nometa", "bs", "adv", "huge",
};

static struct server server;
static struct connection conns[NPROFILES];

static void
conn_fill (struct connection *c, uint16_t eflags, int64_t size, bool sr,
           bool eh, bool ro, uint32_t meta, struct nbdkit_block_size bs)
{
  memset (c, 0, sizeof *c);
  c->server = &server;
  c->eflags = eflags;
  c->exportsize = size;
  c->structured_replies = sr;
  c->extended_headers = eh;
  c->readonly = ro;
  c->meta_selected = meta;
  c->bs = bs;
}

static void
setup (void)
{
  /* What handshake.c settles on when the plugin says nothing. */
  struct nbdkit_block_size dflt = { 1, 4096, 32 * MiB, 0, 0, 0 };
  struct nbdkit_block_size bs = { 512, 4096, 64 * KiB, 1 * MiB, 0, 0 };
  struct nbdkit_block_size adv = { 512, 4096, 64 * KiB, 1 * MiB, 0, 1 };
  uint16_t ro_send = NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY
                     | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA
                     | NBD_FLAG_SEND_DF | NBD_FLAG_SEND_CACHE;

  conn_fill (&conns[P_FULL], ALL_SEND, 1 * MiB, true, false, false, 1, dflt);
  conn_fill (&conns[P_BARE], NBD_FLAG_HAS_FLAGS, 1 * MiB, false, false, false,
             0, dflt);
  conn_fill (&conns[P_EXT], ALL_SEND, 1024 * GiB, true, true, false, 1, dflt);
  conn_fill (&conns[P_RO], ro_send, 1 * MiB, true, false, true, 1, dflt);
  conn_fill (&conns[P_RO_FLAGS],
             ro_send | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES, 1 * MiB,
             true, false, true, 1, dflt);
  conn_fill (&conns[P_NOMETA], ALL_SEND, 1 * MiB, true, false, false, 0, dflt);
  conn_fill (&conns[P_BS], ALL_SEND, 128 * MiB, true, false, false, 1, bs);
  conn_fill (&conns[P_ADV], ALL_SEND, 128 * MiB, true, false, false, 1, adv);
  conn_fill (&conns[P_HUGE], ALL_SEND, INT64_MAX, true, false, false, 1, dflt);
  stub_reset ();
}

static int
validate (enum profile p, uint16_t type, uint16_t flags, uint64_t offset,
          uint64_t count)
{
  struct request r = { .cookie = 0x1122334455667788,
                       .offset = offset,
                       .count = count,
                       .type = type,
                       .flags = flags };
  return request_validate (&conns[p], &r);
}

struct vcase {
  int line;
  enum profile p;
  uint16_t type, flags;
  uint64_t offset, count;
  int want; /* errno, or 0 */
};

#define C(p, type, flags, off, len, want)                                      \
  {                                                                            \
    __LINE__, p, type, flags, off, len, want                                   \
  }

static void
run_cases (const struct vcase *v, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    int got = validate (v[i].p, v[i].type, v[i].flags, v[i].offset, v[i].count);
    ck_assert_msg (got == v[i].want,
                   "line %d: %s %s flags 0x%x offset %" PRIu64
                   " length %" PRIu64 ": got %d (%s), expected %d (%s)",
                   v[i].line, profile_names[v[i].p], cmd_name (v[i].type),
                   v[i].flags, v[i].offset, v[i].count, got, strerror (got),
                   v[i].want, strerror (v[i].want));
  }
}

#define RUN(table) run_cases ((table), sizeof (table) / sizeof (table)[0])

/* Shorthands for the tables. */
#define READ NBD_CMD_READ
#define WRITE NBD_CMD_WRITE
#define FLUSH NBD_CMD_FLUSH
#define TRIM NBD_CMD_TRIM
#define CACHE NBD_CMD_CACHE
#define ZERO NBD_CMD_WRITE_ZEROES
#define BSTAT NBD_CMD_BLOCK_STATUS
#define FUA NBD_CMD_FLAG_FUA
#define NO_HOLE NBD_CMD_FLAG_NO_HOLE
#define DF NBD_CMD_FLAG_DF
#define REQ_ONE NBD_CMD_FLAG_REQ_ONE
#define FAST_ZERO NBD_CMD_FLAG_FAST_ZERO
#define PAYLOAD_LEN NBD_CMD_FLAG_PAYLOAD_LEN

/* Whether the protocol allows FLAG on TYPE given what C negotiated. */
static bool
flag_allowed (const struct connection *c, uint16_t type, uint16_t flag)
{
  switch (flag) {
    case NBD_CMD_FLAG_FUA:
      return c->eflags & NBD_FLAG_SEND_FUA;
    case NBD_CMD_FLAG_NO_HOLE:
      return type == NBD_CMD_WRITE_ZEROES;
    case NBD_CMD_FLAG_DF:
      return type == NBD_CMD_READ && (c->eflags & NBD_FLAG_SEND_DF);
    case NBD_CMD_FLAG_REQ_ONE:
      return type == NBD_CMD_BLOCK_STATUS;
    case NBD_CMD_FLAG_FAST_ZERO:
      return type == NBD_CMD_WRITE_ZEROES
             && (c->eflags & NBD_FLAG_SEND_FAST_ZERO);
    case NBD_CMD_FLAG_PAYLOAD_LEN:
      return type == NBD_CMD_WRITE && c->extended_headers;
    default:
      return false; /* bits 6..15 are not defined */
  }
}

/* Whether TYPE can be sent at all on C (ignoring read-only). */
static bool
cmd_advertised (const struct connection *c, uint16_t type)
{
  switch (type) {
    case NBD_CMD_FLUSH:
      return c->eflags & NBD_FLAG_SEND_FLUSH;
    case NBD_CMD_TRIM:
      return c->eflags & NBD_FLAG_SEND_TRIM;
    case NBD_CMD_WRITE_ZEROES:
      return c->eflags & NBD_FLAG_SEND_WRITE_ZEROES;
    case NBD_CMD_CACHE:
      return c->eflags & NBD_FLAG_SEND_CACHE;
    case NBD_CMD_BLOCK_STATUS:
      return c->meta_selected != 0;
    default:
      return true;
  }
}

START_TEST (test_flag_matrix)
{
  /* Every command, every single flag bit, on profiles that advertise
   * everything, nothing, and extended headers.
   */
  static const uint16_t cmds[]
      = { READ, WRITE, FLUSH, TRIM, CACHE, ZERO, BSTAT };
  static const enum profile ps[] = { P_FULL, P_BARE, P_EXT };

  setup ();
  for (size_t pi = 0; pi < sizeof ps / sizeof ps[0]; pi++) {
    const struct connection *c = &conns[ps[pi]];
    for (size_t ci = 0; ci < sizeof cmds / sizeof cmds[0]; ci++) {
      uint16_t type = cmds[ci];
      uint64_t len = type == FLUSH ? 0 : 4096;
      if (!cmd_advertised (c, type))
        continue;
      ck_assert_msg (validate (ps[pi], type, 0, 0, len) == 0,
                     "%s %s without flags refused", profile_names[ps[pi]],
                     cmd_name (type));
      for (int bit = 0; bit < 16; bit++) {
        uint16_t flag = 1u << bit;
        int want = flag_allowed (c, type, flag) ? 0 : EINVAL;
        int got = validate (ps[pi], type, flag, 0, len);
        ck_assert_msg (got == want, "%s %s flag 0x%x: got %d, expected %d",
                       profile_names[ps[pi]], cmd_name (type), flag, got, want);
      }
    }
  }
}
END_TEST

START_TEST (test_flags)
{
  static const struct vcase v[] = {
    /* Combinations that are all allowed. */
    C (P_FULL, READ, FUA | DF, 0, 4096, 0),
    C (P_FULL, ZERO, FUA | NO_HOLE | FAST_ZERO, 0, 4096, 0),
    C (P_FULL, BSTAT, FUA | REQ_ONE, 0, 4096, 0),
    C (P_EXT, WRITE, FUA | PAYLOAD_LEN, 0, 4096, 0),
    C (P_FULL, FLUSH, FUA, 0, 0, 0),
    C (P_FULL, CACHE, FUA, 0, 4096, 0),
    /* One bad flag spoils the lot. */
    C (P_FULL, READ, FUA | DF | NO_HOLE, 0, 4096, EINVAL),
    C (P_FULL, ZERO, NO_HOLE | REQ_ONE, 0, 4096, EINVAL),
    C (P_FULL, WRITE, FUA | DF, 0, 4096, EINVAL),
    C (P_FULL, TRIM, NO_HOLE, 0, 4096, EINVAL),
    C (P_FULL, TRIM, FAST_ZERO, 0, 4096, EINVAL),
    C (P_FULL, READ, REQ_ONE, 0, 4096, EINVAL),
    C (P_FULL, BSTAT, DF, 0, 4096, EINVAL),
    /* PAYLOAD_LEN: extended WRITE only. */
    C (P_FULL, WRITE, PAYLOAD_LEN, 0, 4096, EINVAL),
    C (P_EXT, READ, PAYLOAD_LEN, 0, 4096, EINVAL),
    C (P_EXT, BSTAT, PAYLOAD_LEN, 0, 4096, EINVAL),
    C (P_EXT, ZERO, PAYLOAD_LEN, 0, 4096, EINVAL),
    /* Flags whose SEND_* was not advertised. */
    C (P_BARE, READ, FUA, 0, 4096, EINVAL),
    C (P_BARE, WRITE, FUA, 0, 4096, EINVAL),
    C (P_BARE, READ, DF, 0, 4096, EINVAL),
    C (P_RO, READ, DF, 0, 4096, 0),
    /* Undefined bits. */
    C (P_FULL, READ, 1u << 6, 0, 4096, EINVAL),
    C (P_FULL, WRITE, 0x8000, 0, 4096, EINVAL),
  };

  setup ();
  RUN (v);
}
END_TEST

START_TEST (test_fast_zero_needs_send)
{
  /* WRITE_ZEROES advertised but not FAST_ZERO, nor DF, nor FUA. */
  setup ();
  conns[P_FULL].eflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_WRITE_ZEROES;
  ck_assert_int_eq (validate (P_FULL, ZERO, 0, 0, 4096), 0);
  ck_assert_int_eq (validate (P_FULL, ZERO, NO_HOLE, 0, 4096), 0);
  ck_assert_int_eq (validate (P_FULL, ZERO, FAST_ZERO, 0, 4096), EINVAL);
  ck_assert_int_eq (validate (P_FULL, ZERO, FUA, 0, 4096), EINVAL);
  ck_assert_int_eq (validate (P_FULL, READ, DF, 0, 4096), EINVAL);
  conns[P_FULL].eflags |= NBD_FLAG_SEND_FAST_ZERO;
  ck_assert_int_eq (validate (P_FULL, ZERO, FAST_ZERO | NO_HOLE, 0, 4096), 0);
}
END_TEST

START_TEST (test_commands)
{
  static const struct vcase v[] = {
    /* Unknown commands (DISC never gets here: it has no reply). */
    C (P_FULL, NBD_CMD_DISC, 0, 0, 0, EINVAL),
    C (P_FULL, NBD_CMD_RESIZE, 0, 0, 4096, EINVAL),
    C (P_FULL, 9, 0, 0, 4096, EINVAL),
    C (P_FULL, 0xffff, 0, 0, 0, EINVAL),
    C (P_EXT, 42, 0, 0, 4096, EINVAL),
    /* Commands needing a SEND_* flag that was not advertised. */
    C (P_BARE, FLUSH, 0, 0, 0, EINVAL),
    C (P_BARE, TRIM, 0, 0, 4096, EINVAL),
    C (P_BARE, ZERO, 0, 0, 4096, EINVAL),
    C (P_BARE, CACHE, 0, 0, 4096, EINVAL),
    /* Always available. */
    C (P_BARE, READ, 0, 0, 4096, 0),
    C (P_BARE, WRITE, 0, 0, 4096, 0),
    /* BLOCK_STATUS needs a selected context. */
    C (P_BARE, BSTAT, 0, 0, 4096, EINVAL),
    C (P_NOMETA, BSTAT, 0, 0, 4096, EINVAL),
    C (P_NOMETA, BSTAT, REQ_ONE, 0, 4096, EINVAL),
    C (P_FULL, BSTAT, 0, 0, 4096, 0),
  };

  setup ();
  RUN (v);
  /* Any selected context will do, not only base:allocation. */
  conns[P_NOMETA].meta_selected = 1u << 3;
  ck_assert_int_eq (validate (P_NOMETA, BSTAT, 0, 0, 4096), 0);
}
END_TEST

START_TEST (test_readonly)
{
  static const struct vcase v[] = {
    C (P_RO, WRITE, 0, 0, 4096, EPERM),
    C (P_RO, TRIM, 0, 0, 4096, EPERM),
    C (P_RO, ZERO, 0, 0, 4096, EPERM),
    C (P_RO, ZERO, NO_HOLE, 0, 4096, EPERM),
    C (P_RO_FLAGS, WRITE, 0, 0, 4096, EPERM),
    C (P_RO_FLAGS, TRIM, 0, 0, 4096, EPERM),
    C (P_RO_FLAGS, ZERO, 0, 0, 4096, EPERM),
    C (P_RO_FLAGS, WRITE, FUA, 4096, 512, EPERM),
    /* Reading commands are fine. */
    C (P_RO, READ, 0, 0, 4096, 0),
    C (P_RO, FLUSH, 0, 0, 0, 0),
    C (P_RO, CACHE, 0, 0, 4096, 0),
    C (P_RO, BSTAT, 0, 0, 4096, 0),
    C (P_RO, READ, FUA, 0, 4096, 0),
  };

  setup ();
  RUN (v);
}
END_TEST

START_TEST (test_range)
{
  const uint64_t size = 1 * MiB;
  const struct vcase v[] = {
    /* Up to the end exactly. */
    C (P_FULL, READ, 0, size - 4096, 4096, 0),
    C (P_FULL, WRITE, 0, size - 4096, 4096, 0),
    C (P_FULL, TRIM, 0, 0, size, 0),
    C (P_FULL, ZERO, 0, 0, size, 0),
    C (P_FULL, CACHE, 0, 0, size, 0),
    C (P_FULL, BSTAT, 0, 0, size, 0),
    /* One byte past it: ENOSPC for writes, EINVAL for the rest. */
    C (P_FULL, READ, 0, size - 4096, 4097, EINVAL),
    C (P_FULL, WRITE, 0, size - 4096, 4097, ENOSPC),
    C (P_FULL, ZERO, 0, size - 4096, 4097, ENOSPC),
    C (P_FULL, ZERO, NO_HOLE, size, 1, ENOSPC),
    C (P_FULL, TRIM, 0, size - 4096, 4097, EINVAL),
    C (P_FULL, CACHE, 0, size - 4096, 4097, EINVAL),
    C (P_FULL, BSTAT, 0, size - 4096, 4097, EINVAL),
    C (P_FULL, READ, 0, size, 1, EINVAL),
    /* Starting past the end, even with no length. */
    C (P_FULL, READ, 0, size + 1, 0, EINVAL),
    C (P_FULL, WRITE, 0, size + 1, 0, ENOSPC),
    C (P_FULL, TRIM, 0, size + 1, 0, EINVAL),
    /* Zero length at the very end is inside. */
    C (P_FULL, READ, 0, size, 0, 0),
    C (P_FULL, WRITE, 0, size, 0, 0),
    /* offset + length wrapping past 2^64 must not look small. */
    C (P_FULL, READ, 0, UINT64_MAX - 4095, 8192, EINVAL),
    C (P_FULL, WRITE, 0, UINT64_MAX - 4095, 8192, ENOSPC),
    C (P_FULL, ZERO, 0, UINT64_MAX - 4095, 8192, ENOSPC),
    C (P_FULL, TRIM, 0, UINT64_MAX - 4095, 8192, EINVAL),
    C (P_FULL, CACHE, 0, UINT64_MAX - 4095, 8192, EINVAL),
    C (P_FULL, BSTAT, 0, UINT64_MAX - 4095, 8192, EINVAL),
    C (P_FULL, READ, 0, UINT64_MAX, 1, EINVAL),
    C (P_FULL, WRITE, 0, UINT64_MAX, 0, ENOSPC),
    C (P_EXT, TRIM, 0, 4096, UINT64_MAX - 4095, EINVAL),
    C (P_EXT, ZERO, 0, 4096, UINT64_MAX - 4095, ENOSPC),
    C (P_EXT, ZERO, 0, 4096, UINT64_MAX, ENOSPC),
    C (P_EXT, BSTAT, 0, 1, UINT64_MAX, EINVAL),
    /* The same with the largest possible export. */
    C (P_HUGE, READ, 0, INT64_MAX - 4096, 4096, 0),
    C (P_HUGE, READ, 0, INT64_MAX - 4096, 4097, EINVAL),
    C (P_HUGE, WRITE, 0, INT64_MAX - 4096, 4097, ENOSPC),
    C (P_HUGE, WRITE, 0, UINT64_MAX - 4095, 8192, ENOSPC),
    C (P_HUGE, READ, 0, UINT64_MAX - 511, 512, EINVAL),
    C (P_HUGE, TRIM, 0, (uint64_t)INT64_MAX + 1, 0, EINVAL),
  };

  setup ();
  RUN (v);
}
END_TEST

START_TEST (test_flush)
{
  static const struct vcase v[] = {
    C (P_FULL, FLUSH, 0, 0, 0, 0),
    C (P_FULL, FLUSH, 0, 4096, 0, EINVAL),
    C (P_FULL, FLUSH, 0, 0, 4096, EINVAL),
    C (P_FULL, FLUSH, 0, 1, 1, EINVAL),
    C (P_EXT, FLUSH, 0, 0, UINT64_MAX, EINVAL),
    /* Past the end is still a flush with a non-zero offset. */
    C (P_FULL, FLUSH, 0, 2 * MiB, 0, EINVAL),
    /* Block sizes do not apply to a flush of 0/0. */
    C (P_BS, FLUSH, 0, 0, 0, 0),
  };

  setup ();
  RUN (v);
}
END_TEST

START_TEST (test_alignment)
{
  static const struct vcase v[] = {
    /* Aligned. */
    C (P_BS, READ, 0, 512, 1024, 0),
    C (P_BS, WRITE, 0, 4096, 512, 0),
    C (P_BS, TRIM, 0, 512, 512, 0),
    C (P_BS, ZERO, 0, 512, 512, 0),
    C (P_BS, CACHE, 0, 1024, 512, 0),
    C (P_BS, BSTAT, 0, 512, 512, 0),
    /* Misaligned offset. */
    C (P_BS, READ, 0, 1, 512, EINVAL),
    C (P_BS, WRITE, 0, 256, 512, EINVAL),
    C (P_BS, TRIM, 0, 511, 512, EINVAL),
    C (P_BS, ZERO, 0, 513, 512, EINVAL),
    C (P_BS, CACHE, 0, 100, 512, EINVAL),
    C (P_BS, BSTAT, 0, 100, 512, EINVAL),
    /* Misaligned length. */
    C (P_BS, READ, 0, 0, 100, EINVAL),
    C (P_BS, WRITE, 0, 0, 513, EINVAL),
    C (P_BS, TRIM, 0, 512, 1, EINVAL),
    C (P_BS, ZERO, 0, 512, 1000, EINVAL),
    C (P_BS, CACHE, 0, 0, 511, EINVAL),
    C (P_BS, BSTAT, 0, 0, 511, EINVAL),
    /* With a minimum of 1 nothing is misaligned. */
    C (P_FULL, READ, 0, 1, 3, 0),
    C (P_FULL, WRITE, 0, 7, 13, 0),
  };

  setup ();
  RUN (v);
}
END_TEST

START_TEST (test_maximum)
{
  static const struct vcase v[] = {
    /* Data commands are limited by maximum (64K). */
    C (P_BS, READ, 0, 0, 64 * KiB, 0),
    C (P_BS, WRITE, 0, 0, 64 * KiB, 0),
    C (P_BS, READ, 0, 0, 64 * KiB + 512, EINVAL),
    C (P_BS, WRITE, 0, 0, 64 * KiB + 512, EINVAL),
    C (P_BS, READ, DF, 0, 128 * KiB, EINVAL),
    /* The rest by maximum_virtual (1M), not by maximum. */
    C (P_BS, TRIM, 0, 0, 128 * KiB, 0),
    C (P_BS, ZERO, 0, 0, 128 * KiB, 0),
    C (P_BS, TRIM, 0, 0, 1 * MiB, 0),
    C (P_BS, ZERO, 0, 0, 1 * MiB, 0),
    C (P_BS, TRIM, 0, 0, 1 * MiB + 512, EINVAL),
    C (P_BS, ZERO, 0, 0, 1 * MiB + 512, EINVAL),
    C (P_BS, ZERO, NO_HOLE | FAST_ZERO, 0, 2 * MiB, EINVAL),
    C (P_BS, CACHE, 0, 0, 1 * MiB + 512, EINVAL),
    /* Block status may be answered for less than asked, so a long
     * one is not refused.
     */
    C (P_BS, BSTAT, 0, 0, 2 * MiB, 0),
    /* Without maximum_virtual, only the export's size limits them;
     * extended headers allow effect lengths over 4G.
     */
    C (P_FULL, TRIM, 0, 0, 1 * MiB, 0),
    C (P_EXT, TRIM, 0, 0, 8 * GiB, 0),
    C (P_EXT, ZERO, 0, 0, 8 * GiB, 0),
    C (P_EXT, BSTAT, 0, 0, 8 * GiB, 0),
    C (P_EXT, READ, 0, 0, 8 * GiB, EINVAL),
    C (P_EXT, WRITE, PAYLOAD_LEN, 0, 32 * MiB + 1, EINVAL),
    C (P_EXT, READ, 0, 0, 32 * MiB, 0),
  };

  setup ();
  RUN (v);
}
END_TEST

START_TEST (test_advisory)
{
  static const struct vcase v[] = {
    /* Misaligned and oversized requests reach the layer. */
    C (P_ADV, READ, 0, 1, 100, 0),
    C (P_ADV, WRITE, 0, 3, 513, 0),
    C (P_ADV, TRIM, 0, 1, 1, 0),
    C (P_ADV, ZERO, 0, 511, 1, 0),
    C (P_ADV, CACHE, 0, 7, 9, 0),
    C (P_ADV, BSTAT, 0, 7, 9, 0),
    C (P_ADV, READ, 0, 0, 64 * KiB + 1, 0),
    C (P_ADV, WRITE, 0, 0, 1 * MiB, 0),
    C (P_ADV, TRIM, 0, 0, 2 * MiB + 1, 0),
    C (P_ADV, ZERO, 0, 0, 2 * MiB + 1, 0),
    /* The server's own maximum still holds for data. */
    C (P_ADV, READ, 0, 0, MAX_REQUEST_SIZE, 0),
    C (P_ADV, READ, 0, 0, MAX_REQUEST_SIZE + 1, EINVAL),
    C (P_ADV, WRITE, 0, 0, MAX_REQUEST_SIZE + 1, EINVAL),
    /* So do everything else: range, flags, read-only, empty status. */
    C (P_ADV, READ, 0, 128 * MiB - 1, 2, EINVAL),
    C (P_ADV, WRITE, 0, 128 * MiB - 1, 2, ENOSPC),
    C (P_ADV, READ, NO_HOLE, 1, 1, EINVAL),
    C (P_ADV, BSTAT, 0, 1, 0, EINVAL),
  };

  setup ();
  RUN (v);
  conns[P_ADV].readonly = true;
  ck_assert_int_eq (validate (P_ADV, WRITE, 0, 1, 1), EPERM);
}
END_TEST

START_TEST (test_zero_length)
{
  static const struct vcase v[] = {
    C (P_FULL, READ, 0, 0, 0, 0),
    C (P_FULL, WRITE, 0, 0, 0, 0),
    C (P_FULL, TRIM, 0, 0, 0, 0),
    C (P_FULL, ZERO, 0, 0, 0, 0),
    C (P_FULL, CACHE, 0, 0, 0, 0),
    C (P_FULL, READ, 0, 4096, 0, 0),
    C (P_EXT, WRITE, PAYLOAD_LEN, 4096, 0, 0),
    C (P_BS, READ, 0, 512, 0, 0),
    C (P_BS, TRIM, 0, 1024, 0, 0),
    /* An empty block status has no answer. */
    C (P_FULL, BSTAT, 0, 0, 0, EINVAL),
    C (P_FULL, BSTAT, REQ_ONE, 4096, 0, EINVAL),
    C (P_EXT, BSTAT, 0, 0, 0, EINVAL),
    C (P_BS, BSTAT, 0, 512, 0, EINVAL),
  };

  setup ();
  RUN (v);
}
END_TEST

START_TEST (test_nbd_errno)
{
  static const struct {
    int err;
    uint32_t want;
  } v[] = {
    { 0, NBD_SUCCESS },           { EPERM, NBD_EPERM },
    { EROFS, NBD_EPERM },         { EIO, NBD_EIO },
    { ENOMEM, NBD_ENOMEM },       { ENOSPC, NBD_ENOSPC },
#ifdef EDQUOT
    { EDQUOT, NBD_ENOSPC },
#endif
    { EFBIG, NBD_ENOSPC },        { EOVERFLOW, NBD_EOVERFLOW },
    { ENOTSUP, NBD_ENOTSUP },     { EOPNOTSUPP, NBD_ENOTSUP },
    { ESHUTDOWN, NBD_ESHUTDOWN }, { EINVAL, NBD_EINVAL },
    { EACCES, NBD_EPERM },        { ETIMEDOUT, NBD_EIO },
    { ECONNRESET, NBD_EIO },      { EPIPE, NBD_EIO },
    { ENOENT, NBD_EIO },          { EBADF, NBD_EINVAL },
    { EAGAIN, NBD_EINVAL },       { -1, NBD_EINVAL },
    { 100000, NBD_EINVAL },
  };

  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    ck_assert_msg (nbd_errno (v[i].err) == v[i].want,
                   "nbd_errno (%d) = %" PRIu32 ", expected %" PRIu32, v[i].err,
                   nbd_errno (v[i].err), v[i].want);
}
END_TEST

START_TEST (test_cmd_name)
{
  ck_assert_str_eq (cmd_name (NBD_CMD_READ), "read");
  ck_assert_str_eq (cmd_name (NBD_CMD_WRITE), "write");
  ck_assert_str_eq (cmd_name (NBD_CMD_DISC), "disconnect");
  ck_assert_str_eq (cmd_name (NBD_CMD_FLUSH), "flush");
  ck_assert_str_eq (cmd_name (NBD_CMD_TRIM), "trim");
  ck_assert_str_eq (cmd_name (NBD_CMD_CACHE), "cache");
  ck_assert_str_eq (cmd_name (NBD_CMD_WRITE_ZEROES), "write-zeroes");
  ck_assert_str_eq (cmd_name (NBD_CMD_BLOCK_STATUS), "block-status");
  ck_assert_str_eq (cmd_name (NBD_CMD_RESIZE), "unknown");
  ck_assert_str_eq (cmd_name (0xffff), "unknown");
}
END_TEST

START_TEST (test_no_errors_logged)
{
  /* Refusals are the client's doing: debug messages, never errors. */
  setup ();
  validate (P_FULL, READ, 0, UINT64_MAX, 1);
  validate (P_BS, READ, 0, 1, 1);
  validate (P_FULL, 99, 0, 0, 0);
  ck_assert_uint_eq (stub_error_count (), 0);
}
END_TEST

static Suite *
request_suite (void)
{
  Suite *s = suite_create ("request");
  TCase *tc = tcase_create ("request");

  tcase_add_test (tc, test_flag_matrix);
  tcase_add_test (tc, test_flags);
  tcase_add_test (tc, test_fast_zero_needs_send);
  tcase_add_test (tc, test_commands);
  tcase_add_test (tc, test_readonly);
  tcase_add_test (tc, test_range);
  tcase_add_test (tc, test_flush);
  tcase_add_test (tc, test_alignment);
  tcase_add_test (tc, test_maximum);
  tcase_add_test (tc, test_advisory);
  tcase_add_test (tc, test_zero_length);
  tcase_add_test (tc, test_nbd_errno);
  tcase_add_test (tc, test_cmd_name);
  tcase_add_test (tc, test_no_errors_logged);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (request_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
