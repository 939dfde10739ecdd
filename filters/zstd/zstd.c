/* zstd.c: serve the uncompressed contents of a zstd-compressed image,
 * read-only, with random access.
 *
 * At open the compressed image is indexed by frame: from the seek
 * table of zstd's seekable format when there is one (a skippable frame
 * at the end, as written by zstd's contrib/seekable_format tools),
 * else by walking the frames' headers and block headers (frames of
 * unknown content size are decompressed once to learn it).  A read
 * decompresses only the frames it touches, from the start of each, so
 * random access is cheap when the image has many frames (compress
 * pieces separately and concatenate them, or use the seekable format);
 * an image of one frame is read through a stream that only moves
 * forwards and restarts for a read behind it.  The last MB decompressed
 * is kept, so small reads in order cost nothing extra.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader */
#include <zstd.h>

#include <nbdkit-filter.h>

#define SEEKABLE_MAGIC 0x8F92EAB1
#define SEEK_TABLE_MAGIC 0x184D2A5E
#define SKIPPABLE_MASK 0xFFFFFFF0
#define SKIPPABLE_START 0x184D2A50
#define CBUF_SIZE (1024 * 1024)
#define WIN_SIZE (1024 * 1024)

struct frame {
  uint64_t coff, csize; /* in the compressed image */
  uint64_t uoff, usize; /* in the uncompressed contents */
};

struct handle {
  pthread_mutex_t lock;
  nbdkit_next *next;
  uint64_t csize; /* of the compressed image */
  struct frame *frames;
  size_t nframes;
  uint64_t size; /* uncompressed */

  /* Compressed bytes read ahead. */
  char *cbuf;
  uint64_t cbuf_off, cbuf_len;

  /* The stream and the window of what it produced last. */
  ZSTD_DStream *ds;
  size_t cur;    /* frame the stream is in, or SIZE_MAX */
  uint64_t cpos; /* next compressed byte to feed it */
  uint64_t upos; /* uncompressed bytes it produced so far */
  bool frame_done;
  char *win;
  size_t win_frame;            /* SIZE_MAX: empty */
  uint64_t win_start, win_len; /* inside the frame */
};

