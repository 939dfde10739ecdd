/* host.c: the Python host's interpreter life cycle.
 *
 * Starting and stopping CPython, one PyThreadState per server thread,
 * one interpreter shared by the plugin and filter hosts of a process,
 * loading a script and caching its callbacks, and its typed parameter
 * declarations and values.
 */

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"

struct host_shared *host_shared;
PyObject *host_format_exception; /* traceback.format_exception */

/* The rest is used only in the host that started the interpreter. */
static struct host_shared shared = { .version = HOST_SHARED_VERSION };
static PyInterpreterState *interp;
static pthread_key_t tstate_key;
static __thread struct host_thread thread_state;

/* A thread's state goes when the thread does, unless the interpreter
 * went first (Py_FinalizeEx frees every thread state).
 */
static void
tstate_destroy (void *p)
{
  PyThreadState *ts = p;

  if (ts == NULL || shared.finalized)
    return;
  PyEval_RestoreThread (ts);
  /* Still this thread's (its TLS goes after the key destructors). */
  Py_CLEAR (thread_state.view[0]);
  Py_CLEAR (thread_state.view[1]);
  PyThreadState_Clear (ts);
  PyThreadState_DeleteCurrent ();
}

static struct host_thread *
this_thread (void)
{
  struct host_thread *t = &thread_state;

  if (t->tstate == NULL) {
    t->tstate = PyThreadState_New (interp);
    if (t->tstate == NULL) {
      /* Without a thread state there is no way into Python at all. */
      nbdkit_error ("python: cannot create a Python thread state");
      abort ();
    }
    pthread_setspecific (tstate_key, t->tstate);
  }
  return t;
}

/* The other host started Python: use its thread states and module. */
static int
join (void)
{
  PyGILState_STATE g = PyGILState_Ensure ();
  PyObject *mod = PyImport_ImportModule ("nbdkit"), *cap = NULL, *tb;
  struct host_shared *sh = NULL;

  if (mod)
    cap = PyObject_GetAttrString (mod, "_host");
  if (cap)
    sh = PyCapsule_GetPointer (cap, MODULE_CAPSULE);
  Py_XDECREF (cap);
  if (sh == NULL || sh->version != HOST_SHARED_VERSION) {
    PyErr_Clear ();
    Py_XDECREF (mod);
    PyGILState_Release (g);
    nbdkit_error ("python: the process already runs a Python interpreter"
                  " that is not from this build's Python host");
    return -1;
  }
  module_nbdkit = mod;
  module_error_type = PyObject_GetAttrString (mod, "Error");
  module_param_type = PyObject_GetAttrString (mod, "Param");
  module_read_type = PyObject_GetAttrString (mod, "Read");
  tb = PyImport_ImportModule ("traceback");
  if (tb)
    host_format_exception = PyObject_GetAttrString (tb, "format_exception");
  Py_XDECREF (tb);
  PyErr_Clear ();
  sh->users++;
  host_shared = sh;
  PyGILState_Release (g);
  return module_error_type && module_param_type && module_read_type ? 0 : -1;
}

int
host_init (void)
{
  PyConfig config;
  PyStatus st;
  PyObject *tb, *mod;

  if (host_shared)
    return 0;
  if (Py_IsInitialized ())
    return join ();
  if (pthread_key_create (&tstate_key, tstate_destroy) != 0) {
    nbdkit_error ("python: pthread_key_create failed");
    return -1;
  }
  if (PyImport_AppendInittab ("nbdkit", module_init) == -1) {
    nbdkit_error ("python: cannot register the nbdkit module");
    return -1;
  }
  /* The server owns the signals; Python must not take SIGINT. */
  PyConfig_InitPythonConfig (&config);
  config.install_signal_handlers = 0;
  config.parse_argv = 0;
  st = Py_InitializeFromConfig (&config);
  PyConfig_Clear (&config);
  if (PyStatus_Exception (st)) {
    nbdkit_error ("python: cannot start the interpreter: %s",
                  st.err_msg ? st.err_msg : "unknown error");
    return -1;
  }

  tb = PyImport_ImportModule ("traceback");
  if (tb)
    host_format_exception = PyObject_GetAttrString (tb, "format_exception");
  Py_XDECREF (tb);
  /* Built now, so its Error and Param types exist before any script,
   * and the other host finds what we share in it.
   */
  mod = PyImport_ImportModule ("nbdkit");
  if (mod == NULL) {
    PyErr_Print ();
    nbdkit_error ("python: cannot import the nbdkit module");
    return -1;
  }
  shared.thread = this_thread;
  shared.users = 1;
  shared.pid = getpid ();
  tb = PyCapsule_New (&shared, MODULE_CAPSULE, NULL);
  if (tb == NULL || PyModule_AddObject (mod, "_host", tb) == -1) {
    Py_XDECREF (tb);
    Py_DECREF (mod);
    PyErr_Print ();
    return -1;
  }
  Py_DECREF (mod);
  PyErr_Clear ();

  interp = PyThreadState_Get ()->interp;
  thread_state.tstate = PyEval_SaveThread ();
  thread_state.depth = 0;
  host_shared = &shared;
  return 0;
}

