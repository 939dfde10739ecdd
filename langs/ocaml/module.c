/* module.c: the C side of the NBDKit module (the externals of
 * NBDKit.ml): the server's helper functions, called from script code
 * that runs with the host entered (host.h).
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

#include <caml/fail.h>
#include <caml/unixsupport.h>

#include <nbdkit-plugin.h>

__thread int module_last_error;

value
ocaml_nbdkit_debug (value msg)
{
  nbdkit_debug ("%s", String_val (msg));
  return Val_unit;
}

value
ocaml_nbdkit_error (value msg)
{
  nbdkit_error ("%s", String_val (msg));
  return Val_unit;
}

value
ocaml_nbdkit_errno_of_unix_error (value err)
{
  return Val_int (code_of_unix_error (err));
}

value
ocaml_nbdkit_set_error (value err)
{
  module_last_error = Int_val (err);
  nbdkit_set_error (Int_val (err));
  return Val_unit;
}

static value
some (value v)
{
  CAMLparam1 (v);
  CAMLlocal1 (r);
  r = caml_alloc_small (1, 0);
  Field (r, 0) = v;
  CAMLreturn (r);
}

value
ocaml_nbdkit_export_name (value unit)
{
  const char *s = nbdkit_export_name ();

  return s ? some (caml_copy_string (s)) : Val_int (0);
}

value
ocaml_nbdkit_is_tls (value unit)
{
  return Val_int (nbdkit_is_tls ());
}

value
ocaml_nbdkit_peer (value which)
{
  int64_t r;

  switch (Int_val (which)) {
    case 0:
      r = nbdkit_peer_pid ();
      break;
    case 1:
      r = nbdkit_peer_uid ();
      break;
    default:
      r = nbdkit_peer_gid ();
      break;
  }
  return caml_copy_int64 (r);
}

value
ocaml_nbdkit_parse_size (value s)
{
  return caml_copy_int64 (nbdkit_parse_size (String_val (s)));
}

value
ocaml_nbdkit_parse_bool (value s)
{
  return Val_int (nbdkit_parse_bool (String_val (s)));
}

value
ocaml_nbdkit_parse_probability (value what, value s)
{
  double d;

  if (nbdkit_parse_probability (String_val (what), String_val (s), &d) == -1)
    return Val_int (0);
  return some (caml_copy_double (d));
}

value
ocaml_nbdkit_read_password (value s)
{
  CAMLparam1 (s);
  CAMLlocal1 (r);
  char *pw = NULL;

  if (nbdkit_read_password (String_val (s), &pw) == -1)
    CAMLreturn (Val_int (0));
  r = caml_copy_string (pw);
  free (pw);
  CAMLreturn (some (r));
}

value
ocaml_nbdkit_realpath (value s)
{
  CAMLparam1 (s);
  CAMLlocal1 (r);
  char *p = nbdkit_realpath (String_val (s));

  if (p == NULL)
    CAMLreturn (Val_int (0));
  r = caml_copy_string (p);
  free (p);
  CAMLreturn (some (r));
}

/* The one function that waits: the other callbacks (and the script's
 * own threads) may run meanwhile.
 */
value
ocaml_nbdkit_nanosleep (value sec, value nsec)
{
  unsigned s = Long_val (sec), ns = Long_val (nsec);
  int saved, r;

  saved = host_suspend ();
  r = nbdkit_nanosleep (s, ns);
  host_resume (saved);
  return Val_int (r == -1 ? ESHUTDOWN : 0);
}

value
ocaml_nbdkit_shutdown (value unit)
{
  nbdkit_shutdown ();
  return Val_unit;
}

value
ocaml_nbdkit_disconnect (value force)
{
  nbdkit_disconnect (Bool_val (force));
  return Val_unit;
}

value
ocaml_nbdkit_stdio_safe (value unit)
{
  return Val_bool (nbdkit_stdio_safe ());
}

value
ocaml_nbdkit_version (value unit)
{
  return caml_copy_string (NBDKIT_VERSION);
}
