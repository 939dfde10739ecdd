/* nofill.c: a plugin whose pread often succeeds without writing its
 * buffer, for the tests of the guarantee that such bytes reach the
 * client as zeroes.  Built for API 1, 2 and 3 (NBDKIT_API_VERSION is
 * given by the build).  A 64 MiB disk:
 *
 *   export "fill": every read fills the buffer with 0xff;
 *   other exports: reads starting in the first half fill it with 0xff,
 *   reads starting in the second half leave it alone, except that a
 *   read starting at 56 MiB fails with EIO and one starting at 58 MiB
 *   writes zeroes into the first half of the buffer only.
 *
 * A client reading the first half and then the second half (or another
 * connection reading export "fill") must still see only zeroes in the
 * second half.  With NOFILL_OLD_STRUCT (API 3) it registers a struct as
 * short as one built before the struct's last field was added.
 */

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <nbdkit-plugin.h>

#define SIZE (64 * 1024 * 1024)
#define HALF (SIZE / 2)

#if NBDKIT_API_VERSION < 3
static void *
nofill_open (int readonly)
{
  static int h;
  return &h;
}
#endif

static int64_t
nofill_get_size (void *handle)
{
  return SIZE;
}

static int
do_pread (void *buf, uint64_t count, uint64_t offset)
{
  const char *name = nbdkit_export_name ();

  if ((name && strcmp (name, "fill") == 0) || offset < HALF) {
    memset (buf, 0xff, count);
    return 0;
  }
  if (offset == 56 * 1024 * 1024) {
    nbdkit_error ("nofill: failing at offset %llu", (unsigned long long)offset);
    nbdkit_set_error (EIO);
    return -1;
  }
  if (offset == 58 * 1024 * 1024)
    memset (buf, 0, count / 2);
  return 0;
}

#if NBDKIT_API_VERSION == 1
static int
nofill_pread (void *handle, void *buf, uint32_t count, uint64_t offset)
{
  return do_pread (buf, count, offset);
}
#elif NBDKIT_API_VERSION == 2
static int
nofill_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
              uint32_t flags)
{
  return do_pread (buf, count, offset);
}
#else
static int
nofill_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
              uint32_t flags, struct nbdkit_read *rd)
{
  return do_pread (buf, count, offset);
}
#endif

static struct nbdkit_plugin plugin = {
  .name = "nofill",
#if NBDKIT_API_VERSION < 3
  .open = nofill_open,
#endif
  .get_size = nofill_get_size,
  .pread = nofill_pread,
};

#ifdef NOFILL_OLD_STRUCT
/* As built against a header from before pread_fills_buffer: the server
 * must load it and read the missing field as 0.
 */
#include <stddef.h>
NBDKIT_EXTERN_C NBDKIT_DLL_PUBLIC struct nbdkit_plugin *plugin_init (void);
NBDKIT_EXTERN_C NBDKIT_DLL_PUBLIC struct nbdkit_plugin *
plugin_init (void)
{
  plugin._struct_size = offsetof (struct nbdkit_plugin, pread_fills_buffer);
  plugin._api_version = NBDKIT_API_VERSION;
  plugin._unused = 0;
  return &plugin;
}
#else
NBDKIT_REGISTER_PLUGIN (plugin)
#endif
