/* host.h: what the Python host's files share.
 *
 * host.c runs the interpreter and loads scripts; convert.c turns the
 * scripts' answers into the server's and Python exceptions into
 * errors; module.c is the `nbdkit` module scripts import; plugin.c and
 * plugin_io.c map the plugin callbacks onto a script, filter.c,
 * filter_io.c and next.c the filter callbacks.
 *
 * The same sources are built into two modules, nbdkit-python-plugin.so
 * and nbdkit-python-filter.so.  Both link the one libpython, so there
 * is one interpreter per process: the first module to load starts it
 * and shares its per-thread state (struct host_thread) with the other
 * through a capsule in the `nbdkit` module (struct host_shared).
 *
 * The GIL: the server calls us on its own threads.  Each thread gets
 * one PyThreadState, made the first time it calls in and kept until
 * the thread exits; host_enter takes the GIL with it and host_leave
 * gives the GIL back, so Python never holds it while the server works.
 * Calls nest (a module function may call back into the server, which
 * may call us), so only the outermost pair touches the GIL; a call
 * into the layer below (host_allow .. host_disallow) gives the GIL up
 * whatever the depth, since that layer may be Python too.
 */

#ifndef PY_HOST_H
#define PY_HOST_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <sys/types.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

/* ---- host.c: the interpreter ---- */

/* A filter's pread in progress, for next.pread to pass its holes and
 * loans through (see f_pread in filter_io.c).  TOKEN is what next.pread
 * returned after passing RD down, until the script returns it or does
 * something else with the read.
 */
struct host_forward {
  struct nbdkit_read *rd;
  void *buf;
  uint64_t count, offset;
  PyObject *token;
};

/* One server thread's state in Python, shared by every host. */
struct host_thread {
  PyThreadState *tstate;
  int depth;                          /* nesting of host_enter */
  struct nbdkit_read *cur_read;       /* what the module functions act on */
  struct nbdkit_extents *cur_extents; /* ... in pread, extents, */
  struct nbdkit_exports *cur_exports; /* ... list_exports */
  int last_error;                     /* the last nbdkit.set_error */
  struct host_forward *cur_forward;   /* in a filter's pread */
  /* Each data callback hands the script a memoryview; the one given
   * last, if the script kept no reference to it, is kept here for the
   * next call (read-only [0] for pwrite, writable [1] for pread): see
   * host_view.
   */
  PyObject *view[2];
};

/* What the host that started the interpreter shares with the other. */
#define HOST_SHARED_VERSION 3
struct host_shared {
  int version;
  struct host_thread *(*thread) (void); /* this thread's, made if needed */
  int users;                            /* hosts loaded */
  int finalized;
  pid_t pid; /* the process Python runs in */
};
extern struct host_shared *host_shared;
/* traceback.format_exception, for reports. */
extern PyObject *host_format_exception;

static inline struct host_thread *
host_thread (void)
{
  return host_shared->thread ();
}

static inline void
host_enter (void)
{
  struct host_thread *t = host_thread ();

  if (t->depth++ == 0)
    PyEval_RestoreThread (t->tstate);
}

static inline void
host_leave (void)
{
  struct host_thread *t = host_thread ();

  if (--t->depth == 0)
    PyEval_SaveThread ();
}

/* The same, for callers that use the thread's state in between (one
 * lookup instead of one per use).
 */
static inline struct host_thread *
host_enter_t (void)
{
  struct host_thread *t = host_thread ();

  if (t->depth++ == 0)
    PyEval_RestoreThread (t->tstate);
  return t;
}

static inline void
host_leave_t (struct host_thread *t)
{
  if (--t->depth == 0)
    PyEval_SaveThread ();
}

/* Around a call into the server that may come back into Python on
 * this thread (a filter calling the layer below): give up the GIL
 * whatever the depth, and take it back after.
 */
static inline int
host_allow (void)
{
  struct host_thread *t = host_thread ();
  int depth = t->depth;

  t->depth = 0;
  PyEval_SaveThread ();
  return depth;
}

static inline void
host_disallow (int depth)
{
  struct host_thread *t = host_thread ();

  PyEval_RestoreThread (t->tstate);
  t->depth = depth;
}

/* Start the interpreter (with the `nbdkit` module built in), or join
 * the one the other host started.  Stop it when the last host goes.
 */
extern int host_init (void);
extern void host_fini (void);
/* From after_fork: make Python whole again in a forked child. */
extern void host_after_fork (void);

/* One loaded script.  The plugin runs its as __main__ (as nbdkit
 * does); each filter gets a module of its own.
 */
