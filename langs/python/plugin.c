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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"

/* clang-format off */
#define CALLBACKS(X)                                                    \
  X (load) X (unload) X (dump_plugin) X (config) X (config_complete)    \
  X (thread_model) X (get_ready) X (after_fork) X (cleanup)             \
  X (preconnect) X (list_exports) X (default_export)                    \
  X (open) X (close) X (get_size) X (export_description) X (block_size) \
  X (can_write) X (can_flush) X (is_rotational) X (can_trim)            \
  X (can_zero) X (can_fast_zero) X (can_fua) X (can_multi_conn)         \
  X (can_extents) X (can_cache)                                         \
  X (pread) X (pwrite) X (flush) X (trim) X (zero) X (extents) X (cache)

enum {
#define E(n) CB_##n,
  CALLBACKS (E)
#undef E
  CB_COUNT
};
static const char *const cb_names[] = {
#define N(n) #n,
  CALLBACKS (N)
#undef N
};
/* clang-format on */

static struct script script;
static int loaded;
static pid_t load_pid;
/* How many arguments open, get_ready and block_size take: they have
 * an old and a new form.
 */
static int open_args, get_ready_args, block_size_args;
static PyObject *str_release;

#define CB(n) (script.cb[CB_##n])
#define API (script.api_version)

/* Call FN with the N arguments in A[1..N] (A[0] is scratch space that
 * vectorcall may use).
 */
static inline PyObject *
call (PyObject *fn, PyObject **a, size_t n)
{
  return PyObject_Vectorcall (fn, a + 1, n | PY_VECTORCALL_ARGUMENTS_OFFSET,
                              NULL);
}

/* Before the script is loaded, "script" is the only parameter. */
static const struct nbdkit_param script_param[] = {
  { .name = "script",
    .type = NBDKIT_PARAM_FILE,
    .flags = NBDKIT_PARAM_REQUIRED,
    .doc = "the Python script to run" },
  { NULL },
};

static struct nbdkit_plugin plugin;

static void
py_load (void)
{
  load_pid = getpid ();
  if (host_init () == 0) {
    host_enter ();
    str_release = PyUnicode_InternFromString ("release");
    host_leave ();
  }
}

