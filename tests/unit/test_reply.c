/* test_reply.c: unit tests for core/reply.c, replies on the wire.
 *
 * reply.c is linked with stub_server.c, whose conn_sendv appends every
 * byte it is given to a capture buffer.  Each test builds a reply
 * (out_status, reply_read, reply_block_status), decodes the captured
 * bytes as a client would and checks the exact layout: simple,
 * structured and extended headers, OFFSET_DATA and OFFSET_HOLE chunks
 * covering a read in order, DONE on the last chunk only, error chunks
 * with and without an offset, block status descriptors; and that a
 * reply larger than one struct out is flushed mid-way without a byte
 * out of place.  Every loan given to a read is released exactly once.
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
#include "reply.h"
#include "request.h"
#include "stub_log.h"
#include "stub_server.h"

#define KiB UINT64_C (1024)
#define MiB (KiB * 1024)
#define GiB (MiB * 1024)

#define ROFF (3 * MiB)   /* the request's offset in the disk */
#define MAXLEN (1 * MiB) /* the largest read the tests make */
#define MAXCHUNKS 4096

/* The cookie as it appears on the wire, echoed byte for byte. */
static const unsigned char cookie[8]
    = { 0xc0, 0x0c, 0x1e, 0x5a, 0x01, 0x02, 0x03, 0x04 };

static struct connection conn;
static struct out out;
static struct request req;
static struct nbdkit_read rd;
static unsigned char buf[MAXLEN];  /* the read buffer the plugin fills */
static unsigned char src[MAXLEN];  /* lent memory */
static unsigned char want[MAXLEN]; /* what the client must end up with */

/* Loans: each release counts on its own slot. */
#define NSLOTS 4096
static unsigned released[NSLOTS];
static unsigned nlent; /* slots handed out */

static void
release (void *opaque)
{
  released[(uintptr_t)opaque]++;
}

/* A fresh connection, request and read.  SR/EH: what was negotiated. */
static void
setup (bool sr, bool eh, uint16_t type, uint16_t flags, uint64_t count)
{
  memset (&conn, 0, sizeof conn);
  conn.structured_replies = sr;
  conn.extended_headers = eh;
  conn.bs.minimum = 1;
  conn.exportsize = 64 * MiB;
  out_init (&out, &conn);

  memset (&req, 0, sizeof req);
  memcpy (&req.cookie, cookie, sizeof cookie);
  req.offset = ROFF;
  req.count = count;
  req.type = type;
  req.flags = flags;

  for (size_t i = 0; i < MAXLEN; i++) {
    buf[i] = i % 253 + 1;
    src[i] = (i * 7) % 241 + 2;
  }
  memcpy (want, buf, sizeof want);
  free (rd.segs);
  memset (&rd, 0, sizeof rd);
  read_init (&rd, buf, count, ROFF, true);
  memset (released, 0, sizeof released);
  nlent = 0;
  stub_reset ();
  stub_sent_reset ();
}

/* Release the loans and check each was released exactly once. */
static void
teardown (void)
{
  read_release (&rd);
  for (unsigned i = 0; i < nlent; i++)
    ck_assert_msg (released[i] == 1, "loan %u released %u times", i,
                   released[i]);
  free (rd.segs);
  memset (&rd, 0, sizeof rd);
}

/* The read says [REL, REL+LEN) is a hole, and so does the model. */
static void
hole (uint64_t rel, uint64_t len)
{
  ck_assert_int_eq (nbdkit_read_hole (&rd, ROFF + rel, len), 0);
  memset (want + rel, 0, len);
  /* Prove the reply does not read the buffer there. */
  memset (buf + rel, 0xee, len);
}

/* The read lends src[FROM, FROM+LEN) for [REL, REL+LEN). */
static void
lend (uint64_t rel, uint64_t len, uint64_t from)
{
  ck_assert_uint_lt (nlent, NSLOTS);
  ck_assert_int_eq (nbdkit_read_lend (&rd, ROFF + rel, src + from, len, release,
                                      (void *)(uintptr_t)nlent++),
                    0);
  memcpy (want + rel, src + from, len);
  memset (buf + rel, 0xdd, len);
}

/* Build the read reply and send it all. */
static void
send_read (int err)
{
  ck_assert_int_eq (reply_read (&out, &rd, (const char *)buf, &req, err), 0);
  ck_assert_int_eq (out_flush (&out), 0);
}

/* ---- decoding what was sent ---- */

static size_t cur; /* read position in the capture */

static const unsigned char *
take (size_t n)
{
  const unsigned char *p;

  ck_assert_msg (cur + n <= stub_sent_len (),
                 "reply truncated: %zu bytes wanted at %zu, %zu sent", n, cur,
                 stub_sent_len ());
  p = stub_sent () + cur;
  cur += n;
  return p;
}

