/* probe.c: a RAM-disk plugin whose callbacks are chosen by the
 * environment variable PROBE (a comma-separated list out of pwrite,
 * flush, trim, zero, cache, extents; pread and get_size are always
 * there), for tests/integration/hosts-defaults.py, which runs the
 * same probe in C, Python, Lua and OCaml and checks that each answers
 * the capabilities it does not define by the same rule.
 */

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include <stdlib.h>
#include <string.h>

#define SIZE (1024 * 1024)
static char disk[SIZE];

static void *
p_open (int readonly, const char *exportname, int is_tls)
{
  return NBDKIT_HANDLE_NOT_NEEDED;
}

static int64_t
p_get_size (void *h)
{
  return SIZE;
}

static int
p_pread (void *h, void *buf, uint64_t count, uint64_t offset, uint32_t flags,
         struct nbdkit_read *rd)
{
  memcpy (buf, disk + offset, count);
  return 0;
}

static int
p_pwrite (void *h, const void *buf, uint64_t count, uint64_t offset,
          uint32_t flags)
{
  memcpy (disk + offset, buf, count);
  return 0;
}

static int
p_flush (void *h, uint32_t flags)
{
  return 0;
}

static int
p_trim (void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  return 0;
}

static int
p_zero (void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  memset (disk + offset, 0, count);
  return 0;
}

static int
p_cache (void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  return 0;
}

static int
p_extents (void *h, uint64_t count, uint64_t offset, uint32_t flags,
           struct nbdkit_extents *e)
{
  return nbdkit_add_extent (e, offset, count, 0);
}

static struct nbdkit_plugin plugin = {
  .name = "probe",
  .open = p_open,
  .get_size = p_get_size,
  .pread = p_pread,
};

/* Before the server sees the struct: the callbacks PROBE names. */
static int
has (const char *name)
{
  const char *p = getenv ("PROBE");
  size_t n = strlen (name);

  while (p && *p) {
    if (strncmp (p, name, n) == 0 && (p[n] == ',' || p[n] == '\0'))
      return 1;
    p = strchr (p, ',');
    if (p)
      p++;
  }
  return 0;
}

__attribute__ ((constructor)) static void
choose (void)
{
  if (has ("pwrite"))
    plugin.pwrite = p_pwrite;
  if (has ("flush"))
    plugin.flush = p_flush;
  if (has ("trim"))
    plugin.trim = p_trim;
  if (has ("zero"))
    plugin.zero = p_zero;
  if (has ("cache"))
    plugin.cache = p_cache;
  if (has ("extents"))
    plugin.extents = p_extents;
}

NBDKIT_REGISTER_PLUGIN (plugin)