void
host_fini (void)
{
  static int done;
  struct host_shared *sh = host_shared;

  /* host_shared stays: the other host may still call the module
   * functions of this one.
   */
  if (sh == NULL || done++)
    return;
  /* The last host out stops Python. */
  if (--sh->users > 0 || sh->finalized)
    return;
  sh->thread ()->depth++;
  PyEval_RestoreThread (sh->thread ()->tstate);
  Py_FinalizeEx ();
  sh->finalized = 1;
}

void
host_after_fork (void)
{
  struct host_thread *t;

  if (host_shared == NULL || host_shared->pid == getpid ())
    return;
  /* The server forked without the GIL; a thread that held it is gone.
   * As os.fork does: a fresh GIL, then Python's after-fork handlers.
   * Once, though both hosts may ask.
   */
  host_shared->pid = getpid ();
  t = host_thread ();
  PyThreadState_Swap (t->tstate);
  PyOS_AfterFork_Child ();
  t->depth = 1;
  host_leave ();
}

/* The whole file, NUL-terminated, or NULL with errno set. */
static char *
read_file (const char *path)
{
  FILE *fp = fopen (path, "re");
  char *buf = NULL;
  size_t len = 0, alloc = 0, n;

  if (fp == NULL)
    return NULL;
  do {
    if (alloc - len < 4096) {
      char *nb = realloc (buf, alloc = alloc * 2 + 8192);
      if (nb == NULL) {
        free (buf);
        fclose (fp);
        return NULL;
      }
      buf = nb;
    }
    n = fread (buf + len, 1, alloc - len - 1, fp);
    len += n;
  } while (n > 0);
  if (ferror (fp)) {
    free (buf);
    fclose (fp);
    errno = EIO;
    return NULL;
  }
  fclose (fp);
  buf[len] = '\0';
  return buf;
}

/* PATH's directory first on sys.path, as `python3 PATH` does, so a
 * script can import its neighbours; for the main script (the
 * plugin's) also sys.argv = [PATH].
 */
static int
set_sys (const char *path, int main)
{
  PyObject *argv, *syspath, *dir;
  const char *slash = strrchr (path, '/');
  int r;

  if (main) {
    argv = Py_BuildValue ("[s]", path);
    if (argv == NULL || PySys_SetObject ("argv", argv) == -1) {
      Py_XDECREF (argv);
      return -1;
    }
    Py_DECREF (argv);
  }
  syspath = PySys_GetObject ("path");
  if (syspath == NULL || !PyList_Check (syspath))
    return 0;
  dir = PyUnicode_FromStringAndSize (path,
                                     slash && slash > path ? slash - path : 1);
  if (dir == NULL)
    return -1;
  r = PySequence_Contains (syspath, dir) ? 0 : PyList_Insert (syspath, 0, dir);
  Py_DECREF (dir);
  return r;
}

/* inspect.cleandoc (DOC), as a malloc'd string. */
static char *
clean_doc (PyObject *doc)
{
  PyObject *inspect, *r;
  char *s = NULL;

  inspect = PyImport_ImportModule ("inspect");
  if (inspect == NULL)
    return NULL;
  r = PyObject_CallMethod (inspect, "cleandoc", "O", doc);
  Py_DECREF (inspect);
  if (r && PyUnicode_Check (r))
    s = strdup (PyUnicode_AsUTF8 (r));
  Py_XDECREF (r);
  PyErr_Clear ();
  return s;
}

/* `params` declares typed parameters only if it is a list or tuple of
 * nbdkit.Param (old scripts may use the name for anything else).
 */
static PyObject *
find_params (PyObject *dict)
{
  PyObject *p = PyDict_GetItemString (dict, "params");
  Py_ssize_t n;

  if (p == NULL || !(PyList_Check (p) || PyTuple_Check (p)))
    return NULL;
  n = PySequence_Fast_GET_SIZE (p);
  for (Py_ssize_t i = 0; i < n; i++)
    if (!PyObject_TypeCheck (PySequence_Fast_GET_ITEM (p, i),
                             (PyTypeObject *)module_param_type))
      return NULL;
  Py_INCREF (p);
  return p;
}

