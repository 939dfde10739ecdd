/* example-plugin.c: a complete API 3 plugin, the one abi/README.md
 * walks through.  A RAM disk of size=SIZE whose bytes start as a
 * repeating FILL byte (fill=0..255, default 0).
 *
 *   cc -shared -fPIC $(pkg-config --cflags nbdkit) example-plugin.c \
 *      -o example-plugin.so
 *   nbdkit ./example-plugin.so size=64M fill=0x55
 */

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

static int64_t size; /* from size= */
static int64_t fill; /* from fill= */
static char *disk;
static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;

/* The server parses and checks these before config_complete runs. */
static const struct nbdkit_param params[]
    = { { .name = "size",
          .type = NBDKIT_PARAM_SIZE,
          .flags = NBDKIT_PARAM_REQUIRED,
          .doc = "Size of the disk, e.g. 64M",
          .dest = &size },
        { .name = "fill",
          .type = NBDKIT_PARAM_INT,
          .default_value = "0",
          .doc = "Byte the disk starts filled with (0-255)",
          .dest = &fill },
        { 0 } };

static int
example_config_complete (void)
{
  if (fill < 0 || fill > 255) {
    nbdkit_error ("fill=%lld: must be between 0 and 255", (long long)fill);
    return -1;
  }
  disk = malloc (size ? size : 1);
  if (disk == NULL) {
    nbdkit_error ("cannot allocate %lld bytes: %m", (long long)size);
    return -1;
  }
  memset (disk, fill, size);
  return 0;
}

static void
example_unload (void)
{
  free (disk);
}

static void *
example_open (int readonly, const char *exportname, int is_tls)
{
  /* One disk for every connection: any non-NULL handle will do. */
  return disk;
}

static int64_t
example_get_size (void *handle)
{
  return size;
}

/* Readers hold the lock until the server has sent the lent bytes. */
static void
unlock (void *opaque)
{
  pthread_rwlock_unlock (&lock);
}

static int
example_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
               uint32_t flags, struct nbdkit_read *rd)
{
  /* Zero copy: lend our memory instead of copying into BUF. */
  pthread_rwlock_rdlock (&lock);
  return nbdkit_read_lend (rd, offset, disk + offset, count, unlock, NULL);
}

static int
example_pwrite (void *handle, const void *buf, uint64_t count, uint64_t offset,
                uint32_t flags)
{
  pthread_rwlock_wrlock (&lock);
  memcpy (disk + offset, buf, count);
  pthread_rwlock_unlock (&lock);
  return 0;
}

static int
example_zero (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  pthread_rwlock_wrlock (&lock);
  memset (disk + offset, 0, count);
  pthread_rwlock_unlock (&lock);
  return 0;
}

static int
example_can_multi_conn (void *handle)
{
  return 1; /* every connection sees the same disk */
}

static struct nbdkit_plugin plugin = {
  .name = "example",
  .version = "1.0",
  .description = "A RAM disk that starts filled with one byte",
  .params = params,
  .magic_config_key = "size",
  .config_complete = example_config_complete,
  .unload = example_unload,
  .open = example_open,
  .get_size = example_get_size,
  .pread = example_pread,
  .pwrite = example_pwrite,
  .zero = example_zero,
  .can_multi_conn = example_can_multi_conn,
};

NBDKIT_REGISTER_PLUGIN (plugin)
