/* luks.c: the luks filter: serves the decrypted payload of a LUKS1 or
 * LUKS2 disk.  The volume is unlocked when a connection is prepared
 * (header.c), then every read decrypts and every write encrypts whole
 * encryption sectors, reading the partial ones at the ends of an
 * unaligned write first.  Zeroes are written as encrypted zeroes (a
 * hole in the ciphertext would read back as garbage); trims reach the
 * disk only when a LUKS2 header allows discards.  Every extent is
 * data.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "luks.h"

#define MAX_KEYFILE (8 << 20)

static const char *passphrase;
static const char *passphrase_file;
static unsigned char *pass;
static size_t pass_len;

/* Unaligned writes read, patch and rewrite their end sectors: held
 * across that so two of them in the same sector do not undo each other.
 */
static pthread_mutex_t rmw_lock = PTHREAD_MUTEX_INITIALIZER;

struct handle {
  struct luks_volume v;
};

static const struct nbdkit_param params[] = {
  { "passphrase", NBDKIT_PARAM_PASSWORD, 0, NULL,
    "the passphrase (or -, -FD, +FILE)", NULL, &passphrase },
  { "passphrase-file", NBDKIT_PARAM_FILE, 0, NULL,
    "file whose whole contents are the passphrase (as cryptsetup's "
    "--key-file)",
    NULL, &passphrase_file },
  { .name = NULL },
};

/* The whole of the key file, newlines included, as cryptsetup reads it. */
static int
read_keyfile (const char *path)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  ssize_t n;

  if (fd == -1 || fstat (fd, &st) == -1) {
    nbdkit_error ("passphrase-file %s: %m", path);
    if (fd >= 0)
      close (fd);
    return -1;
  }
  pass = malloc (MAX_KEYFILE);
  if (pass == NULL) {
    nbdkit_error ("malloc: %m");
    close (fd);
    return -1;
  }
  while (pass_len < MAX_KEYFILE
         && (n = read (fd, pass + pass_len, MAX_KEYFILE - pass_len)) != 0) {
    if (n == -1) {
      if (errno == EINTR)
        continue;
      nbdkit_error ("passphrase-file %s: %m", path);
      close (fd);
      return -1;
    }
    pass_len += n;
  }
  close (fd);
  if (pass_len == MAX_KEYFILE) {
    nbdkit_error ("passphrase-file %s is larger than %d bytes", path,
                  MAX_KEYFILE);
    return -1;
  }
  return 0;
}

static int
luks_config_complete (void)
{
  if ((passphrase == NULL) == (passphrase_file == NULL)) {
    nbdkit_error ("give one of passphrase= or passphrase-file=");
    return -1;
  }
  if (passphrase_file)
    return read_keyfile (passphrase_file);
  pass_len = strlen (passphrase);
  pass = malloc (pass_len + 1);
  if (pass == NULL) {
    nbdkit_error ("malloc: %m");
    return -1;
  }
  memcpy (pass, passphrase, pass_len + 1);
  return 0;
}

static void
luks_unload (void)
{
  if (pass)
    gnutls_memset (pass, 0, pass_len);
  free (pass);
}

static void *
luks_open (nbdkit_context *ctx, int readonly, const char *exportname,
           int is_tls)
{
  struct handle *h = calloc (1, sizeof *h);

  if (h == NULL)
    nbdkit_error ("calloc: %m");
  return h;
}

static void
luks_close (void *handle)
{
  struct handle *h = handle;

  luks_cipher_wipe (&h->v.cipher);
  free (h);
}

static int
luks_prepare (nbdkit_next *next, void *handle, int readonly)
{
  struct handle *h = handle;

  errno = 0;
  if (luks_unlock (next, pass, pass_len, &h->v) == -1) {
    /* EACCES: a wrong passphrase; anything else is a bad disk. */
    if (errno != EACCES)
      errno = EIO;
    return -1;
  }
  return 0;
}

static int64_t
luks_get_size (nbdkit_next *next, void *handle)
{
  struct handle *h = handle;

  return h->v.payload_size;
}

/* The layer below's sizes are about ciphertext; this layer takes any
 * request and prefers whole encryption sectors.
 */
static int
luks_block_size (nbdkit_next *next, void *handle, struct nbdkit_block_size *bs)
{
  struct handle *h = handle;

  bs->minimum = 1;
  bs->preferred = h->v.sector_size < 4096 ? 4096 : h->v.sector_size;
  bs->maximum = 0xffffffff;
  bs->advisory = 1;
  return 0;
}

static int
luks_can_zero (nbdkit_next *next, void *handle)
{
  return NBDKIT_ZERO_EMULATE;
}

static int
luks_can_fast_zero (nbdkit_next *next, void *handle)
{
  return 0;
}

