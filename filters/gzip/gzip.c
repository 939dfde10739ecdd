/* gzip.c: serve the uncompressed contents of a gzip file, read-only.
 *
 * gzip has no index, so the first connection decompresses the whole
 * file once (checking every member's CRC and learning the size) and
 * notes access points on the way: at the start of every member, and at
 * the first deflate block boundary after every gzip-span bytes of
 * output, with the position in the compressed file down to the bit and
 * the 32 KiB of output before it (the window a deflate stream may refer
 * back to).  A read restarts a raw inflate at the nearest point before
 * it, or goes on with the connection's decoder when it is already
 * between that point and the offset, so reads in order cost no extra
 * work.  The index is shared by all connections.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include <nbdkit-filter.h>

#define WINDOW 32768
#define INBUF (256 * 1024)
#define SCRATCH (64 * 1024)

static int64_t span = 4 * 1024 * 1024;

static const struct nbdkit_param gzip_params[]
    = { { .name = "gzip-span",
          .type = NBDKIT_PARAM_SIZE,
          .default_value = "4M",
          .doc = "uncompressed bytes between access points (each costs 32K"
                 " of memory)",
          .dest = &span },
        { .name = NULL } };

static int
gzip_config_complete (void)
{
  if (span < 65536) {
    nbdkit_error ("gzip-span=%" PRId64 ": must be at least 64K", span);
    return -1;
  }
  return 0;
}

struct point {
  uint64_t uoff; /* uncompressed offset */
  uint64_t coff; /* compressed offset of the first whole byte */
  int bits;      /* bits of the byte before COFF still to use */
  bool member;   /* start of a gzip member (header first) */
  unsigned winlen;
  unsigned char *win;
};

/* The index, shared; built by the first connection. */
static pthread_mutex_t index_lock = PTHREAD_MUTEX_INITIALIZER;
static bool indexed;
static uint64_t index_csize, index_size;
static struct point *points;
static size_t npoints;

/* A decoder positioned somewhere in the file. */
struct dec {
  z_stream s;
  bool init;
  bool active;     /* positioned: the fields below mean something */
  bool raw;        /* started mid-member: the trailer is skipped by hand */
  bool eof;        /* past the last member */
  bool new_member; /* a member just started (at member_coff) */
  uint64_t member_coff;
  uint64_t csize;
  unsigned char *in;
  uint64_t in_off; /* compressed offset of in[0] */
  uint64_t upos;   /* uncompressed offset of the next byte out */
};

struct handle {
  pthread_mutex_t lock;
  struct dec d;
  unsigned char *scratch;
};

static uint64_t
dec_cpos (const struct dec *d)
{
  return d->in_off + (d->s.next_in - d->in);
}

static void
dec_seek_input (struct dec *d, uint64_t coff)
{
  d->in_off = coff;
  d->s.next_in = d->in;
  d->s.avail_in = 0;
}

/* Position D at point P. */
static int
dec_start (nbdkit_next *next, struct dec *d, const struct point *p, int *err)
{
  int r;

  d->active = false;
  r = inflateReset2 (&d->s, p->member ? 31 : -15);
  dec_seek_input (d, p->coff);
  if (r == Z_OK && p->bits) {
    unsigned char b;
    if (nbdkit_next_pread (next, &b, 1, p->coff - 1, 0, NULL, err) == -1)
      return -1;
    r = inflatePrime (&d->s, p->bits, b >> (8 - p->bits));
  }
  if (r == Z_OK && !p->member)
    r = inflateSetDictionary (&d->s, p->win, p->winlen);
  if (r != Z_OK) {
    nbdkit_error ("gzip: cannot restart the decoder at offset %" PRIu64,
                  p->coff);
    *err = EIO;
    return -1;
  }
  d->raw = !p->member;
  d->eof = false;
  d->new_member = false;
  d->upos = p->uoff;
  d->active = true;
  return 0;
}

/* A member ended: find the next one, or the end. */
static int
dec_member_end (nbdkit_next *next, struct dec *d, int *err)
{
  uint64_t end = dec_cpos (d) + (d->raw ? 8 : 0);
  unsigned char magic[2];

  if (end > d->csize) {
    nbdkit_error ("gzip: the file is truncated (a member's trailer is cut)");
    *err = EIO;
    return -1;
  }
  if (end + 2 > d->csize) {
    d->eof = true;
    return 0;
  }
  if (nbdkit_next_pread (next, magic, 2, end, 0, NULL, err) == -1)
    return -1;
  if (magic[0] != 0x1f || magic[1] != 0x8b) {
    nbdkit_debug ("gzip: %" PRIu64 " bytes of trailing garbage ignored",
                  d->csize - end);
    d->eof = true;
    return 0;
  }
  inflateReset2 (&d->s, 31);
  dec_seek_input (d, end);
  d->raw = false;
  d->new_member = true;
  d->member_coff = end;
  return 0;
}

