/* reloadable.c: a plugin with a reload callback, for the tests of
 * SIGHUP (integration/core-reload.sh).  A 1 MiB read-only disk whose
 * every byte is 'A' + the generation its connection was opened in.
 * Each reload starts a new generation, unless the file named by
 * fail=FILE exists: then the reload fails and the generation stays.
 */

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int generation;
static char *fail_file;

static int
reloadable_config (const char *key, const char *value)
{
  if (strcmp (key, "fail") == 0) {
    free (fail_file);
    fail_file = strdup (value);
    return fail_file ? 0 : -1;
  }
  nbdkit_error ("unknown parameter %s", key);
  return -1;
}

static int
reloadable_reload (void)
{
  if (fail_file && access (fail_file, F_OK) == 0) {
    nbdkit_error ("%s exists: the new code does not load", fail_file);
    return -1;
  }
  atomic_fetch_add (&generation, 1);
  return 0;
}

static void
reloadable_unload (void)
{
  free (fail_file);
}

static void *
reloadable_open (int readonly, const char *exportname, int is_tls)
{
  int *h = malloc (sizeof *h);
  if (h)
    *h = atomic_load (&generation);
  return h;
}

static void
reloadable_close (void *handle)
{
  free (handle);
}

static int64_t
reloadable_get_size (void *handle)
{
  return 1024 * 1024;
}

static int
reloadable_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
                  uint32_t flags, struct nbdkit_read *rd)
{
  memset (buf, 'A' + *(int *)handle, count);
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name = "reloadable",
  .config = reloadable_config,
  .unload = reloadable_unload,
  .open = reloadable_open,
  .close = reloadable_close,
  .get_size = reloadable_get_size,
  .pread = reloadable_pread,
  .pread_fills_buffer = 1,
  .reload = reloadable_reload,
};

NBDKIT_REGISTER_PLUGIN (plugin)
