/* next.c: NBDKit.Next, an OCaml filter's calls to the layer below.
 *
 * A next is the nbdkit_next pointer of a filter callback, as a
 * nativeint; it is accepted only while that callback runs on this
 * thread (filter_next_active), or, for a context the script opened
 * itself, from any thread until it closes it.  Each call lets go of the host's
 * locks while the layer below works (it may be an OCaml plugin or filter
 * itself), with data in C memory, since OCaml values may move
 * meanwhile.  A failure below raises NBDKit.Error with its errno.
 */

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

#include <caml/fail.h>
#include <caml/unixsupport.h>

#include <nbdkit-filter.h>

/* Contexts the scripts opened (next_context_open), valid on any thread
 * until next_context_close.
 */
static pthread_mutex_t owned_lock = PTHREAD_MUTEX_INITIALIZER;
static nbdkit_next **owned;
static size_t nowned;

static int
is_owned (nbdkit_next *n, int remove)
{
  int r = 0;

  pthread_mutex_lock (&owned_lock);
  for (size_t i = 0; i < nowned; i++)
    if (owned[i] == n) {
      r = 1;
      if (remove)
        owned[i] = owned[--nowned];
      break;
    }
  pthread_mutex_unlock (&owned_lock);
  return r;
}

static nbdkit_next *
next_of (value v)
{
  nbdkit_next *n = (nbdkit_next *)Nativeint_val (v);

  if (!filter_next_active (n) && !is_owned (n, 0))
    caml_invalid_argument ("NBDKit.Next: this next belongs to a callback"
                           " that has returned");
  return n;
}

/* The layer below failed (and logged why): NBDKit.Error (errno, WHAT). */
static void
next_failed (int err, const char *what)
{
  value args[2];
  char msg[80];

  snprintf (msg, sizeof msg, "the layer below failed in %s", what);
  args[0] = unix_error_of_code (err ? err : EIO);
  args[1] = caml_copy_string (msg);
  caml_raise_with_args (*caml_named_value ("NBDKit.Error"), 2, args);
}

value
ocaml_nbdkit_next_get_size (value nv)
{
  nbdkit_next *n = next_of (nv);
  int64_t r;
  int saved;

  saved = host_suspend ();
  r = nbdkit_next_get_size (n);
  host_resume (saved);
  if (r == -1)
    next_failed (EIO, "get_size");
  return caml_copy_int64 (r);
}

value
ocaml_nbdkit_next_export_description (value nv)
{
  CAMLparam1 (nv);
  CAMLlocal2 (s, r);
  nbdkit_next *n = next_of (nv);
  const char *d;
  int saved;

  saved = host_suspend ();
  d = nbdkit_next_export_description (n);
  host_resume (saved);
  if (d == NULL)
    CAMLreturn (Val_int (0));
  s = caml_copy_string (d);
  r = caml_alloc_small (1, 0);
  Field (r, 0) = s;
  CAMLreturn (r);
}

value
ocaml_nbdkit_next_can (value nv, value which)
{
  static int (*const fns[]) (nbdkit_next *) = {
    nbdkit_next_can_write,     nbdkit_next_can_flush,
    nbdkit_next_is_rotational, nbdkit_next_can_trim,
    nbdkit_next_can_zero,      nbdkit_next_can_fast_zero,
    nbdkit_next_can_fua,       nbdkit_next_can_multi_conn,
    nbdkit_next_can_extents,   nbdkit_next_can_cache,
  };
  nbdkit_next *n = next_of (nv);
  long w = Long_val (which);
  int r, saved;

  if (w < 0 || w >= (long)(sizeof fns / sizeof fns[0]))
    caml_invalid_argument ("NBDKit.Next: no such capability");
  saved = host_suspend ();
  r = fns[w](n);
  host_resume (saved);
  if (r == -1)
    next_failed (EIO, "a capability");
  return Val_int (r);
}

value
ocaml_nbdkit_next_pread (value nv, value buf, value offset, value flags)
{
  CAMLparam4 (nv, buf, offset, flags);
  nbdkit_next *n = next_of (nv);
  size_t count = caml_string_length (buf);
  uint64_t off = Int64_val (offset);
  uint32_t fl = Int_val (flags);
  char *tmp;
  int r, err = 0, saved;

  if (Int64_val (offset) < 0)
    caml_invalid_argument ("NBDKit.Next.pread: negative offset");
  /* The OCaml buffer may move while the locks are let go. */
  tmp = malloc (count ? count : 1);
  if (tmp == NULL)
    caml_raise_out_of_memory ();
  saved = host_suspend ();
  r = nbdkit_next_pread (n, tmp, count, off, fl, NULL, &err);
  host_resume (saved);
  if (r == 0)
    memcpy (Bytes_val (buf), tmp, count);
  free (tmp);
  if (r == -1)
    next_failed (err, "pread");
  CAMLreturn (Val_unit);
}

