/* plugin_io.c: the python plugin's callbacks on an open connection.
 *
 * Size, description, block size and capabilities, then the data
 * callbacks: each calls the script's function of the same name with
 * the handle open returned.  A read or write hands the script a
 * memoryview straight over the server's buffer.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "plugin.h"
#include "values.h"

/* The connection's script (PS, from PLUGIN_HANDLE). */
#define script (ps->s)
#define block_size_args (ps->block_size_args)

static const char *const cb_names[] = {
#define N(n) #n,
  PLUGIN_CALLBACKS (N)
#undef N
};

/* Call callback IDX with the handle alone; a new reference or NULL
 * (reported).
 */
static PyObject *
call_h (int idx, void *hd)
{
  PLUGIN_HANDLE (hd);
  PyObject *a[2] = { NULL, h }, *r;

  r = host_call (script.cb[idx], a, 1);
  if (r == NULL)
    host_report (&script, cb_names[idx]);
  return r;
}

int64_t
py_get_size (void *hd)
{
  PLUGIN_HANDLE (hd);
  PyObject *r;
  int64_t size = -1;

  host_enter ();
  r = call_h (CB_get_size, hd);
  if (r && host_as_size (&script, "get_size", r, &size) == -1)
    size = -1;
  Py_XDECREF (r);
  host_leave ();
  return size;
}

