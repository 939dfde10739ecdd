/* filter_io.c: the python filter's callbacks on an open connection.
 *
 * Each calls the script's function of the same name with the Next
 * object over the layer below and the script's handle first.  Only
 * the callbacks the script defines are given to the server; the
 * others pass straight through, except the capabilities, the
 * description and the block sizes: a filter that opened nothing below
 * (next.open_none) and lacks them answers as a plugin would.  A
 * failure's errno goes back in *ERR: an OSError's (nbdkit.Error, or
 * one from a next.* call the script did not catch), else
 * nbdkit.set_error's, else EIO.
 */

#include <errno.h>
#include <stdlib.h>

#include "filter.h"
#include "values.h"

#define H(handle) ((struct handle *)(handle))
#define L(handle) (H (handle)->layer)
#define S(handle) (&H (handle)->v->script)

/* The first two arguments of every call: next and the handle. */
static int
args2 (PyObject **a, void *handle, nbdkit_next *next)
{
  a[1] = next_of (H (handle), next);
  a[2] = H (handle)->h;
  return a[1] ? 0 : -1;
}

void
filter_io_close (void *handle)
{
  struct handle *h = handle;
  PyObject *a[2] = { NULL, h->h }, *r;

  host_enter ();
  if (HCB (h, close)) {
    r = host_call (HCB (h, close), a, 1);
    if (r == NULL)
      host_report (&h->v->script, "close");
    Py_XDECREF (r);
  }
  /* The script may have kept next: it must not reach a closed layer. */
  next_invalidate (h->next);
  Py_XDECREF (h->next);
  Py_DECREF (h->h);
  host_leave ();
  free (h);
}

/* Call callback IDX with (next, h) and N more arguments in A[3..];
 * a new reference, or NULL with *ERR set (reported).
 */
static PyObject *
call_nh (int idx, nbdkit_next *next, void *handle, PyObject **a, size_t n,
         int *err)
{
  struct version *v = H (handle)->v;
  PyObject *r = NULL;

  host_thread ()->last_error = 0;
  if (args2 (a, handle, next) == 0)
    r = host_call (v->script.cb[idx], a, 2 + n);
  if (r == NULL) {
    int e = host_report_errno (&v->script, filter_cb_names[idx]);
    if (err)
      *err = e;
  }
  return r;
}

static int
f_prepare (nbdkit_next *next, void *handle, int readonly)
{
  PyObject *a[4], *r;

  host_enter ();
  a[3] = PyBool_FromLong (readonly);
  r = call_nh (FCB_prepare, next, handle, a, 1, NULL);
  Py_DECREF (a[3]);
  Py_XDECREF (r);
  host_leave ();
  return r ? 0 : -1;
}

static int
f_finalize (nbdkit_next *next, void *handle)
{
  PyObject *a[3], *r;

  host_enter ();
  r = call_nh (FCB_finalize, next, handle, a, 0, NULL);
  Py_XDECREF (r);
  host_leave ();
  return r ? 0 : -1;
}

static int64_t
f_get_size (nbdkit_next *next, void *handle)
{
  PyObject *a[3], *r;
  int64_t size = -1;

  host_enter ();
  r = call_nh (FCB_get_size, next, handle, a, 0, NULL);
  if (r && host_as_size (S (handle), "get_size", r, &size) == -1)
    size = -1;
  Py_XDECREF (r);
  host_leave ();
  return size;
}

/* None: the description of the layer below, or none if the filter
 * opened nothing below.
 */
