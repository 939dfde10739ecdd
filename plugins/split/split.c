/* split.c: the split plugin, several files served as one disk.
 *
 *   nbdkit split [file=]FILE1 [file=]FILE2 ...
 *
 * The files are concatenated in the order given.  Requests that span
 * files are split at the boundaries.  Each file is opened read-write
 * if it can be, else read-only (and then the disk is read-only).
 * Extents come from each file's SEEK_DATA/SEEK_HOLE.  The files must
 * not change size while served.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* SEEK_DATA */
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

struct file {
  char *path;
  int fd;
  uint64_t off, size; /* where it starts in the disk, its length */
  bool can_extents;
};

static struct file *files;
static size_t nfiles;
static bool readonly_files;
static uint64_t total;

static const struct nbdkit_param split_params[]
    = { { .name = "file",
          .type = NBDKIT_PARAM_FILE,
          .flags = NBDKIT_PARAM_REQUIRED | NBDKIT_PARAM_MULTIPLE,
          .doc = "a file to add at the end of the disk (repeat in order)" },
        { .name = NULL } };

static int
split_config (const char *key, const char *value)
{
  struct file *f = realloc (files, (nfiles + 1) * sizeof *f);

  if (f == NULL) {
    nbdkit_error ("realloc: %m");
    return -1;
  }
  files = f;
  files[nfiles] = (struct file){ .path = strdup (value), .fd = -1 };
  if (files[nfiles].path == NULL) {
    nbdkit_error ("strdup: %m");
    return -1;
  }
  nfiles++;
  return 0;
}

static int
split_config_complete (void)
{
  for (size_t i = 0; i < nfiles; i++) {
    struct file *f = &files[i];
    struct stat st;

    f->fd = open (f->path, O_RDWR | O_CLOEXEC);
    if (f->fd == -1 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
      f->fd = open (f->path, O_RDONLY | O_CLOEXEC);
      readonly_files = true;
    }
    if (f->fd == -1 || fstat (f->fd, &st) == -1) {
      nbdkit_error ("file=%s: %m", f->path);
      return -1;
    }
    if (!S_ISREG (st.st_mode)) {
      nbdkit_error ("file=%s: not a regular file", f->path);
      return -1;
    }
    f->off = total;
    f->size = st.st_size;
    total += f->size;
    f->can_extents = lseek (f->fd, 0, SEEK_DATA) != -1 || errno == ENXIO;
  }
  return 0;
}

static void
split_unload (void)
{
  for (size_t i = 0; i < nfiles; i++) {
    if (files[i].fd >= 0)
      close (files[i].fd);
    free (files[i].path);
  }
  free (files);
}

static int
split_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_PARALLEL;
}

static void *
split_open (int readonly, const char *exportname, int is_tls)
{
  return &files;
}

static int64_t
split_get_size (void *handle)
{
  return total;
}

static int
split_can_write (void *handle)
{
  return !readonly_files;
}

static int
split_true (void *handle)
{
  return 1;
}

static int
split_can_extents (void *handle)
{
  return NBDKIT_EXTENTS_NATIVE;
}

/* The file holding OFFSET (files of size 0 hold nothing). */
static size_t
find (uint64_t offset)
{
  size_t lo = 0, hi = nfiles;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (files[mid].off + files[mid].size <= offset)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Run IO over [OFFSET, OFFSET+COUNT) file by file, looping over short
 * transfers.
 */
static int
do_io (bool write, void *buf, uint64_t count, uint64_t offset)
{
  char *p = buf;

  for (size_t i = find (offset); count > 0 && i < nfiles; i++) {
    struct file *f = &files[i];
    uint64_t in = offset - f->off;
    uint64_t n = f->size - in < count ? f->size - in : count;
    while (n > 0) {
      ssize_t r = write ? pwrite (f->fd, p, n, in) : pread (f->fd, p, n, in);
      if (r == -1 && errno == EINTR)
        continue;
      if (r <= 0) {
        if (r == 0)
          errno = EIO;
        nbdkit_error ("%s %s at %" PRIu64 ": %m", write ? "pwrite" : "pread",
                      f->path, in);
        return -1;
      }
      p += r;
      in += r;
      offset += r;
      count -= r;
      n -= r;
    }
  }
  return 0;
}

static int
split_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
             uint32_t flags, struct nbdkit_read *rd)
{
  return do_io (false, buf, count, offset);
}

static int
split_flush (void *handle, uint32_t flags)
{
  for (size_t i = 0; i < nfiles; i++)
    if (fdatasync (files[i].fd) == -1) {
      nbdkit_error ("fdatasync %s: %m", files[i].path);
      return -1;
    }
  return 0;
}

static int
split_pwrite (void *handle, const void *buf, uint64_t count, uint64_t offset,
              uint32_t flags)
{
  if (do_io (true, (void *)buf, count, offset) == -1)
    return -1;
  return (flags & NBDKIT_FLAG_FUA) ? split_flush (handle, 0) : 0;
}

static int
split_can_fua (void *handle)
{
  return NBDKIT_FUA_NATIVE;
}

/* Each file's data and holes, from SEEK_DATA and SEEK_HOLE. */
static int
split_extents (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
               struct nbdkit_extents *extents)
{
  const uint32_t hole = NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
  const uint64_t end = offset + count;

  for (size_t i = find (offset); i < nfiles && offset < end; i++) {
    struct file *f = &files[i];
    uint64_t fend = f->off + f->size < end ? f->off + f->size : end;
    if (!f->can_extents) {
      if (nbdkit_add_extent (extents, offset, fend - offset, 0) == -1)
        return -1;
      offset = fend;
      continue;
    }
    while (offset < fend) {
      off_t in = offset - f->off;
      off_t d = lseek (f->fd, in, SEEK_DATA);
      if (d == -1 && errno != ENXIO) {
        nbdkit_error ("lseek %s: %m", f->path);
        return -1;
      }
      if (d == -1 || (uint64_t)d >= f->size)
        d = f->size;
      if (d > in) {
        uint64_t e = f->off + d < fend ? f->off + d : fend;
        if (nbdkit_add_extent (extents, offset, e - offset, hole) == -1)
          return -1;
        offset = e;
        continue;
      }
      off_t h = lseek (f->fd, in, SEEK_HOLE);
      if (h == -1 || (uint64_t)h > f->size)
        h = f->size;
      uint64_t e = f->off + h < fend ? f->off + h : fend;
      if (e <= offset)
        e = fend;
      if (nbdkit_add_extent (extents, offset, e - offset, 0) == -1)
        return -1;
      offset = e;
    }
    if (flags & NBDKIT_FLAG_REQ_ONE)
      break;
  }
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name = "split",
  .longname = "nbdkit split plugin",
  .version = NBDKIT_VERSION,
  .description = "several files concatenated into one disk",
  .params = split_params,
  .magic_config_key = "file",
  .config = split_config,
  .config_complete = split_config_complete,
  .unload = split_unload,
  .thread_model = split_thread_model,
  .open = split_open,
  .get_size = split_get_size,
  .can_write = split_can_write,
  .can_flush = split_true,
  .can_fua = split_can_fua,
  .can_multi_conn = split_true,
  .can_extents = split_can_extents,
  .pread = split_pread,
  .pread_fills_buffer = 1, /* every byte, or a hole */
  .pwrite = split_pwrite,
  .flush = split_flush,
  .extents = split_extents,
};

NBDKIT_REGISTER_PLUGIN (plugin)
