/* callbacks.h: the callbacks of the plugin and filter ABIs that the
 * language hosts map onto a script's functions of the same names, as
 * X-macros (X (name) for each, in the order of the ABI's structs).
 * A host makes its callback numbers and names from them; the Lua
 * filter adds meta_context and meta_extents.
 */

#ifndef LANGS_CALLBACKS_H
#define LANGS_CALLBACKS_H

/* clang-format off */
#define PLUGIN_CALLBACKS(X)                                             \
  X (load) X (unload) X (dump_plugin) X (config) X (config_complete)    \
  X (thread_model) X (get_ready) X (after_fork) X (cleanup)             \
  X (preconnect) X (list_exports) X (default_export)                    \
  X (open) X (close) X (get_size) X (export_description) X (block_size) \
  X (can_write) X (can_flush) X (is_rotational) X (can_trim)            \
  X (can_zero) X (can_fast_zero) X (can_fua) X (can_multi_conn)         \
  X (can_extents) X (can_cache)                                         \
  X (pread) X (pwrite) X (flush) X (trim) X (zero) X (extents) X (cache)

#define FILTER_CALLBACKS(X)                                             \
  X (load) X (unload) X (dump_plugin) X (config) X (config_complete)    \
  X (thread_model) X (get_ready) X (after_fork) X (cleanup)             \
  X (preconnect) X (list_exports) X (default_export)                    \
  X (open) X (close) X (prepare) X (finalize)                           \
  X (get_size) X (export_description) X (block_size)                    \
  X (can_write) X (can_flush) X (is_rotational) X (can_trim)            \
  X (can_zero) X (can_fast_zero) X (can_fua) X (can_multi_conn)         \
  X (can_extents) X (can_cache)                                         \
  X (pread) X (pwrite) X (flush) X (trim) X (zero) X (extents) X (cache)

/* The callbacks a host leaves out of its struct when the script lacks
 * them, so that the server's defaults or pass-through apply.
 */
#define PLUGIN_OPTIONAL_CALLBACKS(X)                                    \
  X (config_complete) X (get_ready) X (after_fork) X (cleanup)          \
  X (preconnect) X (list_exports) X (default_export)                    \
  X (export_description) X (block_size)                                 \
  X (can_write) X (can_flush) X (is_rotational) X (can_trim)            \
  X (can_zero) X (can_fast_zero) X (can_fua) X (can_multi_conn)         \
  X (can_extents) X (can_cache)                                         \
  X (pwrite) X (flush) X (trim) X (zero) X (extents) X (cache)

#define FILTER_OPTIONAL_CALLBACKS(X)                                    \
  X (dump_plugin) X (get_ready) X (after_fork) X (cleanup)              \
  X (preconnect) X (list_exports) X (default_export)                    \
  X (prepare) X (finalize) X (get_size) X (export_description)          \
  X (block_size) X (can_write) X (can_flush) X (is_rotational)          \
  X (can_trim) X (can_zero) X (can_fast_zero) X (can_fua)               \
  X (can_multi_conn) X (can_extents) X (can_cache) X (pread)            \
  X (pwrite) X (flush) X (trim) X (zero) X (extents) X (cache)
/* clang-format on */

#endif /* LANGS_CALLBACKS_H */