static const char *
f_export_description (nbdkit_next *next, void *handle)
{
  PyObject *a[3], *r;
  const char *ret = NULL;

  if (HCB (H (handle), export_description) == NULL)
    return next ? nbdkit_next_export_description (next) : NULL;
  host_enter ();
  r = call_nh (FCB_export_description, next, handle, a, 0, NULL);
  if (r == Py_None && next) {
    int depth = host_allow ();
    ret = nbdkit_next_export_description (next);
    host_disallow (depth);
  } else if (r && r != Py_None)
    ret = host_description (
        host_as_interned (S (handle), "export_description", r));
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

/* block_size(next, h[, client_requested]): a tuple, or None for the
 * layer below's (no constraints if the filter opened nothing below).
 */
static int
f_block_size (nbdkit_next *next, void *handle, struct nbdkit_block_size *bs)
{
  PyObject *a[4], *r;
  int ret = -1;

  if (HCB (H (handle), block_size) == NULL)
    return next ? nbdkit_next_block_size (next, bs) : 0;
  host_enter ();
  a[3] = PyBool_FromLong (bs->client_requested);
  r = call_nh (FCB_block_size, next, handle, a,
               H (handle)->v->block_size_args >= 3, NULL);
  Py_DECREF (a[3]);
  if (r == Py_None && next) {
    int depth = host_allow ();
    ret = nbdkit_next_block_size (next, bs);
    host_disallow (depth);
  } else if (r == Py_None)
    ret = 0;
  else if (r)
    ret = host_block_size_result (S (handle), r, bs);
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

static int
cap (int idx, nbdkit_next *next, void *handle, enum cap_kind kind)
{
  PyObject *a[3], *r;
  int ret = -1;

  host_enter ();
  r = call_nh (idx, next, handle, a, 0, NULL);
  if (r)
    ret = host_cap_result (S (handle), filter_cb_names[idx], r, kind);
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

#define HAS(fn) (HCB (H (handle), fn) != NULL)
#define HOST_CAN_ZERO f_can_zero (NULL, handle)
#define CAP(fn, kind)                                                          \
  static int f_##fn (nbdkit_next *next, void *handle)                          \
  {                                                                            \
    if (!HAS (fn))                                                             \
      return next ? nbdkit_next_##fn (next) : HOST_DEFAULT_##fn;               \
    return cap (FCB_##fn, next, handle, kind);                                 \
  }
CAP (can_write, CAP_BOOL)
CAP (can_flush, CAP_BOOL)
CAP (is_rotational, CAP_BOOL)
CAP (can_trim, CAP_BOOL)
CAP (can_zero, CAP_TRI)
CAP (can_fast_zero, CAP_BOOL)
CAP (can_fua, CAP_TRI)
CAP (can_multi_conn, CAP_BOOL)
CAP (can_extents, CAP_TRI)
CAP (can_cache, CAP_TRI)
#undef CAP
#undef HOST_CAN_ZERO
#undef HAS

/* pread(next, h, buf, offset, flags) fills buf.  If it returns what
 * next.pread(buf, offset, flags) returned (the read passed through),
 * the holes and loans of the layer below reach the client as they
 * came; next.pread also filled buf with them, for a script that looks,
 * and any other answer drops them so that buf alone counts.
 */
static int
f_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
         uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  PyObject *a[6], *r = NULL;
  struct host_thread *t;
  struct host_forward fwd = { rd, buf, count, offset, NULL }, *saved_fwd;
  struct nbdkit_read *saved_read;
  int ret = -1;

  t = host_enter_t ();
  a[3] = PyMemoryView_FromMemory (buf, count, PyBUF_WRITE);
  a[4] = PyLong_FromUnsignedLongLong (offset);
  a[5] = PyLong_FromUnsignedLong (flags);
  saved_read = t->cur_read;
  saved_fwd = t->cur_forward;
  t->cur_read = rd;
  t->cur_forward = rd ? &fwd : NULL;
  if (a[3] && a[4] && a[5])
    r = call_nh (FCB_pread, next, handle, a, 3, err);
  else
    *err = host_report_errno (S (handle), "pread");
  if (fwd.token && r != fwd.token)
    host_forward_drop (t);
  Py_CLEAR (fwd.token);
  t->cur_read = saved_read;
  t->cur_forward = saved_fwd;
  Py_XDECREF (a[4]);
  Py_XDECREF (a[5]);
  if (r)
    ret = 0;
  Py_XDECREF (r);
  if (a[3] && host_release_view (S (handle), a[3], "pread") == -1 && ret == 0) {
    *err = EIO;
    ret = -1;
  }
  host_leave_t (t);
  return ret;
}

static int
f_pwrite (nbdkit_next *next, void *handle, const void *buf, uint64_t count,
          uint64_t offset, uint32_t flags, int *err)
{
  PyObject *a[6], *r = NULL;
  int ret = -1;

  host_enter ();
  a[3] = PyMemoryView_FromMemory ((char *)buf, count, PyBUF_READ);
  a[4] = PyLong_FromUnsignedLongLong (offset);
  a[5] = PyLong_FromUnsignedLong (flags);
  if (a[3] && a[4] && a[5])
    r = call_nh (FCB_pwrite, next, handle, a, 3, err);
  else
    *err = host_report_errno (S (handle), "pwrite");
  Py_XDECREF (a[4]);
  Py_XDECREF (a[5]);
  if (r)
    ret = 0;
  Py_XDECREF (r);
  if (a[3] && host_release_view (S (handle), a[3], "pwrite") == -1
      && ret == 0) {
    *err = EIO;
    ret = -1;
  }
  host_leave ();
  return ret;
}

static int
f_flush (nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
  PyObject *a[4], *r;

  host_enter ();
  a[3] = PyLong_FromUnsignedLong (flags);
  r = call_nh (FCB_flush, next, handle, a, 1, err);
  Py_DECREF (a[3]);
  Py_XDECREF (r);
  host_leave ();
  return r ? 0 : -1;
}

/* trim, zero, cache: (next, h, count, offset, flags). */
static int
range_op (int idx, nbdkit_next *next, void *handle, uint64_t count,
          uint64_t offset, uint32_t flags, int *err)
{
  PyObject *a[6], *r = NULL;
  int e;

  host_enter ();
  a[3] = PyLong_FromUnsignedLongLong (count);
  a[4] = PyLong_FromUnsignedLongLong (offset);
  a[5] = PyLong_FromUnsignedLong (flags);
  if (idx == FCB_zero && a[3] && a[4] && a[5]) {
    /* "Cannot zero this way" lets the server write zeroes instead:
     * not an error worth logging.
     */
    host_thread ()->last_error = 0;
    if (args2 (a, handle, next) == 0)
      r = host_call (H (handle)->v->script.cb[idx], a, 5);
    e = r ? 0 : host_exception_errno ();
    if (e == EOPNOTSUPP || e == ENOTSUP) {
      PyErr_Clear ();
      nbdkit_debug ("%s: zero: not supported here, falling back",
                    S (handle)->path);
      *err = e;
    } else if (r == NULL)
      *err = host_report_errno (S (handle), "zero");
  } else if (a[3] && a[4] && a[5])
    r = call_nh (idx, next, handle, a, 3, err);
  else
    *err = host_report_errno (S (handle), filter_cb_names[idx]);
  Py_XDECREF (a[3]);
  Py_XDECREF (a[4]);
  Py_XDECREF (a[5]);
  Py_XDECREF (r);
  host_leave ();
  return r ? 0 : -1;
}

static int
f_trim (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
        uint32_t flags, int *err)
{
  return range_op (FCB_trim, next, handle, count, offset, flags, err);
}

static int
f_zero (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
        uint32_t flags, int *err)
{
  return range_op (FCB_zero, next, handle, count, offset, flags, err);
}

static int
f_cache (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
         uint32_t flags, int *err)
{
  return range_op (FCB_cache, next, handle, count, offset, flags, err);
}

/* extents and meta_extents return an iterable of (offset, length,
 * type), or call nbdkit.add_extent and return None.
 */
static int
extents_cb (int idx, nbdkit_next *next, void *handle, uint64_t count,
            uint64_t offset, uint32_t flags, struct nbdkit_extents *e, int *err)
{
  PyObject *a[6], *r = NULL;
  int ret = -1;

  host_enter ();
  a[3] = PyLong_FromUnsignedLongLong (count);
  a[4] = PyLong_FromUnsignedLongLong (offset);
  a[5] = PyLong_FromUnsignedLong (flags);
  host_thread ()->cur_extents = e;
  if (a[3] && a[4] && a[5])
    r = call_nh (idx, next, handle, a, 3, err);
  else
    *err = host_report_errno (S (handle), filter_cb_names[idx]);
  host_thread ()->cur_extents = NULL;
  Py_XDECREF (a[3]);
  Py_XDECREF (a[4]);
  Py_XDECREF (a[5]);
  if (r && (*err = host_extents_result (S (handle), r, e)) == 0)
    ret = 0;
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

static int
f_extents (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
           uint32_t flags, struct nbdkit_extents *e, int *err)
{
  return extents_cb (FCB_extents, next, handle, count, offset, flags, e, err);
}

/* The filter's own metadata context (see meta_context in filter.c). */
static int
f_meta_extents (nbdkit_next *next, void *handle, uint64_t count,
                uint64_t offset, uint32_t flags, struct nbdkit_extents *e,
                int *err)
{
  return extents_cb (FCB_meta_extents, next, handle, count, offset, flags, e,
                     err);
}

void
filter_io_setup (struct layer *l)
{
  struct nbdkit_filter *f = &l->filter;

#define SET(fn)                                                                \
  if (LCB (l, fn))                                                             \
    f->fn = f_##fn;
  SET (prepare)
  SET (finalize)
  SET (get_size)
  /* Asked once per connection: always ours, see the top. */
  f->export_description = f_export_description;
  f->block_size = f_block_size;
  f->can_write = f_can_write;
  f->can_flush = f_can_flush;
  f->is_rotational = f_is_rotational;
  f->can_trim = f_can_trim;
  f->can_zero = f_can_zero;
  f->can_fast_zero = f_can_fast_zero;
  f->can_fua = f_can_fua;
  f->can_multi_conn = f_can_multi_conn;
  f->can_extents = f_can_extents;
  f->can_cache = f_can_cache;
  SET (pread)
  SET (pwrite)
  SET (flush)
  SET (trim)
  SET (zero)
  SET (extents)
  SET (cache)
  SET (meta_extents)
#undef SET
}