static uint16_t
get16 (const unsigned char *p)
{
  return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
get32 (const unsigned char *p)
{
  return (uint32_t)get16 (p) << 16 | get16 (p + 2);
}

static uint64_t
get64 (const unsigned char *p)
{
  return (uint64_t)get32 (p) << 32 | get32 (p + 4);
}

static void
all_consumed (void)
{
  ck_assert_msg (cur == stub_sent_len (), "%zu bytes after the reply",
                 stub_sent_len () - cur);
}

/* A simple reply header; returns its error. */
static uint32_t
next_simple (void)
{
  const unsigned char *h = take (16);

  ck_assert_uint_eq (get32 (h), NBD_SIMPLE_REPLY_MAGIC);
  ck_assert_int_eq (memcmp (h + 8, cookie, 8), 0);
  return get32 (h + 4);
}

struct chunk {
  uint16_t flags, type;
  uint64_t length;
  const unsigned char *payload;
};

/* A structured or extended chunk, as negotiated on conn. */
static void
next_chunk (struct chunk *ch)
{
  const unsigned char *h;

  if (conn.extended_headers) {
    h = take (32);
    ck_assert_uint_eq (get32 (h), NBD_EXTENDED_REPLY_MAGIC);
    /* The header's offset is the request's, whatever the chunk. */
    ck_assert_uint_eq (get64 (h + 16), req.offset);
    ch->length = get64 (h + 24);
  } else {
    h = take (20);
    ck_assert_uint_eq (get32 (h), NBD_STRUCTURED_REPLY_MAGIC);
    ch->length = get32 (h + 16);
  }
  ck_assert_int_eq (memcmp (h + 8, cookie, 8), 0);
  ch->flags = get16 (h + 4);
  ch->type = get16 (h + 6);
  ch->payload = take (ch->length);
}

/* Every chunk up to the one with DONE, which must be the last thing
 * sent.  Returns how many.
 */
static size_t
decode_chunks (struct chunk *ch, size_t max)
{
  size_t n = 0;

  cur = 0;
  for (;;) {
    ck_assert_uint_lt (n, max);
    next_chunk (&ch[n]);
    ck_assert_msg ((ch[n].flags & ~NBD_REPLY_FLAG_DONE) == 0,
                   "chunk %zu: unknown flags 0x%x", n, ch[n].flags);
    if (ch[n++].flags & NBD_REPLY_FLAG_DONE)
      break;
  }
  all_consumed ();
  return n;
}

static struct chunk ch[MAXCHUNKS];

/* GOT holds the client's view of [REL, REL+LEN) of the request.
 * (Compared in one go: a Check assertion per byte is slow.)
 */
static void
expect_bytes (const unsigned char *got, uint64_t rel, uint64_t len)
{
  if (memcmp (got, want + rel, len) == 0)
    return;
  for (uint64_t j = 0; j < len; j++)
    if (got[j] != want[rel + j])
      ck_abort_msg ("byte %" PRIu64 ": got 0x%x, expected 0x%x", rel + j,
                    got[j], want[rel + j]);
}

/* The content chunks among CH[0..N) cover [0, UPTO) of the request in
 * order, without gaps or overlap, and match the model.  Returns how
 * many there were.
 */
static size_t
check_content (size_t n, uint64_t upto)
{
  uint64_t pos = 0;
  size_t k = 0;

  for (size_t i = 0; i < n; i++) {
    const struct chunk *c = &ch[i];
    if (c->type == NBD_REPLY_TYPE_OFFSET_DATA) {
      uint64_t len;
      ck_assert_uint_ge (c->length, 9);
      len = c->length - 8;
      ck_assert_msg (get64 (c->payload) == ROFF + pos,
                     "chunk %zu: data at %" PRIu64 ", expected %" PRIu64, i,
                     get64 (c->payload) - ROFF, pos);
      ck_assert_uint_le (pos + len, upto);
      expect_bytes (c->payload + 8, pos, len);
      pos += len;
      k++;
    } else if (c->type == NBD_REPLY_TYPE_OFFSET_HOLE) {
      uint32_t len;
      ck_assert_uint_eq (c->length, 12);
      ck_assert_msg (get64 (c->payload) == ROFF + pos,
                     "chunk %zu: hole at %" PRIu64 ", expected %" PRIu64, i,
                     get64 (c->payload) - ROFF, pos);
      len = get32 (c->payload + 8);
      ck_assert_uint_gt (len, 0);
      ck_assert_uint_le (pos + len, upto);
      for (uint64_t j = 0; j < len; j++)
        if (want[pos + j] != 0)
          ck_abort_msg ("hole over data at %" PRIu64, pos + j);
      pos += len;
      k++;
    }
  }
  ck_assert_msg (pos == upto, "content ends at %" PRIu64 ", expected %" PRIu64,
                 pos, upto);
  return k;
}

/* Chunk I is content of TYPE covering [REL, REL+LEN). */
static void
expect_content (size_t i, uint16_t type, uint64_t rel, uint64_t len)
{
  ck_assert_msg (ch[i].type == type, "chunk %zu: type %u, expected %u", i,
                 ch[i].type, type);
  ck_assert_uint_eq (get64 (ch[i].payload), ROFF + rel);
  if (type == NBD_REPLY_TYPE_OFFSET_DATA)
    ck_assert_uint_eq (ch[i].length - 8, len);
  else
    ck_assert_uint_eq (get32 (ch[i].payload + 8), len);
}

/* DONE on chunk N-1 and no other (decode_chunks stops at the first). */
static void
expect_done_last (size_t n)
{
  for (size_t i = 0; i + 1 < n; i++)
    ck_assert_msg (!(ch[i].flags & NBD_REPLY_FLAG_DONE), "DONE on chunk %zu",
                   i);
  ck_assert (ch[n - 1].flags & NBD_REPLY_FLAG_DONE);
}

/* An error chunk: TYPE, error value ERR, empty message, and for
 * ERROR_OFFSET the absolute offset AT.
 */
static void
expect_error (size_t i, uint16_t type, uint32_t err, uint64_t at)
{
  const struct chunk *c = &ch[i];

  ck_assert_msg (c->type == type, "chunk %zu: type %u, expected %u", i, c->type,
                 type);
  ck_assert_uint_eq (get32 (c->payload), err);
  ck_assert_uint_eq (get16 (c->payload + 4), 0);
  if (type == NBD_REPLY_TYPE_ERROR_OFFSET) {
    ck_assert_uint_eq (c->length, 14);
    ck_assert_uint_eq (get64 (c->payload + 6), at);
  } else
    ck_assert_uint_eq (c->length, 6);
}

/* ---- out_status ---- */

START_TEST (test_status_simple)
{
  setup (false, false, NBD_CMD_WRITE, 0, 4096);
  out_status (&out, &req, 0);
  ck_assert_int_eq (out_flush (&out), 0);
  cur = 0;
  ck_assert_uint_eq (next_simple (), NBD_SUCCESS);
  all_consumed ();

  /* Errors go through nbd_errno. */
  stub_sent_reset ();
  out_status (&out, &req, EROFS);
  ck_assert_int_eq (out_flush (&out), 0);
  cur = 0;
  ck_assert_uint_eq (next_simple (), NBD_EPERM);
  all_consumed ();

  /* Several replies gathered in one struct out leave in one call. */
  stub_sent_reset ();
  out_status (&out, &req, ENOSPC);
  out_status (&out, &req, 0);
  ck_assert_int_eq (out_flush (&out), 0);
  ck_assert_uint_eq (stub_sendv_calls (), 1);
  cur = 0;
  ck_assert_uint_eq (next_simple (), NBD_ENOSPC);
  ck_assert_uint_eq (next_simple (), NBD_SUCCESS);
  all_consumed ();
  /* Nothing gathered: nothing sent. */
  stub_sent_reset ();
  ck_assert_int_eq (out_flush (&out), 0);
  ck_assert_uint_eq (stub_sendv_calls (), 0);
  teardown ();
}
END_TEST

START_TEST (test_status_structured)
{
  size_t n;

  /* An error is a structured ERROR chunk, the only and last one. */
  setup (true, false, NBD_CMD_TRIM, 0, 4096);
  out_status (&out, &req, EIO);
  ck_assert_int_eq (out_flush (&out), 0);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 1);
  ck_assert_uint_eq (ch[0].flags, NBD_REPLY_FLAG_DONE);
  expect_error (0, NBD_REPLY_TYPE_ERROR, NBD_EIO, 0);

  /* Success of a command without data may be simple. */
  stub_sent_reset ();
  out_status (&out, &req, 0);
  ck_assert_int_eq (out_flush (&out), 0);
  cur = 0;
  ck_assert_uint_eq (next_simple (), NBD_SUCCESS);
  all_consumed ();

  /* A READ must be structured: NONE with DONE. */
  setup (true, false, NBD_CMD_READ, 0, 0);
  out_status (&out, &req, 0);
  ck_assert_int_eq (out_flush (&out), 0);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 1);
  ck_assert_uint_eq (ch[0].type, NBD_REPLY_TYPE_NONE);
  ck_assert_uint_eq (ch[0].length, 0);
  teardown ();
}
END_TEST

