/* config.h: the S3 plugin's parameters and where its credentials,
 * region and endpoint come from when not given.
 */

#ifndef S3_CONFIG_H
#define S3_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include "transfer.h"

struct s3_config {
  const char *endpoint; /* no trailing '/' */
  const char *bucket;
  const char *key;
  uint64_t size;        /* the disk (not single) */
  uint64_t object_size; /* (not single) */
  bool single;          /* KEY is the one object, read-only */
  bool async;           /* the async_* callbacks (async=, default true) */
  struct xfer_config xfer;
};

extern struct s3_config cfg;
extern const struct nbdkit_param config_params[];

extern int config_complete (void);
extern const char *config_help (void);
extern void config_free (void);

#endif /* S3_CONFIG_H */
