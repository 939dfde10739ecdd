/* next.c: the objects through which a Python filter calls the layer
 * below.
 *
 *   Next     an open context of the layer below (nbdkit_next): what
 *            every per-connection callback gets first;
 *   Backend  the layer below, server-wide (nbdkit_backend): what
 *            preconnect, list_exports and default_export get;
 *   Context  the filter's own context while open runs
 *            (nbdkit_context): open the layer below now, or not at all.
 *
 * Each method gives up the GIL while the layer below works (it may be
 * Python too, or slow), and raises nbdkit.Error with the errno the
 * layer below failed with.  An object used after its connection (or
 * its open call) ended raises instead of touching freed memory.
 */

#include <errno.h>
#include <string.h>

#include "filter.h"

typedef struct {
  PyObject_HEAD nbdkit_next *next;
  int owned; /* from Backend.open_context: close() closes it */
} NextObject;

typedef struct {
  PyObject_HEAD nbdkit_backend *backend;
} BackendObject;

typedef struct {
  PyObject_HEAD nbdkit_context *ctx;
  struct layer *layer;
  int readonly; /* as open was called */
} ContextObject;

static PyObject *next_type, *backend_type, *context_type;

/* Run STMT without the GIL. */
#define BELOW(stmt)                                                            \
  do {                                                                         \
    int depth_ = host_allow ();                                                \
    stmt;                                                                      \
    host_disallow (depth_);                                                    \
  } while (0)

/* Raise nbdkit.Error (ERR, "next.WHAT: strerror"), marked as coming
 * from below: the layer below logged it already, so if the script
 * lets it through, the host does not log it again.
 */
static PyObject *
raise_below (int err, const char *what)
{
  PyObject *e;

  if (err <= 0)
    err = EIO;
  e = PyObject_CallFunction (module_error_type, "is", err, NULL);
  if (e) {
    PyObject *msg = PyUnicode_FromFormat ("next.%s: %s", what, strerror (err));
    if (msg) {
      PyObject_SetAttrString (e, "strerror", msg);
      Py_DECREF (msg);
    }
    PyObject_SetAttrString (e, "from_below", Py_True);
    PyErr_SetObject (module_error_type, e);
    Py_DECREF (e);
  }
  return NULL;
}

static int
u64_arg (PyObject *o, void *p)
{
  unsigned long long v = PyLong_AsUnsignedLongLong (o);

  if (v == (unsigned long long)-1 && PyErr_Occurred ())
    return 0;
  *(uint64_t *)p = v;
  return 1;
}

/* ---- Next ---- */

static nbdkit_next *
get_next (PyObject *self)
{
  nbdkit_next *n = ((NextObject *)self)->next;

  if (n == NULL)
    PyErr_SetString (PyExc_RuntimeError,
                     "next: nothing is open below (open called"
                     " next.open_none(), or the connection or context has"
                     " closed)");
  return n;
}

static PyObject *
n_get_size (PyObject *self, PyObject *noargs)
{
  nbdkit_next *n = get_next (self);
  int64_t r;

  if (n == NULL)
    return NULL;
  BELOW (r = nbdkit_next_get_size (n));
  if (r == -1)
    return raise_below (EIO, "get_size");
  return PyLong_FromLongLong (r);
}

static PyObject *
n_export_description (PyObject *self, PyObject *noargs)
{
  nbdkit_next *n = get_next (self);
  const char *r;

  if (n == NULL)
    return NULL;
  BELOW (r = nbdkit_next_export_description (n));
  if (r == NULL)
    Py_RETURN_NONE;
  return PyUnicode_FromString (r);
}

static PyObject *
n_block_size (PyObject *self, PyObject *noargs)
{
  nbdkit_next *n = get_next (self);
  struct nbdkit_block_size bs = { 0 };
  int r;

  if (n == NULL)
    return NULL;
  BELOW (r = nbdkit_next_block_size (n, &bs));
  if (r == -1)
    return raise_below (EIO, "block_size");
  return Py_BuildValue ("(IIIK)", bs.minimum, bs.preferred, bs.maximum,
                        (unsigned long long)bs.maximum_virtual);
}

