/* dump.c: --dump-plugin, nbdkit's key=value description of a plugin:
 * where it is, its versions, its thread model (declared, and as the
 * whole chain of filters makes it), which callbacks it has (has_*,
 * has_async_* for the asynchronous ones), its typed
 * parameters, then whatever the plugin's own dump_plugin adds.
 */

#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "protocol.h"

#define P(b) ((struct nbdkit_plugin *)(b)->impl)

static void
v3_dump_fields (struct backend *b, int own, int chain, FILE *fp)
{
  struct nbdkit_plugin *p = P (b);

#define HAS(f)                                                                 \
  if (p->f)                                                                    \
  fprintf (fp, "has_%s=1\n", #f)
  fprintf (fp, "max_thread_model=%s\n", thread_model_name (own));
  fprintf (fp, "thread_model=%s\n", thread_model_name (chain));
  /* API 3 reads the errno a failing callback leaves. */
  fprintf (fp, "errno_is_preserved=1\n");
  if (b->magic_config_key)
    fprintf (fp, "magic_config_key=%s\n", b->magic_config_key);
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
  HAS (pread);
  HAS (pwrite);
  HAS (flush);
  HAS (trim);
  HAS (zero);
  HAS (extents);
  HAS (cache);
#undef HAS
  /* The async callbacks, where the plugin's struct reaches them. */
  static const struct {
    uint16_t type;
    const char *name;
  } async[] = {
    { NBD_CMD_READ, "pread" },        { NBD_CMD_WRITE, "pwrite" },
    { NBD_CMD_FLUSH, "flush" },       { NBD_CMD_TRIM, "trim" },
    { NBD_CMD_WRITE_ZEROES, "zero" }, { NBD_CMD_BLOCK_STATUS, "extents" }
  };
  for (size_t i = 0; i < sizeof async / sizeof async[0]; i++)
    if (b->ops->can_start && b->ops->can_start (b, async[i].type))
      fprintf (fp, "has_async_%s=1\n", async[i].name);
}

int
dump_plugin (struct server *s, struct backend *b)
{
  char *path = realpath (b->filename, NULL);
  int own, chain;

  thread_ctx_set (s, NULL, b->name);
  own = b->ops->thread_model (b);
  thread_ctx_set (s, NULL, NULL);
  chain = server_thread_model (s);
  if (own == -1 || chain == -1) {
    free (path);
    return -1;
  }
  printf ("path=%s\n", path ? path : b->filename);
  free (path);
  printf ("name=%s\n", b->name);
  if (b->version)
    printf ("version=%s\n", b->version);
  printf ("api_version=%d\n", b->api_version);
  if (b->api_version >= 3)
    v3_dump_fields (b, own, chain, stdout);
  else
    plugin_v2_dump_fields (b, thread_model_name (chain), stdout);
  if (b->params)
    param_dump (stdout, b->name, b->params);
  fflush (stdout);
  thread_ctx_set (s, NULL, b->name);
  b->ops->dump_plugin (b, stdout);
  thread_ctx_set (s, NULL, NULL);
  fflush (stdout);
  return 0;
}
