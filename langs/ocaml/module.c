/* module.c: the C side of the NBDKit module (the externals of
 * NBDKit.ml): the server's helper functions, called from script code
 * that runs with the host entered (host.h).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

#include <caml/bigarray.h>
#include <caml/fail.h>
#include <caml/socketaddr.h>
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

/* The nbdkit version whose interface the server offers (1.x). */
value
ocaml_nbdkit_compat_version (value unit)
{
  return caml_copy_string (NBDKIT_COMPAT_VERSION);
}

value
ocaml_nbdkit_absolute_path (value s)
{
  CAMLparam1 (s);
  CAMLlocal1 (r);
  char *p = nbdkit_absolute_path (String_val (s));

  if (p == NULL)
    CAMLreturn (Val_int (0));
  r = caml_copy_string (p);
  free (p);
  CAMLreturn (some (r));
}

value
ocaml_nbdkit_parse_int (value what, value s)
{
  int64_t r;

  if (nbdkit_parse_int64_t (String_val (what), String_val (s), &r) == -1)
    return Val_int (0);
  return some (caml_copy_int64 (r));
}

value
ocaml_nbdkit_peer_name (value unit)
{
  union sock_addr_union addr;
  socklen_param_type len = sizeof addr;

  if (nbdkit_peer_name (&addr.s_gen, &len) == -1)
    return Val_int (0);
  return some (alloc_sockaddr (&addr, len, -1));
}

/* ---- reads beyond plain data (plugin.c sets module_read) ---- */

__thread struct module_read *module_read;

static struct module_read *
current_read (const char *what)
{
  if (module_read == NULL || module_read->rd == NULL)
    caml_invalid_argument_value (caml_copy_string (what));
  return module_read;
}

/* Remember [START, END) of the request as answered, for the copy. */
static void
answered (struct module_read *m, uint64_t offset, uint64_t length,
          const char *what)
{
  if (!m->track || length == 0)
    return;
  if (m->nranges == sizeof m->ranges / sizeof m->ranges[0])
    caml_invalid_argument_value (caml_copy_string (what));
  m->ranges[m->nranges].start = offset - m->offset;
  m->ranges[m->nranges].end = offset - m->offset + length;
  m->nranges++;
}

/* Raise NBDKit.Error with the errno the server gave (it logged why). */
static void
raise_errno (int err, const char *what)
{
  value args[2];

  args[0] = unix_error_of_code (err ? err : EIO);
  args[1] = caml_copy_string (what);
  caml_raise_with_args (*caml_named_value ("NBDKit.Error"), 2, args);
}

/* The range must lie in the request, as the server checks too; a
 * script's mistake is an exception, not a failed read.
 */
static void
check_range (struct module_read *m, int64_t offset, int64_t length,
             const char *what)
{
  if (offset < 0 || length < 0 || (uint64_t)offset < m->offset
      || (uint64_t)offset - m->offset > m->count
      || (uint64_t)length > m->count - ((uint64_t)offset - m->offset)) {
    char msg[200];
    snprintf (msg, sizeof msg,
              "%s: offset %" PRId64 " length %" PRId64
              " is outside the request (offset %" PRIu64 " count %" PRIu64 ")",
              what, offset, length, m->offset, m->count);
    raise_errno (EINVAL, msg);
  }
}

value
ocaml_nbdkit_read_hole (value offset, value length)
{
  struct module_read *m = current_read ("NBDKit.read_hole: not in pread");
  int64_t o = Int64_val (offset), l = Int64_val (length);

  check_range (m, o, l, "read_hole");
  if (nbdkit_read_hole (m->rd, o, l) == -1)
    raise_errno (errno, "read_hole failed");
  answered (m, o, l, "NBDKit.read_hole: too many ranges in one read");
  return Val_unit;
}

value
ocaml_nbdkit_read_error_at (value offset)
{
  struct module_read *m = current_read ("NBDKit.read_error_at: not in pread");
  int64_t o = Int64_val (offset);

  check_range (m, o, 0, "read_error_at");
  if (nbdkit_read_error_at (m->rd, o) == -1)
    raise_errno (errno, "read_error_at failed");
  return Val_unit;
}

/* A loan keeps its Bigarray alive in a root until the server is done. */
static void
release_loan (void *opaque)
{
  value *root = opaque;

  host_enter ();
  caml_remove_generational_global_root (root);
  host_leave ();
  free (root);
}

value
ocaml_nbdkit_read_lend (value offset, value data)
{
  CAMLparam2 (offset, data);
  struct module_read *m = current_read ("NBDKit.read_lend: not in pread");
  int64_t o = Int64_val (offset);
  int64_t l = Caml_ba_array_val (data)->dim[0];
  value *root;

  check_range (m, o, l, "read_lend");
  root = malloc (sizeof *root);
  if (root == NULL)
    caml_raise_out_of_memory ();
  *root = data;
  caml_register_generational_global_root (root);
  if (nbdkit_read_lend (m->rd, o, Caml_ba_data_val (data), l, release_loan,
                        root)
      == -1)
    /* The server released the loan already, or never took it. */
    raise_errno (errno, "read_lend failed");
  answered (m, o, l, "NBDKit.read_lend: too many ranges in one read");
  CAMLreturn (Val_unit);
}

/* ---- the ABI's numbers, by name without NBDKIT_ ---- */

value
ocaml_nbdkit_abi (value name)
{
  /* clang-format off */
#define K(n) { #n, NBDKIT_##n }
  static const struct { const char *name; int value; } table[] = {
    K (FLAG_MAY_TRIM), K (FLAG_FUA), K (FLAG_REQ_ONE), K (FLAG_FAST_ZERO),
    K (THREAD_MODEL_SERIALIZE_CONNECTIONS),
    K (THREAD_MODEL_SERIALIZE_ALL_REQUESTS),
    K (THREAD_MODEL_SERIALIZE_REQUESTS),
    K (THREAD_MODEL_SERIALIZE_RETIREMENT), K (THREAD_MODEL_PARALLEL),
    K (FUA_NONE), K (FUA_EMULATE), K (FUA_NATIVE),
    K (CACHE_NONE), K (CACHE_EMULATE), K (CACHE_NATIVE),
    K (ZERO_NONE), K (ZERO_EMULATE), K (ZERO_NATIVE),
    K (EXTENTS_NONE), K (EXTENTS_EMULATE), K (EXTENTS_NATIVE),
    K (EXTENT_HOLE), K (EXTENT_ZERO),
    K (PARAM_STRING), K (PARAM_BOOL), K (PARAM_INT), K (PARAM_SIZE),
    K (PARAM_ENUM), K (PARAM_FILE), K (PARAM_DIRECTORY),
    K (PARAM_PASSWORD), K (PARAM_LIST), K (PARAM_REQUIRED),
    { "ENOMEM", ENOMEM },
  };
#undef K
  /* clang-format on */

  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strcmp (table[i].name, String_val (name)) == 0)
      return Val_int (table[i].value);
  caml_invalid_argument_value (caml_copy_string ("NBDKit.abi: unknown name"));
}
