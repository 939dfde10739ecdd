/* grow.c: a plugin and a filter whose struct is shorter or longer than
 * the server's, for the tests of the v3 growth rule (struct-growth.sh).
 * Built four times:
 *
 *   GROW_FILTER unset: a plugin, a 1 MiB disk of 0xab bytes;
 *   GROW_FILTER set:   a filter that adds nothing but callbacks that
 *                      must never run;
 *   GROW_SHORT:  _struct_size ends just before the extents field, as if
 *                built against a header from before extents was added:
 *                the server must load it and treat extents and every
 *                later field as absent;
 *   GROW_LONG:   _struct_size is 16 bytes longer than the struct, as if
 *                built against a newer header: the server must refuse
 *                it, naming both sizes;
 *   GROW_TINY:   (the plugin) _struct_size ends before pread: a required
 *                callback is absent, and the server must say so.
 *
 * The callbacks past the cut fail loudly, so a server that read them
 * would show it.
 */

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#ifdef GROW_FILTER
#include <nbdkit-filter.h>
#define KIND nbdkit_filter
#define INIT filter_init
#else
#include <nbdkit-plugin.h>
#define KIND nbdkit_plugin
#define INIT plugin_init
#endif

#ifdef GROW_FILTER

static int
grow_extents (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
              uint32_t flags, struct nbdkit_extents *e, int *err)
{
  nbdkit_error ("grow filter: extents is past the end of the struct and must"
                " not be called");
  *err = EIO;
  return -1;
}

static int
grow_cache (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
            uint32_t flags, int *err)
{
  *err = EIO;
  return -1;
}

#else

static void *
grow_open (int readonly, const char *exportname, int is_tls)
{
  return NBDKIT_HANDLE_NOT_NEEDED;
}

static int64_t
grow_get_size (void *handle)
{
  return 1024 * 1024;
}

static int
grow_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
            uint32_t flags, struct nbdkit_read *rd)
{
  memset (buf, 0xab, count);
  return 0;
}

/* Past the cut: says the whole disk is a zeroed hole, which the server
 * must never believe of a disk full of 0xab.
 */
static int
grow_extents (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
              struct nbdkit_extents *e)
{
  return nbdkit_add_extent (e, offset, count,
                            NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO);
}

static int
grow_cache (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  nbdkit_error ("grow plugin: cache is past the end of the struct");
  errno = EIO;
  return -1;
}

#endif

/* The struct with room after it, so that a longer _struct_size still
 * points at memory the plugin owns.
 */
static struct {
  struct KIND s;
  char newer_fields[16];
} grow = {
  .s = {
#ifdef GROW_FILTER
    .name = "grow",
#else
    .name = "grow",
    .open = grow_open,
    .get_size = grow_get_size,
    .pread = grow_pread,
#endif
    .extents = grow_extents,
    .cache = grow_cache,
    .pread_fills_buffer = 1,
  },
};

NBDKIT_EXTERN_C NBDKIT_DLL_PUBLIC struct KIND *INIT (void);
NBDKIT_EXTERN_C NBDKIT_DLL_PUBLIC struct KIND *
INIT (void)
{
#if defined(GROW_SHORT)
  grow.s._struct_size = offsetof (struct KIND, extents);
#elif defined(GROW_TINY)
  grow.s._struct_size = offsetof (struct KIND, pread);
#elif defined(GROW_LONG)
  grow.s._struct_size = sizeof grow.s + sizeof grow.newer_fields;
#else
#error "define GROW_SHORT, GROW_TINY or GROW_LONG"
#endif
  grow.s._api_version = NBDKIT_API_VERSION;
  return &grow.s;
}
