/* convert.c: the Python host's conversions of what scripts answer.
 *
 * Python exceptions into logged errors with an errno, and the results
 * of callbacks (capabilities, thread models, block sizes, export and
 * extent lists, strings, numbers) into the server's types, each with a
 * message naming the callback when the script answered something else.
 */

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "host.h"
#include "models.h"
#include "values.h"

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

static int
report (struct script *s, const char *what)
{
  PyObject *t, *v, *tb, *lines = NULL, *empty, *text = NULL;
  const char *path = s && s->path ? s->path : "python";
  int err;

  PyErr_Fetch (&t, &v, &tb);
  if (t == NULL) {
    nbdkit_error ("%s: %s failed", path, what);
    return 0;
  }
  PyErr_NormalizeException (&t, &v, &tb);
  if (tb && v)
    PyException_SetTraceback (v, tb);
  err = errno_of (v);

  if (v && PyObject_HasAttrString (v, "from_below")) {
    /* The layer below failed and logged it; the filter let it through. */
    text = PyObject_Str (v);
    nbdkit_debug ("%s: %s: %s", path, what,
                  text ? PyUnicode_AsUTF8 (text) : "error from below");
    PyErr_Clear ();
    Py_XDECREF (text);
    Py_XDECREF (t);
    Py_XDECREF (v);
    Py_XDECREF (tb);
    return err;
  }
  if (module_error_type && v
      && PyObject_TypeCheck (v, (PyTypeObject *)module_error_type)) {
    /* An error the script meant: its message, no traceback. */
    text = PyObject_Str (v);
  } else if (host_format_exception && v) {
    lines = PyObject_CallOneArg (host_format_exception, v);
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

  return err;
}

int
host_report_errno (struct script *s, const char *what)
{
  struct host_thread *t = host_thread ();
  int err = report (s, what);

  if (err == 0)
    err = t->last_error ? t->last_error : EIO;
  t->last_error = 0;
  return err;
}

int
host_report (struct script *s, const char *what)
{
  int err = report (s, what);

  if (err)
    nbdkit_set_error (err);
  /* Else nbdkit.set_error's value if the script called it, else EIO. */
  errno = EIO;
  return -1;
}

int
host_as_size (struct script *s, const char *what, PyObject *o, int64_t *r)
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
  if (v < 0) {
    nbdkit_error ("%s: %s returned %lld, expected a size >= 0", s->path, what,
                  v);
    errno = EIO;
    return -1;
  }
  *r = v;
  return 0;
}

/* A string for the server (export name, description): refused if it
 * cannot reach the client as the script wrote it (see values.h).
 */
const char *
host_as_interned (struct script *s, const char *what, PyObject *o)
{
  const char *str = NULL, *why;
  Py_ssize_t len = 0;

  if (PyUnicode_Check (o))
    str = PyUnicode_AsUTF8AndSize (o, &len);
  else if (PyBytes_Check (o)) {
    str = PyBytes_AS_STRING (o);
    len = PyBytes_GET_SIZE (o);
  } else {
    nbdkit_error ("%s: %s returned %s, expected a str", s->path, what,
                  Py_TYPE (o)->tp_name);
    return NULL;
  }
  if (str == NULL) {
    host_report (s, what);
    return NULL;
  }
  if ((why = host_string_problem (str, len)) != NULL) {
    nbdkit_error ("%s: %s returned a string that %s", s->path, what, why);
    return NULL;
  }
  return nbdkit_strndup_intern (str, len);
}

int
host_cap_result (struct script *s, const char *what, PyObject *r,
                 enum cap_kind kind)
{
  long v;
  int t;

  if (kind == CAP_BOOL) {
    /* Any truth value, as in nbdkit's Python plugin; a __bool__ that
     * raises is an error, not True.
     */
    t = PyObject_IsTrue (r);
    if (t == -1)
      return host_report (s, what);
    return t;
  }
  if (PyBool_Check (r))
    return r == Py_True ? 2 : 0;
  if (PyLong_Check (r) && (v = PyLong_AsLong (r)) >= 0 && v <= 2)
    return v;
  PyErr_Clear ();
  nbdkit_error ("%s: %s returned %s, expected a bool or 0, 1, 2"
                " (nbdkit.*_NONE, _EMULATE, _NATIVE)",
                s->path, what, Py_TYPE (r)->tp_name);
  return -1;
}

