/* module.c: the `nbdkit` module that Python scripts import.
 *
 * The server's helper functions (nbdkit_debug, nbdkit_set_error, the
 * connection queries, the parsers, the nbdkit_read_* and extents and
 * exports builders), the constants of the ABI, the Error exception and
 * the Param declaration.  Names and constants of nbdkit's own Python
 * plugin are kept, so its scripts run unchanged.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "host.h"

PyObject *module_nbdkit, *module_error_type, *module_param_type;
PyObject *module_read_type;

/* Raise nbdkit.Error (ERR, MSG) and return NULL. */
static PyObject *
raise_errno (int err, const char *msg)
{
  PyObject *e = PyObject_CallFunction (module_error_type, "is", err, msg);

  if (e) {
    PyErr_SetObject (module_error_type, e);
    Py_DECREF (e);
  }
  return NULL;
}

/* Functions that only make sense inside one callback say so. */
static PyObject *
not_here (const char *fn, const char *where)
{
  PyErr_Format (PyExc_RuntimeError, "nbdkit.%s may only be called from %s", fn,
                where);
  return NULL;
}

static PyObject *
m_debug (PyObject *self, PyObject *args)
{
  const char *msg;

  if (!PyArg_ParseTuple (args, "s:debug", &msg))
    return NULL;
  nbdkit_debug ("%s", msg);
  Py_RETURN_NONE;
}

static PyObject *
m_error (PyObject *self, PyObject *args)
{
  const char *msg;

  if (!PyArg_ParseTuple (args, "s:error", &msg))
    return NULL;
  nbdkit_error ("%s", msg);
  Py_RETURN_NONE;
}

static PyObject *
m_set_error (PyObject *self, PyObject *args)
{
  int err;

  if (!PyArg_ParseTuple (args, "i:set_error", &err))
    return NULL;
  host_thread ()->last_error = err;
  nbdkit_set_error (err);
  Py_RETURN_NONE;
}

static PyObject *
m_export_name (PyObject *self, PyObject *noargs)
{
  const char *name = nbdkit_export_name ();

  if (name == NULL)
    return raise_errno (EINVAL, "export_name: not in a connection");
  return PyUnicode_FromString (name);
}

static PyObject *
m_is_tls (PyObject *self, PyObject *noargs)
{
  int r = nbdkit_is_tls ();

  if (r == -1)
    return raise_errno (EINVAL, "is_tls: not in a connection");
  return PyBool_FromLong (r);
}

/* The peer's address as Python's socket module shows it: a path for
 * Unix sockets, (host, port) for IPv4, (host, port, flowinfo,
 * scope_id) for IPv6.
 */
static PyObject *
m_peer_name (PyObject *self, PyObject *noargs)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char host[INET6_ADDRSTRLEN];

  memset (&ss, 0, sizeof ss);
  if (nbdkit_peer_name ((struct sockaddr *)&ss, &len) == -1)
    return raise_errno (errno ? errno : EINVAL, "peer_name failed");
  switch (ss.ss_family) {
    case AF_UNIX: {
      struct sockaddr_un *un = (struct sockaddr_un *)&ss;
      return PyUnicode_FromString (un->sun_path);
    }
    case AF_INET: {
      struct sockaddr_in *in = (struct sockaddr_in *)&ss;
      inet_ntop (AF_INET, &in->sin_addr, host, sizeof host);
      return Py_BuildValue ("(si)", host, ntohs (in->sin_port));
    }
    case AF_INET6: {
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
      inet_ntop (AF_INET6, &in6->sin6_addr, host, sizeof host);
      return Py_BuildValue ("(siII)", host, ntohs (in6->sin6_port),
                            ntohl (in6->sin6_flowinfo), in6->sin6_scope_id);
    }
    default:
      Py_RETURN_NONE;
  }
}