START_TEST (test_status_extended)
{
  size_t n;

  /* Every reply is extended: success is NONE with DONE. */
  setup (true, true, NBD_CMD_WRITE, 0, 4096);
  out_status (&out, &req, 0);
  ck_assert_int_eq (out_flush (&out), 0);
  ck_assert_uint_eq (stub_sent_len (), 32);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 1);
  ck_assert_uint_eq (ch[0].flags, NBD_REPLY_FLAG_DONE);
  ck_assert_uint_eq (ch[0].type, NBD_REPLY_TYPE_NONE);
  ck_assert_uint_eq (ch[0].length, 0);

  stub_sent_reset ();
  req.type = NBD_CMD_FLUSH;
  req.offset = 0;
  req.count = 0;
  out_status (&out, &req, ENOSPC);
  ck_assert_int_eq (out_flush (&out), 0);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 1);
  expect_error (0, NBD_REPLY_TYPE_ERROR, NBD_ENOSPC, 0);
  teardown ();
}
END_TEST

/* ---- reads with simple replies ---- */

START_TEST (test_read_simple)
{
  setup (false, false, NBD_CMD_READ, 0, 8192);
  send_read (0);
  cur = 0;
  ck_assert_uint_eq (next_simple (), NBD_SUCCESS);
  ck_assert_int_eq (memcmp (take (8192), want, 8192), 0);
  all_consumed ();
  teardown ();

  /* Holes as zeroes (more than the static block of them), loans in
   * place.
   */
  setup (false, false, NBD_CMD_READ, 0, 256 * KiB);
  lend (0, 10, 0);
  hole (10, 100);
  lend (200, 4000, 50);
  hole (8192, 150 * KiB);
  lend (200 * KiB, 1, 7);
  hole (256 * KiB - 512, 512);
  send_read (0);
  cur = 0;
  ck_assert_uint_eq (next_simple (), NBD_SUCCESS);
  ck_assert_int_eq (memcmp (take (256 * KiB), want, 256 * KiB), 0);
  all_consumed ();
  teardown ();

  /* An error: the header says so and no data follows. */
  setup (false, false, NBD_CMD_READ, 0, 8192);
  lend (0, 100, 0);
  ck_assert_int_eq (nbdkit_read_error_at (&rd, ROFF + 4096), 0);
  send_read (EIO);
  cur = 0;
  ck_assert_uint_eq (next_simple (), NBD_EIO);
  all_consumed ();
  teardown ();
}
END_TEST

/* ---- reads with structured and extended replies ---- */

START_TEST (test_read_one_chunk)
{
  const unsigned char *h;

  setup (true, false, NBD_CMD_READ, 0, 1000);
  send_read (0);
  /* Byte for byte: header, offset, data. */
  ck_assert_uint_eq (stub_sent_len (), 20 + 8 + 1000);
  cur = 0;
  h = take (20);
  ck_assert_uint_eq (get32 (h), 0x668e33ef);
  ck_assert_uint_eq (get16 (h + 4), NBD_REPLY_FLAG_DONE);
  ck_assert_uint_eq (get16 (h + 6), 1);
  ck_assert_int_eq (memcmp (h + 8, cookie, 8), 0);
  ck_assert_uint_eq (get32 (h + 16), 8 + 1000);
  ck_assert_uint_eq (get64 (take (8)), ROFF);
  ck_assert_int_eq (memcmp (take (1000), want, 1000), 0);
  all_consumed ();
  teardown ();
}
END_TEST