/* Thread models: see models.h. */
int
host_thread_model (struct script *s, PyObject *r)
{
  long m = PyLong_Check (r) ? PyLong_AsLong (r) : -1;

  PyErr_Clear ();
  if (host_model_by_number (m) != -1)
    return host_model_by_number (m);
  nbdkit_error ("%s: thread_model returned %ld, expected one of"
                " nbdkit.THREAD_MODEL_*",
                s->path, m);
  return -1;
}

int
host_block_size_result (struct script *s, PyObject *r,
                        struct nbdkit_block_size *bs)
{
  long long v[4] = { 0, 0, 0, 0 };

  if (!PyTuple_Check (r)
      || !PyArg_ParseTuple (r, "LLL|L", &v[0], &v[1], &v[2], &v[3])) {
    PyErr_Clear ();
    nbdkit_error ("%s: block_size returned %s: expected (minimum,"
                  " preferred, maximum[, maximum_virtual]) ints, or None",
                  s->path, Py_TYPE (r)->tp_name);
    return -1;
  }
  for (int i = 0; i < 4; i++)
    if (v[i] < 0 || (i < 3 && !host_block_size_ok (v[i]))) {
      nbdkit_error ("%s: block_size: %lld is out of range (minimum,"
                    " preferred and maximum are 0 to 2^32-1,"
                    " maximum_virtual >= 0)",
                    s->path, v[i]);
      return -1;
    }
  bs->minimum = v[0];
  bs->preferred = v[1];
  bs->maximum = v[2];
  bs->maximum_virtual = v[3];
  return 0;
}

/* One entry of list_exports' result: "name" or ("name", "description"). */
static int
add_export (struct script *s, PyObject *t, struct nbdkit_exports *exports)
{
  PyObject *name = t, *desc = Py_None;

  if (PyTuple_Check (t) && PyTuple_GET_SIZE (t) == 2) {
    name = PyTuple_GET_ITEM (t, 0);
    desc = PyTuple_GET_ITEM (t, 1);
  }
  if (!PyUnicode_Check (name) || !(desc == Py_None || PyUnicode_Check (desc))) {
    nbdkit_error ("%s: list_exports: expected names or (name, description)"
                  " tuples of str, got %s",
                  s->path, Py_TYPE (t)->tp_name);
    return -1;
  }
  /* host_as_interned checks (and logs); the copies are the server's. */
  const char *n = host_as_interned (s, "list_exports", name);
  const char *d
      = desc == Py_None ? NULL : host_as_interned (s, "list_exports", desc);
  if (n == NULL || (desc != Py_None && d == NULL)) {
    PyErr_Clear ();
    return -1;
  }
  return nbdkit_add_export (exports, n, d);
}

int
host_exports_result (struct script *s, PyObject *r,
                     struct nbdkit_exports *exports, size_t before)
{
  PyObject *it, *t;
  int ret = 0;

  if (r == Py_None) {
    /* Nothing returned and nothing added: the default export alone. */
    if (nbdkit_exports_count (exports) == before)
      return nbdkit_use_default_export (exports);
    return 0;
  }
  it = PyObject_GetIter (r);
  if (it == NULL)
    return host_report (s, "list_exports (the result is not iterable)");
  while (ret == 0 && (t = PyIter_Next (it)) != NULL) {
    ret = add_export (s, t, exports);
    Py_DECREF (t);
  }
  if (PyErr_Occurred ())
    ret = host_report (s, "list_exports");
  Py_DECREF (it);
  return ret;
}

int
host_extents_result (struct script *s, PyObject *r, struct nbdkit_extents *e)
{
  PyObject *it, *t;
  long long eo, el, et;
  int err = 0;

  if (r == Py_None)
    return 0;
  it = PyObject_GetIter (r);
  if (it == NULL)
    return host_report_errno (s, "extents (the result is not iterable)");
  while (err == 0 && (t = PyIter_Next (it)) != NULL) {
    if (!PyTuple_Check (t) || !PyArg_ParseTuple (t, "LLL", &eo, &el, &et)) {
      PyErr_Clear ();
      nbdkit_error ("%s: extents must return (offset, length, type)"
                    " tuples of ints",
                    s->path);
      err = EIO;
    } else if (eo < 0 || el < 0 || et < 0 || et > UINT32_MAX) {
      nbdkit_error ("%s: extents: (%lld, %lld, %lld) is out of range"
                    " (offset and length >= 0, type 0 to 2^32-1)",
                    s->path, eo, el, et);
      err = EIO;
    } else if (nbdkit_add_extent (e, eo, el, et) == -1)
      err = errno ? errno : EIO;
    Py_DECREF (t);
  }
  if (err == 0 && PyErr_Occurred ())
    err = host_report_errno (s, "extents");
  Py_DECREF (it);
  return err;
}

