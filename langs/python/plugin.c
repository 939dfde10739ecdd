/* plugin.c: the python plugin, which runs a plugin written in Python.
 *
 *   nbdkit python SCRIPT.py [key=value ...]
 *
 * Each callback of the plugin ABI calls the script's function of the
 * same name, looked up once when the script is loaded; a missing one
 * gets the default the server gives C plugins (nbdkit's for API 1 and
 * 2 scripts).  Arguments follow the script's API_VERSION: 3 is the
 * native one, 1 and 2 are those of nbdkit's own Python plugin.  See
 * README.md for what a script sees.
 */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin.h"

#include "script.h"

static const char *const cb_names[] = {
#define N(n) #n,
  PLUGIN_CALLBACKS (N)
#undef N
};

static struct plugin_script first_script;
struct plugin_script *cur_script = &first_script;
/* In this file, the newest script. */
#define script (cur_script->s)
static int loaded;
/* For reloading: each key=value given, and the thread model. */
static struct config_item {
  char *key, *value;
} * config_items;
static size_t n_config_items;
static int final_model = -1;

/* Before the script is loaded, "script" is the only parameter. */
static const struct nbdkit_param script_param[] = {
  { .name = "script",
    .type = NBDKIT_PARAM_FILE,
    .flags = NBDKIT_PARAM_REQUIRED,
    .doc = "the Python script to run" },
  { 0 },
};

static struct nbdkit_plugin plugin;
/* Taken to read cur_script (new connections, server-wide callbacks),
 * and to replace it (py_reload), always before the GIL.
 */
static pthread_rwlock_t script_lock = PTHREAD_RWLOCK_INITIALIZER;

static void
py_load (void)
{
  host_init ();
}

static void
py_unload (void)
{
  if (host_shared == NULL)
    return;
  if (loaded && CB (unload)) {
    host_enter ();
    PyObject *r = PyObject_CallNoArgs (CB (unload));
    if (r == NULL)
      host_report (&script, "unload");
    Py_XDECREF (r);
    host_leave ();
  }
  host_fini ();
}

static int
load_script (const char *path, int reloading)
{
  PyObject *r;

  if (host_script_load (&script, path, "__main__", cb_names, CB_COUNT) == -1)
    return -1;
  if (CB (get_size) == NULL || CB (pread) == NULL) {
    nbdkit_error ("%s: the script does not define %s(): a plugin needs at"
                  " least get_size and pread",
                  path, CB (get_size) ? "pread" : "get_size");
    return -1;
  }
  if (API < 3 && module_old_thread_models () == -1)
    return host_report (&script, "loading");
  cur_script->open_args = CB (open) ? host_arity (CB (open)) : 3;
  cur_script->get_ready_args = CB (get_ready) ? host_arity (CB (get_ready)) : 0;
  cur_script->block_size_args
      = CB (block_size) ? host_arity (CB (block_size)) : 1;

  /* The server checks the script's declared parameters from now on;
   * without declarations, every key goes to its config unchecked.
   */
  if (script.params && host_script_params (&script) == -1)
    return -1;
  if (!reloading) {
    plugin.params = script.params ? script.cparams : NULL;
    /* Without the script's own answer, the server's rule (nbdkit's):
     * fast zeroes unless zeroing is native.
     */
    if (CB (can_fast_zero) == NULL)
      plugin.can_fast_zero = NULL;
  }
  loaded = 1;
  nbdkit_debug ("%s: API_VERSION %d", path, API);

  if (CB (load)) {
    r = PyObject_CallNoArgs (CB (load));
    if (r == NULL)
      return host_report (&script, "load");
    Py_DECREF (r);
  }
  return 0;
}

static void
remember (const char *key, const char *value)
{
  struct config_item *n
      = realloc (config_items, (n_config_items + 1) * sizeof *config_items);

  if (n == NULL)
    return;
  config_items = n;
  n[n_config_items].key = strdup (key);
  n[n_config_items].value = strdup (value);
  if (n[n_config_items].key && n[n_config_items].value)
    n_config_items++;
}