value
ocaml_nbdkit_next_pwrite (value nv, value data, value offset, value flags)
{
  CAMLparam4 (nv, data, offset, flags);
  nbdkit_next *n = next_of (nv);
  size_t count = caml_string_length (data);
  uint64_t off = Int64_val (offset);
  uint32_t fl = Int_val (flags);
  char *tmp;
  int r, err = 0, saved;

  if (Int64_val (offset) < 0)
    caml_invalid_argument ("NBDKit.Next.pwrite: negative offset");
  tmp = malloc (count ? count : 1);
  if (tmp == NULL)
    caml_raise_out_of_memory ();
  memcpy (tmp, String_val (data), count);
  saved = host_suspend ();
  r = nbdkit_next_pwrite (n, tmp, count, off, fl, &err);
  host_resume (saved);
  free (tmp);
  if (r == -1)
    next_failed (err, "pwrite");
  CAMLreturn (Val_unit);
}

value
ocaml_nbdkit_next_flush (value nv, value flags)
{
  nbdkit_next *n = next_of (nv);
  uint32_t fl = Int_val (flags);
  int r, err = 0, saved;

  saved = host_suspend ();
  r = nbdkit_next_flush (n, fl, &err);
  host_resume (saved);
  if (r == -1)
    next_failed (err, "flush");
  return Val_unit;
}

value
ocaml_nbdkit_next_range (value nv, value which, value count, value offset,
                         value flags)
{
  nbdkit_next *n = next_of (nv);
  int64_t c = Int64_val (count), o = Int64_val (offset);
  uint32_t fl = Int_val (flags);
  int r, err = 0, saved;
  long w = Long_val (which);

  if (c < 0 || o < 0)
    caml_invalid_argument ("NBDKit.Next: negative count or offset");
  saved = host_suspend ();
  r = w == 0   ? nbdkit_next_trim (n, c, o, fl, &err)
      : w == 1 ? nbdkit_next_zero (n, c, o, fl, &err)
               : nbdkit_next_cache (n, c, o, fl, &err);
  host_resume (saved);
  if (r == -1)
    next_failed (err, w == 0 ? "trim" : w == 1 ? "zero" : "cache");
  return Val_unit;
}

value
ocaml_nbdkit_next_extents (value nv, value count, value offset, value flags)
{
  CAMLparam4 (nv, count, offset, flags);
  CAMLlocal3 (arr, t, v);
  nbdkit_next *n = next_of (nv);
  int64_t c = Int64_val (count), o = Int64_val (offset);
  uint32_t fl = Int_val (flags);
  struct nbdkit_extents *e;
  int r, err = 0, saved;
  size_t k;

  if (c < 0 || o < 0 || c > INT64_MAX - o)
    caml_invalid_argument ("NBDKit.Next.extents: bad count or offset");
  e = nbdkit_extents_new (o, o + c);
  if (e == NULL)
    next_failed (errno, "extents");
  saved = host_suspend ();
  r = nbdkit_next_extents (n, c, o, fl, e, &err);
  host_resume (saved);
  if (r == -1) {
    nbdkit_extents_free (e);
    next_failed (err, "extents");
  }
  k = nbdkit_extents_count (e);
  arr = caml_alloc (k, 0);
  for (size_t i = 0; i < k; i++) {
    struct nbdkit_extent x = nbdkit_get_extent (e, i);
    t = caml_alloc (3, 0);
    v = caml_copy_int64 (x.offset);
    Store_field (t, 0, v);
    v = caml_copy_int64 (x.length);
    Store_field (t, 1, v);
    Store_field (t, 2, Val_int (x.type));
    Store_field (arr, i, t);
  }
  nbdkit_extents_free (e);
  CAMLreturn (arr);
}

value
ocaml_nbdkit_next_block_size (value nv)
{
  CAMLparam1 (nv);
  CAMLlocal2 (r, v);
  nbdkit_next *n = next_of (nv);
  struct nbdkit_block_size bs = { 0 };
  int saved, ret;

  saved = host_suspend ();
  ret = nbdkit_next_block_size (n, &bs);
  host_resume (saved);
  if (ret == -1)
    next_failed (EIO, "block_size");
  r = caml_alloc_tuple (4);
  Store_field (r, 0, Val_long (bs.minimum));
  Store_field (r, 1, Val_long (bs.preferred));
  Store_field (r, 2, Val_long (bs.maximum));
  v = caml_copy_int64 (bs.maximum_virtual);
  Store_field (r, 3, v);
  CAMLreturn (r);
}

/* The filter's own read, answered by the layer below into the
 * server's buffer with the server's read: holes and loans travel up
 * untouched, and nothing is copied.
 */
