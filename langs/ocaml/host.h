/* host.h: what the OCaml host's files share.
 *
 * host.c runs the OCaml native runtime (linked into this object, with
 * the NBDKit module, the whole standard library, Unix, Str, threads
 * and Dynlink), compiles and loads the scripts, module.c holds the C
 * side of the NBDKit module, plugin.c and filter.c map the plugin and
 * filter ABIs onto the callbacks the scripts registered, next.c holds
 * NBDKit.Next (a filter's calls to the layer below).
 *
 * Threads: the runtime (OCaml 4.13) lets one thread at a time run
 * OCaml code, under its master lock, and a C thread must be known to
 * it (caml_c_thread_register, from the threads library) before it
 * calls in.  The server calls plugins on its worker threads, so every
 * call goes: take the host's lock, register the thread (once), take
 * the runtime, call, give both back.  The host's lock makes every
 * callback run alone, from start to end, whatever thread model the
 * script chose (OCaml threads the script starts itself run when the
 * runtime lets them, as in any OCaml program); a callback lets others
 * run only while it waits inside NBDKit.nanosleep.  Calls nest (a
 * module function may call back into the server): only the outermost
 * host_enter and host_leave touch the locks.
 */

#ifndef OCAML_HOST_H
#define OCAML_HOST_H

#include <stddef.h>
#include <stdint.h>

#define CAML_NAME_SPACE
#include <caml/alloc.h>
#include <caml/callback.h>
#include <caml/memory.h>
#include <caml/mlvalues.h>

#ifndef NBDKIT_API_VERSION
#define NBDKIT_API_VERSION 3
#endif

/* ---- host.c: the runtime and the scripts ---- */

/* Scripts live in slots: 0 the plugin, 1.. the filters, all in one
 * runtime.  Each registers its callbacks as "NBDKit.<slot>.<name>".
 */
#define HOST_SLOTS 9
/* A reload loads the script again into a new slot, from HOST_SLOTS
 * on (the runtime cannot unload code, and open connections keep
 * calling the old slot's closures): this many slots in all.
 */
#define HOST_MAX_SLOTS 1024

/* A slot for reloading the script of FROM (its path kept); -1 (logged)
 * when all are taken.
 */
extern int host_new_slot (int from);

/* Start the runtime (once per process); -1 if it cannot start. */
extern int host_init (void);
/* True once a script is loaded in SLOT. */
extern int host_loaded (int slot);
extern const char *host_script_path (int slot);

/* Take (and give back) the right to run OCaml on this thread. */
extern void host_enter (void);
extern void host_leave (void);
/* Let go of both locks around a wait inside a module function (no
 * OCaml value may be touched until host_resume), and take them back.
 */
extern int host_suspend (void);
extern void host_resume (int saved);

/* Compile SCRIPT (unless it is a .cmxs already) into SLOT, load it,
 * and check that it registered a plugin (FILTER: a filter).  Errors
 * are logged.
 */
extern int host_load_script (int slot, const char *path, int filter);

/* The closure the script in SLOT registered for NAME ("pread", ...),
 * or NULL if it has no such callback; with SLOT -1, the host's own
 * NBDKit.NAME.  Call with the host entered.
 */
extern const value *host_cb (int slot, const char *name);

/* Call F with ARGS[0..NARGS) (host entered).  On an exception: logs
 * it (an NBDKit.Error or Unix_error with its message, anything else
 * with the exception printed), sets the errno the client gets and
 * returns -1.  *RESULT (if not NULL) is the result otherwise; it is
 * only valid until the next allocation unless registered as a root.
 */
extern int host_call (int slot, const char *what, const value *f, int nargs,
                      value *args, value *result);
/* Log a failure the host found itself in callback WHAT of SLOT (a bad
 * result), with errno ERR.  Returns -1.
 */
extern int host_fail (int slot, const char *what, int err, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

/* The help text of the script in SLOT (NULL before one is loaded). */
extern const char *host_help (int slot);
/* Where NBDKit.cmi is (scripts compile against it), the cache. */
extern const char *host_include_dir (void);
extern const char *host_cache_dir (void);

/* ---- module.c: the C side of the NBDKit module ---- */

/* The errno that NBDKit.set_error gave during the current callback. */
extern __thread int module_last_error;

/* The read a plugin's pread answers (NULL outside one), for
 * NBDKit.read_hole, read_lend and read_error_at.  With TRACK set, the
 * ranges answered by holes and loans are kept (offsets relative to the
 * request) for plugin.c, which copies only the rest of the script's
 * bytes.
 */
struct nbdkit_read;
struct module_read {
  struct nbdkit_read *rd;
  uint64_t offset, count;
  int track;
  size_t nranges;
  struct {
    uint64_t start, end;
  } ranges[256];
};
extern __thread struct module_read *module_read;

/* ---- filter.c, for next.c ---- */

/* Whether N is the next of a filter callback running on this thread. */
extern int filter_next_active (void *n);

/* The request of the OCaml filter pread running on this thread, for
 * Next.pread_request (innermost first, OUTER the one it runs inside).
 */
struct filter_read {
  void *next;
  void *buf;
  uint64_t count, offset;
  struct nbdkit_read *rd;
  int forwarded;
  struct filter_read *outer;
};
extern __thread struct filter_read *filter_read;

/* During a filter's open: its context (for NBDKit.next_open); during
 * its list_exports and default_export: the layer below (for
 * NBDKit.list_exports_below and default_export_below).  NULL else.
 */
struct nbdkit_context;
struct nbdkit_backend;
extern __thread struct nbdkit_context *filter_open_ctx;
extern __thread struct nbdkit_backend *filter_backend;

/* The layer below the filter whose callback runs on this thread, if
 * the server has shown it to that filter yet (NULL else).
 */
extern void *filter_backend_now (void);

#endif /* OCAML_HOST_H */
