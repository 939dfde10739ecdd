/* file.c: the file plugin, disks backed by files or block devices.
 *
 *   nbdkit file [file=]PATH [fadvise=normal|random|sequential]
 *               [cache=default|none]
 *   nbdkit file dir=DIR          (or directory=DIR)
 *   nbdkit file fd=N             nbdkit file dirfd=N
 *
 * With file=, every export name serves PATH, a regular file or a block
 * device.  With dir=, each regular file in DIR is an export of that
 * name, listed in directory order; the default export ("") is refused,
 * as in nbdkit.  fd= and dirfd= are the same with a file or directory
 * the parent process opened and passed down as descriptor N.
 * cache=none keeps the data read and written out of the page cache.
 *
 * Each connection opens its own descriptor.  Trim punches holes, zero
 * uses the fastest fallocate mode the file system has, extents come
 * from SEEK_DATA/SEEK_HOLE, FUA and flush are fdatasync.  What the
 * file system turns out not to support is remembered per connection.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* fallocate, scandirat, O_DIRECTORY */
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <linux/fs.h> /* BLKGETSIZE64 */

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))

static const char *filename;
static const char *dir_path;
static const char *fadvise_name = "normal";
static const char *cache_mode = "default";
static int64_t fd_param = -1, dirfd_param = -1;
static char fd_label[32];     /* "fd=N" or "dirfd=N", for messages */
static const char *dir_label; /* "dir=DIR" or "dirfd=N", for messages */
static char dir_label_buf[PATH_MAX + 8];

static const struct nbdkit_param file_params[]
    = { { .name = "file",
          .type = NBDKIT_PARAM_FILE,
          .doc = "the regular file or block device to serve",
          .dest = &filename },
        { .name = "dir",
          .type = NBDKIT_PARAM_DIRECTORY,
          .doc = "serve each regular file in this directory as an export",
          .dest = &dir_path },
        { .name = "directory",
          .type = NBDKIT_PARAM_DIRECTORY,
          .doc = "the same as dir=",
          .dest = &dir_path },
        { .name = "fd",
          .type = NBDKIT_PARAM_INT,
          .doc = "serve the file open on this inherited file descriptor",
          .dest = &fd_param },
        { .name = "dirfd",
          .type = NBDKIT_PARAM_INT,
          .doc = "like dir=, the directory open on this file descriptor",
          .dest = &dirfd_param },
        { .name = "cache",
          .type = NBDKIT_PARAM_ENUM,
          .default_value = "default",
          .choices = "default|none",
          .doc = "none: keep data read and written out of the page cache",
          .dest = &cache_mode },
        { .name = "fadvise",
          .type = NBDKIT_PARAM_ENUM,
          .default_value = "normal",
          .choices = "normal|random|sequential",
          .doc = "how clients will access the file, as a hint to the kernel",
          .dest = &fadvise_name },
        { .name = NULL } };

static int dir_fd = -1; /* dir= or dirfd= */
static int advice = POSIX_FADV_NORMAL;
static bool cache_none;

struct handle {
  int fd;
  bool readonly;
  bool is_block;
  const char *path;           /* for messages */
  atomic_bool can_punch_hole; /* cleared when the fs says no */
  atomic_bool can_zero_range;
  atomic_bool can_fallocate; /* mode 0: allocate */
};

