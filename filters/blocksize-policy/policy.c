/* policy.c: the blocksize-policy filter, which sets the block sizes
 * announced to clients and what happens to requests that break them.
 *
 *   nbdkit --filter=blocksize-policy PLUGIN
 *          [blocksize-minimum=N] [blocksize-preferred=N]
 *          [blocksize-maximum=N] [blocksize-error-policy=allow|error]
 *          [blocksize-write-disconnect=N]
 *
 * Sizes not given are the plugin's, or defaults (1, 4096, 0xffffffff)
 * if the plugin announces none.  error: requests not aligned to the
 * minimum, or reads and writes above the maximum, fail with EINVAL
 * before the plugin sees them.  write-disconnect: a write larger than
 * N drops the connection, as qemu-nbd does above 32M.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-filter.h>

static int64_t cfg_minimum = -1, cfg_preferred = -1, cfg_maximum = -1;
static int64_t cfg_disconnect = -1;
static const char *policy = "allow";
static bool policy_error;

static const struct nbdkit_param policy_params[]
    = { { .name = "blocksize-minimum",
          .type = NBDKIT_PARAM_SIZE,
          .doc = "minimum block size announced (power of 2, 1 to 64K)",
          .dest = &cfg_minimum },
        { .name = "blocksize-preferred",
          .type = NBDKIT_PARAM_SIZE,
          .doc = "preferred block size announced (power of 2, 512 to 32M)",
          .dest = &cfg_preferred },
        { .name = "blocksize-maximum",
          .type = NBDKIT_PARAM_SIZE,
          .doc = "maximum block size announced (a multiple of the minimum)",
          .dest = &cfg_maximum },
        { .name = "blocksize-error-policy",
          .type = NBDKIT_PARAM_ENUM,
          .default_value = "allow",
          .choices = "allow|error",
          .doc = "what to do with requests that break the sizes",
          .dest = &policy },
        { .name = "blocksize-write-disconnect",
          .type = NBDKIT_PARAM_SIZE,
          .doc = "drop the connection on writes larger than this",
          .dest = &cfg_disconnect },
        { .name = NULL } };

static bool
power_of_2 (int64_t n)
{
  return n > 0 && (n & (n - 1)) == 0;
}

static const char *
policy_config_help (void)
{
  return "Sets the block sizes announced to clients and the policy for"
         " requests that break them.";
}

static int
policy_config_complete (void)
{
  policy_error = strcmp (policy, "error") == 0;
  if (cfg_minimum != -1 && (!power_of_2 (cfg_minimum) || cfg_minimum > 65536)) {
    nbdkit_error ("blocksize-minimum=%" PRId64 ": must be a power of 2"
                  " between 1 and 64K",
                  cfg_minimum);
    return -1;
  }
  if (cfg_preferred != -1
      && (!power_of_2 (cfg_preferred) || cfg_preferred < 512
          || cfg_preferred > 32 * 1024 * 1024)) {
    nbdkit_error ("blocksize-preferred=%" PRId64 ": must be a power of 2"
                  " between 512 and 32M",
                  cfg_preferred);
    return -1;
  }
  if (cfg_maximum != -1 && (cfg_maximum < 1 || cfg_maximum > 0xffffffff)) {
    nbdkit_error ("blocksize-maximum=%" PRId64 ": must be between 1 and"
                  " 4G-1",
                  cfg_maximum);
    return -1;
  }
  if (cfg_minimum != -1 && cfg_preferred != -1 && cfg_minimum > cfg_preferred) {
    nbdkit_error ("blocksize-minimum=%" PRId64 " is larger than"
                  " blocksize-preferred=%" PRId64,
                  cfg_minimum, cfg_preferred);
    return -1;
  }
  if (cfg_minimum != -1 && cfg_maximum != -1
      && cfg_maximum % cfg_minimum != 0) {
    nbdkit_error ("blocksize-maximum=%" PRId64 " is not a multiple of"
                  " blocksize-minimum=%" PRId64,
                  cfg_maximum, cfg_minimum);
    return -1;
  }
  if (cfg_disconnect == 0
      || (cfg_disconnect != -1 && cfg_minimum != -1
          && cfg_disconnect < cfg_minimum)) {
    nbdkit_error ("blocksize-write-disconnect=%" PRId64 " is smaller than"
                  " the minimum block size",
                  cfg_disconnect);
    return -1;
  }
  return 0;
}

static int
policy_block_size (nbdkit_next *next, void *handle,
                   struct nbdkit_block_size *bs)
{
  if (nbdkit_next_block_size (next, bs) == -1)
    return -1;
  if (bs->minimum == 0) {
    bs->minimum = 1;
    bs->preferred = 4096;
    bs->maximum = 0xffffffff;
  }
  if (cfg_minimum != -1)
    bs->minimum = cfg_minimum;
  if (cfg_preferred != -1)
    bs->preferred = cfg_preferred;
  if (cfg_maximum != -1)
    bs->maximum = cfg_maximum;
  /* Keep the three consistent when only some were given. */
  if (bs->preferred < bs->minimum)
    bs->preferred = bs->minimum < 512 ? 512 : bs->minimum;
  if (bs->preferred < bs->minimum)
    bs->preferred = bs->minimum;
  if (bs->maximum < bs->minimum)
    bs->maximum = bs->minimum;
  bs->maximum -= bs->maximum % bs->minimum;
  /* The sizes are advice to the server: requests that break them
   * reach this filter, which lets them through (allow policy) or fails
   * them itself (error policy) after blocksize-write-disconnect had
   * its say, as nbdkit's filter does.
   */
  bs->advisory = 1;
  return 0;
}

