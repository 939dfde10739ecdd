/* dump_v2.c: the --dump-plugin lines that describe an API 1 or 2
 * plugin's own struct (its declared thread model, errno_is_preserved,
 * which callbacks it has), read through the layout it was built with.
 */

#define NBDKIT_API_VERSION 2
#include <stdio.h>

#include "internal.h"

#define P(b) ((struct nbdkit_plugin *)(b)->impl)

/* API 1 and 2 thread models (0-3), named as nbdkit names them. */
static const char *
v2_model_name (int m)
{
  static const char *names[]
      = { "serialize_connections", "serialize_all_requests",
          "serialize_requests", "parallel" };
  return m >= 0 && m <= 3 ? names[m] : "unknown";
}

void
plugin_v2_dump_fields (struct backend *b, const char *chain_model, FILE *fp)
{
  struct nbdkit_plugin *p = P (b);

#define HAS(f)                                                                 \
  if (p->f)                                                                    \
  fprintf (fp, "has_%s=1\n", #f)
#define HAS2(f, old)                                                           \
  if (p->f || p->old)                                                          \
  fprintf (fp, "has_%s=1\n", #f)
  fprintf (fp, "max_thread_model=%s\n", v2_model_name (p->_thread_model));
  fprintf (fp, "thread_model=%s\n", chain_model);
  fprintf (fp, "errno_is_preserved=%d\n", !!p->errno_is_preserved);
  if (p->magic_config_key)
    fprintf (fp, "magic_config_key=%s\n", p->magic_config_key);
  HAS (longname);
  HAS (description);
  HAS (load);
  HAS (unload);
  HAS (dump_plugin);
  HAS (config);
  HAS (config_complete);
  HAS (config_help);
  HAS (thread_model);
  HAS (get_ready);
  HAS (after_fork);
  HAS (cleanup);
  HAS (preconnect);
  HAS (list_exports);
  HAS (default_export);
  HAS (open);
  HAS (close);
  HAS (export_description);
  HAS (get_size);
  HAS (block_size);
  HAS (can_write);
  HAS (can_flush);
  HAS (is_rotational);
  HAS (can_trim);
  HAS (can_zero);
  HAS (can_fast_zero);
  HAS (can_extents);
  HAS (can_fua);
  HAS (can_multi_conn);
  HAS (can_cache);
  HAS2 (pread, _pread_v1);
  HAS2 (pwrite, _pwrite_v1);
  HAS2 (flush, _flush_v1);
  HAS2 (trim, _trim_v1);
  HAS2 (zero, _zero_v1);
  HAS (extents);
  HAS (cache);
#undef HAS
#undef HAS2
}