int
host_script_load (struct script *s, const char *path, const char *modname,
                  const char *const *names, size_t n)
{
  char *src;
  PyObject *code, *r, *v;
  long api;

  s->path = strdup (path);
  s->api_version = 1;
  s->cb = calloc (n, sizeof *s->cb);
  s->cb_names = names;
  s->ncb = n;
  if (s->path == NULL || s->cb == NULL) {
    nbdkit_error ("%s: out of memory", path);
    return -1;
  }
  src = read_file (path);
  if (src == NULL) {
    nbdkit_error ("%s: cannot read the script: %m", path);
    return -1;
  }
  /* --watch: a change reloads, even if this version fails. */
  nbdkit_watch_file (path);
  if (strcmp (modname, "__main__") == 0) {
    s->module = PyImport_AddModule ("__main__");
    Py_XINCREF (s->module);
  } else {
    s->module = PyModule_New (modname);
    if (s->module
        && PyDict_SetItemString (PyImport_GetModuleDict (), modname, s->module)
               == -1)
      Py_CLEAR (s->module);
  }
  if (s->module == NULL) {
    free (src);
    return host_report (s, "loading");
  }
  s->dict = PyModule_GetDict (s->module);
  v = PyUnicode_FromString (path);
  if (v == NULL || PyDict_SetItemString (s->dict, "__file__", v) == -1
      || PyDict_SetItemString (s->dict, "__builtins__", PyEval_GetBuiltins ())
             == -1
      || set_sys (path, strcmp (modname, "__main__") == 0) == -1) {
    Py_XDECREF (v);
    free (src);
    return host_report (s, "loading");
  }
  Py_DECREF (v);

  /* Compile first: a syntax error is reported with its line. */
  code = Py_CompileStringExFlags (src, path, Py_file_input, NULL, -1);
  free (src);
  if (code == NULL)
    return host_report (s, "compiling the script");
  r = PyEval_EvalCode (code, s->dict, s->dict);
  Py_DECREF (code);
  if (r == NULL)
    return host_report (s, "running the script");
  Py_DECREF (r);

  v = PyDict_GetItemString (s->dict, "API_VERSION");
  if (v) {
    api = PyLong_Check (v) ? PyLong_AsLong (v) : -1;
    if (api < 1 || api > 3) {
      PyErr_Clear ();
      nbdkit_error ("%s: API_VERSION must be 1, 2 or 3", path);
      return -1;
    }
    s->api_version = api;
  }
  v = PyDict_GetItemString (s->dict, "__doc__");
  if (v && PyUnicode_Check (v))
    s->doc = clean_doc (v);

  for (size_t i = 0; i < n; i++) {
    v = PyDict_GetItemString (s->dict, names[i]);
    if (v && PyCallable_Check (v)) {
      Py_INCREF (v);
      s->cb[i] = v;
    }
  }
  s->params = find_params (s->dict);
  return 0;
}

int
host_arity (PyObject *fn)
{
  PyCodeObject *code;
  int bound = 0;

  if (PyMethod_Check (fn)) {
    fn = PyMethod_GET_FUNCTION (fn);
    bound = 1;
  }
  if (!PyFunction_Check (fn))
    return -1;
  code = (PyCodeObject *)PyFunction_GET_CODE (fn);
  if (code->co_flags & CO_VARARGS)
    return INT_MAX;
  return code->co_argcount - bound;
}

/* A declared attribute of a Param as a malloc'd string: str as is,
 * bool as "1"/"0", None as NULL.  *ERR is set on failure.
 */
static char *
attr_string (PyObject *p, const char *attr, int *err)
{
  PyObject *v = PyObject_GetAttrString (p, attr), *str;
  char *s = NULL;

  if (v == NULL) {
    *err = 1;
    return NULL;
  }
  if (v == Py_None) {
    Py_DECREF (v);
    return NULL;
  }
  if (PyBool_Check (v))
    s = strdup (v == Py_True ? "1" : "0");
  else if ((PyList_Check (v) || PyTuple_Check (v))
           && strcmp (attr, "choices") == 0) {
    /* choices=["a", "b"] becomes "a|b". */
    PyObject *bar = PyUnicode_FromString ("|");
    str = bar ? PyUnicode_Join (bar, v) : NULL;
    Py_XDECREF (bar);
    if (str)
      s = strdup (PyUnicode_AsUTF8 (str));
    Py_XDECREF (str);
  } else {
    str = PyObject_Str (v);
    if (str)
      s = strdup (PyUnicode_AsUTF8 (str));
    Py_XDECREF (str);
  }
  Py_DECREF (v);
  if (s == NULL)
    *err = 1;
  return s;
}

static int
attr_bool (PyObject *p, const char *attr)
{
  PyObject *v = PyObject_GetAttrString (p, attr);
  int r = v ? PyObject_IsTrue (v) : -1;

  Py_XDECREF (v);
  return r;
}

