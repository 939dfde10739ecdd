/* ext2.c: serve one file inside an ext2, ext3 or ext4 filesystem.
 *
 * The filesystem is the layer below.  libext2fs reaches it through an
 * io_manager of our own whose block reads and writes become
 * nbdkit_next_pread and nbdkit_next_pwrite on the connection's next
 * layer, so any plugin (and any filter stack) can hold the image.  The
 * library is not thread safe and two connections writing the same
 * filesystem would corrupt it, so connections are serialized.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <com_err.h>
#include <ext2fs.h>

#include <nbdkit-filter.h>

static const char *ext2file;

static const struct nbdkit_param ext2_params[]
    = { { .name = "ext2file",
          .type = NBDKIT_PARAM_STRING,
          .flags = NBDKIT_PARAM_REQUIRED,
          .doc = "absolute path of the file inside the filesystem, or"
                 " 'exportname' to take it from the export name",
          .dest = &ext2file },
        { .name = NULL } };

static bool
from_exportname (void)
{
  return strcmp (ext2file, "exportname") == 0;
}

static const char *
ext2_config_help (void)
{
  return "Serves the file ext2file= inside an ext2/3/4 filesystem.";
}

static void
ext2_load (void)
{
  initialize_ext2_error_table ();
}

static int
ext2_config_complete (void)
{
  if (!from_exportname () && ext2file[0] != '/') {
    nbdkit_error ("ext2file=%s: the path must be absolute (start with /)"
                  " or be 'exportname'",
                  ext2file);
    return -1;
  }
  return 0;
}

static int
ext2_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS;
}

struct handle {
  nbdkit_next *next; /* set on every call: the io_manager uses it */
  char *path;        /* inside the filesystem */
  int readonly;
  ext2_filsys fs;
  ext2_ino_t ino;
  ext2_file_t file;
};

/* ---- the io_manager over the layer below ---- */

/* The channel's private data: the connection's handle. */
static struct struct_io_manager next_io_manager;

/* NAME is "next:<address of the handle>". */
static errcode_t
nio_open (const char *name, int flags, io_channel *channel)
{
  struct handle *h;
  io_channel c;
  void *p;

  if (sscanf (name, "next:%p", &p) != 1)
    return EXT2_ET_BAD_DEVICE_NAME;
  h = p;
  c = calloc (1, sizeof *c);
  if (c == NULL)
    return ENOMEM;
  c->name = strdup (name);
  if (c->name == NULL) {
    free (c);
    return ENOMEM;
  }
  c->magic = EXT2_ET_MAGIC_IO_CHANNEL;
  c->manager = &next_io_manager;
  c->block_size = 1024;
  c->refcount = 1;
  c->flags = flags;
  c->private_data = h;
  *channel = c;
  return 0;
}

static errcode_t
nio_close (io_channel c)
{
  if (--c->refcount > 0)
    return 0;
  free (c->name);
  free (c);
  return 0;
}

static errcode_t
nio_set_blksize (io_channel c, int blksize)
{
  c->block_size = blksize;
  return 0;
}

/* COUNT blocks, or -COUNT bytes when negative. */
static uint64_t
nio_bytes (io_channel c, int count)
{
  return count < 0 ? (uint64_t) - (int64_t)count
                   : (uint64_t)count * c->block_size;
}

static errcode_t
nio_read64 (io_channel c, unsigned long long block, int count, void *data)
{
  struct handle *h = c->private_data;
  uint64_t n = nio_bytes (c, count), off = block * c->block_size;
  int err = 0;

  if (h->next == NULL)
    return EXT2_ET_SHORT_READ;
  if (nbdkit_next_pread (h->next, data, n, off, 0, NULL, &err) == -1)
    return err ? err : EIO;
  return 0;
}

static errcode_t
nio_write64 (io_channel c, unsigned long long block, int count,
             const void *data)
{
  struct handle *h = c->private_data;
  uint64_t n = nio_bytes (c, count), off = block * c->block_size;
  int err = 0;

  if (h->next == NULL)
    return EXT2_ET_SHORT_WRITE;
  if (nbdkit_next_pwrite (h->next, data, n, off, 0, &err) == -1)
    return err ? err : EIO;
  return 0;
}

static errcode_t
nio_read (io_channel c, unsigned long block, int count, void *data)
{
  return nio_read64 (c, block, count, data);
}

static errcode_t
nio_write (io_channel c, unsigned long block, int count, const void *data)
{
  return nio_write64 (c, block, count, data);
}

static errcode_t
nio_write_byte (io_channel c, unsigned long offset, int count, const void *data)
{
  struct handle *h = c->private_data;
  int err = 0;

  if (h->next == NULL || count < 0)
    return EXT2_ET_SHORT_WRITE;
  if (nbdkit_next_pwrite (h->next, data, count, offset, 0, &err) == -1)
    return err ? err : EIO;
  return 0;
}