/* Decode up to N bytes into OUT; *GOT says how many.  With Z_BLOCK it
 * also returns at each deflate block boundary and at each new member.
 */
static int
dec_read (nbdkit_next *next, struct dec *d, unsigned char *out, size_t n,
          int flush, size_t *got, int *err)
{
  *got = 0;
  while (*got < n && !d->eof) {
    size_t before;
    int r;

    if (d->s.avail_in == 0) {
      uint64_t pos = dec_cpos (d), k;
      if (pos >= d->csize) {
        nbdkit_error ("gzip: the file is truncated (at offset %" PRIu64 ")",
                      pos);
        *err = EIO;
        return -1;
      }
      k = d->csize - pos < INBUF ? d->csize - pos : INBUF;
      if (nbdkit_next_pread (next, d->in, k, pos, 0, NULL, err) == -1)
        return -1;
      d->in_off = pos;
      d->s.next_in = d->in;
      d->s.avail_in = k;
    }
    d->s.next_out = out + *got;
    before = n - *got;
    d->s.avail_out = before > UINT_MAX ? UINT_MAX : before;
    before = d->s.avail_out;
    r = inflate (&d->s, flush);
    *got += before - d->s.avail_out;
    d->upos += before - d->s.avail_out;
    if (r == Z_STREAM_END) {
      if (dec_member_end (next, d, err) == -1)
        return -1;
      if (flush == Z_BLOCK)
        return 0;
      continue;
    }
    if (r == Z_BUF_ERROR && d->s.avail_in == 0)
      continue;
    if (r != Z_OK) {
      nbdkit_error ("gzip: corrupt data near offset %" PRIu64 ": %s",
                    dec_cpos (d), d->s.msg ? d->s.msg : "inflate error");
      *err = EIO;
      return -1;
    }
    if (flush == Z_BLOCK && (d->s.data_type & 128))
      return 0;
  }
  return 0;
}

static int
add_point (struct dec *d, bool member, uint64_t coff)
{
  struct point *p;

  if (npoints % 256 == 0) {
    p = realloc (points, (npoints + 256) * sizeof *p);
    if (p == NULL) {
      nbdkit_error ("realloc: %m");
      return -1;
    }
    points = p;
  }
  p = &points[npoints];
  *p = (struct point){ .uoff = d->upos, .coff = coff, .member = member };
  if (!member) {
    uInt len = WINDOW;
    p->bits = d->s.data_type & 7;
    p->win = malloc (WINDOW);
    if (p->win == NULL) {
      nbdkit_error ("gzip: out of memory for the index");
      return -1;
    }
    if (inflateGetDictionary (&d->s, p->win, &len) != Z_OK) {
      free (p->win);
      nbdkit_error ("gzip: cannot save the window");
      return -1;
    }
    p->winlen = len;
  }
  npoints++;
  return 0;
}

static void
free_index (void)
{
  for (size_t i = 0; i < npoints; i++)
    free (points[i].win);
  free (points);
  points = NULL;
  npoints = 0;
}

/* Decompress the whole file once, noting access points. */
static int
build_index (nbdkit_next *next, struct dec *d, unsigned char *scratch)
{
  struct point first = { .member = true };
  unsigned char magic[2];
  uint64_t last = 0;
  int err;

  if (d->csize < 18)
    goto notgz;
  if (nbdkit_next_pread (next, magic, 2, 0, 0, NULL, &err) == -1)
    return -1;
  if (magic[0] != 0x1f || magic[1] != 0x8b)
    goto notgz;
  if (dec_start (next, d, &first, &err) == -1 || add_point (d, true, 0) == -1)
    return -1;
  while (!d->eof) {
    size_t got;
    if (dec_read (next, d, scratch, SCRATCH, Z_BLOCK, &got, &err) == -1)
      goto fail;
    if (d->new_member) {
      d->new_member = false;
      if (add_point (d, true, d->member_coff) == -1)
        goto fail;
      last = d->upos;
    } else if (!d->eof && (d->s.data_type & 128) && !(d->s.data_type & 64)
               && d->upos - last >= (uint64_t)span) {
      if (add_point (d, false, dec_cpos (d)) == -1)
        goto fail;
      last = d->upos;
    }
  }
  index_size = d->upos;
  index_csize = d->csize;
  d->active = false;
  nbdkit_debug ("gzip: %" PRIu64 " bytes uncompressed, %zu access points",
                index_size, npoints);
  return 0;

notgz:
  nbdkit_error ("gzip: not a gzip file (no gzip header at offset 0)");
  return -1;
fail:
  free_index ();
  d->active = false;
  return -1;
}

