/* fua.c: change how Forced Unit Access and flush reach the plugin.
 *
 *   fuamode=none     FUA not offered (the default); flush unchanged
 *   fuamode=emulate  FUA offered, done by the server as write + flush
 *   fuamode=native   FUA offered and passed on as a flag
 *   fuamode=force    every write gets FUA; flush does nothing
 *   fuamode=pass     nothing changes
 *   fuamode=discard  FUA offered but dropped; flush does nothing (unsafe)
 */

#include <string.h>

#include <nbdkit-filter.h>

static const char *fuamode = "none";

static const struct nbdkit_param params[]
    = { { .name = "fuamode",
          .type = NBDKIT_PARAM_ENUM,
          .default_value = "none",
          .choices = "none|emulate|native|force|pass|discard",
          .doc = "how FUA and flush are handled",
          .dest = &fuamode },
        { .name = NULL } };

static int
mode (const char *m)
{
  return strcmp (fuamode, m) == 0;
}

static const char *
fua_config_help (void)
{
  return "fuamode=none|emulate|native|force|pass|discard  How FUA and flush"
         " are handled\n                                (default none).";
}

/* Modes that rely on the layer below refuse to start without it. */
static int
fua_prepare (nbdkit_next *next, void *handle, int readonly)
{
  if (readonly || nbdkit_next_can_write (next) != 1)
    return 0;
  if (mode ("emulate") && nbdkit_next_can_flush (next) != 1) {
    nbdkit_error ("fuamode=emulate needs a plugin that can flush");
    return -1;
  }
  if ((mode ("native") || mode ("force"))
      && nbdkit_next_can_fua (next) == NBDKIT_FUA_NONE) {
    nbdkit_error ("fuamode=%s needs a plugin that supports FUA", fuamode);
    return -1;
  }
  return 0;
}

static int
fua_can_flush (nbdkit_next *next, void *handle)
{
  if (mode ("force") || mode ("discard"))
    return 1;
  return nbdkit_next_can_flush (next);
}

static int
fua_can_fua (nbdkit_next *next, void *handle)
{
  if (mode ("none"))
    return NBDKIT_FUA_NONE;
  if (mode ("emulate"))
    return NBDKIT_FUA_EMULATE;
  if (mode ("pass"))
    return nbdkit_next_can_fua (next);
  return NBDKIT_FUA_NATIVE;
}

static uint32_t
fix_flags (uint32_t flags)
{
  if (mode ("force"))
    return flags | NBDKIT_FLAG_FUA;
  if (mode ("discard"))
    return flags & ~NBDKIT_FLAG_FUA;
  return flags;
}

static int
fua_pwrite (nbdkit_next *next, void *handle, const void *buf, uint64_t count,
            uint64_t offset, uint32_t flags, int *err)
{
  return nbdkit_next_pwrite (next, buf, count, offset, fix_flags (flags), err);
}

static int
fua_trim (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
          uint32_t flags, int *err)
{
  return nbdkit_next_trim (next, count, offset, fix_flags (flags), err);
}

static int
fua_zero (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
          uint32_t flags, int *err)
{
  return nbdkit_next_zero (next, count, offset, fix_flags (flags), err);
}

static int
fua_flush (nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
  /* force: every write is already on stable storage. */
  if (mode ("force") || mode ("discard"))
    return 0;
  return nbdkit_next_flush (next, flags, err);
}

static struct nbdkit_filter filter = {
  .name = "fua",
  .longname = "nbdkit fua filter",
  .description = "adjust or disable Forced Unit Access",
  .params = params,
  .config_help = fua_config_help,
  .prepare = fua_prepare,
  .can_flush = fua_can_flush,
  .can_fua = fua_can_fua,
  .pwrite = fua_pwrite,
  .trim = fua_trim,
  .zero = fua_zero,
  .flush = fua_flush,
};

NBDKIT_REGISTER_FILTER (filter)