static errcode_t
nio_flush (io_channel c)
{
  struct handle *h = c->private_data;
  int err = 0;

  if (h->next == NULL || h->readonly)
    return 0;
  if (nbdkit_next_can_flush (h->next) != 1)
    return 0;
  if (nbdkit_next_flush (h->next, 0, &err) == -1)
    return err ? err : EIO;
  return 0;
}

static errcode_t
nio_set_option (io_channel c, const char *option, const char *arg)
{
  return EXT2_ET_INVALID_ARGUMENT;
}

static struct struct_io_manager next_io_manager = {
  .magic = EXT2_ET_MAGIC_IO_MANAGER,
  .name = "nbdkit next layer",
  .open = nio_open,
  .close = nio_close,
  .set_blksize = nio_set_blksize,
  .read_blk = nio_read,
  .write_blk = nio_write,
  .flush = nio_flush,
  .write_byte = nio_write_byte,
  .set_option = nio_set_option,
  .read_blk64 = nio_read64,
  .write_blk64 = nio_write64,
};

/* ---- the filter ---- */

static void *
ext2_open (nbdkit_context *ctx, int readonly, const char *exportname,
           int is_tls)
{
  struct handle *h;
  const char *path = ext2file;

  if (from_exportname ()) {
    /* NBD URIs drop the leading slash: a relative name is taken from
     * the root as well.
     */
    if (exportname[0] == '\0') {
      nbdkit_error ("ext2: ext2file=exportname: the client must name the"
                    " file to serve in the export name");
      return NULL;
    }
    path = exportname;
    /* The layer below serves the default export. */
    if (nbdkit_next_open (ctx, readonly, "") == -1)
      return NULL;
  } else if (nbdkit_next_open (ctx, readonly, exportname) == -1)
    return NULL;

  h = calloc (1, sizeof *h);
  if (h == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  h->path = strdup (path);
  if (h->path == NULL) {
    nbdkit_error ("strdup: %m");
    free (h);
    return NULL;
  }
  h->readonly = readonly;
  return h;
}

static void
release (struct handle *h)
{
  if (h->file) {
    ext2fs_file_close (h->file);
    h->file = NULL;
  }
  if (h->fs) {
    if (h->next) {
      errcode_t e = ext2fs_close2 (h->fs, 0);
      if (e)
        nbdkit_error ("ext2: closing the filesystem: %s", error_message (e));
    } else
      ext2fs_free (h->fs);
    h->fs = NULL;
  }
}

static int
ext2_prepare (nbdkit_next *next, void *handle, int readonly)
{
  struct handle *h = handle;
  char name[64];
  errcode_t e;
  struct ext2_inode inode;
  int flags = EXT2_FLAG_64BITS | (readonly ? 0 : EXT2_FLAG_RW);

  h->next = next;
  h->readonly = readonly;
  snprintf (name, sizeof name, "next:%p", (void *)h);
  e = ext2fs_open2 (name, NULL, flags, 0, 0, &next_io_manager, &h->fs);
  if (e) {
    h->fs = NULL;
    nbdkit_error ("ext2: the layer below is not an ext2/3/4 filesystem or"
                  " cannot be opened: %s",
                  error_message (e));
    return -1;
  }
  if (!readonly && ext2fs_has_feature_journal_needs_recovery (h->fs->super)) {
    nbdkit_error ("ext2: the filesystem's journal needs recovery (run e2fsck"
                  " on it first, or serve it read-only with -r)");
    goto fail;
  }
  e = ext2fs_namei (h->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, h->path, &h->ino);
  if (e) {
    nbdkit_error ("ext2: %s: %s", h->path, error_message (e));
    goto fail;
  }
  e = ext2fs_read_inode (h->fs, h->ino, &inode);
  if (e) {
    nbdkit_error ("ext2: %s: reading its inode: %s", h->path,
                  error_message (e));
    goto fail;
  }
  if (!LINUX_S_ISREG (inode.i_mode)) {
    nbdkit_error ("ext2: %s is not a regular file", h->path);
    goto fail;
  }
  e = ext2fs_file_open (h->fs, h->ino, readonly ? 0 : EXT2_FILE_WRITE,
                        &h->file);
  if (e) {
    h->file = NULL;
    nbdkit_error ("ext2: %s: opening it: %s", h->path, error_message (e));
    goto fail;
  }
  return 0;

fail:
  release (h);
  return -1;
}

static int
ext2_finalize (nbdkit_next *next, void *handle)
{
  struct handle *h = handle;
  h->next = next;
  release (h);
  return 0;
}

static void
ext2_close (void *handle)
{
  struct handle *h = handle;
  h->next = NULL; /* nothing more reaches the layer below */
  release (h);
  free (h->path);
  free (h);
}

static int64_t
ext2_get_size (nbdkit_next *next, void *handle)
{
  struct handle *h = handle;
  return ext2fs_file_get_size (h->file);
}

static const char *
ext2_export_description (nbdkit_next *next, void *handle)
{
  struct handle *h = handle;
  const char *below = nbdkit_next_export_description (next);

  if (below)
    return nbdkit_printf_intern ("%s inside the ext2 filesystem of: %s",
                                 h->path, below);
  return nbdkit_printf_intern ("%s inside an ext2 filesystem", h->path);
}

static int
ext2_can_none (nbdkit_next *next, void *handle)
{
  return 0;
}

static int
ext2_can_zero (nbdkit_next *next, void *handle)
{
  return NBDKIT_ZERO_EMULATE;
}

static int
ext2_can_cache (nbdkit_next *next, void *handle)
{
  return NBDKIT_CACHE_NONE;
}

static int
ext2_can_flush (nbdkit_next *next, void *handle)
{
  return 1;
}

static int
ext2_can_fua (nbdkit_next *next, void *handle)
{
  return NBDKIT_FUA_EMULATE;
}

/* errno for an ext2fs error code. */
static int
to_errno (errcode_t e)
{
  if (e > 0 && e < 4096)
    return e;
  if (e == EXT2_ET_BLOCK_ALLOC_FAIL || e == EXT2_ET_INODE_ALLOC_FAIL
      || e == EXT2_ET_DIR_NO_SPACE)
    return ENOSPC;
  if (e == EXT2_ET_RO_FILSYS)
    return EROFS;
  return EIO;
}

static int
ext2_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
            uint64_t offs, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  struct handle *h = handle;
  char *p = buf;
  errcode_t e;

  h->next = next;
  while (count > 0) {
    unsigned int want = count > (1u << 30) ? (1u << 30) : count, got = 0;
    e = ext2fs_file_llseek (h->file, offs, EXT2_SEEK_SET, NULL);
    if (e == 0)
      e = ext2fs_file_read (h->file, p, want, &got);
    if (e) {
      nbdkit_error ("ext2: %s: read at offset %" PRIu64 ": %s", h->path, offs,
                    error_message (e));
      *err = to_errno (e);
      return -1;
    }
    if (got == 0) { /* should not happen: the server checks the size */
      memset (p, 0, count);
      break;
    }
    p += got;
    offs += got;
    count -= got;
  }
  return 0;
}

