/* filter.h: what filter.c, filter_io.c and next.c share.
 *
 * filter.c is the python filter's life cycle (one layer per
 * --filter=SCRIPT.py, configuration, threads, exports, open),
 * filter_io.c the callbacks of an open connection, next.c the Python
 * objects through which a script calls the layer below.
 */

#ifndef PY_FILTER_H
#define PY_FILTER_H

#include <pthread.h>

#include <nbdkit-filter.h>

#include "callbacks.h"
#include "host.h"

/* The filter ABI's callbacks, with the meta-context pair. */
#define PY_FILTER_CALLBACKS(X)                                                 \
  FILTER_CALLBACKS (X) X (meta_context) X (meta_extents)

enum {
#define E(n) FCB_##n,
  PY_FILTER_CALLBACKS (E)
#undef E
      FCB_COUNT
};
extern const char *const filter_cb_names[];

/* The server loads the one filter module for every Python filter on
 * the command line; each load gets a layer of its own.
 */
#define MAX_LAYERS 8

/* One version of a layer's script: a reload loads a new one (filter.c);
 * each connection keeps the one it opened on.
 */
struct version {
  struct script script;
  int open_args, get_ready_args, block_size_args;
};

struct layer {
  struct nbdkit_filter filter; /* what the server calls */
  struct version first;
  struct version *v; /* the newest, which new connections open on */
  int loaded;
  PyObject *backend; /* the layer below, server-wide (Backend) */
  /* Taken to read v (new connections, server-wide callbacks) and to
   * replace it (a reload), always before the GIL.
   */
  pthread_rwlock_t lock;
};

/* A connection's handle: the script's, and the layer below. */
struct handle {
  struct layer *layer;
  struct version *v; /* the script it opened on */
  PyObject *h;       /* what the script's open returned */
  PyObject *next;    /* a Next object over the layer below, or NULL */
};

/* The newest script's callback N, and the one of connection H's. */
#define LCB(l, n) ((l)->v->script.cb[FCB_##n])
#define HCB(h, n) ((h)->v->script.cb[FCB_##n])

/* filter_io.c: sets the callbacks the script defines into L->filter. */
extern void filter_io_setup (struct layer *l);
extern void filter_io_close (void *handle);

/* next.c */
extern int next_init (void);
/* A Next object over N: the connection's (OWNED false) or one of its
 * own from backend.open_context (closed with it).
 */
extern PyObject *next_new (nbdkit_next *n, int owned);
/* H's Next object, over N (borrowed; NULL with an exception set). */
extern PyObject *next_of (struct handle *h, nbdkit_next *n);
/* Cut a Next or Context object off from the server. */
extern void next_invalidate (PyObject *o);
/* L's Backend object over B (borrowed). */
extern PyObject *backend_of (struct layer *l, nbdkit_backend *b);
/* A Context object over C, for L's open with READONLY. */
extern PyObject *context_new (nbdkit_context *c, struct layer *l, int readonly);

#endif /* PY_FILTER_H */