/* Capabilities: bools as bool, tri-states as 0, 1, 2. */
#define NCAP(fn, as_bool)                                                      \
  static PyObject *n_##fn (PyObject *self, PyObject *noargs)                   \
  {                                                                            \
    nbdkit_next *n = get_next (self);                                          \
    int r;                                                                     \
    if (n == NULL)                                                             \
      return NULL;                                                             \
    BELOW (r = nbdkit_next_##fn (n));                                          \
    if (r == -1)                                                               \
      return raise_below (EIO, #fn);                                           \
    return as_bool ? PyBool_FromLong (r) : PyLong_FromLong (r);                \
  }
NCAP (can_write, 1)
NCAP (can_flush, 1)
NCAP (is_rotational, 1)
NCAP (can_trim, 1)
NCAP (can_zero, 0)
NCAP (can_fast_zero, 1)
NCAP (can_fua, 0)
NCAP (can_multi_conn, 1)
NCAP (can_extents, 0)
NCAP (can_cache, 0)
#undef NCAP

/* pread(buf, offset, flags=0) fills buf (any writable buffer);
 * pread(count, offset, flags=0) returns bytes.
 */
/* A read past the end of the layer below would fail there anyway:
 * refuse it before allocating COUNT bytes for it.
 */
static int
check_below (nbdkit_next *n, uint64_t count, uint64_t offset)
{
  int64_t size;

  BELOW (size = nbdkit_next_get_size (n));
  if (size == -1) {
    raise_below (EIO, "get_size");
    return -1;
  }
  if (offset > (uint64_t)size || count > (uint64_t)size - offset) {
    PyErr_Format (PyExc_ValueError,
                  "next.pread: %llu bytes at offset %llu are beyond the"
                  " end of the layer below (%lld bytes)",
                  (unsigned long long)count, (unsigned long long)offset,
                  (long long)size);
    return -1;
  }
  return 0;
}

/* Into the buffer the filter's own pread got, at its offset: the read
 * is passed down with the request's nbdkit_read, so the holes and
 * loans of the layer below can reach the client as they are (see
 * f_pread); buf is filled with them too, and the token returned says
 * "this read, as it came".
 */
static struct host_forward *
forward_of (struct host_thread *t, void *buf, uint64_t count, uint64_t offset)
{
  struct host_forward *f = t->cur_forward;

  if (f && f->buf == buf && f->count == count && f->offset == offset)
    return f;
  return NULL;
}

static PyObject *
n_pread (PyObject *self, PyObject *args)
{
  nbdkit_next *n = get_next (self);
  PyObject *obj, *ret = NULL;
  Py_buffer view = { 0 };
  uint64_t offset, count;
  unsigned flags = 0;
  void *buf;
  int r, err = 0;
  struct host_forward *fwd = NULL;

  if (n == NULL
      || !PyArg_ParseTuple (args, "OO&|I:pread", &obj, u64_arg, &offset,
                            &flags))
    return NULL;
  if (PyLong_Check (obj)) {
    if (!u64_arg (obj, &count) || check_below (n, count, offset) == -1)
      return NULL;
    ret = PyBytes_FromStringAndSize (NULL, count);
    if (ret == NULL)
      return NULL;
    buf = PyBytes_AS_STRING (ret);
  } else {
    if (PyObject_GetBuffer (obj, &view, PyBUF_WRITABLE) == -1)
      return NULL;
    buf = view.buf;
    count = view.len;
    fwd = forward_of (host_thread (), buf, count, offset);
    if (fwd) {
      /* Asked again: what an earlier call passed up is stale. */
      host_forward_drop (host_thread ());
      ret = PyObject_CallNoArgs (module_read_type);
      if (ret == NULL) {
        PyBuffer_Release (&view);
        return NULL;
      }
    }
  }
  BELOW (r = nbdkit_next_pread (n, buf, count, offset, flags,
                                fwd ? fwd->rd : NULL, &err));
  if (fwd && r == 0)
    nbdkit_read_fill (fwd->rd);
  if (view.obj)
    PyBuffer_Release (&view);
  if (r == -1) {
    if (fwd)
      nbdkit_read_forget (fwd->rd);
    Py_XDECREF (ret);
    return raise_below (err, "pread");
  }
  if (fwd) {
    Py_INCREF (ret);
    fwd->token = ret;
  }
  if (ret == NULL)
    Py_RETURN_NONE;
  return ret;
}

static PyObject *
n_pwrite (PyObject *self, PyObject *args)
{
  nbdkit_next *n = get_next (self);
  Py_buffer view;
  uint64_t offset;
  unsigned flags = 0;
  int r, err = 0;

  if (n == NULL
      || !PyArg_ParseTuple (args, "y*O&|I:pwrite", &view, u64_arg, &offset,
                            &flags))
    return NULL;
  BELOW (r = nbdkit_next_pwrite (n, view.buf, view.len, offset, flags, &err));
  PyBuffer_Release (&view);
  if (r == -1)
    return raise_below (err, "pwrite");
  Py_RETURN_NONE;
}

static PyObject *
n_flush (PyObject *self, PyObject *args)
{
  nbdkit_next *n = get_next (self);
  unsigned flags = 0;
  int r, err = 0;

  if (n == NULL || !PyArg_ParseTuple (args, "|I:flush", &flags))
    return NULL;
  BELOW (r = nbdkit_next_flush (n, flags, &err));
  if (r == -1)
    return raise_below (err, "flush");
  Py_RETURN_NONE;
}

/* trim, zero, cache: (count, offset, flags=0). */
#define NRANGE(fn)                                                             \
  static PyObject *n_##fn (PyObject *self, PyObject *args)                     \
  {                                                                            \
    nbdkit_next *n = get_next (self);                                          \
    uint64_t count, offset;                                                    \
    unsigned flags = 0;                                                        \
    int r, err = 0;                                                            \
    if (n == NULL                                                              \
        || !PyArg_ParseTuple (args, "O&O&|I:" #fn, u64_arg, &count, u64_arg,   \
                              &offset, &flags))                                \
      return NULL;                                                             \
    BELOW (r = nbdkit_next_##fn (n, count, offset, flags, &err));              \
    if (r == -1)                                                               \
      return raise_below (err, #fn);                                           \
    Py_RETURN_NONE;                                                            \
  }
NRANGE (trim)
NRANGE (zero)
NRANGE (cache)
#undef NRANGE

/* extents(count, offset, flags=0, full=False): a list of (offset,
 * length, type); with full=True covering the whole range.
 */
static PyObject *
n_extents (PyObject *self, PyObject *args, PyObject *kw)
{
  static char *kwlist[] = { "count", "offset", "flags", "full", NULL };
  nbdkit_next *n = get_next (self);
  uint64_t count, offset;
  unsigned flags = 0;
  int full = 0, r, err = 0;
  struct nbdkit_extents *e;
  PyObject *list;

  if (n == NULL
      || !PyArg_ParseTupleAndKeywords (args, kw, "O&O&|Ip:extents", kwlist,
                                       u64_arg, &count, u64_arg, &offset,
                                       &flags, &full))
    return NULL;
  e = nbdkit_extents_new (offset, offset + count);
  if (e == NULL)
    return raise_below (errno, "extents");
  if (full)
    BELOW (r = nbdkit_extents_full (n, count, offset, flags, e, &err));
  else
    BELOW (r = nbdkit_next_extents (n, count, offset, flags, e, &err));
  if (r == -1) {
    nbdkit_extents_free (e);
    return raise_below (err, "extents");
  }
  list = PyList_New (0);
  for (size_t i = 0; list && i < nbdkit_extents_count (e); i++) {
    struct nbdkit_extent x = nbdkit_get_extent (e, i);
    PyObject *t = Py_BuildValue ("(KKI)", (unsigned long long)x.offset,
                                 (unsigned long long)x.length, x.type);
    if (t == NULL || PyList_Append (list, t) == -1)
      Py_CLEAR (list);
    Py_XDECREF (t);
  }
  nbdkit_extents_free (e);
  return list;
}

static PyObject *
n_close (PyObject *self, PyObject *noargs)
{
  NextObject *o = (NextObject *)self;
  nbdkit_next *n = o->next;

  if (!o->owned) {
    PyErr_SetString (PyExc_RuntimeError,
                     "next.close: only contexts from open_context are"
                     " closed by the script");
    return NULL;
  }
  o->next = NULL;
  if (n)
    BELOW (nbdkit_next_context_close (n));
  Py_RETURN_NONE;
}

static PyMethodDef next_methods[] = {
#define M0(fn, doc) { #fn, n_##fn, METH_NOARGS, doc },
  M0 (get_size, "get_size(): the size below")
      M0 (export_description, "export_description(): str or None") M0 (
          block_size, "block_size(): (minimum, preferred, maximum, "
                      "maximum_virtual)") M0 (can_write, "can_write(): bool")
          M0 (can_flush, "can_flush(): bool") M0 (
              is_rotational, "is_rotational(): bool") M0 (can_trim,
                                                          "can_trim(): bool")
              M0 (can_zero, "can_zero(): nbdkit.ZERO_*") M0 (
                  can_fast_zero,
                  "can_fast_zero(): bool") M0 (can_fua,
                                               "can_fua(): nbdkit.FUA_*")
                  M0 (can_multi_conn, "can_multi_conn(): bool") M0 (
                      can_extents, "can_extents(): nbdkit.EXTENTS_*")
                      M0 (can_cache, "can_cache(): nbdkit.CACHE_*") M0 (
                          close,
                          "close(): close a context from Backend.open_context")
#undef M0
                          { "pread", n_pread, METH_VARARGS,
                            "pread(buf, offset, flags=0) fills buf; "
                            "pread(count, offset, flags=0)"
                            " returns bytes" },
  { "pwrite", n_pwrite, METH_VARARGS, "pwrite(buf, offset, flags=0)" },
  { "flush", n_flush, METH_VARARGS, "flush(flags=0)" },
  { "trim", n_trim, METH_VARARGS, "trim(count, offset, flags=0)" },
  { "zero", n_zero, METH_VARARGS, "zero(count, offset, flags=0)" },
  { "cache", n_cache, METH_VARARGS, "cache(count, offset, flags=0)" },
  { "extents", (PyCFunction)(void (*) (void))n_extents,
    METH_VARARGS | METH_KEYWORDS,
    "extents(count, offset, flags=0, full=False): [(offset, length, type)]" },
  { 0 },
};

static PyType_Slot next_slots[] = {
  { Py_tp_methods, next_methods },
  { Py_tp_doc, "The layer below, for one connection." },
  { 0, NULL },
};

static PyType_Spec next_spec = {
  .name = "nbdkit.Next",
  .basicsize = sizeof (NextObject),
  .flags = Py_TPFLAGS_DEFAULT,
  .slots = next_slots,
};

PyObject *
next_new (nbdkit_next *n, int owned)
{
  NextObject *o = PyObject_New (NextObject, (PyTypeObject *)next_type);

  if (o) {
    o->next = n;
    o->owned = owned;
  }
  return (PyObject *)o;
}

PyObject *
next_of (struct handle *h, nbdkit_next *n)
{
  if (h->next == NULL)
    h->next = next_new (n, 0);
  else
    ((NextObject *)h->next)->next = n;
  return h->next;
}

void
next_invalidate (PyObject *o)
{
  if (o == NULL)
    return;
  if (PyObject_TypeCheck (o, (PyTypeObject *)next_type))
    ((NextObject *)o)->next = NULL;
  else if (PyObject_TypeCheck (o, (PyTypeObject *)context_type))
    ((ContextObject *)o)->ctx = NULL;
}

/* ---- Backend ---- */

static PyObject *
b_list_exports (PyObject *self, PyObject *args, PyObject *kw)
{
  static char *kwlist[] = { "readonly", "tls", NULL };
  nbdkit_backend *b = ((BackendObject *)self)->backend;
  int readonly = 0, tls = 0, r;
  struct nbdkit_exports *x;
  PyObject *list;

  if (!PyArg_ParseTupleAndKeywords (args, kw, "|pp:list_exports", kwlist,
                                    &readonly, &tls))
    return NULL;
  x = nbdkit_exports_new ();
  if (x == NULL)
    return raise_below (errno, "list_exports");
  BELOW (r = nbdkit_backend_list_exports (b, readonly, tls, x));
  if (r == -1) {
    nbdkit_exports_free (x);
    return raise_below (EIO, "list_exports");
  }
  list = PyList_New (0);
  for (size_t i = 0; list && i < nbdkit_exports_count (x); i++) {
    struct nbdkit_export e = nbdkit_get_export (x, i);
    PyObject *t = Py_BuildValue ("(sz)", e.name, e.description);
    if (t == NULL || PyList_Append (list, t) == -1)
      Py_CLEAR (list);
    Py_XDECREF (t);
  }
  nbdkit_exports_free (x);
  return list;
}

static PyObject *
b_default_export (PyObject *self, PyObject *args, PyObject *kw)
{
  static char *kwlist[] = { "readonly", "tls", NULL };
  nbdkit_backend *b = ((BackendObject *)self)->backend;
  int readonly = 0, tls = 0;
  const char *r;

  if (!PyArg_ParseTupleAndKeywords (args, kw, "|pp:default_export", kwlist,
                                    &readonly, &tls))
    return NULL;
  BELOW (r = nbdkit_backend_default_export (b, readonly, tls));
  if (r == NULL)
    Py_RETURN_NONE;
  return PyUnicode_FromString (r);
}

static PyObject *
b_open_context (PyObject *self, PyObject *args, PyObject *kw)
{
  static char *kwlist[] = { "readonly", "exportname", NULL };
  nbdkit_backend *b = ((BackendObject *)self)->backend;
  int readonly = 0;
  const char *name = "";
  nbdkit_next *n;

  if (!PyArg_ParseTupleAndKeywords (args, kw, "|ps:open_context", kwlist,
                                    &readonly, &name))
    return NULL;
  BELOW (n = nbdkit_next_context_open (b, readonly, name));
  if (n == NULL)
    return raise_below (EIO, "open_context");
  return next_new (n, 1);
}

static PyMethodDef backend_methods[] = {
  { "list_exports", (PyCFunction)(void (*) (void))b_list_exports,
    METH_VARARGS | METH_KEYWORDS,
    "list_exports(readonly=False, tls=False): [(name, description)]" },
  { "default_export", (PyCFunction)(void (*) (void))b_default_export,
    METH_VARARGS | METH_KEYWORDS,
    "default_export(readonly=False, tls=False): str or None" },
  { "open_context", (PyCFunction)(void (*) (void))b_open_context,
    METH_VARARGS | METH_KEYWORDS,
    "open_context(readonly=False, exportname=''): a Next of the filter's"
    " own, to close() when done" },
  { 0 },
};

static PyType_Slot backend_slots[] = {
  { Py_tp_methods, backend_methods },
  { Py_tp_doc, "The layer below, server-wide." },
  { 0, NULL },
};

static PyType_Spec backend_spec = {
  .name = "nbdkit.Backend",
  .basicsize = sizeof (BackendObject),
  .flags = Py_TPFLAGS_DEFAULT,
  .slots = backend_slots,
};

PyObject *
backend_of (struct layer *l, nbdkit_backend *b)
{
  BackendObject *o = (BackendObject *)l->backend;

  if (o == NULL) {
    o = PyObject_New (BackendObject, (PyTypeObject *)backend_type);
    if (o == NULL)
      return NULL;
    l->backend = (PyObject *)o;
  }
  o->backend = b;
  return (PyObject *)o;
}

/* ---- Context ---- */

static PyObject *
c_open (PyObject *self, PyObject *args, PyObject *kw)
{
  static char *kwlist[] = { "readonly", "exportname", NULL };
  nbdkit_context *ctx = ((ContextObject *)self)->ctx;
  int readonly = -1, r;
  const char *name = NULL;

  if (!PyArg_ParseTupleAndKeywords (args, kw, "|pz:open", kwlist, &readonly,
                                    &name))
    return NULL;
  if (ctx == NULL) {
    PyErr_SetString (PyExc_RuntimeError,
                     "next.open may only be called from open");
    return NULL;
  }
  if (readonly == -1)
    readonly = ((ContextObject *)self)->readonly;
  if (name == NULL)
    name = nbdkit_export_name ();
  BELOW (r = nbdkit_next_open (ctx, readonly, name ? name : ""));
  if (r == -1)
    return raise_below (EIO, "open");
  Py_RETURN_NONE;
}

static PyObject *
c_open_none (PyObject *self, PyObject *noargs)
{
  nbdkit_context *ctx = ((ContextObject *)self)->ctx;

  if (ctx == NULL) {
    PyErr_SetString (PyExc_RuntimeError,
                     "next.open_none may only be called from open");
    return NULL;
  }
  /* Nothing below could answer these for the filter. */
  if (LCB (((ContextObject *)self)->layer, get_size) == NULL
      || LCB (((ContextObject *)self)->layer, pread) == NULL) {
    PyErr_SetString (PyExc_RuntimeError,
                     "next.open_none(): the filter must then define"
                     " get_size and pread itself");
    return NULL;
  }
  nbdkit_next_open_none (ctx);
  Py_RETURN_NONE;
}

static PyObject *
c_backend (PyObject *self, PyObject *noargs)
{
  ContextObject *c = (ContextObject *)self;
  PyObject *b;

  if (c->ctx == NULL) {
    PyErr_SetString (PyExc_RuntimeError,
                     "next.backend may only be called from open");
    return NULL;
  }
  b = backend_of (c->layer, nbdkit_context_get_backend (c->ctx));
  Py_XINCREF (b);
  return b;
}

static PyMethodDef context_methods[] = {
  { "open", (PyCFunction)(void (*) (void))c_open, METH_VARARGS | METH_KEYWORDS,
    "open(readonly=as open got, exportname=the client's): open the layer"
    " below now, with these" },
  { "open_none", c_open_none, METH_NOARGS,
    "open_none(): open nothing below; the filter answers everything" },
  { "backend", c_backend, METH_NOARGS, "backend(): the layer below" },
  { 0 },
};

static PyType_Slot context_slots[] = {
  { Py_tp_methods, context_methods },
  { Py_tp_doc, "The filter's context while open runs." },
  { 0, NULL },
};

static PyType_Spec context_spec = {
  .name = "nbdkit.Context",
  .basicsize = sizeof (ContextObject),
  .flags = Py_TPFLAGS_DEFAULT,
  .slots = context_slots,
};

PyObject *
context_new (nbdkit_context *c, struct layer *l, int readonly)
{
  ContextObject *o = PyObject_New (ContextObject, (PyTypeObject *)context_type);

  if (o) {
    o->ctx = c;
    o->layer = l;
    o->readonly = readonly;
  }
  return (PyObject *)o;
}

int
next_init (void)
{
  if (next_type)
    return 0;
  next_type = PyType_FromSpec (&next_spec);
  backend_type = PyType_FromSpec (&backend_spec);
  context_type = PyType_FromSpec (&context_spec);
  return next_type && backend_type && context_type ? 0 : -1;
}