value
ocaml_nbdkit_next_pread_request (value nv, value flags)
{
  nbdkit_next *n = next_of (nv);
  struct filter_read *fr = filter_read;
  uint32_t fl = Int_val (flags);
  int r, err = 0, saved;

  if (fr == NULL || fr->next != n || fr->forwarded)
    caml_invalid_argument ("NBDKit.Next.pread_request: only once, from the"
                           " filter's own pread with its next");
  saved = host_suspend ();
  r = nbdkit_next_pread (n, fr->buf, fr->count, fr->offset, fl, fr->rd, &err);
  host_resume (saved);
  if (r == -1)
    next_failed (err, "pread");
  fr->forwarded = 1;
  return Val_unit;
}

/* ---- from a filter's open, list_exports and default_export ---- */

value
ocaml_nbdkit_next_open (value readonly, value name)
{
  nbdkit_context *ctx = filter_open_ctx;
  char *n;
  int r, saved;

  if (ctx == NULL)
    caml_invalid_argument ("NBDKit.next_open: only from a filter's"
                           " open_connection");
  n = strdup (String_val (name));
  if (n == NULL)
    caml_raise_out_of_memory ();
  saved = host_suspend ();
  r = nbdkit_next_open (ctx, Bool_val (readonly), n);
  host_resume (saved);
  free (n);
  if (r == -1)
    next_failed (EIO, "open");
  return Val_unit;
}

value
ocaml_nbdkit_list_exports_below (value readonly, value is_tls)
{
  CAMLparam2 (readonly, is_tls);
  CAMLlocal4 (arr, t, s, d);
  nbdkit_backend *b = filter_backend;
  struct nbdkit_exports *e;
  int r, saved;
  size_t k;

  if (b == NULL)
    caml_invalid_argument ("NBDKit.list_exports_below: only from a filter's"
                           " list_exports or default_export");
  e = nbdkit_exports_new ();
  if (e == NULL)
    caml_raise_out_of_memory ();
  saved = host_suspend ();
  r = nbdkit_backend_list_exports (b, Bool_val (readonly), Bool_val (is_tls),
                                   e);
  host_resume (saved);
  if (r == -1) {
    nbdkit_exports_free (e);
    next_failed (EIO, "list_exports");
  }
  k = nbdkit_exports_count (e);
  arr = caml_alloc (k, 0);
  for (size_t i = 0; i < k; i++) {
    struct nbdkit_export x = nbdkit_get_export (e, i);
    s = caml_copy_string (x.name);
    d = Val_int (0);
    if (x.description) {
      d = caml_alloc (1, 0);
      t = caml_copy_string (x.description);
      Store_field (d, 0, t);
    }
    t = caml_alloc_tuple (2);
    Store_field (t, 0, s);
    Store_field (t, 1, d);
    Store_field (arr, i, t);
  }
  nbdkit_exports_free (e);
  CAMLreturn (arr);
}

value
ocaml_nbdkit_default_export_below (value readonly, value is_tls)
{
  nbdkit_backend *b = filter_backend;
  const char *d;
  int saved;

  if (b == NULL)
    caml_invalid_argument ("NBDKit.default_export_below: only from a"
                           " filter's list_exports or default_export");
  saved = host_suspend ();
  d = nbdkit_backend_default_export (b, Bool_val (readonly), Bool_val (is_tls));
  host_resume (saved);
  if (d == NULL)
    next_failed (EIO, "default_export");
  return caml_copy_string (d);
}

/* ---- contexts of the filter's own ---- */

value
ocaml_nbdkit_next_context_open (value readonly, value name)
{
  CAMLparam2 (readonly, name);
  nbdkit_backend *b = filter_backend_now ();
  nbdkit_next *n, **grown;
  char *s;
  int saved;

  if (b == NULL)
    caml_invalid_argument ("NBDKit.next_context_open: only from a filter's"
                           " callbacks, once it has opened a connection");
  s = strdup (String_val (name));
  if (s == NULL)
    caml_raise_out_of_memory ();
  saved = host_suspend ();
  n = nbdkit_next_context_open (b, Bool_val (readonly), s);
  host_resume (saved);
  free (s);
  if (n == NULL)
    next_failed (EIO, "next_context_open");
  pthread_mutex_lock (&owned_lock);
  grown = realloc (owned, (nowned + 1) * sizeof *owned);
  if (grown) {
    owned = grown;
    owned[nowned++] = n;
  }
  pthread_mutex_unlock (&owned_lock);
  if (grown == NULL) {
    nbdkit_next_context_close (n);
    caml_raise_out_of_memory ();
  }
  CAMLreturn (caml_copy_nativeint ((intnat)n));
}

value
ocaml_nbdkit_next_context_close (value nv)
{
  nbdkit_next *n = (nbdkit_next *)Nativeint_val (nv);
  int saved;

  if (!is_owned (n, 1))
    caml_invalid_argument ("NBDKit.next_context_close: not a context opened"
                           " by next_context_open, or closed already");
  saved = host_suspend ();
  nbdkit_next_context_close (n);
  host_resume (saved);
  return Val_unit;
}
