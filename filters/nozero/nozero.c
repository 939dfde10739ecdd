/* nozero.c: change or remove the support for zeroing a client sees.
 *
 *   zeromode=none      WRITE_ZEROES is not offered (the default)
 *   zeromode=emulate   offered; this filter writes zeroes with pwrite
 *   zeromode=notrim    passed on without NBDKIT_FLAG_MAY_TRIM
 *   zeromode=plugin    passed on unchanged
 *   fastzeromode=default|none|slow|ignore   what FAST_ZERO does
 *
 * Emulation is done here rather than by answering ZERO_EMULATE so that
 * fastzeromode applies to it as well.
 */

#include <errno.h>
#include <string.h>

#include <nbdkit-filter.h>

#define CHUNK (1024 * 1024)
static const char zeroes[CHUNK];

static const char *zeromode = "none";
static const char *fastzeromode = "default";

static const struct nbdkit_param params[]
    = { { .name = "zeromode",
          .type = NBDKIT_PARAM_ENUM,
          .default_value = "none",
          .choices = "none|emulate|notrim|plugin",
          .doc = "how WRITE_ZEROES is offered and done",
          .dest = &zeromode },
        { .name = "fastzeromode",
          .type = NBDKIT_PARAM_ENUM,
          .default_value = "default",
          .choices = "default|none|slow|ignore",
          .doc = "how the FAST_ZERO flag is offered and honoured",
          .dest = &fastzeromode },
        { .name = NULL } };

static int
is (const char *a, const char *b)
{
  return strcmp (a, b) == 0;
}

static const char *
nozero_config_help (void)
{
  return "zeromode=none|emulate|notrim|plugin  How WRITE_ZEROES is offered\n"
         "                                     (default none: not at all).\n"
         "fastzeromode=default|none|slow|ignore  How FAST_ZERO is offered.";
}

/* notrim and plugin need a layer below that zeroes by itself. */
static int
nozero_prepare (nbdkit_next *next, void *handle, int readonly)
{
  if ((is (zeromode, "notrim") || is (zeromode, "plugin")) && !readonly
      && nbdkit_next_can_write (next) == 1
      && nbdkit_next_can_zero (next) != NBDKIT_ZERO_NATIVE) {
    nbdkit_error ("zeromode=%s needs a plugin that can zero natively",
                  zeromode);
    return -1;
  }
  return 0;
}

static int
nozero_can_zero (nbdkit_next *next, void *handle)
{
  if (is (zeromode, "none"))
    return NBDKIT_ZERO_NONE;
  if (is (zeromode, "emulate"))
    return NBDKIT_ZERO_NATIVE; /* done here, see nozero_zero */
  return nbdkit_next_can_zero (next);
}

static int
nozero_can_fast_zero (nbdkit_next *next, void *handle)
{
  if (is (zeromode, "none") || is (fastzeromode, "none"))
    return 0;
  if (is (zeromode, "emulate") || !is (fastzeromode, "default"))
    return 1;
  return nbdkit_next_can_fast_zero (next);
}

static int
nozero_zero (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
             uint32_t flags, int *err)
{
  if (flags & NBDKIT_FLAG_FAST_ZERO) {
    if (is (fastzeromode, "slow")
        || (is (zeromode, "emulate") && is (fastzeromode, "default"))) {
      *err = ENOTSUP;
      return -1;
    }
    if (is (fastzeromode, "ignore"))
      flags &= ~NBDKIT_FLAG_FAST_ZERO;
  }
  if (is (zeromode, "notrim"))
    flags &= ~NBDKIT_FLAG_MAY_TRIM;
  if (!is (zeromode, "emulate"))
    return nbdkit_next_zero (next, count, offset, flags, err);

  /* Write zeroes, each piece with the client's FUA. */
  while (count > 0) {
    uint64_t n = count > CHUNK ? CHUNK : count;
    if (nbdkit_next_pwrite (next, zeroes, n, offset, flags & NBDKIT_FLAG_FUA,
                            err)
        == -1)
      return -1;
    offset += n;
    count -= n;
  }
  return 0;
}

static struct nbdkit_filter filter = {
  .name = "nozero",
  .longname = "nbdkit nozero filter",
  .description = "adjust or disable the support for zeroing",
  .params = params,
  .config_help = nozero_config_help,
  .prepare = nozero_prepare,
  .can_zero = nozero_can_zero,
  .can_fast_zero = nozero_can_fast_zero,
  .zero = nozero_zero,
};

NBDKIT_REGISTER_FILTER (filter)