START_TEST (test_read_one_chunk_extended)
{
  const unsigned char *h;

  setup (true, true, NBD_CMD_READ, 0, 1000);
  send_read (0);
  ck_assert_uint_eq (stub_sent_len (), 32 + 8 + 1000);
  cur = 0;
  h = take (32);
  ck_assert_uint_eq (get32 (h), 0x6e8a278c);
  ck_assert_uint_eq (get16 (h + 4), NBD_REPLY_FLAG_DONE);
  ck_assert_uint_eq (get16 (h + 6), 1);
  ck_assert_int_eq (memcmp (h + 8, cookie, 8), 0);
  ck_assert_uint_eq (get64 (h + 16), ROFF);
  ck_assert_uint_eq (get64 (h + 24), 8 + 1000);
  /* The payload still carries its own offset. */
  ck_assert_uint_eq (get64 (take (8)), ROFF);
  ck_assert_int_eq (memcmp (take (1000), want, 1000), 0);
  all_consumed ();
  teardown ();
}
END_TEST

/* The request of test_read_holes: small holes inside data, large ones
 * as chunks of their own, ending with data or with a hole.
 */
static void
holes_layout (bool end_with_hole)
{
  hole (0, 100); /* small, at the start */
  lend (300, 200, 11);
  hole (8192, 8192);  /* large */
  hole (20000, 4095); /* one byte short of a chunk */
  hole (32768, 4096); /* exactly a chunk */
  if (end_with_hole)
    hole (40000, 64 * KiB - 40000);
  else
    hole (40000, 10);
}

static void
check_holes_chunks (bool end_with_hole)
{
  size_t n = decode_chunks (ch, MAXCHUNKS);

  ck_assert_uint_eq (check_content (n, 64 * KiB), n);
  ck_assert_uint_eq (n, end_with_hole ? 6 : 5);
  expect_content (0, NBD_REPLY_TYPE_OFFSET_DATA, 0, 8192);
  expect_content (1, NBD_REPLY_TYPE_OFFSET_HOLE, 8192, 8192);
  expect_content (2, NBD_REPLY_TYPE_OFFSET_DATA, 16384, 16384);
  expect_content (3, NBD_REPLY_TYPE_OFFSET_HOLE, 32768, 4096);
  if (end_with_hole) {
    expect_content (4, NBD_REPLY_TYPE_OFFSET_DATA, 36864, 40000 - 36864);
    expect_content (5, NBD_REPLY_TYPE_OFFSET_HOLE, 40000, 64 * KiB - 40000);
  } else
    expect_content (4, NBD_REPLY_TYPE_OFFSET_DATA, 36864, 64 * KiB - 36864);
  expect_done_last (n);
}

START_TEST (test_read_holes)
{
  setup (true, false, NBD_CMD_READ, 0, 64 * KiB);
  holes_layout (false);
  send_read (0);
  check_holes_chunks (false);
  teardown ();

  /* The last chunk is a hole: DONE goes on it. */
  setup (true, false, NBD_CMD_READ, 0, 64 * KiB);
  holes_layout (true);
  send_read (0);
  check_holes_chunks (true);
  teardown ();
}
END_TEST

START_TEST (test_read_holes_extended)
{
  setup (true, true, NBD_CMD_READ, 0, 64 * KiB);
  holes_layout (false);
  send_read (0);
  check_holes_chunks (false);
  teardown ();

  setup (true, true, NBD_CMD_READ, 0, 64 * KiB);
  holes_layout (true);
  send_read (0);
  check_holes_chunks (true);
  teardown ();
}
END_TEST

START_TEST (test_read_all_hole)
{
  size_t n;

  /* One hole for the whole request: one hole chunk with DONE. */
  setup (true, false, NBD_CMD_READ, 0, 64 * KiB);
  hole (0, 64 * KiB);
  send_read (0);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 1);
  expect_content (0, NBD_REPLY_TYPE_OFFSET_HOLE, 0, 64 * KiB);
  ck_assert_uint_eq (ch[0].flags, NBD_REPLY_FLAG_DONE);
  teardown ();

  /* A large hole first, then data. */
  setup (true, false, NBD_CMD_READ, 0, 64 * KiB);
  hole (0, 32 * KiB);
  send_read (0);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (check_content (n, 64 * KiB), 2);
  expect_content (0, NBD_REPLY_TYPE_OFFSET_HOLE, 0, 32 * KiB);
  expect_content (1, NBD_REPLY_TYPE_OFFSET_DATA, 32 * KiB, 32 * KiB);
  expect_done_last (n);
  teardown ();

  /* A small request that is all hole goes out as zeroes. */
  setup (true, false, NBD_CMD_READ, 0, 512);
  hole (0, 512);
  send_read (0);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (check_content (n, 512), 1);
  expect_content (0, NBD_REPLY_TYPE_OFFSET_DATA, 0, 512);
  teardown ();
}
END_TEST