static int
py_config (const char *key, const char *value)
{
  int r;

  host_enter ();
  if (loaded) {
    r = host_config (&script, CB (config), script_key_after_load (key, NULL),
                     value);
    remember (key, value);
  } else if (strcmp (key, "script") == 0 && host_shared)
    r = load_script (value, 0);
  else {
    nbdkit_error ("the first parameter must be the script:"
                  " nbdkit python SCRIPT.py [key=value ...]");
    r = -1;
  }
  host_leave ();
  return r;
}

/* Call a callback without arguments whose result does not matter. */
static int
call_void (int idx)
{
  PyObject *r;
  int ret = 0;

  if (!loaded || script.cb[idx] == NULL)
    return 0;
  host_enter ();
  r = PyObject_CallNoArgs (script.cb[idx]);
  if (r == NULL)
    ret = host_report (&script, cb_names[idx]);
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

static int
py_config_complete (void)
{
  if (!loaded) {
    nbdkit_error ("no script given: nbdkit python SCRIPT.py [key=value ...]");
    return -1;
  }
  return call_void (CB_config_complete);
}

static const char *
py_config_help (void)
{
  if (loaded)
    return script.doc;
  return "script=SCRIPT.py names a Python script that defines the plugin's\n"
         "callbacks; it is also the bare parameter, so 'nbdkit python x.py' "
         "or\n"
         "'nbdkit x.py' work.  'nbdkit x.py --help' shows the script's own "
         "help.";
}

static void
py_dump_plugin (void)
{
  printf ("python_version=%s\n", PY_VERSION);
  printf ("python_pep_384_abi_version=%d\n", PYTHON_ABI_VERSION);
  printf ("nbdkit_python_maximum_api_version=3\n");
  if (!loaded)
    return;
  host_dump_script (&script);
  if (CB (dump_plugin))
    host_call_dump (&script, CB (dump_plugin));
}

static int
py_thread_model (void)
{
  PyObject *r;
  int m = NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS;

  if (!loaded || CB (thread_model) == NULL)
    return m;
  host_enter ();
  r = PyObject_CallNoArgs (CB (thread_model));
  m = r ? host_thread_model (&script, r)
        : host_report (&script, "thread_model");
  Py_XDECREF (r);
  host_leave ();
  return m;
}

/* API 1 and 2 number the thread models 0 to 3. */
static const int models[] = {
  NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS,
  NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS,
  NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS,
  NBDKIT_THREAD_MODEL_PARALLEL,
};

static int
py_get_ready (int thread_model)
{
  PyObject *a[2], *r;
  int m = thread_model, ret = 0;

  final_model = thread_model;
  if (!loaded || CB (get_ready) == NULL)
    return 0;
  host_enter ();
  if (API < 3)
    for (int i = 0; i < 4; i++)
      if (models[i] == thread_model)
        m = i;
  if (cur_script->get_ready_args == 0)
    r = PyObject_CallNoArgs (CB (get_ready));
  else {
    a[1] = PyLong_FromLong (m);
    r = a[1] ? host_call (CB (get_ready), a, 1) : NULL;
    Py_XDECREF (a[1]);
  }
  if (r == NULL)
    ret = host_report (&script, "get_ready");
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

static int
py_after_fork (void)
{
  if (loaded)
    host_after_fork ();
  return call_void (CB_after_fork);
}

static void
py_cleanup (void)
{
  call_void (CB_cleanup);
}

static int
preconnect_1 (int readonly)
{
  PyObject *a[2], *r;
  int ret = 0;

  if (CB (preconnect) == NULL)
    return 0;
  host_enter ();
  a[1] = PyBool_FromLong (readonly);
  r = host_call (CB (preconnect), a, 1);
  Py_DECREF (a[1]);
  if (r == NULL)
    ret = host_report (&script, "preconnect");
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

static int
list_exports_1 (int readonly, int is_tls, struct nbdkit_exports *exports)
{
  PyObject *a[3], *r;
  size_t before = nbdkit_exports_count (exports);
  int ret = 0;

  if (CB (list_exports) == NULL)
    return nbdkit_use_default_export (exports);
  host_enter ();
  a[1] = PyBool_FromLong (readonly);
  a[2] = PyBool_FromLong (is_tls);
  host_thread ()->cur_exports = exports;
  r = host_call (CB (list_exports), a, 2);
  Py_DECREF (a[1]);
  Py_DECREF (a[2]);
  if (r == NULL)
    ret = host_report (&script, "list_exports");
  else
    ret = host_exports_result (&script, r, exports, before);
  host_thread ()->cur_exports = NULL;
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

static const char *
default_export_1 (int readonly, int is_tls)
{
  PyObject *a[3], *r;
  const char *ret = NULL;

  if (CB (default_export) == NULL)
    return "";
  host_enter ();
  a[1] = PyBool_FromLong (readonly);
  a[2] = PyBool_FromLong (is_tls);
  r = host_call (CB (default_export), a, 2);
  Py_DECREF (a[1]);
  Py_DECREF (a[2]);
  if (r == NULL)
    host_report (&script, "default_export");
  else
    ret = host_as_interned (&script, "default_export", r);
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

/* The server-wide callbacks run on the newest script, which a reload
 * does not replace while they run.
 */
static int
py_preconnect (int readonly)
{
  pthread_rwlock_rdlock (&script_lock);
  int r = preconnect_1 (readonly);
  pthread_rwlock_unlock (&script_lock);
  return r;
}

static int
py_list_exports (int readonly, int is_tls, struct nbdkit_exports *exports)
{
  pthread_rwlock_rdlock (&script_lock);
  int r = list_exports_1 (readonly, is_tls, exports);
  pthread_rwlock_unlock (&script_lock);
  return r;
}

static const char *
py_default_export (int readonly, int is_tls)
{
  pthread_rwlock_rdlock (&script_lock);
  const char *r = default_export_1 (readonly, is_tls);
  pthread_rwlock_unlock (&script_lock);
  return r;
}

/* Reloading (the server calls it on SIGHUP, see "reload" in
 * abi/README.md): run the script again, at once, as a new __main__
 * module, with the same parameters, config_complete and get_ready.  If
 * all of that works, connections opened afterwards use the new script,
 * while those already open keep theirs (its functions keep their
 * module's globals).  A script that fails is reported (with its
 * traceback) and changes nothing.  Old scripts are kept (a module and
 * its functions), not freed.
 */
static int
py_reload (void)
{
  struct plugin_script *old, *n = calloc (1, sizeof *n);
  PyObject *modules, *m;
  int ok = 0;

  if (n == NULL) {
    nbdkit_error ("python: reload: out of memory");
    return -1;
  }
  pthread_rwlock_wrlock (&script_lock);
  old = cur_script;
  host_enter ();
  nbdkit_debug ("%s: reloading", old->s.path);
  modules = PyImport_GetModuleDict ();
  m = PyModule_New ("__main__");
  if (m == NULL || PyDict_SetItemString (modules, "__main__", m) == -1)
    host_report (&old->s, "reload");
  else {
    cur_script = n;
    ok = load_script (old->s.path, 1) == 0;
    for (size_t i = 0; ok && i < n_config_items; i++)
      ok = host_config (&script, CB (config), config_items[i].key,
                        config_items[i].value)
           == 0;
    ok = ok && call_void (CB_config_complete) == 0;
    ok = ok && (final_model == -1 || py_get_ready (final_model) == 0);
  }
  Py_XDECREF (m);
  PyErr_Clear ();
  if (ok)
    nbdkit_debug ("%s: reloaded", old->s.path);
  else {
    cur_script = old;
    PyDict_SetItemString (modules, "__main__", old->s.module);
    PyErr_Clear ();
  }
  host_leave ();
  pthread_rwlock_unlock (&script_lock);
  return ok ? 0 : -1;
}

/* The handle wraps the Python object open returned (None without
 * open: then a connection costs the script no call and takes no GIL
 * until get_size).
 */
static void *
py_open (int readonly, const char *exportname, int is_tls)
{
  PyObject *a[4], *r;
  struct handle *hd = malloc (sizeof *hd);
  struct plugin_script *ps;
  size_t n;

  if (hd == NULL) {
    nbdkit_error ("malloc: %m");
    return NULL;
  }
  pthread_rwlock_rdlock (&script_lock);
  ps = cur_script;
  pthread_rwlock_unlock (&script_lock);
  hd->ps = ps;
  hd->h = Py_None;
  if (ps->s.cb[CB_open] == NULL)
    return hd;
  n = ps->open_args;
  n = n < 3 ? (n < 1 ? 1 : n) : 3;
  host_enter ();
  a[1] = PyBool_FromLong (readonly);
  a[2] = PyUnicode_DecodeFSDefault (exportname);
  a[3] = PyBool_FromLong (is_tls);
  r = a[2] ? host_call (ps->s.cb[CB_open], a, n) : NULL;
  Py_DECREF (a[1]);
  Py_XDECREF (a[2]);
  Py_DECREF (a[3]);
  if (r == NULL)
    host_report (&ps->s, "open");
  host_leave ();
  if (r == NULL) {
    free (hd);
    return NULL;
  }
  hd->h = r;
  return hd;
}

static void
py_close (void *handle)
{
  struct handle *hd = handle;
  struct plugin_script *ps = hd->ps;
  PyObject *a[2] = { NULL, hd->h }, *r;

  if (ps->s.cb[CB_close] == NULL && ps->s.cb[CB_open] == NULL) {
    free (hd);
    return;
  }
  host_enter ();
  if (ps->s.cb[CB_close]) {
    r = host_call (ps->s.cb[CB_close], a, 1);
    if (r == NULL)
      host_report (&ps->s, "close");
    Py_XDECREF (r);
  }
  if (ps->s.cb[CB_open])
    Py_DECREF (hd->h);
  host_leave ();
  free (hd);
}

static struct nbdkit_plugin plugin = {
  .name = "python",
  .longname = "nbdkit Python plugin host",
  .version = NBDKIT_VERSION,
  .description = "Runs a plugin written in Python: "
                 "nbdkit python SCRIPT.py [key=value ...]",
  .params = script_param,
  .magic_config_key = "script",
  .config = py_config,
  .config_complete = py_config_complete,
  .config_help = py_config_help,
  .load = py_load,
  .unload = py_unload,
  .dump_plugin = py_dump_plugin,
  .thread_model = py_thread_model,
  .get_ready = py_get_ready,
  .after_fork = py_after_fork,
  .cleanup = py_cleanup,
  .preconnect = py_preconnect,
  .list_exports = py_list_exports,
  .default_export = py_default_export,
  .open = py_open,
  .close = py_close,
  .get_size = py_get_size,
  .export_description = py_export_description,
  .block_size = py_block_size,
  .can_write = py_can_write,
  .can_flush = py_can_flush,
  .is_rotational = py_is_rotational,
  .can_trim = py_can_trim,
  .can_zero = py_can_zero,
  .can_fast_zero = py_can_fast_zero,
  .can_fua = py_can_fua,
  .can_multi_conn = py_can_multi_conn,
  .can_extents = py_can_extents,
  .can_cache = py_can_cache,
  .pread = py_pread,
  .pwrite = py_pwrite,
  .flush = py_flush,
  .trim = py_trim,
  .zero = py_zero,
  .extents = py_extents,
  .cache = py_cache,
  .reload = py_reload,
};

NBDKIT_REGISTER_PLUGIN (plugin)
