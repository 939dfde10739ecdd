/* filter.c: the python filter, which runs filters written in Python.
 *
 *   nbdkit --filter=./myfilter.py PLUGIN [key=value ...]
 *
 * The server loads this module for each --filter=SCRIPT.py and gives
 * it "script=SCRIPT.py" first.  Each load gets a layer of its own (a
 * struct nbdkit_filter with its own callbacks, up to MAX_LAYERS), so
 * several Python filters can be stacked.  A callback the script does
 * not define is left out of the layer's struct, so the server passes
 * it straight through (at C speed, without copies).  Callbacks get the
 * layer below first: a Next object per connection, a Backend object
 * for server-wide calls, a Context object in open.  See README.md.
 */

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"

const char *const filter_cb_names[] = {
#define N(n) #n,
  PY_FILTER_CALLBACKS (N)
#undef N
};

static struct layer layers[MAX_LAYERS];
static int nlayers;  /* handed to the server */
static int nstarted; /* that started the host: the last stops it */

/* Before the script is loaded, "script" is the only parameter. */
static const struct nbdkit_param script_param[] = {
  { .name = "script",
    .type = NBDKIT_PARAM_FILE,
    .flags = NBDKIT_PARAM_REQUIRED,
    .doc = "the Python script of the filter" },
  { 0 },
};
static void bind_server_wide (struct layer *l);

/* A script that declares no params takes none. */
static const struct nbdkit_param no_params[] = { { 0 } };

static void
l_load (struct layer *l)
{
  if (host_init () == 0) {
    nstarted++;
    host_enter ();
    if (next_init () == -1)
      host_report (NULL, "creating the filter types");
    host_leave ();
  }
}

static void
l_unload (struct layer *l)
{
  PyObject *r;

  if (host_shared == NULL)
    return;
  if (l->loaded && LCB (l, unload)) {
    host_enter ();
    r = PyObject_CallNoArgs (LCB (l, unload));
    if (r == NULL)
      host_report (&l->v->script, "unload");
    Py_XDECREF (r);
    host_leave ();
  }
  if (--nstarted == 0)
    host_fini ();
}

/* Each filter script is its own module, named after the file (so
 * tracebacks and pickles make sense), made unique in sys.modules.
 */
static int
module_name (const char *path, int index, char *name, size_t len)
{
  const char *base = strrchr (path, '/'), *dot;
  int n;

  base = base ? base + 1 : path;
  dot = strrchr (base, '.');
  n = dot && dot > base ? (int)(dot - base) : (int)strlen (base);
  if (index == 0)
    snprintf (name, len, "nbdkit_filter_%.*s", n, base);
  else
    snprintf (name, len, "nbdkit_filter_%.*s_%d", n, base, index);
  for (char *p = name; *p; p++)
    if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
          || (*p >= '0' && *p <= '9')))
      *p = '_';
  return 0;
}

static int
load_script (struct layer *l, const char *path, int reloading)
{
  char modname[128];
  PyObject *r;

  module_name (path, (int)(l - layers), modname, sizeof modname);
  if (host_script_load (&l->v->script, path, modname, filter_cb_names,
                        FCB_COUNT)
      == -1)
    return -1;
  if (l->v->script.api_version != 1 && l->v->script.api_version != 3) {
    /* (1 is "not given".) */
    nbdkit_error ("%s: filters are written against API_VERSION 3", path);
    return -1;
  }
  l->v->script.api_version = 3;
  l->v->open_args = LCB (l, open) ? host_arity (LCB (l, open)) : 4;
  l->v->get_ready_args
      = LCB (l, get_ready) ? host_arity (LCB (l, get_ready)) : 0;
  l->v->block_size_args
      = LCB (l, block_size) ? host_arity (LCB (l, block_size)) : 2;

  /* Only the keys the script declares come to it; the rest go on to
   * the layers below.
   */
  if (l->v->script.params && host_script_params (&l->v->script) == -1)
    return -1;
  if (!reloading) {
    l->filter.params = l->v->script.params ? l->v->script.cparams : no_params;
    filter_io_setup (l);
    bind_server_wide (l);
  }
  l->loaded = 1;

  if (LCB (l, load)) {
    r = PyObject_CallNoArgs (LCB (l, load));
    if (r == NULL)
      return host_report (&l->v->script, "load");
    Py_DECREF (r);
  }
  return 0;
}

