/* host.h: what the Python host's files share.
 *
 * host.c runs the interpreter and loads scripts, plugin.c maps the
 * plugin callbacks onto a script, module.c is the `nbdkit` module
 * scripts import.  A filter.c would load its scripts with the same
 * host_script_* functions and call them with the same helpers.
 *
 * The GIL: the server calls us on its own threads.  Each thread gets
 * one PyThreadState, made the first time it calls in and kept until
 * the thread exits; host_enter takes the GIL with it and host_leave
 * gives the GIL back, so Python never holds it while the server works.
 * Calls nest (a module function may call back into the server, which
 * may call us), so only the outermost pair touches the GIL.
 */

#ifndef PY_HOST_H
#define PY_HOST_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

/* ---- host.c: the interpreter ---- */

extern PyThreadState *host_new_tstate (void);
extern __thread PyThreadState *host_tstate;
extern __thread int host_depth;

static inline void
host_enter (void)
{
  if (host_depth++ == 0)
    PyEval_RestoreThread (host_tstate ? host_tstate : host_new_tstate ());
}

static inline void
host_leave (void)
{
  if (--host_depth == 0)
    PyEval_SaveThread ();
}

/* Start and stop the interpreter (with the `nbdkit` module built in). */
extern int host_init (void);
extern void host_fini (void);

/* One loaded script.  Plugins run theirs as __main__ (as nbdkit does);
 * filters will give each theirs its own module.
 */
struct script {
  char *path; /* absolute */
  PyObject *module;
  PyObject *dict;               /* the module's namespace (borrowed) */
  int api_version;              /* API_VERSION, 1 if not given */
  char *doc;                    /* the docstring, cleaned up, or NULL */
  PyObject **cb;                /* callables by index, NULL where absent */
  PyObject *params;             /* the script's `params` list, or NULL */
  struct nbdkit_param *cparams; /* the same, for the server */
};

/* Compile and run PATH as module MODNAME, then look up each of the
 * NAMES[0..N) (cached in S->cb).  Logs the traceback on failure.  The
 * GIL is held.
 */
extern int host_script_load (struct script *s, const char *path,
                             const char *modname, const char *const *names,
                             size_t n);
/* How many positional arguments FN takes (INT_MAX with *args, -1 if
 * it cannot be told, e.g. a builtin).
 */
extern int host_arity (PyObject *fn);

/* Translate S->params into S->cparams (prefixed with the entries in
 * FIRST, ended by a zeroed entry).  Logs and returns -1 on bad
 * declarations.
 */
extern int host_script_params (struct script *s,
                               const struct nbdkit_param *first, size_t nfirst);
/* KEY's declared Param object (borrowed), or NULL. */
extern PyObject *host_param_find (struct script *s, const char *key);

/* Report the pending Python exception from callback WHAT of S: the
 * traceback goes to nbdkit_error (just the message for nbdkit.Error),
 * and the errno the client gets is set: an OSError's errno (this
 * includes nbdkit.Error), else EIO unless the script called
 * nbdkit.set_error.  Clears the exception; returns -1.
 */
extern int host_report (struct script *s, const char *what);
/* The errno the pending exception carries, 0 if none (not cleared). */
extern int host_exception_errno (void);

/* Conversions that report to the server on failure (with WHAT). */
extern int host_as_int64 (struct script *s, const char *what, PyObject *o,
                          int64_t *r);
/* A copy of the string O (str or bytes) the server keeps, or NULL. */
extern const char *host_as_interned (struct script *s, const char *what,
                                     PyObject *o);

/* ---- module.c: the nbdkit module ---- */

extern PyObject *module_init (void);
/* The module object, and its Error and Param classes. */
extern PyObject *module_nbdkit, *module_error_type, *module_param_type;
/* Give the thread-model constants the numbers API 1 and 2 use. */
extern int module_old_thread_models (void);

/* What the module functions act on, set around the calls that allow
 * them: the current read, extents list, exports list.
 */
extern __thread struct nbdkit_read *module_cur_read;
extern __thread struct nbdkit_extents *module_cur_extents;
extern __thread struct nbdkit_exports *module_cur_exports;
/* The last errno given to nbdkit.set_error on this thread. */
extern __thread int module_last_error;

#endif /* PY_HOST_H */
