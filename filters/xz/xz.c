/* xz.c: serve the uncompressed contents of an xz file, read-only, with
 * random access by xz block.
 *
 * At prepare the indexes of all the streams are read from the end of
 * the file backwards (stream footer, index, stream header, stream
 * padding) and joined into one lzma_index.  A read finds the block
 * holding each offset in it, decodes that whole block into memory and
 * copies from there.  The last xz-max-depth blocks decoded are kept
 * per connection (least recently used goes first), so reads near each
 * other cost one decode.  A block larger than xz-max-block uncompressed
 * makes the file refused at open: a decoded block is held whole.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <lzma.h>

#include <nbdkit-filter.h>

#define CHUNK (1024 * 1024) /* compressed bytes read at a time */

static int64_t max_block = 512 * 1024 * 1024;
static int64_t max_depth = 8;

static const struct nbdkit_param xz_params[]
    = { { .name = "xz-max-block",
          .type = NBDKIT_PARAM_SIZE,
          .default_value = "512M",
          .doc = "refuse files with a block larger than this uncompressed",
          .dest = &max_block },
        { .name = "xz-max-depth",
          .type = NBDKIT_PARAM_INT,
          .default_value = "8",
          .doc = "blocks kept decoded per connection",
          .dest = &max_depth },
        { .name = NULL } };

static int
xz_config_complete (void)
{
  if (max_block < 1) {
    nbdkit_error ("xz-max-block must be at least 1");
    return -1;
  }
  if (max_depth < 1 || max_depth > 65536) {
    nbdkit_error ("xz-max-depth=%" PRId64 ": must be 1 to 65536", max_depth);
    return -1;
  }
  return 0;
}

struct cached {
  char *data;     /* NULL: empty slot */
  uint64_t uoff;  /* uncompressed offset of the block */
  uint64_t usize; /* its uncompressed size */
  uint64_t used;  /* clock of the last use */
};

struct handle {
  pthread_mutex_t lock;
  lzma_index *index;
  uint64_t size;
  struct cached *cache; /* max_depth slots */
  uint64_t clock;
  char *cbuf;
};

static void *
xz_open (nbdkit_context *ctx, int readonly, const char *exportname, int is_tls)
{
  struct handle *h;

  if (nbdkit_next_open (ctx, 1, exportname) == -1)
    return NULL;
  h = calloc (1, sizeof *h);
  if (h == NULL || (h->cache = calloc (max_depth, sizeof *h->cache)) == NULL
      || (h->cbuf = malloc (CHUNK)) == NULL) {
    nbdkit_error ("xz: out of memory");
    if (h) {
      free (h->cache);
      free (h);
    }
    return NULL;
  }
  pthread_mutex_init (&h->lock, NULL);
  return h;
}

static void
xz_close (void *handle)
{
  struct handle *h = handle;

  for (int64_t i = 0; i < max_depth; i++)
    free (h->cache[i].data);
  free (h->cache);
  free (h->cbuf);
  if (h->index)
    lzma_index_end (h->index, NULL);
  pthread_mutex_destroy (&h->lock);
  free (h);
}

static const char *
lzma_msg (lzma_ret r)
{
  switch (r) {
    case LZMA_FORMAT_ERROR:
      return "not in the xz format";
    case LZMA_OPTIONS_ERROR:
      return "unsupported options";
    case LZMA_DATA_ERROR:
      return "corrupt data";
    case LZMA_BUF_ERROR:
      return "truncated data";
    case LZMA_MEM_ERROR:
      return "out of memory";
    case LZMA_MEMLIMIT_ERROR:
      return "memory limit reached";
    case LZMA_UNSUPPORTED_CHECK:
      return "unsupported integrity check";
    default:
      return "decoder error";
  }
}