static uint32_t
le32 (const unsigned char *p)
{
  return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

/* LEN bytes of the compressed image at OFF, through a read-ahead
 * buffer.  Returns a pointer valid until the next call.
 */
static const unsigned char *
cread (struct handle *h, uint64_t off, uint64_t len, int *err)
{
  if (len > CBUF_SIZE || off + len > h->csize) {
    nbdkit_error ("zstd: the image is truncated or corrupt at offset %" PRIu64,
                  off);
    *err = EIO;
    return NULL;
  }
  if (off < h->cbuf_off || off + len > h->cbuf_off + h->cbuf_len) {
    uint64_t n = h->csize - off < CBUF_SIZE ? h->csize - off : CBUF_SIZE;
    if (nbdkit_next_pread (h->next, h->cbuf, n, off, 0, NULL, err) == -1)
      return NULL;
    h->cbuf_off = off;
    h->cbuf_len = n;
  }
  return (const unsigned char *)h->cbuf + (off - h->cbuf_off);
}

static int
add_frame (struct handle *h, uint64_t coff, uint64_t csize, uint64_t usize)
{
  struct frame *nf;

  if (h->nframes % 1024 == 0) {
    nf = realloc (h->frames, (h->nframes + 1024) * sizeof *nf);
    if (nf == NULL) {
      nbdkit_error ("realloc: %m");
      return -1;
    }
    h->frames = nf;
  }
  h->frames[h->nframes++] = (struct frame){
    .coff = coff,
    .csize = csize,
    .uoff = h->size,
    .usize = usize,
  };
  h->size += usize;
  return 0;
}

/* The seekable format's seek table, if the image ends with a valid
 * one.  Returns 1 if used, 0 if there is none, -1 on error.
 */
static int
index_seek_table (struct handle *h)
{
  const unsigned char *p;
  uint32_t n, entry;
  uint64_t table, coff = 0;
  int err;

  if (h->csize < 17 || (p = cread (h, h->csize - 9, 9, &err)) == NULL)
    return 0;
  if (le32 (p + 5) != SEEKABLE_MAGIC || (p[4] & 0x7c) != 0)
    return 0;
  n = le32 (p);
  entry = p[4] & 0x80 ? 12 : 8;
  table = 8 + (uint64_t)n * entry + 9;
  if (table > h->csize)
    return 0;
  p = cread (h, h->csize - table, 8, &err);
  if (p == NULL || le32 (p) != SEEK_TABLE_MAGIC || le32 (p + 4) != table - 8)
    return 0;
  for (uint32_t i = 0; i < n; i++) {
    p = cread (h, h->csize - table + 8 + (uint64_t)i * entry, 8, &err);
    if (p == NULL || add_frame (h, coff, le32 (p), le32 (p + 4)) == -1)
      return -1;
    coff += le32 (p);
  }
  if (coff != h->csize - table) {
    nbdkit_debug ("zstd: the seek table does not match the frames: ignored");
    free (h->frames);
    h->frames = NULL;
    h->nframes = 0;
    h->size = 0;
    return 0;
  }
  nbdkit_debug ("zstd: seekable format, %zu frames", h->nframes);
  return 1;
}

static int64_t decompressed_size (struct handle *h, uint64_t coff,
                                  uint64_t csize);

/* Walk every frame: header, then block headers, then the checksum. */
static int
index_frames (struct handle *h)
{
  uint64_t pos = 0;
  int err;

  while (pos < h->csize) {
    uint64_t avail = h->csize - pos;
    const unsigned char *p = cread (h, pos, avail < 18 ? avail : 18, &err);
    ZSTD_frameHeader fh;
    uint64_t q;

    if (p == NULL || avail < 8)
      goto corrupt;
    if ((le32 (p) & SKIPPABLE_MASK) == SKIPPABLE_START) {
      pos += 8 + (uint64_t)le32 (p + 4);
      continue;
    }
    if (ZSTD_getFrameHeader (&fh, p, avail < 18 ? avail : 18) != 0
        || fh.frameType != ZSTD_frame)
      goto corrupt;
    q = pos + fh.headerSize;
    for (;;) {
      const unsigned char *b = cread (h, q, 3, &err);
      uint32_t bh;
      if (b == NULL)
        return -1;
      bh = b[0] | b[1] << 8 | b[2] << 16;
      q += 3 + ((bh >> 1 & 3) == 1 ? 1 : bh >> 3);
      if (bh & 1)
        break;
    }
    if (fh.checksumFlag)
      q += 4;
    if (q > h->csize)
      goto corrupt;
    if (fh.frameContentSize == ZSTD_CONTENTSIZE_UNKNOWN) {
      int64_t u = decompressed_size (h, pos, q - pos);
      if (u == -1)
        return -1;
      fh.frameContentSize = u;
    }
    if (add_frame (h, pos, q - pos, fh.frameContentSize) == -1)
      return -1;
    pos = q;
  }
  nbdkit_debug ("zstd: %zu frames", h->nframes);
  return 0;

corrupt:
  nbdkit_error ("zstd: not a zstd image, or corrupt, at offset %" PRIu64, pos);
  return -1;
}

/* Feed the stream until it has produced up to WIN_SIZE bytes into the
 * window (or the frame ended).  The window then holds them.
 */
static int
fill_window (struct handle *h, int *err)
{
  const struct frame *f = &h->frames[h->cur];
  ZSTD_outBuffer out = { h->win, WIN_SIZE, 0 };

  h->win_frame = h->cur;
  h->win_start = h->upos;
  while (out.pos < out.size && !h->frame_done) {
    uint64_t left = f->coff + f->csize - h->cpos;
    uint64_t n = left < 65536 ? left : 65536;
    const unsigned char *p;
    ZSTD_inBuffer in;
    size_t r;

    if (n == 0) {
      nbdkit_error ("zstd: frame at %" PRIu64 " ends early", f->coff);
      *err = EIO;
      return -1;
    }
    if ((p = cread (h, h->cpos, n, err)) == NULL)
      return -1;
    in = (ZSTD_inBuffer){ p, n, 0 };
    r = ZSTD_decompressStream (h->ds, &out, &in);
    if (ZSTD_isError (r)) {
      nbdkit_error ("zstd: frame at %" PRIu64 ": %s", f->coff,
                    ZSTD_getErrorName (r));
      *err = EIO;
      return -1;
    }
    h->cpos += in.pos;
    if (r == 0)
      h->frame_done = true;
  }
  h->win_len = out.pos;
  h->upos += out.pos;
  return 0;
}

static void
start_frame (struct handle *h, size_t i)
{
  ZSTD_DCtx_reset (h->ds, ZSTD_reset_session_only);
  h->cur = i;
  h->cpos = h->frames[i].coff;
  h->upos = 0;
  h->frame_done = false;
}

static int64_t
decompressed_size (struct handle *h, uint64_t coff, uint64_t csize)
{
  int err;
  int64_t total = 0;

  /* A frame entry, just past the index, for the stream to work on; it
   * is overwritten when the frame is added for real.
   */
  if (add_frame (h, coff, csize, 0) == -1)
    return -1;
  h->nframes--;
  start_frame (h, h->nframes);
  while (!h->frame_done) {
    if (fill_window (h, &err) == -1)
      return -1;
    total += h->win_len;
  }
  h->cur = SIZE_MAX;
  h->win_frame = SIZE_MAX;
  return total;
}

/* Copy N bytes at U inside frame I into BUF. */
static int
frame_read (struct handle *h, size_t i, char *buf, uint64_t n, uint64_t u,
            int *err)
{
  while (n > 0) {
    if (h->win_frame == i && u >= h->win_start
        && u < h->win_start + h->win_len) {
      uint64_t k = h->win_start + h->win_len - u;
      if (k > n)
        k = n;
      memcpy (buf, h->win + (u - h->win_start), k);
      buf += k;
      u += k;
      n -= k;
      continue;
    }
    /* Move the stream: restart the frame if U is behind it. */
    if (h->cur != i || u < h->upos)
      start_frame (h, i);
    if (h->frame_done) {
      nbdkit_error ("zstd: frame at %" PRIu64 " is shorter than its size",
                    h->frames[i].coff);
      *err = EIO;
      return -1;
    }
    if (fill_window (h, err) == -1)
      return -1;
  }
  return 0;
}

static void *
zstd_open (nbdkit_context *ctx, int readonly, const char *exportname,
           int is_tls)
{
  struct handle *h;

  if (nbdkit_next_open (ctx, 1, exportname) == -1)
    return NULL;
  h = calloc (1, sizeof *h);
  if (h == NULL || (h->cbuf = malloc (CBUF_SIZE)) == NULL
      || (h->win = malloc (WIN_SIZE)) == NULL
      || (h->ds = ZSTD_createDStream ()) == NULL) {
    nbdkit_error ("zstd: out of memory");
    if (h) {
      free (h->cbuf);
      free (h->win);
      free (h);
    }
    return NULL;
  }
  pthread_mutex_init (&h->lock, NULL);
  h->cur = h->win_frame = SIZE_MAX;
  return h;
}

static void
zstd_close (void *handle)
{
  struct handle *h = handle;
  ZSTD_freeDStream (h->ds);
  free (h->frames);
  free (h->cbuf);
  free (h->win);
  pthread_mutex_destroy (&h->lock);
  free (h);
}

static int
zstd_prepare (nbdkit_next *next, void *handle, int readonly)
{
  struct handle *h = handle;
  int64_t size = nbdkit_next_get_size (next);
  int r;

  if (size == -1)
    return -1;
  h->next = next;
  h->csize = size;
  r = index_seek_table (h);
  if (r == 0)
    r = index_frames (h);
  return r == -1 ? -1 : 0;
}

static int64_t
zstd_get_size (nbdkit_next *next, void *handle)
{
  return ((struct handle *)handle)->size;
}

/* The plugin's block sizes are about compressed bytes: none here. */
static int
zstd_block_size (nbdkit_next *next, void *handle, struct nbdkit_block_size *bs)
{
  return 0;
}

static int
zstd_can_write (nbdkit_next *next, void *handle)
{
  return 0;
}

static int
zstd_can_extents (nbdkit_next *next, void *handle)
{
  return NBDKIT_EXTENTS_EMULATE;
}

static int
zstd_can_cache (nbdkit_next *next, void *handle)
{
  return NBDKIT_CACHE_EMULATE;
}

static int
zstd_can_multi_conn (nbdkit_next *next, void *handle)
{
  return 1;
}

static int
zstd_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
            uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  struct handle *h = handle;
  size_t lo = 0, hi = h->nframes;
  int r = 0;

  /* The frame holding OFFSET: the last with uoff <= OFFSET. */
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (h->frames[mid].uoff <= offset)
      lo = mid;
    else
      hi = mid;
  }
  pthread_mutex_lock (&h->lock);
  for (size_t i = lo; count > 0 && r == 0 && i < h->nframes; i++) {
    const struct frame *f = &h->frames[i];
    uint64_t u, n;
    if (offset >= f->uoff + f->usize)
      continue;
    u = offset - f->uoff;
    n = f->usize - u < count ? f->usize - u : count;
    r = frame_read (h, i, buf, n, u, err);
    buf = (char *)buf + n;
    offset += n;
    count -= n;
  }
  pthread_mutex_unlock (&h->lock);
  return r;
}

static struct nbdkit_filter filter = {
  .name = "zstd",
  .longname = "nbdkit zstd filter",
  .description = "serve the uncompressed contents of a zstd image",
  .open = zstd_open,
  .close = zstd_close,
  .prepare = zstd_prepare,
  .get_size = zstd_get_size,
  .block_size = zstd_block_size,
  .can_write = zstd_can_write,
  .can_extents = zstd_can_extents,
  .can_cache = zstd_can_cache,
  .can_multi_conn = zstd_can_multi_conn,
  .pread = zstd_pread,
};

NBDKIT_REGISTER_FILTER (filter)