static void *
gzip_open (nbdkit_context *ctx, int readonly, const char *exportname,
           int is_tls)
{
  struct handle *h;

  if (nbdkit_next_open (ctx, 1, exportname) == -1)
    return NULL;
  h = calloc (1, sizeof *h);
  if (h == NULL || (h->d.in = malloc (INBUF)) == NULL
      || (h->scratch = malloc (SCRATCH)) == NULL) {
    nbdkit_error ("gzip: out of memory");
    goto fail;
  }
  if (inflateInit2 (&h->d.s, 31) != Z_OK) {
    nbdkit_error ("gzip: cannot initialize zlib");
    goto fail;
  }
  h->d.init = true;
  pthread_mutex_init (&h->lock, NULL);
  return h;

fail:
  if (h) {
    free (h->d.in);
    free (h);
  }
  return NULL;
}

static void
gzip_close (void *handle)
{
  struct handle *h = handle;

  if (h->d.init)
    inflateEnd (&h->d.s);
  free (h->d.in);
  free (h->scratch);
  pthread_mutex_destroy (&h->lock);
  free (h);
}

static void
gzip_unload (void)
{
  free_index ();
}

static int
gzip_prepare (nbdkit_next *next, void *handle, int readonly)
{
  struct handle *h = handle;
  int64_t csize = nbdkit_next_get_size (next);
  int r = 0;

  if (csize == -1)
    return -1;
  h->d.csize = csize;
  pthread_mutex_lock (&index_lock);
  if (!indexed) {
    r = build_index (next, &h->d, h->scratch);
    indexed = r == 0;
  } else if (index_csize != (uint64_t)csize) {
    nbdkit_error ("gzip: the compressed file changed size (%" PRIu64
                  " bytes, was %" PRIu64 "): restart the server",
                  (uint64_t)csize, index_csize);
    r = -1;
  }
  pthread_mutex_unlock (&index_lock);
  return r;
}

static int64_t
gzip_get_size (nbdkit_next *next, void *handle)
{
  return index_size;
}

static int
gzip_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
            uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  struct handle *h = handle;
  struct dec *d = &h->d;
  size_t lo = 0, hi = npoints;
  int r = -1;

  /* The access point: the last with uoff <= OFFSET. */
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (points[mid].uoff <= offset)
      lo = mid;
    else
      hi = mid;
  }
  pthread_mutex_lock (&h->lock);
  if (!(d->active && !d->eof && d->upos <= offset
        && d->upos >= points[lo].uoff)) {
    if (dec_start (next, d, &points[lo], err) == -1)
      goto out;
  }
  while (d->upos < offset) {
    uint64_t n = offset - d->upos < SCRATCH ? offset - d->upos : SCRATCH;
    size_t got;
    if (dec_read (next, d, h->scratch, n, Z_NO_FLUSH, &got, err) == -1)
      goto out;
    if (d->eof)
      break;
  }
  while (count > 0) {
    size_t got;
    if (d->eof || d->upos != offset) {
      nbdkit_error ("gzip: the data ends before offset %" PRIu64, offset);
      *err = EIO;
      goto out;
    }
    if (dec_read (next, d, buf, count, Z_NO_FLUSH, &got, err) == -1)
      goto out;
    buf = (char *)buf + got;
    offset += got;
    count -= got;
  }
  r = 0;
out:
  if (r == -1)
    d->active = false;
  pthread_mutex_unlock (&h->lock);
  return r;
}

/* The plugin's block sizes are about compressed bytes: none here. */
static int
gzip_block_size (nbdkit_next *next, void *handle, struct nbdkit_block_size *bs)
{
  return 0;
}

static int
gzip_can_write (nbdkit_next *next, void *handle)
{
  return 0;
}

static int
gzip_can_extents (nbdkit_next *next, void *handle)
{
  return NBDKIT_EXTENTS_EMULATE;
}

static int
gzip_can_cache (nbdkit_next *next, void *handle)
{
  return NBDKIT_CACHE_EMULATE;
}

static int
gzip_can_multi_conn (nbdkit_next *next, void *handle)
{
  return 1;
}

static const char *
gzip_config_help (void)
{
  return "Serves the uncompressed contents of a gzip file, read-only.";
}

static struct nbdkit_filter filter = {
  .name = "gzip",
  .longname = "nbdkit gzip filter",
  .description = "serve the uncompressed contents of a gzip file",
  .params = gzip_params,
  .config_complete = gzip_config_complete,
  .config_help = gzip_config_help,
  .unload = gzip_unload,
  .open = gzip_open,
  .close = gzip_close,
  .prepare = gzip_prepare,
  .get_size = gzip_get_size,
  .block_size = gzip_block_size,
  .can_write = gzip_can_write,
  .can_extents = gzip_can_extents,
  .can_cache = gzip_can_cache,
  .can_multi_conn = gzip_can_multi_conn,
  .pread = gzip_pread,
  .pread_fills_buffer = 1, /* every byte is decompressed into BUF */
};

NBDKIT_REGISTER_FILTER (filter)