START_TEST (test_read_lent_gathered)
{
  size_t n;

  /* Buffer, loans from several places (two adjacent), buffer again,
   * a small hole: all one chunk.
   */
  setup (true, false, NBD_CMD_READ, 0, 16 * KiB);
  lend (100, 100, 5000);
  lend (200, 100, 20);
  lend (1000, 500, 9000);
  hole (2000, 1000);
  lend (3000, 13 * KiB - 3000 + 3 * KiB, 100);
  send_read (0);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 1);
  ck_assert_uint_eq (check_content (n, 16 * KiB), 1);
  expect_content (0, NBD_REPLY_TYPE_OFFSET_DATA, 0, 16 * KiB);
  ck_assert_uint_eq (ch[0].flags, NBD_REPLY_FLAG_DONE);
  /* Nothing is released by the reply itself. */
  for (unsigned i = 0; i < nlent; i++)
    ck_assert_uint_eq (released[i], 0);
  teardown ();
}
END_TEST

START_TEST (test_read_df)
{
  size_t n;

  /* DF: one data chunk, large holes included as zeroes. */
  setup (true, false, NBD_CMD_READ, NBD_CMD_FLAG_DF, 64 * KiB);
  holes_layout (true);
  send_read (0);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 1);
  ck_assert_uint_eq (check_content (n, 64 * KiB), 1);
  expect_content (0, NBD_REPLY_TYPE_OFFSET_DATA, 0, 64 * KiB);
  ck_assert_uint_eq (ch[0].flags, NBD_REPLY_FLAG_DONE);
  teardown ();

  /* More zeroes than the static block of them. */
  setup (true, true, NBD_CMD_READ, NBD_CMD_FLAG_DF, 256 * KiB);
  hole (1, 256 * KiB - 2);
  send_read (0);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 1);
  ck_assert_uint_eq (check_content (n, 256 * KiB), 1);
  teardown ();
}
END_TEST

START_TEST (test_read_error_offset)
{
  size_t n;

  /* The data up to the error, then ERROR_OFFSET with DONE. */
  setup (true, false, NBD_CMD_READ, 0, 64 * KiB);
  holes_layout (false);
  ck_assert_int_eq (nbdkit_read_error_at (&rd, ROFF + 24576), 0);
  send_read (EIO);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (check_content (n, 24576), 3);
  ck_assert_uint_eq (n, 4);
  expect_content (0, NBD_REPLY_TYPE_OFFSET_DATA, 0, 8192);
  expect_content (1, NBD_REPLY_TYPE_OFFSET_HOLE, 8192, 8192);
  expect_content (2, NBD_REPLY_TYPE_OFFSET_DATA, 16384, 8192);
  expect_error (3, 32770, 5, ROFF + 24576);
  expect_done_last (n);
  teardown ();

  /* The error falls inside a large hole: it is cut there, and what is
   * left is too small for a chunk of its own.
   */
  setup (true, false, NBD_CMD_READ, 0, 64 * KiB);
  holes_layout (false);
  ck_assert_int_eq (nbdkit_read_error_at (&rd, ROFF + 8192 + 1000), 0);
  send_read (EIO);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (check_content (n, 9192), 1);
  ck_assert_uint_eq (n, 2);
  expect_content (0, NBD_REPLY_TYPE_OFFSET_DATA, 0, 9192);
  expect_error (1, NBD_REPLY_TYPE_ERROR_OFFSET, NBD_EIO, ROFF + 9192);
  teardown ();

  /* Inside a loan, with extended headers. */
  setup (true, true, NBD_CMD_READ, 0, 64 * KiB);
  lend (1000, 3000, 0);
  ck_assert_int_eq (nbdkit_read_error_at (&rd, ROFF + 2000), 0);
  send_read (ENOSPC);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (check_content (n, 2000), 1);
  ck_assert_uint_eq (n, 2);
  expect_error (1, NBD_REPLY_TYPE_ERROR_OFFSET, NBD_ENOSPC, ROFF + 2000);
  teardown ();

  /* With DF too: one (short) data chunk, then the error. */
  setup (true, false, NBD_CMD_READ, NBD_CMD_FLAG_DF, 64 * KiB);
  holes_layout (true);
  ck_assert_int_eq (nbdkit_read_error_at (&rd, ROFF + 50000), 0);
  send_read (EIO);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (check_content (n, 50000), 1);
  ck_assert_uint_eq (n, 2);
  expect_error (1, NBD_REPLY_TYPE_ERROR_OFFSET, NBD_EIO, ROFF + 50000);
  teardown ();
}
END_TEST

START_TEST (test_read_error)
{
  size_t n;

  /* No offset given: a lone ERROR chunk, no data. */
  setup (true, false, NBD_CMD_READ, 0, 64 * KiB);
  holes_layout (false);
  send_read (EIO);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 1);
  ck_assert_uint_eq (ch[0].flags, NBD_REPLY_FLAG_DONE);
  expect_error (0, 32769, 5, 0);
  teardown ();

  setup (true, true, NBD_CMD_READ, 0, 4096);
  send_read (ENOMEM);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 1);
  expect_error (0, NBD_REPLY_TYPE_ERROR, NBD_ENOMEM, 0);
  teardown ();

  /* At the very start: no data; an offset, if any, is the start. */
  setup (true, false, NBD_CMD_READ, 0, 4096);
  ck_assert_int_eq (nbdkit_read_error_at (&rd, ROFF), 0);
  send_read (EIO);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 1);
  ck_assert (NBD_REPLY_TYPE_IS_ERR (ch[0].type));
  if (ch[0].type == NBD_REPLY_TYPE_ERROR_OFFSET)
    expect_error (0, NBD_REPLY_TYPE_ERROR_OFFSET, NBD_EIO, ROFF);
  else
    expect_error (0, NBD_REPLY_TYPE_ERROR, NBD_EIO, 0);
  teardown ();
}
END_TEST