static int
file_config_complete (void)
{
  struct stat st;

  if ((filename != NULL) + (dir_path != NULL) + (fd_param >= 0)
          + (dirfd_param >= 0)
      != 1) {
    nbdkit_error ("give exactly one of file=PATH, dir=DIR, fd=N and dirfd=N");
    return -1;
  }

  if (fd_param >= 0) {
    snprintf (fd_label, sizeof fd_label, "fd=%" PRIi64, fd_param);
    filename = fd_label;
    if (fd_param > INT_MAX || fstat (fd_param, &st) == -1) {
      nbdkit_error ("%s: %m", fd_label);
      return -1;
    }
    if (!S_ISREG (st.st_mode) && !S_ISBLK (st.st_mode)) {
      nbdkit_error ("%s: not a regular file or block device", fd_label);
      return -1;
    }
  } else if (dirfd_param >= 0) {
    snprintf (fd_label, sizeof fd_label, "dirfd=%" PRIi64, dirfd_param);
    dir_path = dir_label = fd_label;
    if (dirfd_param > INT_MAX || fstat (dirfd_param, &st) == -1) {
      nbdkit_error ("%s: %m", fd_label);
      return -1;
    }
    if (!S_ISDIR (st.st_mode)) {
      nbdkit_error ("%s: not a directory", fd_label);
      return -1;
    }
    dir_fd = fcntl (dirfd_param, F_DUPFD_CLOEXEC, 3);
    if (dir_fd == -1) {
      nbdkit_error ("%s: %m", fd_label);
      return -1;
    }
  } else if (filename) {
    if (stat (filename, &st) == -1) {
      nbdkit_error ("file=%s: %m", filename);
      return -1;
    }
    if (!S_ISREG (st.st_mode) && !S_ISBLK (st.st_mode)) {
      nbdkit_error ("file=%s: not a regular file or block device", filename);
      return -1;
    }
  } else {
    snprintf (dir_label_buf, sizeof dir_label_buf, "dir=%s", dir_path);
    dir_label = dir_label_buf;
    dir_fd = open (dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd == -1) {
      nbdkit_error ("dir=%s: %m", dir_path);
      return -1;
    }
  }

  if (strcmp (fadvise_name, "random") == 0)
    advice = POSIX_FADV_RANDOM;
  else if (strcmp (fadvise_name, "sequential") == 0)
    advice = POSIX_FADV_SEQUENTIAL;
  else
    advice = POSIX_FADV_NORMAL;
  cache_none = strcmp (cache_mode, "none") == 0;
  return 0;
}

static void
file_unload (void)
{
  if (dir_fd >= 0)
    close (dir_fd);
  dir_fd = -1;
}

static int
file_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_PARALLEL;
}

/* scandirat filter: regular files (symbolic links followed). */
static int
is_export (const struct dirent *d)
{
  struct stat st;

  return fstatat (dir_fd, d->d_name, &st, 0) == 0 && S_ISREG (st.st_mode);
}

/* The exports of dir=, in directory order as nbdkit lists them; the
 * count, or -1 on error.
 */
static int
scan_dir (struct dirent ***list)
{
  int n = scandirat (dir_fd, ".", list, is_export, NULL);

  if (n == -1)
    nbdkit_error ("%s: cannot list the directory: %m", dir_label);
  return n;
}

static void
free_list (struct dirent **list, int n)
{
  int i;

  for (i = 0; i < n; i++)
    free (list[i]);
  free (list);
}

static int
file_list_exports (int readonly, int is_tls, struct nbdkit_exports *exports)
{
  struct dirent **list;
  int i, n, r = 0;

  if (filename)
    return nbdkit_use_default_export (exports);

  n = scan_dir (&list);
  if (n == -1)
    return -1;
  for (i = 0; i < n && r == 0; i++)
    r = nbdkit_add_export (exports, list[i]->d_name, NULL);
  free_list (list, n);
  return r;
}

/* dir=: no default export, as in nbdkit (the exportname filter can
 * name one).
 */
static const char *
file_default_export (int readonly, int is_tls)
{
  return "";
}

/* Errors of open for writing after which opening read-only may work. */
static bool
may_retry_readonly (int err)
{
  return err == EACCES || err == EROFS || err == EPERM;
}

/* Open export NAME of dir= with FLAGS.  The name must be a file in the
 * directory itself.  O_NONBLOCK: a FIFO put there must not hang the
 * open; it does nothing to regular files.
 */