static int
luks_can_trim (nbdkit_next *next, void *handle)
{
  struct handle *h = handle;

  return h->v.allow_discards ? nbdkit_next_can_trim (next) : 0;
}

static int
luks_can_extents (nbdkit_next *next, void *handle)
{
  return NBDKIT_EXTENTS_EMULATE;
}

static int
luks_can_cache (nbdkit_next *next, void *handle)
{
  return NBDKIT_CACHE_EMULATE;
}

/* Reads and decrypts the whole sectors [START, START+LEN) of the
 * payload (byte offsets, aligned) into BUF.
 */
static int
read_sectors (nbdkit_next *next, const struct luks_volume *v,
              unsigned char *buf, uint64_t len, uint64_t start, int *err)
{
  int e;

  if (nbdkit_next_pread (next, buf, len, v->payload_offset + start, 0, NULL,
                         err)
      == -1)
    return -1;
  e = luks_cipher_run (&v->cipher, false, buf, len,
                       start / v->sector_size + v->iv_tweak, v->sector_size);
  if (e) {
    nbdkit_error ("decrypting at offset %" PRIu64 " failed", start);
    *err = e;
    return -1;
  }
  return 0;
}

static int
luks_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
            uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  struct handle *h = handle;
  uint32_t ss = h->v.sector_size;
  uint64_t a = offset / ss * ss, e = (offset + count + ss - 1) / ss * ss;
  unsigned char *tmp;
  int r;

  if (a == offset && e == offset + count)
    return read_sectors (next, &h->v, buf, count, offset, err);
  tmp = malloc (e - a);
  if (tmp == NULL) {
    *err = errno;
    nbdkit_error ("malloc: %m");
    return -1;
  }
  r = read_sectors (next, &h->v, tmp, e - a, a, err);
  if (r == 0)
    memcpy (buf, tmp + (offset - a), count);
  gnutls_memset (tmp, 0, e - a);
  free (tmp);
  return r;
}

static int
luks_pwrite (nbdkit_next *next, void *handle, const void *buf, uint64_t count,
             uint64_t offset, uint32_t flags, int *err)
{
  struct handle *h = handle;
  uint32_t ss = h->v.sector_size;
  uint64_t a = offset / ss * ss, e = (offset + count + ss - 1) / ss * ss;
  bool head = a != offset, tail = e != offset + count;
  unsigned char *tmp = malloc (e - a);
  int r = -1, x;

  if (tmp == NULL) {
    *err = errno;
    nbdkit_error ("malloc: %m");
    return -1;
  }
  if (head || tail)
    pthread_mutex_lock (&rmw_lock);
  if (head && read_sectors (next, &h->v, tmp, ss, a, err) == -1)
    goto out;
  if (tail && (!head || e - a > ss)
      && read_sectors (next, &h->v, tmp + (e - a - ss), ss, e - ss, err) == -1)
    goto out;
  memcpy (tmp + (offset - a), buf, count);
  x = luks_cipher_run (&h->v.cipher, true, tmp, e - a, a / ss + h->v.iv_tweak,
                       ss);
  if (x) {
    nbdkit_error ("encrypting at offset %" PRIu64 " failed", a);
    *err = x;
    goto out;
  }
  r = nbdkit_next_pwrite (next, tmp, e - a, h->v.payload_offset + a, flags,
                          err);
out:
  if (head || tail)
    pthread_mutex_unlock (&rmw_lock);
  gnutls_memset (tmp, 0, e - a);
  free (tmp);
  return r;
}

/* Only whole sectors are discarded; a partial one is left as it is
 * (a trim is advisory).
 */
static int
luks_trim (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
           uint32_t flags, int *err)
{
  struct handle *h = handle;
  uint32_t ss = h->v.sector_size;
  uint64_t a = (offset + ss - 1) / ss * ss, e = (offset + count) / ss * ss;

  if (e <= a)
    return 0;
  return nbdkit_next_trim (next, e - a, h->v.payload_offset + a, flags, err);
}

static struct nbdkit_filter filter = {
  .name = "luks",
  .longname = "nbdkit luks filter",
  .description = "read and write LUKS1 and LUKS2 encrypted disks",
  .params = params,
  .config_complete = luks_config_complete,
  .unload = luks_unload,
  .open = luks_open,
  .close = luks_close,
  .prepare = luks_prepare,
  .get_size = luks_get_size,
  .block_size = luks_block_size,
  .can_zero = luks_can_zero,
  .can_fast_zero = luks_can_fast_zero,
  .can_trim = luks_can_trim,
  .can_extents = luks_can_extents,
  .can_cache = luks_can_cache,
  .pread = luks_pread,
  .pwrite = luks_pwrite,
  .trim = luks_trim,
  .pread_fills_buffer = 1,
};

NBDKIT_REGISTER_FILTER (filter)