static int
ext2_pwrite (nbdkit_next *next, void *handle, const void *buf, uint64_t count,
             uint64_t offs, uint32_t flags, int *err)
{
  struct handle *h = handle;
  const char *p = buf;
  errcode_t e;

  h->next = next;
  while (count > 0) {
    unsigned int want = count > (1u << 30) ? (1u << 30) : count, done = 0;
    e = ext2fs_file_llseek (h->file, offs, EXT2_SEEK_SET, NULL);
    if (e == 0)
      e = ext2fs_file_write (h->file, p, want, &done);
    if (e == 0 && done == 0)
      e = EXT2_ET_SHORT_WRITE;
    if (e) {
      nbdkit_error ("ext2: %s: write at offset %" PRIu64 ": %s", h->path, offs,
                    error_message (e));
      *err = to_errno (e);
      return -1;
    }
    p += done;
    offs += done;
    count -= done;
  }
  if (flags & NBDKIT_FLAG_FUA) {
    e = ext2fs_file_flush (h->file);
    if (e == 0)
      e = ext2fs_flush (h->fs);
    if (e) {
      nbdkit_error ("ext2: %s: flush: %s", h->path, error_message (e));
      *err = to_errno (e);
      return -1;
    }
  }
  return 0;
}

static int
ext2_flush (nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
  struct handle *h = handle;
  errcode_t e;

  h->next = next;
  if (h->readonly)
    return 0;
  e = ext2fs_file_flush (h->file);
  if (e == 0)
    e = ext2fs_flush (h->fs);
  if (e) {
    nbdkit_error ("ext2: %s: flush: %s", h->path, error_message (e));
    *err = to_errno (e);
    return -1;
  }
  return 0;
}

static struct nbdkit_filter filter = {
  .name = "ext2",
  .longname = "nbdkit ext2 filter",
  .description = "serve a file inside an ext2, ext3 or ext4 filesystem",
  .params = ext2_params,
  .load = ext2_load,
  .config_help = ext2_config_help,
  .config_complete = ext2_config_complete,
  .thread_model = ext2_thread_model,
  .open = ext2_open,
  .close = ext2_close,
  .prepare = ext2_prepare,
  .finalize = ext2_finalize,
  .get_size = ext2_get_size,
  .export_description = ext2_export_description,
  .can_flush = ext2_can_flush,
  .can_fua = ext2_can_fua,
  .can_trim = ext2_can_none,
  .can_zero = ext2_can_zero,
  .can_fast_zero = ext2_can_none,
  .can_extents = ext2_can_none,
  .can_multi_conn = ext2_can_none,
  .can_cache = ext2_can_cache,
  .pread = ext2_pread,
  .pread_fills_buffer = 1,
  .pwrite = ext2_pwrite,
  .flush = ext2_flush,
};

NBDKIT_REGISTER_FILTER (filter)
