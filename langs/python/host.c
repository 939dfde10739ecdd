/* host.c: the Python host's interpreter life cycle.
 *
 * Starting and stopping CPython, one PyThreadState per server thread,
 * loading a script and caching its callbacks, turning its typed
 * parameter declarations into the server's, and reporting Python
 * exceptions as nbdkit errors with an errno.
 */

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

__thread PyThreadState *host_tstate;
__thread int host_depth;

static PyInterpreterState *interp;
static pthread_key_t tstate_key;
static int finalized;
static PyObject *format_exception; /* traceback.format_exception */

/* A thread's state goes when the thread does, unless the interpreter
 * went first (Py_FinalizeEx frees every thread state).
 */
static void
tstate_destroy (void *p)
{
  PyThreadState *ts = p;

  if (ts == NULL || finalized)
    return;
  PyEval_RestoreThread (ts);
  PyThreadState_Clear (ts);
  PyThreadState_DeleteCurrent ();
}

PyThreadState *
host_new_tstate (void)
{
  PyThreadState *ts = PyThreadState_New (interp);

  if (ts == NULL) {
    /* Without a thread state there is no way into Python at all. */
    nbdkit_error ("python: cannot create a Python thread state");
    abort ();
  }
  host_tstate = ts;
  pthread_setspecific (tstate_key, ts);
  return ts;
}

int
host_init (void)
{
  PyConfig config;
  PyStatus st;
  PyObject *tb, *mod;

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
    format_exception = PyObject_GetAttrString (tb, "format_exception");
  Py_XDECREF (tb);
  /* Built now, so its Error and Param types exist before any script. */
  mod = PyImport_ImportModule ("nbdkit");
  if (mod == NULL) {
    PyErr_Print ();
    nbdkit_error ("python: cannot import the nbdkit module");
    return -1;
  }
  Py_DECREF (mod);
  PyErr_Clear ();

  interp = PyThreadState_Get ()->interp;
  host_tstate = PyEval_SaveThread ();
  host_depth = 0;
  return 0;
}

void
host_fini (void)
{
  if (interp == NULL || finalized)
    return;
  host_enter ();
  Py_FinalizeEx ();
  finalized = 1;
  host_tstate = NULL;
  host_depth = 0;
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

/* sys.argv = [PATH], and PATH's directory first on sys.path, as
 * `python3 PATH` does, so a script can import its neighbours.
 */
static int
set_sys (const char *path)
{
  PyObject *argv, *syspath, *dir;
  const char *slash = strrchr (path, '/');
  int r;

  argv = Py_BuildValue ("[s]", path);
  if (argv == NULL || PySys_SetObject ("argv", argv) == -1) {
    Py_XDECREF (argv);
    return -1;
  }
  Py_DECREF (argv);
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
  if (s->path == NULL || s->cb == NULL) {
    nbdkit_error ("%s: out of memory", path);
    return -1;
  }
  src = read_file (path);
  if (src == NULL) {
    nbdkit_error ("%s: cannot read the script: %m", path);
    return -1;
  }
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
      || set_sys (path) == -1) {
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
host_script_params (struct script *s, const struct nbdkit_param *first,
                    size_t nfirst)
{
  Py_ssize_t n = PySequence_Fast_GET_SIZE (s->params);
  struct nbdkit_param *cp = calloc (nfirst + n + 1, sizeof *cp);
  int err = 0;

  if (cp == NULL) {
    nbdkit_error ("%s: out of memory", s->path);
    return -1;
  }
  if (nfirst > 0)
    memcpy (cp, first, nfirst * sizeof *cp);
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

/* The errno attribute of exception value V if it is an OSError. */
static int
errno_of (PyObject *v)
{
  PyObject *e;
  long r = 0;

  if (v == NULL || !PyObject_TypeCheck (v, (PyTypeObject *)PyExc_OSError))
    return 0;
  e = PyObject_GetAttrString (v, "errno");
  if (e && PyLong_Check (e))
    r = PyLong_AsLong (e);
  Py_XDECREF (e);
  PyErr_Clear ();
  return r > 0 && r < INT_MAX ? (int)r : 0;
}

int
host_exception_errno (void)
{
  PyObject *t, *v, *tb;
  int r;

  PyErr_Fetch (&t, &v, &tb);
  PyErr_NormalizeException (&t, &v, &tb);
  r = errno_of (v);
  PyErr_Restore (t, v, tb);
  return r;
}

int
host_report (struct script *s, const char *what)
{
  PyObject *t, *v, *tb, *lines = NULL, *empty, *text = NULL;
  const char *path = s && s->path ? s->path : "python";
  int err;

  PyErr_Fetch (&t, &v, &tb);
  if (t == NULL) {
    nbdkit_error ("%s: %s failed", path, what);
    errno = EIO;
    return -1;
  }
  PyErr_NormalizeException (&t, &v, &tb);
  if (tb && v)
    PyException_SetTraceback (v, tb);
  err = errno_of (v);

  if (module_error_type && v
      && PyObject_TypeCheck (v, (PyTypeObject *)module_error_type)) {
    /* An error the script meant: its message, no traceback. */
    text = PyObject_Str (v);
  } else if (format_exception && v) {
    lines = PyObject_CallOneArg (format_exception, v);
    empty = PyUnicode_FromString ("");
    if (lines && empty)
      text = PyUnicode_Join (empty, lines);
    Py_XDECREF (empty);
  }
  if (text == NULL) {
    PyErr_Clear ();
    text = v ? PyObject_Str (v) : NULL;
  }
  nbdkit_error ("%s: %s: %s", path, what,
                text && PyUnicode_Check (text)
                    ? PyUnicode_AsUTF8 (text)
                    : "(the exception could not be printed)");
  Py_XDECREF (text);
  Py_XDECREF (lines);
  Py_XDECREF (t);
  Py_XDECREF (v);
  Py_XDECREF (tb);
  PyErr_Clear ();

  if (err)
    nbdkit_set_error (err);
  /* Else nbdkit.set_error's value if the script called it, else EIO. */
  errno = EIO;
  return -1;
}

int
host_as_int64 (struct script *s, const char *what, PyObject *o, int64_t *r)
{
  long long v;

  if (!PyLong_Check (o)) {
    nbdkit_error ("%s: %s returned %s, expected an int", s->path, what,
                  Py_TYPE (o)->tp_name);
    errno = EIO;
    return -1;
  }
  v = PyLong_AsLongLong (o);
  if (v == -1 && PyErr_Occurred ())
    return host_report (s, what);
  *r = v;
  return 0;
}

const char *
host_as_interned (struct script *s, const char *what, PyObject *o)
{
  const char *str = NULL;

  if (PyUnicode_Check (o))
    str = PyUnicode_AsUTF8 (o);
  else if (PyBytes_Check (o))
    str = PyBytes_AS_STRING (o);
  else {
    nbdkit_error ("%s: %s returned %s, expected a str", s->path, what,
                  Py_TYPE (o)->tp_name);
    return NULL;
  }
  if (str == NULL) {
    host_report (s, what);
    return NULL;
  }
  return nbdkit_strdup_intern (str);
}