START_TEST (test_read_error_at_end)
{
  size_t n;

  /* nbdkit_read_error_at accepts the end of the request.  The data is
   * all there, but an ERROR_OFFSET's offset MUST lie inside the
   * request (proto.md, "NBD_REPLY_TYPE_ERROR_OFFSET"), so the end
   * itself cannot be named.
   */
  setup (true, false, NBD_CMD_READ, 0, 4096);
  ck_assert_int_eq (nbdkit_read_error_at (&rd, ROFF + 4096), 0);
  send_read (EIO);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 2);
  ck_assert_uint_eq (check_content (n, 4096), 1);
  ck_assert (NBD_REPLY_TYPE_IS_ERR (ch[1].type));
  ck_assert_uint_eq (get32 (ch[1].payload), NBD_EIO);
  if (ch[1].type == NBD_REPLY_TYPE_ERROR_OFFSET)
    ck_assert_msg (get64 (ch[1].payload + 6) < ROFF + 4096,
                   "ERROR_OFFSET at %" PRIu64 ", outside the request [%" PRIu64
                   ", %" PRIu64 ")",
                   get64 (ch[1].payload + 6), (uint64_t)ROFF,
                   (uint64_t)ROFF + 4096);
  teardown ();
}
END_TEST

START_TEST (test_read_many_lent)
{
  size_t n;
  const unsigned pieces = 1500;

  /* Loans between stretches of buffer: thousands of iovecs, far more
   * than one struct out holds.  Still one chunk, DONE in its header
   * (which leaves before most of its data).
   */
  setup (true, false, NBD_CMD_READ, 0, MAXLEN);
  for (unsigned i = 0; i < pieces; i++)
    lend (i * 512 + 256, 256, (i * 97) % (MAXLEN - 256));
  send_read (0);
  ck_assert_uint_gt (stub_sendv_calls (), 1);
  ck_assert_int_le (stub_sendv_max_iovcnt (), MAX_IOV);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 1);
  ck_assert_uint_eq (check_content (n, MAXLEN), 1);
  ck_assert_uint_eq (ch[0].flags, NBD_REPLY_FLAG_DONE);
  teardown ();

  /* The same with extended headers. */
  setup (true, true, NBD_CMD_READ, 0, MAXLEN);
  for (unsigned i = 0; i < pieces; i++)
    lend (i * 512 + 100, 300, i);
  send_read (0);
  ck_assert_uint_gt (stub_sendv_calls (), 1);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 1);
  ck_assert_uint_eq (check_content (n, MAXLEN), 1);
  teardown ();
}
END_TEST

START_TEST (test_read_many_chunks)
{
  size_t n;

  /* Alternating large holes and data: more chunk headers than one
   * struct out holds.
   */
  setup (true, false, NBD_CMD_READ, 0, MAXLEN);
  for (uint64_t off = 0; off < MAXLEN; off += 8192) {
    hole (off, 4096);
    lend (off + 4096, 1024, off % 100000);
  }
  send_read (0);
  ck_assert_uint_gt (stub_sendv_calls (), 1);
  ck_assert_int_le (stub_sendv_max_iovcnt (), MAX_IOV);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 2 * MAXLEN / 8192);
  ck_assert_uint_eq (check_content (n, MAXLEN), n);
  expect_done_last (n);
  teardown ();

  /* Ending with a large hole, whose header gets DONE afterwards. */
  setup (true, true, NBD_CMD_READ, 0, MAXLEN);
  for (uint64_t off = 0; off < MAXLEN; off += 8192) {
    lend (off, 1024, off % 100000);
    hole (off + 4096, 4096);
  }
  send_read (0);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 2 * MAXLEN / 8192);
  ck_assert_uint_eq (check_content (n, MAXLEN), n);
  ck_assert_uint_eq (ch[n - 1].type, NBD_REPLY_TYPE_OFFSET_HOLE);
  expect_done_last (n);
  teardown ();

  /* Many chunks and then an error part way. */
  setup (true, false, NBD_CMD_READ, 0, MAXLEN);
  for (uint64_t off = 0; off < MAXLEN; off += 8192)
    hole (off, 4096);
  ck_assert_int_eq (nbdkit_read_error_at (&rd, ROFF + MAXLEN - 8192), 0);
  send_read (EIO);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (check_content (n, MAXLEN - 8192), n - 1);
  expect_error (n - 1, NBD_REPLY_TYPE_ERROR_OFFSET, NBD_EIO,
                ROFF + MAXLEN - 8192);
  expect_done_last (n);
  teardown ();
}
END_TEST

START_TEST (test_read_send_fails)
{
  /* A send that fails mid-reply is reported; the loans are still
   * released once each by read_release.
   */
  setup (true, false, NBD_CMD_READ, 0, MAXLEN);
  for (unsigned i = 0; i < 1000; i++)
    lend (i * 1024, 512, i);
  stub_sendv_fail_from (0);
  ck_assert_int_eq (reply_read (&out, &rd, (const char *)buf, &req, 0), -1);
  teardown ();

  setup (false, false, NBD_CMD_READ, 0, MAXLEN);
  for (unsigned i = 0; i < 1000; i++)
    lend (i * 1024, 512, i);
  stub_sendv_fail_from (1);
  ck_assert_int_eq (reply_read (&out, &rd, (const char *)buf, &req, 0), -1);
  teardown ();
}
END_TEST

/* Send the read reply as a socket whose buffer takes BUDGET bytes at
 * a time would let it: each attempt builds it again from the start,
 * leaving out what already left, until it is all sent.
 */
static void
send_read_in_pieces (int err, size_t budget)
{
  uint64_t sent = 0;
  unsigned attempts = 0;

  for (;;) {
    int r;
    out_init (&out, &conn);
    out.nowait = true;
    out.skip = sent;
    stub_nowait_budget (budget);
    r = reply_read (&out, &rd, (const char *)buf, &req, err);
    if (r == 0)
      r = out_flush (&out);
    attempts++;
    if (r == 0)
      break;
    ck_assert (out.blocked);
    ck_assert_uint_gt (out.sent, sent);
    sent = out.sent;
    ck_assert_uint_eq (stub_sent_len (), sent);
  }
  ck_assert_uint_gt (attempts, 1);
}