/* For reloading: each key=value given to a layer, its thread model. */
struct config_item {
  char *key, *value;
};
static struct {
  struct config_item *items;
  size_t n;
  int model;
} configs[MAX_LAYERS];

static void
remember (struct layer *l, const char *key, const char *value)
{
  int i = l - layers;
  struct config_item *n
      = realloc (configs[i].items, (configs[i].n + 1) * sizeof *n);

  if (n == NULL)
    return;
  configs[i].items = n;
  n[configs[i].n].key = strdup (key);
  n[configs[i].n].value = strdup (value);
  if (n[configs[i].n].key && n[configs[i].n].value)
    configs[i].n++;
}

static int
l_config (struct layer *l, const char *key, const char *value)
{
  int r;

  if (host_shared == NULL)
    return -1;
  host_enter ();
  if (l->loaded) {
    r = host_config (&l->v->script, LCB (l, config), key, value);
    remember (l, key, value);
  } else if (strcmp (key, "script") == 0)
    r = load_script (l, value, 0);
  else {
    nbdkit_error ("the python filter needs its script first:"
                  " --filter=./SCRIPT.py");
    r = -1;
  }
  host_leave ();
  return r;
}

/* Call a callback without arguments whose result does not matter. */
static int
call_void (struct layer *l, int idx)
{
  PyObject *r;
  int ret = 0;

  if (!l->loaded || l->v->script.cb[idx] == NULL)
    return 0;
  host_enter ();
  r = PyObject_CallNoArgs (l->v->script.cb[idx]);
  if (r == NULL)
    ret = host_report (&l->v->script, filter_cb_names[idx]);
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

static int
l_config_complete (struct layer *l)
{
  if (!l->loaded) {
    nbdkit_error ("the python filter has no script:"
                  " --filter=./SCRIPT.py");
    return -1;
  }
  return call_void (l, FCB_config_complete);
}

static const char *
l_config_help (struct layer *l)
{
  if (l->loaded)
    return l->v->script.doc;
  return "script=SCRIPT.py names a Python script that defines the filter's\n"
         "callbacks: use --filter=./SCRIPT.py.";
}

static void
l_dump_plugin (struct layer *l)
{
  printf ("python_version=%s\n", PY_VERSION);
  if (!l->loaded)
    return;
  host_dump_script (&l->v->script);
  if (LCB (l, dump_plugin))
    host_call_dump (&l->v->script, LCB (l, dump_plugin));
}

static int
l_thread_model (struct layer *l)
{
  PyObject *r;
  int m = NBDKIT_THREAD_MODEL_PARALLEL;

  if (!l->loaded || LCB (l, thread_model) == NULL)
    return m;
  host_enter ();
  r = PyObject_CallNoArgs (LCB (l, thread_model));
  m = r ? host_thread_model (&l->v->script, r)
        : host_report (&l->v->script, "thread_model");
  Py_XDECREF (r);
  host_leave ();
  return m;
}

static int
l_get_ready (struct layer *l, int thread_model)
{
  PyObject *a[2], *r;
  int ret = 0;

  configs[l - layers].model = thread_model;
  if (!l->loaded || LCB (l, get_ready) == NULL)
    return 0;
  host_enter ();
  a[1] = PyLong_FromLong (thread_model);
  r = a[1] ? host_call (LCB (l, get_ready), a, l->v->get_ready_args >= 1)
           : NULL;
  Py_XDECREF (a[1]);
  if (r == NULL)
    ret = host_report (&l->v->script, "get_ready");
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

/* after_fork and cleanup: () or (next), as the script takes them. */
static int
call_backend (struct layer *l, int idx, nbdkit_backend *b)
{
  PyObject *a[2], *fn = l->v->script.cb[idx], *r;
  int ret = 0;

  if (!l->loaded || fn == NULL)
    return 0;
  host_enter ();
  a[1] = backend_of (l, b);
  r = a[1] ? host_call (fn, a, host_arity (fn) >= 1) : NULL;
  if (r == NULL)
    ret = host_report (&l->v->script, filter_cb_names[idx]);
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

static int
l_after_fork (struct layer *l, nbdkit_backend *b)
{
  if (l->loaded)
    host_after_fork ();
  return call_backend (l, FCB_after_fork, b);
}

static void
l_cleanup (struct layer *l, nbdkit_backend *b)
{
  call_backend (l, FCB_cleanup, b);
}

static int
l_preconnect (struct layer *l, nbdkit_backend *b, int readonly)
{
  PyObject *a[3], *r;
  int ret = 0;

  host_enter ();
  a[1] = backend_of (l, b);
  a[2] = PyBool_FromLong (readonly);
  r = a[1] ? host_call (LCB (l, preconnect), a, 2) : NULL;
  Py_DECREF (a[2]);
  if (r == NULL)
    ret = host_report (&l->v->script, "preconnect");
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

static int
l_list_exports (struct layer *l, nbdkit_backend *b, int readonly, int is_tls,
                struct nbdkit_exports *exports)
{
  PyObject *a[4], *r;
  size_t before = nbdkit_exports_count (exports);
  int ret;

  host_enter ();
  a[1] = backend_of (l, b);
  a[2] = PyBool_FromLong (readonly);
  a[3] = PyBool_FromLong (is_tls);
  host_thread ()->cur_exports = exports;
  r = a[1] ? host_call (LCB (l, list_exports), a, 3) : NULL;
  host_thread ()->cur_exports = NULL;
  Py_DECREF (a[2]);
  Py_DECREF (a[3]);
  if (r == NULL)
    ret = host_report (&l->v->script, "list_exports");
  else
    ret = host_exports_result (&l->v->script, r, exports, before);
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

static const char *
l_default_export (struct layer *l, nbdkit_backend *b, int readonly, int is_tls)
{
  PyObject *a[4], *r;
  const char *ret = NULL;

  host_enter ();
  a[1] = backend_of (l, b);
  a[2] = PyBool_FromLong (readonly);
  a[3] = PyBool_FromLong (is_tls);
  r = a[1] ? host_call (LCB (l, default_export), a, 3) : NULL;
  Py_DECREF (a[2]);
  Py_DECREF (a[3]);
  if (r == NULL)
    host_report (&l->v->script, "default_export");
  else if (r == Py_None) {
    int depth = host_allow ();
    ret = nbdkit_backend_default_export (b, readonly, is_tls);
    host_disallow (depth);
  } else
    ret = host_as_interned (&l->v->script, "default_export", r);
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

/* meta_context(): the name of a metadata context of the filter's own
 * (e.g. "qemu:dirty-bitmap:NAME"), or None; asked once.
 */
static const char *
l_meta_context (struct layer *l)
{
  PyObject *r;
  const char *ret = NULL;

  host_enter ();
  r = PyObject_CallNoArgs (LCB (l, meta_context));
  if (r == NULL)
    host_report (&l->v->script, "meta_context");
  else if (r != Py_None)
    ret = host_as_interned (&l->v->script, "meta_context", r);
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

/* Reloading (the server calls it on SIGHUP, see "reload" in
 * abi/README.md): run the layer's script again, at once, as a new
 * module, with the same keys, config_complete and get_ready.  If that
 * works, connections opened afterwards use the new version, while
 * open ones keep theirs (their functions keep their module's globals).
 * A script that fails is reported (with its traceback) and its layer
 * keeps the version before.  Old versions stay.
 */
static int
l_reload (struct layer *l)
{
  struct version *old, *n = calloc (1, sizeof *n);
  int i = l - layers, ok;

  if (n == NULL) {
    nbdkit_error ("python: reload: out of memory");
    return -1;
  }
  pthread_rwlock_wrlock (&l->lock);
  old = l->v;
  host_enter ();
  nbdkit_debug ("%s: reloading", old->script.path);
  l->v = n;
  ok = load_script (l, old->script.path, 1) == 0;
  for (size_t k = 0; ok && k < configs[i].n; k++)
    ok = host_config (&n->script, LCB (l, config), configs[i].items[k].key,
                      configs[i].items[k].value)
         == 0;
  ok = ok && call_void (l, FCB_config_complete) == 0;
  ok = ok && l_get_ready (l, configs[i].model) == 0;
  PyErr_Clear ();
  if (ok)
    nbdkit_debug ("%s: reloaded", old->script.path);
  else {
    l->v = old;
    /* Its module back under its name, for tracebacks and pickles. */
    if (old->script.module)
      PyDict_SetItemString (PyImport_GetModuleDict (),
                            PyModule_GetName (old->script.module),
                            old->script.module);
    PyErr_Clear ();
  }
  host_leave ();
  pthread_rwlock_unlock (&l->lock);
  return ok ? 0 : -1;
}

/* The handle is a struct handle; the script's own handle is what its
 * open returned (None without open).
 */
static void *
l_open (struct layer *l, nbdkit_context *ctx, int readonly,
        const char *exportname, int is_tls)
{
  struct handle *h = calloc (1, sizeof *h);
  PyObject *a[5], *r;
  size_t n;

  if (h == NULL) {
    nbdkit_error ("%s: open: out of memory", l->v->script.path);
    return NULL;
  }
  h->layer = l;
  pthread_rwlock_rdlock (&l->lock);
  h->v = l->v;
  pthread_rwlock_unlock (&l->lock);
  n = h->v->open_args < 1 ? 1 : h->v->open_args > 4 ? 4 : h->v->open_args;
  host_enter ();
  if (HCB (h, open) == NULL) {
    Py_INCREF (Py_None);
    r = Py_None;
  } else {
    a[1] = context_new (ctx, l, readonly);
    a[2] = PyBool_FromLong (readonly);
    a[3] = PyUnicode_DecodeFSDefault (exportname);
    a[4] = PyBool_FromLong (is_tls);
    r = a[1] && a[3] ? host_call (HCB (h, open), a, n) : NULL;
    if (r == NULL)
      host_report (&h->v->script, "open");
    next_invalidate (a[1]);
    Py_XDECREF (a[1]);
    Py_DECREF (a[2]);
    Py_XDECREF (a[3]);
    Py_DECREF (a[4]);
  }
  host_leave ();
  if (r == NULL) {
    free (h);
    return NULL;
  }
  h->h = r;
  return h;
}

/* Each layer's callbacks that do not get a handle, bound to it. */
#define LAYER(i)                                                               \
  static void load_##i (void)                                                  \
  {                                                                            \
    l_load (&layers[i]);                                                       \
  }                                                                            \
  static void unload_##i (void)                                                \
  {                                                                            \
    l_unload (&layers[i]);                                                     \
  }                                                                            \
  static int config_##i (const char *k, const char *v)                         \
  {                                                                            \
    return l_config (&layers[i], k, v);                                        \
  }                                                                            \
  static int config_complete_##i (void)                                        \
  {                                                                            \
    return l_config_complete (&layers[i]);                                     \
  }                                                                            \
  static const char *config_help_##i (void)                                    \
  {                                                                            \
    return l_config_help (&layers[i]);                                         \
  }                                                                            \
  static void dump_plugin_##i (void)                                           \
  {                                                                            \
    l_dump_plugin (&layers[i]);                                                \
  }                                                                            \
  static int thread_model_##i (void)                                           \
  {                                                                            \
    return l_thread_model (&layers[i]);                                        \
  }                                                                            \
  static int get_ready_##i (int m)                                             \
  {                                                                            \
    return l_get_ready (&layers[i], m);                                        \
  }                                                                            \
  static int after_fork_##i (nbdkit_backend *b)                                \
  {                                                                            \
    return l_after_fork (&layers[i], b);                                       \
  }                                                                            \
  static void cleanup_##i (nbdkit_backend *b)                                  \
  {                                                                            \
    l_cleanup (&layers[i], b);                                                 \
  }                                                                            \
  static int preconnect_##i (nbdkit_backend *b, int ro)                        \
  {                                                                            \
    pthread_rwlock_rdlock (&layers[i].lock);                                   \
    int r = l_preconnect (&layers[i], b, ro);                                  \
    pthread_rwlock_unlock (&layers[i].lock);                                   \
    return r;                                                                  \
  }                                                                            \
  static int list_exports_##i (nbdkit_backend *b, int ro, int tls,             \
                               struct nbdkit_exports *e)                       \
  {                                                                            \
    pthread_rwlock_rdlock (&layers[i].lock);                                   \
    int r = l_list_exports (&layers[i], b, ro, tls, e);                        \
    pthread_rwlock_unlock (&layers[i].lock);                                   \
    return r;                                                                  \
  }                                                                            \
  static const char *default_export_##i (nbdkit_backend *b, int ro, int tls)   \
  {                                                                            \
    pthread_rwlock_rdlock (&layers[i].lock);                                   \
    const char *r = l_default_export (&layers[i], b, ro, tls);                 \
    pthread_rwlock_unlock (&layers[i].lock);                                   \
    return r;                                                                  \
  }                                                                            \
  static void *open_##i (nbdkit_context *c, int ro, const char *n, int tls)    \
  {                                                                            \
    return l_open (&layers[i], c, ro, n, tls);                                 \
  }                                                                            \
  static const char *meta_context_##i (void)                                   \
  {                                                                            \
    pthread_rwlock_rdlock (&layers[i].lock);                                   \
    const char *r = l_meta_context (&layers[i]);                               \
    pthread_rwlock_unlock (&layers[i].lock);                                   \
    return r;                                                                  \
  }                                                                            \
  static int reload_##i (void)                                                 \
  {                                                                            \
    return l_reload (&layers[i]);                                              \
  }
#define LAYERS(X) X (0) X (1) X (2) X (3) X (4) X (5) X (6) X (7)
LAYERS (LAYER)
#undef LAYER

/* Until its script is loaded, a layer has only these; preconnect,
 * list_exports, default_export and meta_context join if the script
 * defines them.
 */
struct bound {
  struct nbdkit_filter f;
  int (*preconnect) (nbdkit_backend *, int);
  int (*list_exports) (nbdkit_backend *, int, int, struct nbdkit_exports *);
  const char *(*default_export) (nbdkit_backend *, int, int);
  const char *(*meta_context) (void);
};
#define BOUND(i)                                                               \
  { .f = { .name = "python",                                                   \
           .longname = "nbdkit Python filter host",                            \
           .version = NBDKIT_VERSION,                                          \
           .description = "Runs a filter written in Python: "                  \
                          "nbdkit --filter=./SCRIPT.py PLUGIN ...",            \
           .params = script_param,                                             \
           .config = config_##i,                                               \
           .config_complete = config_complete_##i,                             \
           .config_help = config_help_##i,                                     \
           .load = load_##i,                                                   \
           .unload = unload_##i,                                               \
           .dump_plugin = dump_plugin_##i,                                     \
           .thread_model = thread_model_##i,                                   \
           .get_ready = get_ready_##i,                                         \
           .after_fork = after_fork_##i,                                       \
           .cleanup = cleanup_##i,                                             \
           .open = open_##i,                                                   \
           .close = filter_io_close,                                           \
           .reload = reload_##i },                                             \
    .preconnect = preconnect_##i,                                              \
    .list_exports = list_exports_##i,                                          \
    .default_export = default_export_##i,                                      \
    .meta_context = meta_context_##i },
static const struct bound bound[MAX_LAYERS] = { LAYERS (BOUND) };
#undef BOUND

static void
bind_server_wide (struct layer *l)
{
  const struct bound *b = &bound[l - layers];

  if (LCB (l, preconnect))
    l->filter.preconnect = b->preconnect;
  if (LCB (l, list_exports))
    l->filter.list_exports = b->list_exports;
  if (LCB (l, default_export))
    l->filter.default_export = b->default_export;
  if (LCB (l, meta_context))
    l->filter.meta_context = b->meta_context;
}

NBDKIT_EXTERN_C NBDKIT_DLL_PUBLIC struct nbdkit_filter *filter_init (void);

/* Called once per --filter=SCRIPT.py: the next free layer. */
NBDKIT_EXTERN_C NBDKIT_DLL_PUBLIC struct nbdkit_filter *
filter_init (void)
{
  struct layer *l;

  if (nlayers >= MAX_LAYERS) {
    fprintf (stderr,
             "nbdkit: python: at most %d Python filters can be stacked\n",
             MAX_LAYERS);
    return NULL;
  }
  l = &layers[nlayers];
  l->filter = bound[nlayers].f;
  l->v = &l->first;
  pthread_rwlock_init (&l->lock, NULL);
  nlayers++;
  l->filter._struct_size = sizeof l->filter;
  l->filter._api_version = NBDKIT_API_VERSION;
  l->filter._unused = 0;
  return &l->filter;
}