/* Read the indexes of every stream, from the end of the file. */
static int
read_index (nbdkit_next *next, struct handle *h, uint64_t csize)
{
  uint64_t pos = csize;
  int err;

  if (csize == 0) {
    nbdkit_error ("xz: the file is empty: not an xz file");
    return -1;
  }
  while (pos > 0) {
    unsigned char buf[LZMA_STREAM_HEADER_SIZE];
    lzma_stream_flags footer, header;
    uint64_t padding = 0, index_off, start, memlimit = UINT64_MAX;
    lzma_index *this = NULL;
    unsigned char *ibuf;
    size_t in_pos = 0;
    lzma_ret r;

    /* Stream padding: zero bytes in fours. */
    for (;;) {
      if (pos < 2 * LZMA_STREAM_HEADER_SIZE)
        goto bad;
      if (nbdkit_next_pread (next, buf, 4, pos - 4, 0, NULL, &err) == -1)
        return -1;
      if (buf[0] | buf[1] | buf[2] | buf[3])
        break;
      pos -= 4;
      padding += 4;
    }
    if (pos % 4 != 0)
      goto bad;
    if (nbdkit_next_pread (next, buf, LZMA_STREAM_HEADER_SIZE,
                           pos - LZMA_STREAM_HEADER_SIZE, 0, NULL, &err)
        == -1)
      return -1;
    r = lzma_stream_footer_decode (&footer, buf);
    if (r != LZMA_OK) {
      nbdkit_error ("xz: stream footer ending at offset %" PRIu64 ": %s", pos,
                    lzma_msg (r));
      goto fail;
    }
    if (footer.backward_size > pos - 2 * LZMA_STREAM_HEADER_SIZE)
      goto bad;
    index_off = pos - LZMA_STREAM_HEADER_SIZE - footer.backward_size;
    ibuf = malloc (footer.backward_size);
    if (ibuf == NULL) {
      nbdkit_error ("xz: out of memory for an index of %" PRIu64 " bytes",
                    (uint64_t)footer.backward_size);
      goto fail;
    }
    if (nbdkit_next_pread (next, ibuf, footer.backward_size, index_off, 0, NULL,
                           &err)
        == -1) {
      free (ibuf);
      return -1;
    }
    r = lzma_index_buffer_decode (&this, &memlimit, NULL, ibuf, &in_pos,
                                  footer.backward_size);
    free (ibuf);
    if (r != LZMA_OK) {
      nbdkit_error ("xz: index at offset %" PRIu64 ": %s", index_off,
                    lzma_msg (r));
      goto fail;
    }
    if (lzma_index_total_size (this) + LZMA_STREAM_HEADER_SIZE > index_off) {
      lzma_index_end (this, NULL);
      goto bad;
    }
    start = index_off - lzma_index_total_size (this) - LZMA_STREAM_HEADER_SIZE;
    if (nbdkit_next_pread (next, buf, LZMA_STREAM_HEADER_SIZE, start, 0, NULL,
                           &err)
        == -1) {
      lzma_index_end (this, NULL);
      return -1;
    }
    r = lzma_stream_header_decode (&header, buf);
    if (r == LZMA_OK)
      r = lzma_stream_flags_compare (&header, &footer);
    if (r == LZMA_OK)
      r = lzma_index_stream_flags (this, &footer);
    if (r == LZMA_OK)
      r = lzma_index_stream_padding (this, padding);
    if (r == LZMA_OK && h->index) {
      r = lzma_index_cat (this, h->index, NULL);
      if (r == LZMA_OK)
        h->index = NULL;
    }
    if (r != LZMA_OK) {
      lzma_index_end (this, NULL);
      nbdkit_error ("xz: stream at offset %" PRIu64 ": %s", start,
                    lzma_msg (r));
      goto fail;
    }
    h->index = this;
    pos = start;
  }
  return 0;

bad:
  nbdkit_error (
      "xz: not an xz file, or truncated or corrupt (at offset %" PRIu64 ")",
      pos);
fail:
  if (h->index) {
    lzma_index_end (h->index, NULL);
    h->index = NULL;
  }
  return -1;
}