int
host_script_params (struct script *s)
{
  const size_t nfirst = 0;
  Py_ssize_t n = PySequence_Fast_GET_SIZE (s->params);
  struct nbdkit_param *cp = calloc (nfirst + n + 1, sizeof *cp);
  int err = 0;

  if (cp == NULL) {
    nbdkit_error ("%s: out of memory", s->path);
    return -1;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *p = PySequence_Fast_GET_ITEM (s->params, i);
    struct nbdkit_param *c = &cp[nfirst + i];
    PyObject *t = PyObject_GetAttrString (p, "type");
    long type = t ? PyLong_AsLong (t) : -1;
    int req = attr_bool (p, "required"), mult = attr_bool (p, "multiple");

    Py_XDECREF (t);
    c->name = attr_string (p, "name", &err);
    c->doc = attr_string (p, "doc", &err);
    c->choices = attr_string (p, "choices", &err);
    c->default_value = attr_string (p, "default", &err);
    if (err || req == -1 || mult == -1 || c->name == NULL) {
      free (cp);
      return host_report (s, "params");
    }
    c->type = type;
    c->flags = (req ? NBDKIT_PARAM_REQUIRED : 0)
               | (mult ? NBDKIT_PARAM_MULTIPLE : 0);
    if (type < NBDKIT_PARAM_STRING || type > NBDKIT_PARAM_LIST) {
      nbdkit_error ("%s: params: '%s' has an unknown type %ld "
                    "(use nbdkit.STRING, nbdkit.SIZE, ...)",
                    s->path, c->name, type);
      free (cp);
      return -1;
    }
    if (type == NBDKIT_PARAM_ENUM && (c->choices == NULL || !*c->choices)) {
      nbdkit_error ("%s: params: enum '%s' needs choices=[...]", s->path,
                    c->name);
      free (cp);
      return -1;
    }
    for (size_t j = 0; j < nfirst + i; j++)
      if (strcmp (cp[j].name, c->name) == 0) {
        nbdkit_error ("%s: params: '%s' is declared twice", s->path, c->name);
        free (cp);
        return -1;
      }
  }
  PyErr_Clear ();
  s->cparams = cp;
  return 0;
}

PyObject *
host_param_find (struct script *s, const char *key)
{
  Py_ssize_t n;

  if (s->params == NULL)
    return NULL;
  n = PySequence_Fast_GET_SIZE (s->params);
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *p = PySequence_Fast_GET_ITEM (s->params, i);
    PyObject *name = PyObject_GetAttrString (p, "name");
    int eq = name && PyUnicode_Check (name)
             && strcmp (PyUnicode_AsUTF8 (name), key) == 0;
    Py_XDECREF (name);
    if (eq)
      return p;
  }
  PyErr_Clear ();
  return NULL;
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

int
host_config (struct script *s, PyObject *config, const char *key,
             const char *value)
{
  PyObject *p = host_param_find (s, key), *a[3], *r;
  int ret = 0;

  if (p == NULL && config == NULL) {
    nbdkit_error ("%s: this script takes no parameters (it declares no"
                  " params and has no config function): %s=%s",
                  s->path, key, value);
    return -1;
  }
  a[2] = p ? param_value (p, value) : PyUnicode_DecodeFSDefault (value);
  if (a[2] == NULL)
    return host_report (s, "config");
  if (config) {
    a[1] = PyUnicode_FromString (key);
    r = a[1] ? host_call (config, a, 2) : NULL;
    if (r == NULL)
      ret = host_report (s, "config");
    Py_XDECREF (r);
    Py_XDECREF (a[1]);
  }
  Py_DECREF (a[2]);
  return ret;
}

void
host_dump_script (struct script *s)
{
  int first = 1;

  printf ("python_script=%s\n", s->path);
  printf ("python_api_version=%d\n", s->api_version);
  printf ("python_callbacks=");
  for (size_t i = 0; i < s->ncb; i++)
    if (s->cb[i]) {
      printf ("%s%s", first ? "" : ",", s->cb_names[i]);
      first = 0;
    }
  printf ("\n");
  fflush (stdout);
}

void
host_call_dump (struct script *s, PyObject *fn)
{
  PyObject *r;

  host_enter ();
  r = PyObject_CallNoArgs (fn);
  if (r == NULL)
    host_report (s, "dump_plugin");
  Py_XDECREF (r);
  /* Python buffers its own stdout. */
  r = PyObject_CallMethod (PySys_GetObject ("stdout"), "flush", NULL);
  Py_XDECREF (r);
  PyErr_Clear ();
  host_leave ();
}