const char *
py_export_description (void *hd)
{
  PLUGIN_HANDLE (hd);
  PyObject *r;
  const char *ret = NULL;

  if (CB (export_description) == NULL)
    return NULL;
  host_enter ();
  r = call_h (CB_export_description, hd);
  if (r && r != Py_None)
    ret = host_description (
        host_as_interned (&script, "export_description", r));
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

/* block_size(h[, client_requested]) returns (minimum, preferred,
 * maximum[, maximum_virtual]), or None for no constraints.
 */
int
py_block_size (void *hd, struct nbdkit_block_size *bs)
{
  PLUGIN_HANDLE (hd);
  PyObject *a[3] = { NULL, h, NULL }, *r;
  int ret = -1;

  if (CB (block_size) == NULL)
    return 0;
  host_enter ();
  a[2] = PyBool_FromLong (bs->client_requested);
  r = host_call (CB (block_size), a, block_size_args >= 2 ? 2 : 1);
  Py_DECREF (a[2]);
  if (r == NULL)
    host_report (&script, "block_size");
  else if (r == Py_None)
    ret = 0;
  else
    ret = host_block_size_result (&script, r, bs);
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

/* Capabilities.  A bool is a bool; the tri-states also take the
 * nbdkit.*_NONE/EMULATE/NATIVE numbers (see host_cap_result); for API
 * 1 and 2, False means emulate for can_zero and can_extents and
 * numbers are taken as they are, as with nbdkit.
 */
enum { CAP_TRI_OLD = CAP_TRI + 1 };

static int
cap (int idx, void *hd, int kind, int dflt)
{
  PLUGIN_HANDLE (hd);
  PyObject *r;
  int ret;

  if (script.cb[idx] == NULL)
    return dflt;
  host_enter ();
  r = call_h (idx, hd);
  if (r == NULL)
    ret = -1;
  else if (kind == CAP_TRI_OLD && API < 3) {
    ret = host_cap_result (&script, cb_names[idx], r, CAP_BOOL);
    if (ret != -1)
      ret = ret ? NBDKIT_ZERO_NATIVE : NBDKIT_ZERO_EMULATE;
  } else if (kind != CAP_BOOL && API < 3 && PyBool_Check (r))
    ret = r == Py_True; /* True is 1: emulate */
  else
    ret = host_cap_result (&script, cb_names[idx], r,
                           kind == CAP_BOOL ? CAP_BOOL : CAP_TRI);
  Py_XDECREF (r);
  host_leave ();
  return ret;
}

#define CAP(fn, kind, dflt)                                                    \
  int py_##fn (void *hd)                                                       \
  {                                                                            \
    PLUGIN_HANDLE (hd);                                                        \
    return cap (CB_##fn, hd, kind, dflt);                                      \
  }
CAP (can_write, CAP_BOOL, CB (pwrite) != NULL)
CAP (can_flush, CAP_BOOL, CB (flush) != NULL)
CAP (is_rotational, CAP_BOOL, 0)
CAP (can_trim, CAP_BOOL, CB (trim) != NULL)
CAP (can_zero, CAP_TRI_OLD,
     CB (zero) ? NBDKIT_ZERO_NATIVE : NBDKIT_ZERO_EMULATE)
CAP (can_fast_zero, CAP_BOOL, 0)
CAP (can_fua, CAP_TRI, CB (flush) ? NBDKIT_FUA_EMULATE : NBDKIT_FUA_NONE)
CAP (can_multi_conn, CAP_BOOL, 0)
CAP (can_extents, CAP_TRI_OLD,
     CB (extents) ? NBDKIT_EXTENTS_NATIVE : NBDKIT_EXTENTS_EMULATE)
CAP (can_cache, CAP_TRI, CB (cache) ? NBDKIT_CACHE_NATIVE : NBDKIT_CACHE_NONE)
#undef CAP

int
py_pread (void *hd, void *buf, uint64_t count, uint64_t offset, uint32_t flags,
          struct nbdkit_read *rd)
{
  PLUGIN_HANDLE (hd);
  PyObject *a[5] = { NULL, h }, *r;
  struct host_thread *t;
  Py_buffer view;
  int ret = 0;

  t = host_enter_t ();
  if (API == 1) {
    /* pread (h, count, offset) returns the data. */
    a[2] = PyLong_FromUnsignedLongLong (count);
    a[3] = PyLong_FromUnsignedLongLong (offset);
    r = a[2] && a[3] ? host_call (CB (pread), a, 3) : NULL;
    Py_XDECREF (a[2]);
    Py_XDECREF (a[3]);
    if (r == NULL)
      ret = host_report (&script, "pread");
    else if (PyObject_GetBuffer (r, &view, PyBUF_SIMPLE) == -1)
      ret = host_report (&script, "pread (the result is not bytes-like)");
    else {
      /* Exactly count bytes, as in the Lua host: more is as much a
       * bug of the script as less.
       */
      if ((uint64_t)view.len != count) {
        nbdkit_error ("%s: pread returned %zd bytes, expected %" PRIu64,
                      script.path, view.len, count);
        errno = EIO;
        ret = -1;
      } else
        memcpy (buf, view.buf, count);
      PyBuffer_Release (&view);
    }
    Py_XDECREF (r);
    host_leave_t (t);
    return ret;
  }

  /* pread (h, buf, offset, flags) fills buf, a memoryview. */
  a[2] = host_view (t, buf, count, 1);
  a[3] = PyLong_FromUnsignedLongLong (offset);
  a[4] = PyLong_FromUnsignedLong (flags);
  /* Under a Python filter on the same thread, the filter's read is
   * what its script acts on again once this returns.
   */
  struct nbdkit_read *saved_read = t->cur_read;
  struct host_forward *saved_fwd = t->cur_forward;
  t->cur_read = rd;
  t->cur_forward = NULL;
  r = a[2] && a[3] && a[4] ? host_call (CB (pread), a, 4) : NULL;
  t->cur_read = saved_read;
  t->cur_forward = saved_fwd;
  Py_XDECREF (a[3]);
  Py_XDECREF (a[4]);
  if (r == NULL)
    ret = host_report (&script, "pread");
  Py_XDECREF (r);
  if (a[2] && host_view_done (t, &script, a[2], 1, "pread") == -1)
    ret = -1;
  host_leave_t (t);
  return ret;
}

int
py_pwrite (void *hd, const void *buf, uint64_t count, uint64_t offset,
           uint32_t flags)
{
  PLUGIN_HANDLE (hd);
  PyObject *a[5] = { NULL, h }, *r;
  struct host_thread *t;
  int ret = 0;

  if (CB (pwrite) == NULL) {
    errno = EROFS;
    return -1;
  }
  t = host_enter_t ();
  a[2] = host_view (t, (void *)buf, count, 0);
  a[3] = PyLong_FromUnsignedLongLong (offset);
  a[4] = PyLong_FromUnsignedLong (flags);
  r = a[2] && a[3] && a[4] ? host_call (CB (pwrite), a, API == 1 ? 3 : 4)
                           : NULL;
  Py_XDECREF (a[3]);
  Py_XDECREF (a[4]);
  if (r == NULL)
    ret = host_report (&script, "pwrite");
  Py_XDECREF (r);
  if (a[2] && host_view_done (t, &script, a[2], 0, "pwrite") == -1)
    ret = -1;
  host_leave_t (t);
  return ret;
}

int
py_flush (void *hd, uint32_t flags)
{
  PLUGIN_HANDLE (hd);
  PyObject *a[3] = { NULL, h }, *r;
  int ret = 0;

  if (CB (flush) == NULL)
    return 0;
  host_enter ();
  a[2] = PyLong_FromUnsignedLong (flags);
  r = host_call (CB (flush), a, API == 1 ? 1 : 2);
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
range_op (int idx, void *hd, uint64_t count, uint64_t offset, uint32_t flags)
{
  PLUGIN_HANDLE (hd);
  PyObject *a[5] = { NULL, h }, *r;
  struct host_thread *t;
  size_t n = 4;
  int ret = 0, e;

  t = host_enter_t ();
  a[2] = PyLong_FromUnsignedLongLong (count);
  a[3] = PyLong_FromUnsignedLongLong (offset);
  a[4] = PyLong_FromUnsignedLong (flags);
  if (API == 1 && idx == CB_trim)
    n = 3;
  if (API == 1 && idx == CB_zero) {
    Py_XDECREF (a[4]);
    a[4] = PyBool_FromLong (flags & NBDKIT_FLAG_MAY_TRIM);
  }
  t->last_error = 0;
  r = a[2] && a[3] && a[4] ? host_call (script.cb[idx], a, n) : NULL;
  Py_XDECREF (a[2]);
  Py_XDECREF (a[3]);
  Py_XDECREF (a[4]);
  if (idx == CB_zero) {
    /* "Cannot zero this way" lets the server write zeroes instead,
     * whether the script raised it or set it (as nbdkit allows).
     */
    e = r ? t->last_error : host_exception_errno ();
    if (e == EOPNOTSUPP || e == ENOTSUP) {
      PyErr_Clear ();
      Py_XDECREF (r);
      nbdkit_debug ("%s: zero: not supported here, falling back", script.path);
      nbdkit_set_error (e);
      errno = e;
      host_leave_t (t);
      return -1;
    }
  }
  if (r == NULL)
    ret = host_report (&script, cb_names[idx]);
  Py_XDECREF (r);
  host_leave_t (t);
  return ret;
}

int
py_trim (void *hd, uint64_t count, uint64_t offset, uint32_t flags)
{
  PLUGIN_HANDLE (hd);
  if (CB (trim) == NULL) {
    errno = EOPNOTSUPP;
    return -1;
  }
  return range_op (CB_trim, hd, count, offset, flags);
}

int
py_zero (void *hd, uint64_t count, uint64_t offset, uint32_t flags)
{
  PLUGIN_HANDLE (hd);
  if (CB (zero) == NULL) {
    errno = EOPNOTSUPP;
    return -1;
  }
  return range_op (CB_zero, hd, count, offset, flags);
}

int
py_cache (void *hd, uint64_t count, uint64_t offset, uint32_t flags)
{
  PLUGIN_HANDLE (hd);
  if (CB (cache) == NULL)
    return 0;
  return range_op (CB_cache, hd, count, offset, flags);
}

/* extents returns an iterable of (offset, length, type), or calls
 * nbdkit.add_extent and returns None.
 */
int
py_extents (void *hd, uint64_t count, uint64_t offset, uint32_t flags,
            struct nbdkit_extents *e)
{
  PLUGIN_HANDLE (hd);
  PyObject *a[5] = { NULL, h }, *r = NULL;
  struct host_thread *t;
  int ret = 0, err;

  if (CB (extents) == NULL)
    return nbdkit_add_extent (e, offset, count, 0);
  t = host_enter_t ();
  a[2] = PyLong_FromUnsignedLongLong (count);
  a[3] = PyLong_FromUnsignedLongLong (offset);
  a[4] = PyLong_FromUnsignedLong (flags);
  t->cur_extents = e;
  r = a[2] && a[3] && a[4] ? host_call (CB (extents), a, 4) : NULL;
  Py_XDECREF (a[2]);
  Py_XDECREF (a[3]);
  Py_XDECREF (a[4]);
  if (r == NULL)
    ret = host_report (&script, "extents");
  else if ((err = host_extents_result (&script, r, e)) != 0) {
    nbdkit_set_error (err);
    errno = err;
    ret = -1;
  }
  t->cur_extents = NULL;
  Py_XDECREF (r);
  host_leave_t (t);
  return ret;
}