static int
xz_prepare (nbdkit_next *next, void *handle, int readonly)
{
  struct handle *h = handle;
  int64_t csize = nbdkit_next_get_size (next);
  lzma_index_iter it;

  if (csize == -1 || read_index (next, h, csize) == -1)
    return -1;
  h->size = lzma_index_uncompressed_size (h->index);
  lzma_index_iter_init (&it, h->index);
  while (!lzma_index_iter_next (&it, LZMA_INDEX_ITER_NONEMPTY_BLOCK)) {
    if (it.block.uncompressed_size > (uint64_t)max_block) {
      nbdkit_error ("xz: block %" PRIu64 " is %" PRIu64 " bytes uncompressed,"
                    " more than xz-max-block=%" PRId64 " (recompress with"
                    " xz --block-size=SIZE, or raise xz-max-block)",
                    (uint64_t)it.block.number_in_file,
                    (uint64_t)it.block.uncompressed_size, max_block);
      return -1;
    }
  }
  nbdkit_debug ("xz: %" PRIu64 " streams, %" PRIu64 " blocks, %" PRIu64
                " bytes uncompressed",
                (uint64_t)lzma_index_stream_count (h->index),
                (uint64_t)lzma_index_block_count (h->index), h->size);
  return 0;
}

/* Decode the block IT describes into OUT (its uncompressed size). */
static int
decode_block (nbdkit_next *next, struct handle *h, const lzma_index_iter *it,
              char *out, int *err)
{
  lzma_filter filters[LZMA_FILTERS_MAX + 1];
  lzma_block block = { 0 };
  lzma_stream strm = LZMA_STREAM_INIT;
  uint64_t coff = it->block.compressed_file_offset;
  uint64_t cend = coff + it->block.total_size;
  unsigned char hdr[LZMA_BLOCK_HEADER_SIZE_MAX];
  lzma_ret r;

  if (nbdkit_next_pread (next, hdr, 1, coff, 0, NULL, err) == -1)
    return -1;
  block.version = 1;
  block.check = it->stream.flags->check;
  block.filters = filters;
  block.header_size = lzma_block_header_size_decode (hdr[0]);
  if (hdr[0] == 0 || coff + block.header_size > cend) {
    r = LZMA_DATA_ERROR;
    goto error;
  }
  if (nbdkit_next_pread (next, hdr, block.header_size, coff, 0, NULL, err)
      == -1)
    return -1;
  r = lzma_block_header_decode (&block, NULL, hdr);
  if (r != LZMA_OK)
    goto error;
  r = lzma_block_compressed_size (&block, it->block.unpadded_size);
  if (r == LZMA_OK)
    r = lzma_block_decoder (&strm, &block);
  for (size_t i = 0; filters[i].id != LZMA_VLI_UNKNOWN; i++)
    free (filters[i].options);
  if (r != LZMA_OK)
    goto error;

  coff += block.header_size;
  strm.next_out = (uint8_t *)out;
  strm.avail_out = it->block.uncompressed_size;
  do {
    if (strm.avail_in == 0) {
      uint64_t n = cend - coff < CHUNK ? cend - coff : CHUNK;
      if (n == 0) {
        r = LZMA_BUF_ERROR;
        break;
      }
      if (nbdkit_next_pread (next, h->cbuf, n, coff, 0, NULL, err) == -1) {
        lzma_end (&strm);
        return -1;
      }
      strm.next_in = (const uint8_t *)h->cbuf;
      strm.avail_in = n;
      coff += n;
    }
    r = lzma_code (&strm, LZMA_RUN);
  } while (r == LZMA_OK);
  if (r == LZMA_STREAM_END && strm.avail_out != 0)
    r = LZMA_DATA_ERROR;
  lzma_end (&strm);
  if (r == LZMA_STREAM_END)
    return 0;

error:
  nbdkit_error ("xz: block %" PRIu64 " at offset %" PRIu64 ": %s",
                (uint64_t)it->block.number_in_file,
                (uint64_t)it->block.compressed_file_offset, lzma_msg (r));
  *err = EIO;
  return -1;
}