#define PEER_ID(fn)                                                            \
  static PyObject *m_##fn (PyObject *self, PyObject *noargs)                   \
  {                                                                            \
    int64_t r = nbdkit_##fn ();                                                \
    if (r == -1)                                                               \
      return raise_errno (errno ? errno : EINVAL, #fn " failed");              \
    return PyLong_FromLongLong (r);                                            \
  }
PEER_ID (peer_pid)
PEER_ID (peer_uid)
PEER_ID (peer_gid)
#undef PEER_ID

static PyObject *
m_parse_size (PyObject *self, PyObject *args)
{
  const char *s;
  int64_t r;

  if (!PyArg_ParseTuple (args, "s:parse_size", &s))
    return NULL;
  r = nbdkit_parse_size (s);
  if (r == -1) {
    PyErr_Format (PyExc_ValueError, "cannot parse '%s' as a size", s);
    return NULL;
  }
  return PyLong_FromLongLong (r);
}

static PyObject *
m_parse_bool (PyObject *self, PyObject *args)
{
  const char *s;
  int r;

  if (!PyArg_ParseTuple (args, "s:parse_bool", &s))
    return NULL;
  r = nbdkit_parse_bool (s);
  if (r == -1) {
    PyErr_Format (PyExc_ValueError, "cannot parse '%s' as a boolean", s);
    return NULL;
  }
  return PyBool_FromLong (r);
}

static PyObject *
m_parse_probability (PyObject *self, PyObject *args)
{
  const char *what, *s;
  double r;

  if (!PyArg_ParseTuple (args, "ss:parse_probability", &what, &s))
    return NULL;
  if (nbdkit_parse_probability (what, s, &r) == -1) {
    PyErr_Format (PyExc_ValueError, "%s: cannot parse '%s' as a probability",
                  what, s);
    return NULL;
  }
  return PyFloat_FromDouble (r);
}

static PyObject *
m_parse_int (PyObject *self, PyObject *args)
{
  const char *what, *s;
  int r;

  if (!PyArg_ParseTuple (args, "ss:parse_int", &what, &s))
    return NULL;
  if (nbdkit_parse_int (what, s, &r) == -1) {
    PyErr_Format (PyExc_ValueError, "%s: cannot parse '%s' as an int", what, s);
    return NULL;
  }
  return PyLong_FromLong (r);
}

static PyObject *
m_realpath (PyObject *self, PyObject *args)
{
  const char *path;
  char *r, msg[512];
  PyObject *ret;

  if (!PyArg_ParseTuple (args, "s:realpath", &path))
    return NULL;
  errno = 0;
  r = nbdkit_realpath (path);
  if (r == NULL) {
    int err = errno ? errno : ENOENT;
    snprintf (msg, sizeof msg, "realpath: %s: %s", path, strerror (err));
    return raise_errno (err, msg);
  }
  ret = PyUnicode_DecodeFSDefault (r);
  free (r);
  return ret;
}

static PyObject *
m_stdio_safe (PyObject *self, PyObject *noargs)
{
  return PyBool_FromLong (nbdkit_stdio_safe ());
}

static PyObject *
m_read_password (PyObject *self, PyObject *args)
{
  const char *value;
  char *pw = NULL;
  int r;
  PyObject *ret;

  if (!PyArg_ParseTuple (args, "s:read_password", &value))
    return NULL;
  /* It may wait on the terminal. */
  Py_BEGIN_ALLOW_THREADS r = nbdkit_read_password (value, &pw);
  Py_END_ALLOW_THREADS if (r == -1) return raise_errno (errno ? errno : EINVAL,
                                                        "read_password failed");
  ret = PyUnicode_FromString (pw);
  free (pw);
  return ret;
}

static PyObject *
m_shutdown (PyObject *self, PyObject *noargs)
{
  nbdkit_shutdown ();
  Py_RETURN_NONE;
}

static PyObject *
m_disconnect (PyObject *self, PyObject *args)
{
  int force = 0;

  if (!PyArg_ParseTuple (args, "|p:disconnect", &force))
    return NULL;
  nbdkit_disconnect (force);
  Py_RETURN_NONE;
}

static PyObject *
m_nanosleep (PyObject *self, PyObject *args)
{
  long long sec, nsec = 0;
  int r;

  /* "I" would take -1 as 2^32-1 seconds: a sleep of 136 years. */
  if (!PyArg_ParseTuple (args, "L|L:nanosleep", &sec, &nsec))
    return NULL;
  if (sec < 0 || sec > UINT_MAX || nsec < 0 || nsec >= 1000000000) {
    PyErr_SetString (PyExc_ValueError, "nanosleep: expected 0 <= sec < 2^32 and"
                                       " 0 <= nsec < 1000000000");
    return NULL;
  }
  Py_BEGIN_ALLOW_THREADS r = nbdkit_nanosleep (sec, nsec);
  Py_END_ALLOW_THREADS if (r == -1) return raise_errno (
      errno ? errno : ESHUTDOWN, "nanosleep: interrupted by shutdown");
  Py_RETURN_NONE;
}

/* "K" would accept -1 silently; offsets and lengths must not. */
static int
u64_arg (PyObject *o, void *p)
{
  unsigned long long v = PyLong_AsUnsignedLongLong (o);

  if (v == (unsigned long long)-1 && PyErr_Occurred ())
    return 0;
  *(uint64_t *)p = v;
  return 1;
}

static PyObject *
m_read_hole (PyObject *self, PyObject *args)
{
  uint64_t off, len;

  if (!PyArg_ParseTuple (args, "O&O&:read_hole", u64_arg, &off, u64_arg, &len))
    return NULL;
  if (host_thread ()->cur_read == NULL)
    return not_here ("read_hole", "pread");
  host_forward_drop (host_thread ());
  if (nbdkit_read_hole (host_thread ()->cur_read, off, len) == -1)
    return raise_errno (errno ? errno : EINVAL,
                        "read_hole: the range is outside the request");
  Py_RETURN_NONE;
}

static PyObject *
m_read_error_at (PyObject *self, PyObject *args)
{
  uint64_t off;

  if (!PyArg_ParseTuple (args, "O&:read_error_at", u64_arg, &off))
    return NULL;
  if (host_thread ()->cur_read == NULL)
    return not_here ("read_error_at", "pread");
  if (nbdkit_read_error_at (host_thread ()->cur_read, off) == -1)
    return raise_errno (errno ? errno : EINVAL,
                        "read_error_at: the offset is outside the request");
  Py_RETURN_NONE;
}

/* A loan holds the object's buffer until the server has sent it. */
static void
loan_release (void *opaque)
{
  Py_buffer *view = opaque;

  host_enter ();
  PyBuffer_Release (view);
  host_leave ();
  free (view);
}

static PyObject *
m_read_lend (PyObject *self, PyObject *args)
{
  uint64_t off;
  PyObject *obj;
  Py_buffer *view;

  if (!PyArg_ParseTuple (args, "O&O:read_lend", u64_arg, &off, &obj))
    return NULL;
  if (host_thread ()->cur_read == NULL)
    return not_here ("read_lend", "pread");
  host_forward_drop (host_thread ());
  view = malloc (sizeof *view);
  if (view == NULL)
    return PyErr_NoMemory ();
  if (PyObject_GetBuffer (obj, view, PyBUF_SIMPLE) == -1) {
    free (view);
    return NULL;
  }
  if (nbdkit_read_lend (host_thread ()->cur_read, off, view->buf, view->len,
                        loan_release, view)
      == -1)
    return raise_errno (errno ? errno : EINVAL,
                        "read_lend: the range is outside the request");
  Py_RETURN_NONE;
}

static PyObject *
m_add_extent (PyObject *self, PyObject *args)
{
  uint64_t off, len, type = 0;

  if (!PyArg_ParseTuple (args, "O&O&|O&:add_extent", u64_arg, &off, u64_arg,
                         &len, u64_arg, &type))
    return NULL;
  if (type > UINT32_MAX) {
    PyErr_SetString (PyExc_OverflowError,
                     "add_extent: type must be 0 to 2^32-1");
    return NULL;
  }
  if (host_thread ()->cur_extents == NULL)
    return not_here ("add_extent", "extents");
  if (nbdkit_add_extent (host_thread ()->cur_extents, off, len, type) == -1)
    return raise_errno (errno ? errno : EINVAL, "add_extent failed");
  Py_RETURN_NONE;
}

static PyObject *
m_add_export (PyObject *self, PyObject *args)
{
  const char *name, *desc = NULL;

  if (!PyArg_ParseTuple (args, "s|z:add_export", &name, &desc))
    return NULL;
  if (host_thread ()->cur_exports == NULL)
    return not_here ("add_export", "list_exports");
  if (nbdkit_add_export (host_thread ()->cur_exports, name, desc) == -1)
    return raise_errno (errno ? errno : EINVAL, "add_export failed");
  Py_RETURN_NONE;
}

static PyObject *
m_use_default_export (PyObject *self, PyObject *noargs)
{
  if (host_thread ()->cur_exports == NULL)
    return not_here ("use_default_export", "list_exports");
  if (nbdkit_use_default_export (host_thread ()->cur_exports) == -1)
    return raise_errno (errno ? errno : EINVAL, "use_default_export failed");
  Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
  { "debug", m_debug, METH_VARARGS, "debug(msg): a message shown with -v" },
  { "error", m_error, METH_VARARGS,
    "error(msg): log an error message (does not raise)" },
  { "set_error", m_set_error, METH_VARARGS,
    "set_error(errno): the errno the client gets if this callback fails" },
  { "export_name", m_export_name, METH_NOARGS,
    "export_name(): the export name the client asked for" },
  { "is_tls", m_is_tls, METH_NOARGS, "is_tls(): whether TLS is in use" },
  { "peer_name", m_peer_name, METH_NOARGS,
    "peer_name(): the client's address (path, or (host, port, ...))" },
  { "peer_pid", m_peer_pid, METH_NOARGS, "peer_pid(): Unix sockets only" },
  { "peer_uid", m_peer_uid, METH_NOARGS, "peer_uid(): Unix sockets only" },
  { "peer_gid", m_peer_gid, METH_NOARGS, "peer_gid(): Unix sockets only" },
  { "parse_size", m_parse_size, METH_VARARGS,
    "parse_size(str): '1G' -> 1073741824; ValueError if bad" },
  { "parse_bool", m_parse_bool, METH_VARARGS,
    "parse_bool(str): 'on', 'yes', '1', ... -> bool; ValueError if bad" },
  { "parse_probability", m_parse_probability, METH_VARARGS,
    "parse_probability(what, str): '10%', '1:8', '0.1' -> float" },
  { "parse_int", m_parse_int, METH_VARARGS,
    "parse_int(what, str): '42', '-1', '0x10' -> int; ValueError if bad" },
  { "realpath", m_realpath, METH_VARARGS,
    "realpath(path): the canonical absolute path of an existing file;"
    " nbdkit.Error if it does not exist" },
  { "stdio_safe", m_stdio_safe, METH_NOARGS,
    "stdio_safe(): whether the script may use stdin and stdout (not with"
    " -s)" },
  { "read_password", m_read_password, METH_VARARGS,
    "read_password(value): the password given as value ('-', '-FD', '+FILE'"
    " or the text)" },
  { "shutdown", m_shutdown, METH_NOARGS, "shutdown(): stop the server" },
  { "disconnect", m_disconnect, METH_VARARGS,
    "disconnect(force=False): drop the current client" },
  { "nanosleep", m_nanosleep, METH_VARARGS,
    "nanosleep(sec, nsec=0): sleep; nbdkit.Error(ESHUTDOWN) on shutdown" },
  { "read_hole", m_read_hole, METH_VARARGS,
    "read_hole(offset, length): in pread, this range reads as zeroes" },
  { "read_error_at", m_read_error_at, METH_VARARGS,
    "read_error_at(offset): in pread, before failing: bytes before offset"
    " are good" },
  { "read_lend", m_read_lend, METH_VARARGS,
    "read_lend(offset, data): in pread, send data (a bytes-like object,"
    " left unchanged until sent) for the range at offset" },
  { "add_extent", m_add_extent, METH_VARARGS,
    "add_extent(offset, length, type=0): in extents" },
  { "add_export", m_add_export, METH_VARARGS,
    "add_export(name, description=None): in list_exports" },
  { "use_default_export", m_use_default_export, METH_NOARGS,
    "use_default_export(): in list_exports" },
  { 0 },
};

/* The classes are easiest said in Python. */
static const char classes[]
    = "import os as _os\n"
      "class Error(OSError):\n"
      "    '''Raise nbdkit.Error(errno.ENOSPC[, message]) to fail a callback\n"
      "    with that errno, without a traceback in the log.'''\n"
      "    def __init__(self, errno, message=None):\n"
      "        message = message or _os.strerror(errno)\n"
      "        super().__init__(errno, message)\n"
      "        self.errno, self.strerror = errno, message\n"
      "class Read:\n"
      "    '''What next.pread(buf, offset, flags) returns when buf and offset\n"
      "    are the filter's own: return it from pread to pass the read up\n"
      "    as it came (holes and lent data included).'''\n"
      "    __slots__ = ()\n"
      "class Param:\n"
      "    '''A typed parameter: Param(name, type=STRING, *, required=False,\n"
      "    default=None, doc='', choices=None, multiple=False).  Once the\n"
      "    server has checked it, .value holds it converted (int for INT and\n"
      "    SIZE, bool for BOOL, str otherwise; a list if repeatable).'''\n"
      "    __slots__ = ('name', 'type', 'required', 'default', 'doc',\n"
      "                 'choices', 'multiple', 'value')\n"
      "    def __init__(self, name, type=1, *, required=False, default=None,\n"
      "                 doc='', choices=None, multiple=False):\n"
      "        if not isinstance(name, str) or not name or '=' in name:\n"
      "            raise ValueError('Param: bad name %r' % (name,))\n"
      "        self.name, self.type, self.required = name, type, required\n"
      "        self.default, self.doc, self.choices = default, doc, choices\n"
      "        self.multiple = multiple\n"
      "        self.value = [] if multiple or type == LIST else None\n"
      "    def __repr__(self):\n"
      "        return 'Param(%r, value=%r)' % (self.name, self.value)\n";

static struct PyModuleDef moduledef = {
  PyModuleDef_HEAD_INIT,
  .m_name = "nbdkit",
  .m_doc
  = "The server's side of a Python plugin or filter: helpers and constants.",
  .m_size = -1,
  .m_methods = methods,
};

#define THREAD_MODELS(X)                                                       \
  X (SERIALIZE_CONNECTIONS)                                                    \
  X (SERIALIZE_ALL_REQUESTS) X (SERIALIZE_REQUESTS) X (PARALLEL)

int
module_old_thread_models (void)
{
  int v = 0;
#define OLD(m)                                                                 \
  if (PyModule_AddIntConstant (module_nbdkit, "THREAD_MODEL_" #m, v++) == -1)  \
    return -1;
  THREAD_MODELS (OLD)
#undef OLD
  return 0;
}

PyObject *
module_init (void)
{
  PyObject *m = PyModule_Create (&moduledef), *d, *r;

  if (m == NULL)
    return NULL;
#define C(name, value)                                                         \
  if (PyModule_AddIntConstant (m, name, value) == -1)                          \
    goto err;
#define TM(x) C ("THREAD_MODEL_" #x, NBDKIT_THREAD_MODEL_##x)
  THREAD_MODELS (TM)
  TM (SERIALIZE_RETIREMENT)
#undef TM
  C ("FLAG_MAY_TRIM", NBDKIT_FLAG_MAY_TRIM)
  C ("FLAG_FUA", NBDKIT_FLAG_FUA)
  C ("FLAG_REQ_ONE", NBDKIT_FLAG_REQ_ONE)
  C ("FLAG_FAST_ZERO", NBDKIT_FLAG_FAST_ZERO)
  C ("FUA_NONE", NBDKIT_FUA_NONE)
  C ("FUA_EMULATE", NBDKIT_FUA_EMULATE)
  C ("FUA_NATIVE", NBDKIT_FUA_NATIVE)
  C ("CACHE_NONE", NBDKIT_CACHE_NONE)
  C ("CACHE_EMULATE", NBDKIT_CACHE_EMULATE)
  C ("CACHE_NATIVE", NBDKIT_CACHE_NATIVE)
  C ("ZERO_NONE", NBDKIT_ZERO_NONE)
  C ("ZERO_EMULATE", NBDKIT_ZERO_EMULATE)
  C ("ZERO_NATIVE", NBDKIT_ZERO_NATIVE)
  C ("EXTENTS_NONE", NBDKIT_EXTENTS_NONE)
  C ("EXTENTS_EMULATE", NBDKIT_EXTENTS_EMULATE)
  C ("EXTENTS_NATIVE", NBDKIT_EXTENTS_NATIVE)
  C ("EXTENT_HOLE", NBDKIT_EXTENT_HOLE)
  C ("EXTENT_ZERO", NBDKIT_EXTENT_ZERO)
  C ("STRING", NBDKIT_PARAM_STRING)
  C ("BOOL", NBDKIT_PARAM_BOOL)
  C ("INT", NBDKIT_PARAM_INT)
  C ("SIZE", NBDKIT_PARAM_SIZE)
  C ("ENUM", NBDKIT_PARAM_ENUM)
  C ("FILE", NBDKIT_PARAM_FILE)
  C ("DIRECTORY", NBDKIT_PARAM_DIRECTORY)
  C ("PASSWORD", NBDKIT_PARAM_PASSWORD)
  C ("LIST", NBDKIT_PARAM_LIST)
#undef C

  d = PyModule_GetDict (m);
  if (PyDict_SetItemString (d, "__builtins__", PyEval_GetBuiltins ()) == -1)
    goto err;
  r = PyRun_String (classes, Py_file_input, d, d);
  if (r == NULL)
    goto err;
  Py_DECREF (r);
  module_error_type = PyDict_GetItemString (d, "Error");
  module_param_type = PyDict_GetItemString (d, "Param");
  module_read_type = PyDict_GetItemString (d, "Read");
  if (module_error_type == NULL || module_param_type == NULL
      || module_read_type == NULL)
    goto err;
  Py_INCREF (module_error_type);
  Py_INCREF (module_param_type);
  Py_INCREF (module_read_type);
  module_nbdkit = m;
  Py_INCREF (m);
  return m;

err:
  Py_DECREF (m);
  return NULL;
}