/* CPython's memoryview structs, which its headers declare but do not
 * promise, have kept their layout from 3.3 to 3.13: where they are
 * known, the host cuts off views derived from buf too, and reuses
 * views (host_view).
 */
#if PY_VERSION_HEX >= 0x03080000 && PY_VERSION_HEX < 0x030e0000
#define VIEW_STRUCTS 1
#else
#define VIEW_STRUCTS 0
#endif

int
host_release_view (struct script *s, PyObject *mv, const char *what)
{
  static PyObject *str_release;
  PyObject *r;
  int ret = 0;

  if (Py_REFCNT (mv) > 1) {
    if (str_release == NULL)
      str_release = PyUnicode_InternFromString ("release");
    r = str_release ? PyObject_CallMethodNoArgs (mv, str_release) : NULL;
    if (r == NULL) {
      PyErr_Clear ();
      nbdkit_error ("%s: %s: the script still uses buf after returning"
                    " (it must not keep it, or views of it)",
                    s->path, what);
      ret = -1;
    }
    Py_XDECREF (r);
  }
#if VIEW_STRUCTS
  {
    /* Slices of buf and memoryview (buf) share its managed buffer,
     * and outlive buf.release(): releasing the managed buffer cuts
     * them all off (their every use then raises ValueError).
     */
    _PyManagedBufferObject *mb = ((PyMemoryViewObject *)mv)->mbuf;

    if (mb && Py_REFCNT (mb) > 1
        && !(mb->flags & _Py_MANAGED_BUFFER_RELEASED)) {
      mb->flags |= _Py_MANAGED_BUFFER_RELEASED;
      mb->master.buf = NULL;
      PyObject_GC_UnTrack (mb);
    }
  }
#endif
  Py_DECREF (mv);
  return ret;
}

/* Reusing memoryviews.  Making a memoryview over the server's buffer
 * (a managed buffer and the view, two GC objects) and dropping it
 * again was about a tenth of the host's instructions for a 4 KiB read
 * (see bench/README.md).  When the script kept nothing of it, the view
 * is as new after the call, so the next call on this thread re-points
 * it instead: the buffer, its length and its shape are the only fields
 * that depend on the memory (a one-dimensional view of bytes; the hash
 * is cached only for read-only views, and reset).
 */
PyObject *
host_view (struct host_thread *t, void *buf, uint64_t count, int writable)
{
#if VIEW_STRUCTS
  PyMemoryViewObject *m = (PyMemoryViewObject *)t->view[writable];

  if (m) {
    t->view[writable] = NULL;
    m->mbuf->master.buf = buf;
    m->mbuf->master.len = count;
    m->view.buf = buf;
    m->view.len = count;
    m->view.shape[0] = count;
    m->hash = -1;
    return (PyObject *)m;
  }
#endif
  return PyMemoryView_FromMemory (buf, count,
                                  writable ? PyBUF_WRITE : PyBUF_READ);
}

int
host_view_done (struct host_thread *t, struct script *s, PyObject *mv,
                int writable, const char *what)
{
#if VIEW_STRUCTS
  PyMemoryViewObject *m = (PyMemoryViewObject *)mv;

  /* Nobody else holds the view, a view derived from it (they share
   * its managed buffer) or a buffer export of it (bytes(buf) and
   * slice assignment give theirs back before returning).
   */
  if (t->view[writable] == NULL && Py_REFCNT (mv) == 1 && m->exports == 0
      && !(m->flags & _Py_MEMORYVIEW_RELEASED) && m->weakreflist == NULL
      && Py_REFCNT (m->mbuf) == 1 && m->mbuf->exports == 1
      && !(m->mbuf->flags & _Py_MANAGED_BUFFER_RELEASED) && m->view.ndim == 1
      && m->view.shape && m->view.shape[0] == m->view.len
      && m->view.itemsize == 1) {
    /* Keep no pointer into a buffer the server is about to reuse. */
    m->mbuf->master.buf = NULL;
    m->view.buf = NULL;
    m->mbuf->master.len = m->view.len = m->view.shape[0] = 0;
    t->view[writable] = mv;
    return 0;
  }
#endif
  return host_release_view (s, mv, what);
}