/* The decoded block holding OFFSET, from the cache or decoded now. */
static struct cached *
get_block (nbdkit_next *next, struct handle *h, uint64_t offset, int *err)
{
  lzma_index_iter it;
  struct cached *c = NULL;

  for (int64_t i = 0; i < max_depth; i++) {
    struct cached *s = &h->cache[i];
    if (s->data && offset >= s->uoff && offset - s->uoff < s->usize) {
      s->used = ++h->clock;
      return s;
    }
  }
  lzma_index_iter_init (&it, h->index);
  if (lzma_index_iter_locate (&it, offset)) {
    nbdkit_error ("xz: offset %" PRIu64 " is past the end", offset);
    *err = EIO;
    return NULL;
  }
  /* The empty slot, or the least recently used one. */
  for (int64_t i = 0; i < max_depth; i++) {
    struct cached *s = &h->cache[i];
    if (c == NULL || s->data == NULL || s->used < c->used)
      c = s;
    if (s->data == NULL)
      break;
  }
  free (c->data);
  c->data = malloc (it.block.uncompressed_size);
  if (c->data == NULL) {
    nbdkit_error ("xz: out of memory for a block of %" PRIu64 " bytes",
                  (uint64_t)it.block.uncompressed_size);
    *err = ENOMEM;
    return NULL;
  }
  if (decode_block (next, h, &it, c->data, err) == -1) {
    free (c->data);
    c->data = NULL;
    return NULL;
  }
  c->uoff = it.block.uncompressed_file_offset;
  c->usize = it.block.uncompressed_size;
  c->used = ++h->clock;
  return c;
}

static int
xz_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
          uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  struct handle *h = handle;
  int r = 0;

  pthread_mutex_lock (&h->lock);
  while (count > 0) {
    struct cached *c = get_block (next, h, offset, err);
    uint64_t n;
    if (c == NULL) {
      r = -1;
      break;
    }
    n = c->uoff + c->usize - offset;
    if (n > count)
      n = count;
    memcpy (buf, c->data + (offset - c->uoff), n);
    buf = (char *)buf + n;
    offset += n;
    count -= n;
  }
  pthread_mutex_unlock (&h->lock);
  return r;
}

static int64_t
xz_get_size (nbdkit_next *next, void *handle)
{
  return ((struct handle *)handle)->size;
}

/* The plugin's block sizes are about compressed bytes: none here. */
static int
xz_block_size (nbdkit_next *next, void *handle, struct nbdkit_block_size *bs)
{
  return 0;
}

static int
xz_can_write (nbdkit_next *next, void *handle)
{
  return 0;
}

static int
xz_can_extents (nbdkit_next *next, void *handle)
{
  return NBDKIT_EXTENTS_EMULATE;
}

static int
xz_can_cache (nbdkit_next *next, void *handle)
{
  return NBDKIT_CACHE_EMULATE;
}

static int
xz_can_multi_conn (nbdkit_next *next, void *handle)
{
  return 1;
}

static const char *
xz_config_help (void)
{
  return "Serves the uncompressed contents of an xz file, read-only.";
}

static struct nbdkit_filter filter = {
  .name = "xz",
  .longname = "nbdkit xz filter",
  .description = "serve the uncompressed contents of an xz file",
  .params = xz_params,
  .config_complete = xz_config_complete,
  .config_help = xz_config_help,
  .open = xz_open,
  .close = xz_close,
  .prepare = xz_prepare,
  .get_size = xz_get_size,
  .block_size = xz_block_size,
  .can_write = xz_can_write,
  .can_extents = xz_can_extents,
  .can_cache = xz_can_cache,
  .can_multi_conn = xz_can_multi_conn,
  .pread = xz_pread,
  .pread_fills_buffer = 1, /* every byte comes from a decoded block */
};

NBDKIT_REGISTER_FILTER (filter)
