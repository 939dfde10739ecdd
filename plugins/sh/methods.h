/* methods.h: the plugin callbacks of the sh and eval plugins.
 *
 * Each turns one v3 callback into a call of the script's method of the
 * same name (call.h) and parses what it prints.  sh.c and eval.c fill
 * their struct nbdkit_plugin with these and add their own config.
 */

#ifndef SH_METHODS_H
#define SH_METHODS_H

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

/* Run "config KEY VALUE"; a script without config refuses the key. */
extern int sh_config (const char *key, const char *value);
extern int sh_config_complete (void);
extern void sh_dump_plugin (void);
extern int sh_thread_model (void);
extern int sh_get_ready (int thread_model);
extern int sh_after_fork (void);
extern void sh_unload (void);
extern int sh_preconnect (int readonly);
extern int sh_list_exports (int readonly, int is_tls,
                            struct nbdkit_exports *exports);
extern const char *sh_default_export (int readonly, int is_tls);
extern void *sh_open (int readonly, const char *exportname, int is_tls);
extern void sh_close (void *handle);
extern int64_t sh_get_size (void *handle);
extern const char *sh_export_description (void *handle);
extern int sh_block_size (void *handle, struct nbdkit_block_size *bs);
extern int sh_can_write (void *handle);
extern int sh_can_flush (void *handle);
extern int sh_is_rotational (void *handle);
extern int sh_can_trim (void *handle);
extern int sh_can_zero (void *handle);
extern int sh_can_fast_zero (void *handle);
extern int sh_can_fua (void *handle);
extern int sh_can_multi_conn (void *handle);
extern int sh_can_extents (void *handle);
extern int sh_can_cache (void *handle);
extern int sh_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
                     uint32_t flags, struct nbdkit_read *rd);
extern int sh_pwrite (void *handle, const void *buf, uint64_t count,
                      uint64_t offset, uint32_t flags);
extern int sh_flush (void *handle, uint32_t flags);
extern int sh_trim (void *handle, uint64_t count, uint64_t offset,
                    uint32_t flags);
extern int sh_zero (void *handle, uint64_t count, uint64_t offset,
                    uint32_t flags);
extern int sh_extents (void *handle, uint64_t count, uint64_t offset,
                       uint32_t flags, struct nbdkit_extents *extents);
extern int sh_cache (void *handle, uint64_t count, uint64_t offset,
                     uint32_t flags);

/* The callbacks every script plugin shares, for a designated
 * initializer: { SH_METHODS, .name = "sh", ... }.
 */
#define SH_METHODS                                                             \
  .dump_plugin = sh_dump_plugin, .thread_model = sh_thread_model,              \
  .get_ready = sh_get_ready, .after_fork = sh_after_fork,                      \
  .preconnect = sh_preconnect, .list_exports = sh_list_exports,                \
  .default_export = sh_default_export, .open = sh_open, .close = sh_close,     \
  .get_size = sh_get_size, .export_description = sh_export_description,        \
  .block_size = sh_block_size, .can_write = sh_can_write,                      \
  .can_flush = sh_can_flush, .is_rotational = sh_is_rotational,                \
  .can_trim = sh_can_trim, .can_zero = sh_can_zero,                            \
  .can_fast_zero = sh_can_fast_zero, .can_fua = sh_can_fua,                    \
  .can_multi_conn = sh_can_multi_conn, .can_extents = sh_can_extents,          \
  .can_cache = sh_can_cache, .pread = sh_pread, .pwrite = sh_pwrite,           \
  .flush = sh_flush, .trim = sh_trim, .zero = sh_zero, .extents = sh_extents,  \
  .cache = sh_cache

#endif /* SH_METHODS_H */