static int
open_in_dir (const char *name, int flags, bool quiet, const char **path)
{
  struct stat st;
  int fd;

  if (*name == '\0') {
    nbdkit_error ("%s: there is no default export: ask for a file "
                  "by name (nbdinfo --list shows them)",
                  dir_label);
    nbdkit_set_error (ENOENT);
    errno = ENOENT;
    return -1;
  }
  if (strchr (name, '/') || strcmp (name, ".") == 0
      || strcmp (name, "..") == 0) {
    nbdkit_error ("export '%s': an export name of dir= is a file name "
                  "in the directory, without '/'",
                  name);
    nbdkit_set_error (EINVAL);
    errno = EINVAL;
    return -1;
  }
  *path = nbdkit_printf_intern ("%s/%s", dir_path, name);
  if (*path == NULL)
    return -1;

  /* Check first, so that a directory or a device in DIR gets the same
   * answer as a missing file.
   */
  if (fstatat (dir_fd, name, &st, 0) == 0 && !S_ISREG (st.st_mode))
    goto not_regular;

  fd = openat (dir_fd, name, flags | O_NONBLOCK);
  if (fd == -1) {
    if (quiet && may_retry_readonly (errno))
      return -1;
    if (errno == ENOENT)
      nbdkit_error ("export '%s' not found in %s", name, dir_label);
    else
      nbdkit_error ("export '%s': %s: %m", name, *path);
    nbdkit_set_error (errno);
    return -1;
  }
  if (fstat (fd, &st) == -1 || !S_ISREG (st.st_mode)) {
    close (fd);
    goto not_regular;
  }
  return fd;

not_regular:
  nbdkit_error ("export '%s' not found in %s: %s is not a regular file", name,
                dir_label, *path);
  nbdkit_set_error (ENOENT);
  errno = ENOENT;
  return -1;
}

/* Open the file of export NAME.  With QUIET, an error after which a
 * read-only open may work is not logged (errno tells).
 */
