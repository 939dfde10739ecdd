/* plugin.h: what plugin.c and plugin_io.c share.
 *
 * plugin.c is the python plugin's life cycle (loading the script,
 * configuration, threads, exports, connections), plugin_io.c the
 * callbacks of an open connection (size, capabilities, data).
 */

#ifndef PY_PLUGIN_H
#define PY_PLUGIN_H

#include "callbacks.h"
#include "host.h"

enum {
#define E(n) CB_##n,
  PLUGIN_CALLBACKS (E)
#undef E
      CB_COUNT
};

/* The script, and how many arguments its open, get_ready and
 * block_size take (they have an old and a new form).  SIGHUP loads the
 * script again as a new one (see plugin.c); each connection keeps the
 * one it opened on.
 */
struct plugin_script {
  struct script s;
  int open_args, get_ready_args, block_size_args;
};
/* The newest, which new connections open on. */
extern struct plugin_script *cur_script;

/* A connection's handle: its script, and what the script's open
 * returned (None without open).
 */
struct handle {
  struct plugin_script *ps;
  PyObject *h;
};

/* SCRIPT is defined by each file: the newest (plugin.c) or the
 * connection's (plugin_io.c).
 */
#define CB(n) (script.cb[CB_##n])
#define API (script.api_version)

/* At the top of each callback of a connection: PS and H as above. */
#define PLUGIN_HANDLE(hd)                                                      \
  struct plugin_script *ps __attribute__ ((unused))                            \
  = ((struct handle *)(hd))->ps;                                               \
  PyObject *h __attribute__ ((unused)) = ((struct handle *)(hd))->h

/* plugin_io.c */
extern int64_t py_get_size (void *h);
extern const char *py_export_description (void *h);
extern int py_block_size (void *h, struct nbdkit_block_size *bs);
extern int py_can_write (void *h);
extern int py_can_flush (void *h);
extern int py_is_rotational (void *h);
extern int py_can_trim (void *h);
extern int py_can_zero (void *h);
extern int py_can_fast_zero (void *h);
extern int py_can_fua (void *h);
extern int py_can_multi_conn (void *h);
extern int py_can_extents (void *h);
extern int py_can_cache (void *h);
extern int py_pread (void *h, void *buf, uint64_t count, uint64_t offset,
                     uint32_t flags, struct nbdkit_read *rd);
extern int py_pwrite (void *h, const void *buf, uint64_t count, uint64_t offset,
                      uint32_t flags);
extern int py_flush (void *h, uint32_t flags);
extern int py_trim (void *h, uint64_t count, uint64_t offset, uint32_t flags);
extern int py_zero (void *h, uint64_t count, uint64_t offset, uint32_t flags);
extern int py_cache (void *h, uint64_t count, uint64_t offset, uint32_t flags);
extern int py_extents (void *h, uint64_t count, uint64_t offset, uint32_t flags,
                       struct nbdkit_extents *e);

#endif /* PY_PLUGIN_H */