/* With the error policy, check a request against the sizes announced. */
static int
check (nbdkit_next *next, void *handle, const char *what, bool data,
       uint64_t count, uint64_t offset, int *err)
{
  struct nbdkit_block_size bs;

  if (!policy_error)
    return 0;
  if (policy_block_size (next, handle, &bs) == -1) {
    *err = EIO;
    return -1;
  }
  if ((count | offset) & (bs.minimum - 1)) {
    nbdkit_error ("%s at %" PRIu64 " for %" PRIu64 " bytes is not aligned"
                  " to the minimum block size %" PRIu32,
                  what, offset, count, bs.minimum);
    *err = EINVAL;
    return -1;
  }
  if (data && count > bs.maximum) {
    nbdkit_error ("%s of %" PRIu64 " bytes is larger than the maximum block"
                  " size %" PRIu32,
                  what, count, bs.maximum);
    *err = EINVAL;
    return -1;
  }
  return 0;
}

static int
policy_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
              uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  if (check (next, handle, "read", true, count, offset, err) == -1)
    return -1;
  return nbdkit_next_pread (next, buf, count, offset, flags, rd, err);
}

static int
policy_pwrite (nbdkit_next *next, void *handle, const void *buf, uint64_t count,
               uint64_t offset, uint32_t flags, int *err)
{
  if (cfg_disconnect != -1 && count > (uint64_t)cfg_disconnect) {
    nbdkit_error ("write of %" PRIu64 " bytes is larger than"
                  " blocksize-write-disconnect=%" PRId64 ": disconnecting",
                  count, cfg_disconnect);
    nbdkit_disconnect (1);
    *err = EINVAL;
    return -1;
  }
  if (check (next, handle, "write", true, count, offset, err) == -1)
    return -1;
  return nbdkit_next_pwrite (next, buf, count, offset, flags, err);
}

static int
policy_trim (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
             uint32_t flags, int *err)
{
  if (check (next, handle, "trim", false, count, offset, err) == -1)
    return -1;
  return nbdkit_next_trim (next, count, offset, flags, err);
}

static int
policy_zero (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
             uint32_t flags, int *err)
{
  if (check (next, handle, "zero", false, count, offset, err) == -1)
    return -1;
  return nbdkit_next_zero (next, count, offset, flags, err);
}

static int
policy_cache (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
              uint32_t flags, int *err)
{
  if (check (next, handle, "cache", false, count, offset, err) == -1)
    return -1;
  return nbdkit_next_cache (next, count, offset, flags, err);
}

static int
policy_extents (nbdkit_next *next, void *handle, uint64_t count,
                uint64_t offset, uint32_t flags, struct nbdkit_extents *e,
                int *err)
{
  if (check (next, handle, "block status", false, count, offset, err) == -1)
    return -1;
  return nbdkit_next_extents (next, count, offset, flags, e, err);
}

static struct nbdkit_filter filter = {
  .name = "blocksize-policy",
  .longname = "nbdkit blocksize policy filter",
  .description = "set the block sizes announced and their policy",
  .params = policy_params,
  .config_complete = policy_config_complete,
  .config_help = policy_config_help,
  .block_size = policy_block_size,
  .pread = policy_pread,
  .pread_fills_buffer = 1, /* or reads it from below */
  .pwrite = policy_pwrite,
  .trim = policy_trim,
  .zero = policy_zero,
  .cache = policy_cache,
  .extents = policy_extents,
};

NBDKIT_REGISTER_FILTER (filter)