static void
py_unload (void)
{
  if (str_release == NULL)
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
load_script (const char *path)
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
  open_args = CB (open) ? host_arity (CB (open)) : 3;
  get_ready_args = CB (get_ready) ? host_arity (CB (get_ready)) : 0;
  block_size_args = CB (block_size) ? host_arity (CB (block_size)) : 1;

  /* The server checks the script's declared parameters from now on;
   * without declarations, every key goes to its config unchecked.
   */
  if (script.params) {
    if (host_script_params (&script, NULL, 0) == -1)
      return -1;
    plugin.params = script.cparams;
  } else
    plugin.params = NULL;
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

/* VALUE (canonical text from the server) as the Python value of
 * parameter P: int for INT and SIZE, bool for BOOL, else str.  It is
 * also stored in P.value (appended for repeatable parameters).
 */
static PyObject *
param_value (PyObject *p, const char *value)
{
  PyObject *t = PyObject_GetAttrString (p, "type"), *v, *cur;
  long type = t ? PyLong_AsLong (t) : -1;

  Py_XDECREF (t);
  switch (type) {
    case NBDKIT_PARAM_INT:
    case NBDKIT_PARAM_SIZE:
      v = PyLong_FromString (value, NULL, 10);
      break;
    case NBDKIT_PARAM_BOOL:
      v = PyBool_FromLong (strcmp (value, "1") == 0);
      break;
    default:
      v = PyUnicode_DecodeFSDefault (value);
  }
  if (v == NULL)
    return NULL;
  cur = PyObject_GetAttrString (p, "value");
  if (cur && PyList_Check (cur)) {
    if (PyList_Append (cur, v) == -1)
      Py_CLEAR (v);
  } else if (PyObject_SetAttrString (p, "value", v) == -1)
    Py_CLEAR (v);
  Py_XDECREF (cur);
  return v;
}

static int
config_param (const char *key, const char *value)
{
  PyObject *p = host_param_find (&script, key), *a[3], *r;
  int ret = 0;

  if (p == NULL && CB (config) == NULL) {
    nbdkit_error ("%s: this script takes no parameters (it declares no"
                  " params and has no config function): %s=%s",
                  script.path, key, value);
    return -1;
  }
  a[2] = p ? param_value (p, value) : PyUnicode_DecodeFSDefault (value);
  if (a[2] == NULL)
    return host_report (&script, "config");
  if (CB (config)) {
    a[1] = PyUnicode_FromString (key);
    r = a[1] ? call (CB (config), a, 2) : NULL;
    if (r == NULL)
      ret = host_report (&script, "config");
    Py_XDECREF (r);
    Py_XDECREF (a[1]);
  }
  Py_DECREF (a[2]);
  return ret;
}

static int
py_config (const char *key, const char *value)
{
  int r;

  host_enter ();
  if (loaded)
    r = config_param (key, value);
  else if (strcmp (key, "script") == 0)
    r = load_script (value);
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
  PyObject *r;
  int first = 1;

  printf ("python_version=%s\n", PY_VERSION);
  printf ("python_pep_384_abi_version=%d\n", PYTHON_ABI_VERSION);
  printf ("nbdkit_python_maximum_api_version=3\n");
  if (!loaded)
    return;
  printf ("python_script=%s\n", script.path);
  printf ("python_api_version=%d\n", API);
  printf ("python_callbacks=");
  for (int i = 0; i < CB_COUNT; i++)
    if (script.cb[i]) {
      printf ("%s%s", first ? "" : ",", cb_names[i]);
      first = 0;
    }
  printf ("\n");
  fflush (stdout);
  if (CB (dump_plugin)) {
    host_enter ();
    r = PyObject_CallNoArgs (CB (dump_plugin));
    if (r == NULL)
      host_report (&script, "dump_plugin");
    Py_XDECREF (r);
    /* Python buffers its own stdout. */
    r = PyObject_CallMethod (PySys_GetObject ("stdout"), "flush", NULL);
    Py_XDECREF (r);
    PyErr_Clear ();
    host_leave ();
  }
}

/* Thread models: API 1 and 2 numbered them 0 to 3, API 3 1000 to
 * 4000 with 3500 between; either is understood, from any script.
 */
static const int models[] = {
  NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS,
  NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS,
  NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS,
  NBDKIT_THREAD_MODEL_PARALLEL,
};

static int
py_thread_model (void)
{
  PyObject *r;
  long m = NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS;

  if (!loaded || CB (thread_model) == NULL)
    return m;
  host_enter ();
  r = PyObject_CallNoArgs (CB (thread_model));
  if (r == NULL)
    m = host_report (&script, "thread_model");
  else {
    m = PyLong_Check (r) ? PyLong_AsLong (r) : -1;
    if (m >= 0 && m <= 3)
      m = models[m];
    else if (m != NBDKIT_THREAD_MODEL_SERIALIZE_RETIREMENT && m != models[0]
             && m != models[1] && m != models[2] && m != models[3]) {
      nbdkit_error ("%s: thread_model returned %ld, expected one of"
                    " nbdkit.THREAD_MODEL_*",
                    script.path, m);
      m = -1;
    }
    PyErr_Clear ();
  }
  Py_XDECREF (r);
  host_leave ();
  return m;
}

static int
py_get_ready (int thread_model)
{
  PyObject *a[2], *r;
  int m = thread_model, ret = 0;

  if (!loaded || CB (get_ready) == NULL)
    return 0;
  host_enter ();
  if (API < 3)
    for (int i = 0; i < 4; i++)
      if (models[i] == thread_model)
        m = i;
  if (get_ready_args == 0)
    r = PyObject_CallNoArgs (CB (get_ready));
  else {
    a[1] = PyLong_FromLong (m);
    r = a[1] ? call (CB (get_ready), a, 1) : NULL;
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
  if (loaded && getpid () != load_pid) {
    /* The server forked without the GIL; a thread that held it is gone.
     * As os.fork does: a fresh GIL, then Python's after-fork handlers.
     */
    PyThreadState_Swap (host_tstate);
    PyOS_AfterFork_Child ();
    host_depth = 1;
    host_leave ();
  }
  return call_void (CB_after_fork);
}

static void
py_cleanup (void)
{
  call_void (CB_cleanup);
}

static int
py_preconnect (int readonly)
{
  PyObject *a[2], *r;
  int ret = 0;

  if (CB (preconnect) == NULL)
    return 0;
  host_enter ();
  a[1] = PyBool_FromLong (readonly);
  r = call (CB (preconnect), a, 1);
  Py_DECREF (a[1]);
  if (r == NULL)
    ret = host_report (&script, "preconnect");
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

/* One entry of list_exports' result: "name" or ("name", "description"). */
static int
add_export (PyObject *t, struct nbdkit_exports *exports)
{
  PyObject *name = t, *desc = Py_None;

  if (PyTuple_Check (t) && PyTuple_GET_SIZE (t) == 2) {
    name = PyTuple_GET_ITEM (t, 0);
    desc = PyTuple_GET_ITEM (t, 1);
  }
  if (!PyUnicode_Check (name) || !(desc == Py_None || PyUnicode_Check (desc))) {
    nbdkit_error ("%s: list_exports: expected names or (name, description)"
                  " tuples of str, got %s",
                  script.path, Py_TYPE (t)->tp_name);
    return -1;
  }
  return nbdkit_add_export (exports, PyUnicode_AsUTF8 (name),
                            desc == Py_None ? NULL : PyUnicode_AsUTF8 (desc));
}

static int
py_list_exports (int readonly, int is_tls, struct nbdkit_exports *exports)
{
  PyObject *a[3], *r, *it = NULL, *t;
  size_t before = nbdkit_exports_count (exports);
  int ret = 0;

  if (CB (list_exports) == NULL)
    return nbdkit_use_default_export (exports);
  host_enter ();
  a[1] = PyBool_FromLong (readonly);
  a[2] = PyBool_FromLong (is_tls);
  module_cur_exports = exports;
  r = call (CB (list_exports), a, 2);
  Py_DECREF (a[1]);
  Py_DECREF (a[2]);
  if (r == NULL)
    ret = host_report (&script, "list_exports");
  else if (r == Py_None) {
    /* Nothing returned and nothing added: the default export alone. */
    if (nbdkit_exports_count (exports) == before)
      ret = nbdkit_use_default_export (exports);
  } else if ((it = PyObject_GetIter (r)) == NULL)
    ret = host_report (&script, "list_exports (the result is not iterable)");
  else {
    while (ret == 0 && (t = PyIter_Next (it)) != NULL) {
      ret = add_export (t, exports);
      Py_DECREF (t);
    }
    if (PyErr_Occurred ())
      ret = host_report (&script, "list_exports");
  }
  module_cur_exports = NULL;
  Py_XDECREF (it);
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

static const char *
py_default_export (int readonly, int is_tls)
{
  PyObject *a[3], *r;
  const char *ret = NULL;

  if (CB (default_export) == NULL)
    return "";
  host_enter ();
  a[1] = PyBool_FromLong (readonly);
  a[2] = PyBool_FromLong (is_tls);
  r = call (CB (default_export), a, 2);
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

/* The handle is the Python object open returned (None without open). */
static void *
py_open (int readonly, const char *exportname, int is_tls)
{
  PyObject *a[4], *r;
  size_t n = open_args < 3 ? (open_args < 1 ? 1 : open_args) : 3;

  host_enter ();
  if (CB (open) == NULL) {
    Py_INCREF (Py_None);
    r = Py_None;
  } else {
    a[1] = PyBool_FromLong (readonly);
    a[2] = PyUnicode_DecodeFSDefault (exportname);
    a[3] = PyBool_FromLong (is_tls);
    r = a[2] ? call (CB (open), a, n) : NULL;
    Py_DECREF (a[1]);
    Py_XDECREF (a[2]);
    Py_DECREF (a[3]);
    if (r == NULL)
      host_report (&script, "open");
  }
  host_leave ();
  return r;
}

static void
py_close (void *h)
{
  PyObject *a[2] = { NULL, h }, *r;

  host_enter ();
  if (CB (close)) {
    r = call (CB (close), a, 1);
    if (r == NULL)
      host_report (&script, "close");
    Py_XDECREF (r);
  }
  Py_DECREF ((PyObject *)h);
  host_leave ();
}

/* Call callback IDX with the handle alone; a new reference or NULL
 * (reported).
 */
static PyObject *
call_h (int idx, void *h)
{
  PyObject *a[2] = { NULL, h }, *r;

  r = call (script.cb[idx], a, 1);
  if (r == NULL)
    host_report (&script, cb_names[idx]);
  return r;
}

static int64_t
py_get_size (void *h)
{
  PyObject *r;
  int64_t size = -1;

  host_enter ();
  r = call_h (CB_get_size, h);
  if (r && host_as_int64 (&script, "get_size", r, &size) == -1)
    size = -1;
  Py_XDECREF (r);
  host_leave ();
  return size;
}

static const char *
py_export_description (void *h)
{
  PyObject *r;
  const char *ret = NULL;

  if (CB (export_description) == NULL)
    return NULL;
  host_enter ();
  r = call_h (CB_export_description, h);
  if (r && r != Py_None)
    ret = host_as_interned (&script, "export_description", r);
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

/* block_size(h[, client_requested]) returns (minimum, preferred,
 * maximum[, maximum_virtual]).
 */
static int
py_block_size (void *h, struct nbdkit_block_size *bs)
{
  PyObject *a[3] = { NULL, h, NULL }, *r;
  unsigned long long v[4] = { 0, 0, 0, 0 };
  int ret = -1;

  if (CB (block_size) == NULL)
    return 0;
  host_enter ();
  a[2] = PyBool_FromLong (bs->client_requested);
  r = call (CB (block_size), a, block_size_args >= 2 ? 2 : 1);
  Py_DECREF (a[2]);
  if (r == NULL)
    host_report (&script, "block_size");
  else if (!PyArg_ParseTuple (r, "KKK|K", &v[0], &v[1], &v[2], &v[3])) {
    PyErr_Clear ();
    nbdkit_error ("%s: block_size must return (minimum, preferred, maximum"
                  "[, maximum_virtual])",
                  script.path);
  } else {
    bs->minimum = v[0];
    bs->preferred = v[1];
    bs->maximum = v[2];
    bs->maximum_virtual = v[3];
    ret = 0;
  }
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

/* Capabilities.  A bool is a bool; the tri-states also take the
 * nbdkit.*_NONE/EMULATE/NATIVE numbers, and a bool there means native
 * (True) or none (False) -- for API 1 and 2, False means emulate, as
 * with nbdkit.
 */
enum cap_kind { CAP_BOOL, CAP_TRI, CAP_TRI_OLD_EMULATE };

static int
cap (int idx, void *h, enum cap_kind kind, int dflt)
{
  PyObject *r;
  int ret;
  long v;

  if (script.cb[idx] == NULL)
    return dflt;
  host_enter ();
  r = call_h (idx, h);
  if (r == NULL)
    ret = -1;
  else if (kind == CAP_BOOL)
    ret = PyObject_IsTrue (r);
  else if (kind == CAP_TRI_OLD_EMULATE && API < 3)
    ret = PyObject_IsTrue (r) ? 2 : 1;
  else if (PyBool_Check (r) && API >= 3)
    ret = r == Py_True ? 2 : 0;
  else if (PyLong_Check (r) && (v = PyLong_AsLong (r)) >= 0 && v <= 2)
    ret = v;
  else {
    PyErr_Clear ();
    nbdkit_error ("%s: %s returned %s, expected a bool or 0, 1, 2"
                  " (nbdkit.*_NONE, _EMULATE, _NATIVE)",
                  script.path, cb_names[idx], Py_TYPE (r)->tp_name);
    ret = -1;
  }
  if (ret == -1 && PyErr_Occurred ())
    host_report (&script, cb_names[idx]);
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

#define CAP(fn, kind, dflt)                                                    \
  static int py_##fn (void *h)                                                 \
  {                                                                            \
    return cap (CB_##fn, h, kind, dflt);                                       \
  }
CAP (can_write, CAP_BOOL, CB (pwrite) != NULL)
CAP (can_flush, CAP_BOOL, CB (flush) != NULL)
CAP (is_rotational, CAP_BOOL, 0)
CAP (can_trim, CAP_BOOL, CB (trim) != NULL)
CAP (can_zero, CAP_TRI_OLD_EMULATE,
     CB (zero) ? NBDKIT_ZERO_NATIVE : NBDKIT_ZERO_EMULATE)
CAP (can_fast_zero, CAP_BOOL, 0)
CAP (can_fua, CAP_TRI, CB (flush) ? NBDKIT_FUA_EMULATE : NBDKIT_FUA_NONE)
CAP (can_multi_conn, CAP_BOOL, 0)
CAP (can_extents, CAP_TRI_OLD_EMULATE,
     CB (extents) ? NBDKIT_EXTENTS_NATIVE : NBDKIT_EXTENTS_EMULATE)
CAP (can_cache, CAP_TRI, CB (cache) ? NBDKIT_CACHE_NATIVE : NBDKIT_CACHE_NONE)
#undef CAP

/* A memoryview over the server's buffer must not outlive the call:
 * if the script kept a reference, cut it off.
 */
static int
release_view (PyObject *mv, const char *what)
{
  PyObject *r;

  if (Py_REFCNT (mv) > 1) {
    r = PyObject_CallMethodNoArgs (mv, str_release);
    if (r == NULL) {
      PyErr_Clear ();
      nbdkit_error ("%s: %s: the script still uses buf after returning"
                    " (it must not keep it, or views of it)",
                    script.path, what);
      Py_DECREF (mv);
      return -1;
    }
    Py_DECREF (r);
  }
  Py_DECREF (mv);
  return 0;
}

static int
py_pread (void *h, void *buf, uint64_t count, uint64_t offset, uint32_t flags,
          struct nbdkit_read *rd)
{
  PyObject *a[5] = { NULL, h }, *r;
  Py_buffer view;
  int ret = 0;

  host_enter ();
  if (API == 1) {
    /* pread (h, count, offset) returns the data. */
    a[2] = PyLong_FromUnsignedLongLong (count);
    a[3] = PyLong_FromUnsignedLongLong (offset);
    r = a[2] && a[3] ? call (CB (pread), a, 3) : NULL;
    Py_XDECREF (a[2]);
    Py_XDECREF (a[3]);
    if (r == NULL)
      ret = host_report (&script, "pread");
    else if (PyObject_GetBuffer (r, &view, PyBUF_SIMPLE) == -1)
      ret = host_report (&script, "pread (the result is not bytes-like)");
    else {
      if ((uint64_t)view.len < count) {
        nbdkit_error ("%s: pread returned %zd bytes, expected %" PRIu64,
                      script.path, view.len, count);
        errno = EIO;
        ret = -1;
      } else
        memcpy (buf, view.buf, count);
      PyBuffer_Release (&view);
    }
    Py_XDECREF (r);
    host_leave ();
    return ret;
  }

  /* pread (h, buf, offset, flags) fills buf, a memoryview. */
  a[2] = PyMemoryView_FromMemory (buf, count, PyBUF_WRITE);
  a[3] = PyLong_FromUnsignedLongLong (offset);
  a[4] = PyLong_FromUnsignedLong (flags);
  module_cur_read = rd;
  r = a[2] && a[3] && a[4] ? call (CB (pread), a, 4) : NULL;
  module_cur_read = NULL;
  Py_XDECREF (a[3]);
  Py_XDECREF (a[4]);
  if (r == NULL)
    ret = host_report (&script, "pread");
  Py_XDECREF (r);
  if (a[2] && release_view (a[2], "pread") == -1)
    ret = -1;
  host_leave ();
  return ret;
}

static int
py_pwrite (void *h, const void *buf, uint64_t count, uint64_t offset,
           uint32_t flags)
{
  PyObject *a[5] = { NULL, h }, *r;
  int ret = 0;

  if (CB (pwrite) == NULL) {
    errno = EROFS;
    return -1;
  }
  host_enter ();
  a[2] = PyMemoryView_FromMemory ((char *)buf, count, PyBUF_READ);
  a[3] = PyLong_FromUnsignedLongLong (offset);
  a[4] = PyLong_FromUnsignedLong (flags);
  r = a[2] && a[3] && a[4] ? call (CB (pwrite), a, API == 1 ? 3 : 4) : NULL;
  Py_XDECREF (a[3]);
  Py_XDECREF (a[4]);
  if (r == NULL)
    ret = host_report (&script, "pwrite");
  Py_XDECREF (r);
  if (a[2] && release_view (a[2], "pwrite") == -1)
    ret = -1;
  host_leave ();
  return ret;
}

static int
py_flush (void *h, uint32_t flags)
{
  PyObject *a[3] = { NULL, h }, *r;
  int ret = 0;

  if (CB (flush) == NULL)
    return 0;
  host_enter ();
  a[2] = PyLong_FromUnsignedLong (flags);
  r = call (CB (flush), a, API == 1 ? 1 : 2);
  Py_DECREF (a[2]);
  if (r == NULL)
    ret = host_report (&script, "flush");
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

/* trim, zero and cache: (h, count, offset, flags); API 1 trim has no
 * flags and API 1 zero has may_trim instead.
 */
static int
range_op (int idx, void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  PyObject *a[5] = { NULL, h }, *r;
  size_t n = 4;
  int ret = 0, e;

  host_enter ();
  a[2] = PyLong_FromUnsignedLongLong (count);
  a[3] = PyLong_FromUnsignedLongLong (offset);
  a[4] = PyLong_FromUnsignedLong (flags);
  if (API == 1 && idx == CB_trim)
    n = 3;
  if (API == 1 && idx == CB_zero) {
    Py_XDECREF (a[4]);
    a[4] = PyBool_FromLong (flags & NBDKIT_FLAG_MAY_TRIM);
  }
  module_last_error = 0;
  r = a[2] && a[3] && a[4] ? call (script.cb[idx], a, n) : NULL;
  Py_XDECREF (a[2]);
  Py_XDECREF (a[3]);
  Py_XDECREF (a[4]);
  if (idx == CB_zero) {
    /* "Cannot zero this way" lets the server write zeroes instead,
     * whether the script raised it or set it (as nbdkit allows).
     */
    e = r ? module_last_error : host_exception_errno ();
    if (e == EOPNOTSUPP || e == ENOTSUP) {
      PyErr_Clear ();
      Py_XDECREF (r);
      nbdkit_debug ("%s: zero: not supported here, falling back", script.path);
      nbdkit_set_error (e);
      errno = e;
      host_leave ();
      return -1;
    }
  }
  if (r == NULL)
    ret = host_report (&script, cb_names[idx]);
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

static int
py_trim (void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  if (CB (trim) == NULL) {
    errno = EOPNOTSUPP;
    return -1;
  }
  return range_op (CB_trim, h, count, offset, flags);
}

static int
py_zero (void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  if (CB (zero) == NULL) {
    errno = EOPNOTSUPP;
    return -1;
  }
  return range_op (CB_zero, h, count, offset, flags);
}

static int
py_cache (void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  if (CB (cache) == NULL)
    return 0;
  return range_op (CB_cache, h, count, offset, flags);
}

/* extents returns an iterable of (offset, length, type), or calls
 * nbdkit.add_extent and returns None.
 */
static int
py_extents (void *h, uint64_t count, uint64_t offset, uint32_t flags,
            struct nbdkit_extents *e)
{
  PyObject *a[5] = { NULL, h }, *r = NULL, *it = NULL, *t;
  unsigned long long eo, el;
  unsigned et;
  int ret = 0;

  if (CB (extents) == NULL)
    return nbdkit_add_extent (e, offset, count, 0);
  host_enter ();
  a[2] = PyLong_FromUnsignedLongLong (count);
  a[3] = PyLong_FromUnsignedLongLong (offset);
  a[4] = PyLong_FromUnsignedLong (flags);
  module_cur_extents = e;
  r = a[2] && a[3] && a[4] ? call (CB (extents), a, 4) : NULL;
  Py_XDECREF (a[2]);
  Py_XDECREF (a[3]);
  Py_XDECREF (a[4]);
  if (r == NULL)
    ret = host_report (&script, "extents");
  else if (r != Py_None) {
    it = PyObject_GetIter (r);
    if (it == NULL)
      ret = host_report (&script, "extents (the result is not iterable)");
    while (ret == 0 && it && (t = PyIter_Next (it)) != NULL) {
      if (!PyArg_ParseTuple (t, "KKI", &eo, &el, &et)) {
        PyErr_Clear ();
        nbdkit_error ("%s: extents must return (offset, length, type)"
                      " tuples",
                      script.path);
        errno = EIO;
        ret = -1;
      } else
        ret = nbdkit_add_extent (e, eo, el, et);
      Py_DECREF (t);
    }
    if (ret == 0 && PyErr_Occurred ())
      ret = host_report (&script, "extents");
  }
  module_cur_extents = NULL;
  Py_XDECREF (it);
  Py_XDECREF (r);
  host_leave ();
  return ret;
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
};

NBDKIT_REGISTER_PLUGIN (plugin)