struct script {
  char *path; /* absolute */
  PyObject *module;
  PyObject *dict;              /* the module's namespace (borrowed) */
  int api_version;             /* API_VERSION, 1 if not given */
  char *doc;                   /* the docstring, cleaned up, or NULL */
  PyObject **cb;               /* callables by index, NULL where absent */
  const char *const *cb_names; /* their names */
  size_t ncb;
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

/* Translate S->params into S->cparams (ended by a zeroed entry).
 * Logs and returns -1 on bad declarations.
 */
extern int host_script_params (struct script *s);
/* KEY's declared Param object (borrowed), or NULL. */
extern PyObject *host_param_find (struct script *s, const char *key);
/* One key=value for the script: the declared Param gets the converted
 * value, then CONFIG (if not NULL) is called with it.  The GIL is
 * held.
 */
extern int host_config (struct script *s, PyObject *config, const char *key,
                        const char *value);
/* --dump-plugin lines about the script (python_script=...). */
extern void host_dump_script (struct script *s);
/* Print what FN (a dump_plugin callback) prints, in order with ours. */
extern void host_call_dump (struct script *s, PyObject *fn);

/* Call FN with the N arguments in A[1..N] (A[0] is scratch space that
 * vectorcall may use).
 */
static inline PyObject *
host_call (PyObject *fn, PyObject **a, size_t n)
{
  return PyObject_Vectorcall (fn, a + 1, n | PY_VECTORCALL_ARGUMENTS_OFFSET,
                              NULL);
}

/* ---- convert.c: answers and errors ---- */

/* Report the pending Python exception from callback WHAT of S: the
 * traceback goes to nbdkit_error (just the message for nbdkit.Error).
 * Returns the errno the client should get: an OSError's errno (this
 * includes nbdkit.Error), else the one given to nbdkit.set_error in
 * this callback, else EIO.  Clears the exception.
 */
extern int host_report_errno (struct script *s, const char *what);
/* The same for plugins, which hand the errno to the server through
 * nbdkit_set_error and errno; returns -1.
 */
extern int host_report (struct script *s, const char *what);
/* The errno the pending exception carries, 0 if none (not cleared). */
extern int host_exception_errno (void);

/* Conversions that report to the server on failure (with WHAT). */
extern int host_as_size (struct script *s, const char *what, PyObject *o,
                         int64_t *r);
/* A copy of the string O (str or bytes) the server keeps, or NULL. */
extern const char *host_as_interned (struct script *s, const char *what,
                                     PyObject *o);

/* A capability answer R of callback WHAT: a bool, or for the
 * tri-states (CAP_TRI) also 0, 1, 2 (nbdkit.*_NONE, _EMULATE,
 * _NATIVE), where True means native and False none.
 */
enum cap_kind { CAP_BOOL, CAP_TRI };
extern int host_cap_result (struct script *s, const char *what, PyObject *r,
                            enum cap_kind kind);
/* A thread model from either numbering (API 3's, or 0 to 3), or -1. */
extern int host_thread_model (struct script *s, PyObject *r);
/* (minimum, preferred, maximum[, maximum_virtual]) into BS. */
extern int host_block_size_result (struct script *s, PyObject *r,
                                   struct nbdkit_block_size *bs);
/* list_exports' answer (names or (name, description) tuples, or None
 * after nbdkit.add_export) into EXPORTS, which had BEFORE entries.
 */
extern int host_exports_result (struct script *s, PyObject *r,
                                struct nbdkit_exports *exports, size_t before);
/* extents' answer (iterable of (offset, length, type), or None after
 * nbdkit.add_extent) into E.  The errno on failure.
 */
extern int host_extents_result (struct script *s, PyObject *r,
                                struct nbdkit_extents *e);
/* Drop MV, a memoryview over the server's buffer, cutting it off if
 * the script kept a reference.  -1 (logged) if it cannot be.
 */
extern int host_release_view (struct script *s, PyObject *mv, const char *what);
/* A memoryview over COUNT bytes at BUF, writable if WRITABLE, for a
 * data callback: this thread's kept one, pointed at BUF, if there is
 * one, else a new one (NULL with an exception if that fails).  Give
 * it back with host_view_done after the call.
 */
extern PyObject *host_view (struct host_thread *t, void *buf, uint64_t count,
                            int writable);
/* After the call: keep MV for the next host_view if the script holds
 * no reference to it or views of it, else host_release_view.
 */
extern int host_view_done (struct host_thread *t, struct script *s,
                           PyObject *mv, int writable, const char *what);

/* ---- module.c: the nbdkit module ---- */

extern PyObject *module_init (void);
/* The module object, and its Error and Param classes. */
extern PyObject *module_nbdkit, *module_error_type, *module_param_type;
/* nbdkit.Read, the token of a read passed through (next.c). */
extern PyObject *module_read_type;
/* Give the thread-model constants the numbers API 1 and 2 use. */
extern int module_old_thread_models (void);
/* A filter's pread: the script is about to act on the read itself
 * (nbdkit.read_hole, ...), so holes and loans passed up by an earlier
 * next.pread no longer answer it.
 */
static inline void
host_forward_drop (struct host_thread *t)
{
  struct host_forward *f = t->cur_forward;

  if (f && f->token) {
    nbdkit_read_forget (f->rd);
    Py_CLEAR (f->token);
  }
}

/* The capsule that carries struct host_shared, named "nbdkit._host". */
#define MODULE_CAPSULE "nbdkit._host"

#endif /* PY_HOST_H */