static int
open_path (const char *name, bool readonly, bool quiet, const char **path)
{
  const int flags = (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  int fd;

  if (dir_path)
    return open_in_dir (name, flags, quiet, path);

  *path = filename;
  if (fd_param >= 0) {
    /* Each connection gets its own descriptor, of the file's mode. */
    int mode = fcntl (fd_param, F_GETFL);
    if (mode != -1 && !readonly && (mode & O_ACCMODE) == O_RDONLY) {
      errno = EACCES;
      return -1;
    }
    fd = mode == -1 ? -1 : fcntl (fd_param, F_DUPFD_CLOEXEC, 3);
    if (fd == -1)
      nbdkit_error ("%s: %m", filename);
    return fd;
  }
  fd = open (filename, flags);
  if (fd == -1 && !(quiet && may_retry_readonly (errno)))
    nbdkit_error ("file=%s: %m", filename);
  return fd;
}

static void *
file_open (int readonly, const char *exportname, int is_tls)
{
  struct handle *h;
  struct stat st;
  int err;

  h = calloc (1, sizeof *h);
  if (h == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  h->readonly = readonly;
  h->path = exportname;
  atomic_init (&h->can_punch_hole, true);
  atomic_init (&h->can_zero_range, true);
  atomic_init (&h->can_fallocate, true);

  /* A file we may not write is still served, read-only, as nbdkit
   * does.
   */
  h->fd = open_path (exportname, readonly, !readonly, &h->path);
  if (h->fd == -1 && !readonly && may_retry_readonly (errno)) {
    nbdkit_debug ("%s: cannot open for writing (%m), serving it read-only",
                  h->path);
    h->readonly = true;
    h->fd = open_path (exportname, true, false, &h->path);
  }
  if (h->fd == -1) {
    free (h);
    return NULL;
  }

  if (fstat (h->fd, &st) == -1) {
    nbdkit_error ("%s: fstat: %m", h->path);
    close (h->fd);
    free (h);
    return NULL;
  }
  h->is_block = S_ISBLK (st.st_mode);

  if (advice != POSIX_FADV_NORMAL) {
    err = posix_fadvise (h->fd, 0, 0, advice);
    if (err)
      nbdkit_debug ("%s: posix_fadvise: error %d (ignored)", h->path, err);
  }
  return h;
}

static void
file_close (void *handle)
{
  struct handle *h = handle;

  close (h->fd);
  free (h);
}

static int64_t
file_get_size (void *handle)
{
  struct handle *h = handle;
  struct stat st;
  uint64_t size;

  if (fstat (h->fd, &st) == -1) {
    nbdkit_error ("%s: fstat: %m", h->path);
    return -1;
  }
  if (!S_ISBLK (st.st_mode))
    return st.st_size;
  if (ioctl (h->fd, BLKGETSIZE64, &size) == -1) {
    nbdkit_error ("%s: ioctl BLKGETSIZE64: %m", h->path);
    return -1;
  }
  return size;
}

static int
file_can_write (void *handle)
{
  struct handle *h = handle;

  return !h->readonly;
}

static int
file_can_true (void *handle)
{
  return 1;
}

static int
file_can_zero (void *handle)
{
  return NBDKIT_ZERO_NATIVE;
}

static int
file_can_fua (void *handle)
{
  return NBDKIT_FUA_NATIVE;
}

/* SEEK_DATA answers for regular files on file systems that know
 * holes (ENXIO just means no data after 0).  Elsewhere the server
 * reports all data.
 */
static int
file_can_extents (void *handle)
{
  struct handle *h = handle;

  if (h->is_block)
    return NBDKIT_EXTENTS_EMULATE;
  if (lseek (h->fd, 0, SEEK_DATA) == -1 && errno != ENXIO) {
    nbdkit_debug ("%s: SEEK_DATA: %m: reporting all data", h->path);
    return NBDKIT_EXTENTS_EMULATE;
  }
  return NBDKIT_EXTENTS_NATIVE;
}

static int
file_can_cache (void *handle)
{
  return NBDKIT_CACHE_NATIVE;
}

/* cache=none: drop [OFFSET, OFFSET+COUNT) from the page cache once the
 * request is done; written pages must reach the disk first, or the
 * kernel keeps them.  Failures only cost memory, so they are ignored.
 */
static void
drop_cache (struct handle *h, uint64_t count, uint64_t offset, bool written)
{
  if (!cache_none || h->is_block || count == 0)
    return;
  if (written)
    sync_file_range (h->fd, offset, count,
                     SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE
                         | SYNC_FILE_RANGE_WAIT_AFTER);
  posix_fadvise (h->fd, offset, count, POSIX_FADV_DONTNEED);
}

static int
file_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
            uint32_t flags, struct nbdkit_read *rd)
{
  struct handle *h = handle;
  const uint64_t start = offset;
  uint8_t *p = buf;
  ssize_t r;
  int err;

  while (count > 0) {
    r = pread (h->fd, p, MIN (count, (uint64_t)SSIZE_MAX), offset);
    if (r == -1 && errno == EINTR)
      continue;
    if (r <= 0) {
      err = r == 0 ? EIO : errno;
      if (r == 0)
        nbdkit_error ("%s: end of file at offset %" PRIu64
                      " (did the file shrink?)",
                      h->path, offset);
      else
        nbdkit_error ("%s: read at offset %" PRIu64 ": %m", h->path, offset);
      /* What was read before the error still reaches the client. */
      if (rd && offset > start)
        nbdkit_read_error_at (rd, offset);
      nbdkit_set_error (err);
      errno = err;
      return -1;
    }
    p += r;
    offset += r;
    count -= r;
  }
  drop_cache (h, offset - start, start, false);
  return 0;
}

static int
file_pwrite (void *handle, const void *buf, uint64_t count, uint64_t offset,
             uint32_t flags)
{
  struct handle *h = handle;
  const uint8_t *p = buf;
  const uint64_t start = offset;
  ssize_t r;

  while (count > 0) {
    r = pwrite (h->fd, p, MIN (count, (uint64_t)SSIZE_MAX), offset);
    if (r == -1 && errno == EINTR)
      continue;
    if (r <= 0) {
      if (r == 0)
        errno = EIO;
      nbdkit_error ("%s: write at offset %" PRIu64 ": %m", h->path, offset);
      return -1;
    }
    p += r;
    offset += r;
    count -= r;
  }

  if ((flags & NBDKIT_FLAG_FUA) && fdatasync (h->fd) == -1) {
    nbdkit_error ("%s: fdatasync: %m", h->path);
    return -1;
  }
  drop_cache (h, offset - start, start, true);
  return 0;
}

static int
file_flush (void *handle, uint32_t flags)
{
  struct handle *h = handle;

  if (fdatasync (h->fd) == -1) {
    nbdkit_error ("%s: fdatasync: %m", h->path);
    return -1;
  }
  return 0;
}

static int
do_fallocate (int fd, int mode, uint64_t offset, uint64_t count)
{
  int r;

  do
    r = fallocate (fd, mode, offset, count);
  while (r == -1 && errno == EINTR);
  return r;
}

/* The file system (or device) lacks this fallocate mode. */
static bool
is_enotsup (int err)
{
  return err == EOPNOTSUPP || err == ENOTSUP || err == ENOSYS;
}

/* Run one fallocate mode if not known to be unsupported: 0 if it
 * worked, 1 if unsupported (now remembered), -1 on a real error.
 */
static int
try_fallocate (struct handle *h, atomic_bool *can, const char *what, int mode,
               uint64_t count, uint64_t offset)
{
  if (!atomic_load_explicit (can, memory_order_relaxed))
    return 1;
  if (do_fallocate (h->fd, mode, offset, count) == 0)
    return 0;
  if (is_enotsup (errno)) {
    nbdkit_debug ("%s: fallocate %s not supported: %m", h->path, what);
    atomic_store_explicit (can, false, memory_order_relaxed);
    return 1;
  }
  nbdkit_error ("%s: fallocate %s of %" PRIu64 " bytes at offset %" PRIu64
                ": %m",
                h->path, what, count, offset);
  return -1;
}

static int
fua_sync (struct handle *h, uint32_t flags)
{
  if ((flags & NBDKIT_FLAG_FUA) && fdatasync (h->fd) == -1) {
    nbdkit_error ("%s: fdatasync: %m", h->path);
    return -1;
  }
  return 0;
}

/* Trim is advisory: where holes cannot be punched it does nothing. */
static int
file_trim (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  struct handle *h = handle;

  if (try_fallocate (h, &h->can_punch_hole, "PUNCH_HOLE",
                     FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, count, offset)
      == -1)
    return -1;
  return fua_sync (h, flags);
}

/* -D file.zero=1: say how each zero request was done. */
NBDKIT_DLL_PUBLIC int file_debug_zero = 0;

static int
zeroed (struct handle *h, uint32_t flags, const char *how)
{
  if (file_debug_zero)
    nbdkit_debug ("%s: zero succeeded using %s", h->path, how);
  return fua_sync (h, flags);
}

/* Fast ways first.  A punched hole reads as zeroes, in files and (on
 * Linux, where it never falls back to writing) in block devices; it
 * is used only when the client allows deallocation.  ZERO_RANGE keeps
 * the range allocated; on a block device it may fall back to writing
 * zeroes, so it is not used for a fast zero there.  A file system
 * with neither can punch and then allocate again.  When nothing fast
 * is left, the server writes the zeroes (EOPNOTSUPP), or a fast zero
 * fails with ENOTSUP as the protocol asks.
 */
static int
file_zero (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  struct handle *h = handle;
  const bool fast = flags & NBDKIT_FLAG_FAST_ZERO;
  int r;

  if (flags & NBDKIT_FLAG_MAY_TRIM) {
    r = try_fallocate (h, &h->can_punch_hole, "PUNCH_HOLE",
                       FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, count,
                       offset);
    if (r <= 0)
      return r == 0 ? zeroed (h, flags, "PUNCH_HOLE") : -1;
  }

  if (!(fast && h->is_block)) {
    r = try_fallocate (h, &h->can_zero_range, "ZERO_RANGE",
                       FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, count,
                       offset);
    if (r <= 0)
      return r == 0 ? zeroed (h, flags, "ZERO_RANGE") : -1;
  }

  if (!h->is_block && atomic_load (&h->can_fallocate)
      && atomic_load (&h->can_punch_hole)) {
    r = try_fallocate (h, &h->can_punch_hole, "PUNCH_HOLE",
                       FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, count,
                       offset);
    if (r == -1)
      return -1;
    if (r == 0) {
      /* The range reads as zeroes now; allocating it again is a
       * courtesy to clients that asked for no hole.
       */
      if (try_fallocate (h, &h->can_fallocate, "allocate", 0, count, offset)
          == -1)
        return -1;
      return zeroed (h, flags, "PUNCH_HOLE and allocate");
    }
  }

  if (file_debug_zero)
    nbdkit_debug ("%s: zero: no fast way, %s", h->path,
                  fast ? "fast zero refused" : "the server writes zeroes");
  nbdkit_set_error (fast ? ENOTSUP : EOPNOTSUPP);
  errno = fast ? ENOTSUP : EOPNOTSUPP;
  return -1;
}

static int
file_extents (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
              struct nbdkit_extents *extents)
{
  struct handle *h = handle;
  const bool req_one = flags & NBDKIT_FLAG_REQ_ONE;
  const uint64_t end = offset + count;
  uint64_t next;
  uint32_t type;
  off_t pos;

  while (offset < end) {
    pos = lseek (h->fd, offset, SEEK_DATA);
    if (pos == -1) {
      if (errno != ENXIO) {
        nbdkit_error ("%s: lseek SEEK_DATA at offset %" PRIu64 ": %m", h->path,
                      offset);
        return -1;
      }
      /* No data from here to the end of the file. */
      pos = lseek (h->fd, 0, SEEK_END);
      if (pos == -1 || (uint64_t)pos <= offset)
        pos = end;
    }
    /* The last extent is given whole, even past END: the server may
     * pass it on, and the client then asks less often.
     */
    if ((uint64_t)pos > offset) {
      next = pos;
      type = NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
    } else {
      pos = lseek (h->fd, offset, SEEK_HOLE);
      if (pos == -1) {
        nbdkit_error ("%s: lseek SEEK_HOLE at offset %" PRIu64 ": %m", h->path,
                      offset);
        return -1;
      }
      next = (uint64_t)pos > offset ? (uint64_t)pos : end;
      type = 0;
    }
    if (nbdkit_add_extent (extents, offset, next - offset, type) == -1)
      return -1;
    if (req_one)
      break;
    offset = next;
  }
  return 0;
}

static int
file_cache (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  struct handle *h = handle;
  int err;

  err = posix_fadvise (h->fd, offset, count, POSIX_FADV_WILLNEED);
  if (err) {
    errno = err;
    nbdkit_error ("%s: posix_fadvise WILLNEED at offset %" PRIu64 ": %m",
                  h->path, offset);
    return -1;
  }
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name = "file",
  .longname = "nbdkit file plugin",
  .version = NBDKIT_VERSION,
  .description = "Serve a file or block device, or each file in a directory.",
  .params = file_params,
  .magic_config_key = "file",
  .config_complete = file_config_complete,
  .unload = file_unload,
  .thread_model = file_thread_model,
  .list_exports = file_list_exports,
  .default_export = file_default_export,
  .open = file_open,
  .close = file_close,
  .get_size = file_get_size,
  .can_write = file_can_write,
  .can_flush = file_can_true,
  .can_trim = file_can_true,
  .can_zero = file_can_zero,
  .can_fast_zero = file_can_true,
  .can_fua = file_can_fua,
  .can_multi_conn = file_can_true,
  .can_extents = file_can_extents,
  .can_cache = file_can_cache,
  .pread = file_pread,
  .pread_fills_buffer = 1, /* every byte, or a hole */
  .pwrite = file_pwrite,
  .flush = file_flush,
  .trim = file_trim,
  .zero = file_zero,
  .extents = file_extents,
  .cache = file_cache,
};

NBDKIT_REGISTER_PLUGIN (plugin)