START_TEST (test_read_resumed)
{
  static const size_t budgets[] = { 1, 7, 4095, 65536 + 13 };
  size_t n;

  for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++) {
    /* Chunks, holes and loans, more than one struct out holds. */
    setup (true, b % 2, NBD_CMD_READ, 0, MAXLEN);
    for (uint64_t off = 0; off < MAXLEN; off += 8192) {
      hole (off, 4096);
      lend (off + 4096, 1024, off % 100000);
    }
    send_read_in_pieces (0, budgets[b] > 1 ? budgets[b] : 97);
    n = decode_chunks (ch, MAXCHUNKS);
    ck_assert_uint_eq (n, 2 * MAXLEN / 8192);
    ck_assert_uint_eq (check_content (n, MAXLEN), n);
    expect_done_last (n);
    teardown ();

    /* A simple reply: the header, then the data. */
    setup (false, false, NBD_CMD_READ, 0, 64 * KiB);
    lend (1000, 3000, 5);
    send_read_in_pieces (0, budgets[b]);
    cur = 0;
    ck_assert_uint_eq (next_simple (), 0);
    expect_bytes (take (64 * KiB), 0, 64 * KiB);
    all_consumed ();
    teardown ();
  }
}
END_TEST

START_TEST (test_read_empty)
{
  size_t n;

  /* A zero-length read still gets a structured reply: NONE, DONE. */
  setup (true, false, NBD_CMD_READ, 0, 0);
  send_read (0);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 1);
  ck_assert_uint_eq (ch[0].type, NBD_REPLY_TYPE_NONE);
  ck_assert_uint_eq (ch[0].length, 0);
  teardown ();

  setup (true, true, NBD_CMD_READ, 0, 0);
  send_read (0);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 1);
  ck_assert_uint_eq (ch[0].type, NBD_REPLY_TYPE_NONE);
  teardown ();
}
END_TEST

/* ---- block status ---- */

/* Descriptor I of a compact block status payload P. */
static void
expect_desc32 (const unsigned char *p, size_t i, uint32_t len, uint32_t flags)
{
  if (get32 (p + 4 + i * 8) != len || get32 (p + 4 + i * 8 + 4) != flags)
    ck_abort_msg ("descriptor %zu: (%" PRIu32 ", %" PRIu32
                  "), expected (%" PRIu32 ", %" PRIu32 ")",
                  i, get32 (p + 4 + i * 8), get32 (p + 4 + i * 8 + 4), len,
                  flags);
}

static void
expect_desc64 (const unsigned char *p, size_t i, uint64_t len, uint64_t flags)
{
  if (get64 (p + 8 + i * 16) != len || get64 (p + 8 + i * 16 + 8) != flags)
    ck_abort_msg ("descriptor %zu: (%" PRIu64 ", %" PRIu64
                  "), expected (%" PRIu64 ", %" PRIu64 ")",
                  i, get64 (p + 8 + i * 16), get64 (p + 8 + i * 16 + 8), len,
                  flags);
}

#define HZ (NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO)

/* Extents from the request's offset: 4K data, 4K hole, then 1M of
 * zeroes reaching past the request's end.
 */
static struct nbdkit_extents *
make_extents (void)
{
  struct nbdkit_extents *e = nbdkit_extents_new (req.offset, 64 * MiB);

  ck_assert_ptr_nonnull (e);
  ck_assert_int_eq (nbdkit_add_extent (e, req.offset, 4096, 0), 0);
  ck_assert_int_eq (nbdkit_add_extent (e, req.offset + 4096, 4096, HZ), 0);
  ck_assert_int_eq (
      nbdkit_add_extent (e, req.offset + 8192, 1 * MiB, NBDKIT_EXTENT_ZERO), 0);
  return e;
}

START_TEST (test_block_status_compact)
{
  struct nbdkit_extents *e;
  size_t n;

  setup (true, false, NBD_CMD_BLOCK_STATUS, 0, 10000);
  e = make_extents ();
  ck_assert_int_eq (reply_block_status (&out, &req, e, 1, true), 0);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 1);
  ck_assert_uint_eq (ch[0].flags, NBD_REPLY_FLAG_DONE);
  ck_assert_uint_eq (ch[0].type, 5);
  ck_assert_uint_eq (ch[0].length, 4 + 3 * 8);
  ck_assert_uint_eq (get32 (ch[0].payload), 1);
  expect_desc32 (ch[0].payload, 0, 4096, 0);
  expect_desc32 (ch[0].payload, 1, 4096, NBD_STATE_HOLE | NBD_STATE_ZERO);
  /* The last extent runs past the request's end, whole. */
  expect_desc32 (ch[0].payload, 2, 1 * MiB, NBD_STATE_ZERO);

  /* Not the last context: no DONE, and it leaves at once. */
  stub_sent_reset ();
  ck_assert_int_eq (reply_block_status (&out, &req, e, 7, false), 0);
  cur = 0;
  next_chunk (&ch[0]);
  all_consumed ();
  ck_assert_uint_eq (ch[0].flags, 0);
  ck_assert_uint_eq (get32 (ch[0].payload), 7);

  /* REQ_ONE: exactly one descriptor. */
  stub_sent_reset ();
  req.flags = NBD_CMD_FLAG_REQ_ONE;
  ck_assert_int_eq (reply_block_status (&out, &req, e, 1, true), 0);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 1);
  ck_assert_uint_eq (ch[0].length, 4 + 8);
  expect_desc32 (ch[0].payload, 0, 4096, 0);
  nbdkit_extents_free (e);

  /* REQ_ONE with an extent longer than the request: cut to it. */
  stub_sent_reset ();
  req.count = 1000;
  e = make_extents ();
  ck_assert_int_eq (reply_block_status (&out, &req, e, 1, true), 0);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (ch[0].length, 4 + 8);
  expect_desc32 (ch[0].payload, 0, 1000, 0);
  nbdkit_extents_free (e);
  teardown ();
}
END_TEST

START_TEST (test_block_status_extended)
{
  struct nbdkit_extents *e;
  size_t n;

  setup (true, true, NBD_CMD_BLOCK_STATUS, 0, 10000);
  e = make_extents ();
  ck_assert_int_eq (reply_block_status (&out, &req, e, 2, true), 0);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 1);
  ck_assert_uint_eq (ch[0].flags, NBD_REPLY_FLAG_DONE);
  ck_assert_uint_eq (ch[0].type, 6);
  ck_assert_uint_eq (ch[0].length, 8 + 3 * 16);
  ck_assert_uint_eq (get32 (ch[0].payload), 2);
  ck_assert_uint_eq (get32 (ch[0].payload + 4), 3);
  expect_desc64 (ch[0].payload, 0, 4096, 0);
  expect_desc64 (ch[0].payload, 1, 4096, NBD_STATE_HOLE | NBD_STATE_ZERO);
  expect_desc64 (ch[0].payload, 2, 1 * MiB, NBD_STATE_ZERO);
  nbdkit_extents_free (e);

  /* Extents and a request beyond 4G. */
  stub_sent_reset ();
  req.count = 12 * GiB;
  e = nbdkit_extents_new (req.offset, req.offset + 12 * GiB);
  ck_assert_int_eq (nbdkit_add_extent (e, 0, req.offset + 5 * GiB, 0), 0);
  ck_assert_int_eq (nbdkit_add_extent (e, req.offset + 5 * GiB, 100 * GiB, HZ),
                    0);
  ck_assert_int_eq (reply_block_status (&out, &req, e, 1, true), 0);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (ch[0].length, 8 + 2 * 16);
  ck_assert_uint_eq (get32 (ch[0].payload + 4), 2);
  expect_desc64 (ch[0].payload, 0, 5 * GiB, 0);
  expect_desc64 (ch[0].payload, 1, 7 * GiB, HZ);

  /* REQ_ONE. */
  stub_sent_reset ();
  req.flags = NBD_CMD_FLAG_REQ_ONE;
  ck_assert_int_eq (reply_block_status (&out, &req, e, 1, false), 0);
  cur = 0;
  next_chunk (&ch[0]);
  all_consumed ();
  ck_assert_uint_eq (ch[0].flags, 0);
  ck_assert_uint_eq (ch[0].length, 8 + 16);
  ck_assert_uint_eq (get32 (ch[0].payload + 4), 1);
  expect_desc64 (ch[0].payload, 0, 5 * GiB, 0);
  nbdkit_extents_free (e);
  teardown ();
}
END_TEST

START_TEST (test_block_status_many)
{
  struct nbdkit_extents *e;
  size_t n;
  const unsigned count = 5000;

  /* More descriptors than anything else in a struct out. */
  setup (true, false, NBD_CMD_BLOCK_STATUS, 0, count * 512);
  e = nbdkit_extents_new (req.offset, 64 * MiB);
  for (unsigned i = 0; i < count; i++)
    if (nbdkit_add_extent (e, req.offset + i * 512, 512, i % 2 ? HZ : 0) != 0)
      ck_abort_msg ("nbdkit_add_extent %u: %s", i, stub_last_error ());
  ck_assert_int_eq (reply_block_status (&out, &req, e, 1, true), 0);
  n = decode_chunks (ch, MAXCHUNKS);
  ck_assert_uint_eq (n, 1);
  ck_assert_uint_eq (ch[0].length, 4 + count * 8);
  for (unsigned i = 0; i < count; i++)
    expect_desc32 (ch[0].payload, i, 512, i % 2 ? HZ : 0);
  nbdkit_extents_free (e);
  teardown ();
}
END_TEST

static Suite *
reply_suite (void)
{
  Suite *s = suite_create ("reply");
  TCase *tc = tcase_create ("reply");

  /* The large replies take a while under sanitizers on a busy machine. */
  tcase_set_timeout (tc, 30);

  tcase_add_test (tc, test_status_simple);
  tcase_add_test (tc, test_status_structured);
  tcase_add_test (tc, test_status_extended);
  tcase_add_test (tc, test_read_simple);
  tcase_add_test (tc, test_read_one_chunk);
  tcase_add_test (tc, test_read_one_chunk_extended);
  tcase_add_test (tc, test_read_holes);
  tcase_add_test (tc, test_read_holes_extended);
  tcase_add_test (tc, test_read_all_hole);
  tcase_add_test (tc, test_read_lent_gathered);
  tcase_add_test (tc, test_read_df);
  tcase_add_test (tc, test_read_error_offset);
  tcase_add_test (tc, test_read_error);
  tcase_add_test (tc, test_read_error_at_end);
  tcase_add_test (tc, test_read_many_lent);
  tcase_add_test (tc, test_read_many_chunks);
  tcase_add_test (tc, test_read_send_fails);
  tcase_add_test (tc, test_read_empty);
  tcase_add_test (tc, test_read_resumed);
  tcase_add_test (tc, test_block_status_compact);
  tcase_add_test (tc, test_block_status_extended);
  tcase_add_test (tc, test_block_status_many);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (reply_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
