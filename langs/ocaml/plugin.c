/* plugin.c: the ocaml plugin, which runs a plugin written in OCaml.
 *
 *   nbdkit ocaml SCRIPT.ml [key=value ...]     (or: nbdkit SCRIPT.ml ...)
 *   nbdkit ocaml SCRIPT.cmxs [key=value ...]   (built already)
 *
 * Each callback of the plugin ABI calls the closure the script gave
 * NBDKit.register_plugin (wrapped by NBDKit.ml into plain types, and
 * looked up once when the script is loaded); for a callback the
 * script lacks, the callback is taken out of the plugin struct, so
 * the server answers as it does for a C plugin without it.  See
 * README.md for what a script sees.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "callbacks.h"
#include "host.h"
#include "script.h"
#include "values.h"

#include <caml/bigarray.h>
#include <caml/version.h>

#include <nbdkit-plugin.h>

/* clang-format off */
#define CALLBACKS(X) PLUGIN_CALLBACKS (X)

enum {
#define E(n) CB_##n,
  CALLBACKS (E)
#undef E
  CB_COUNT
};
static const char *const cb_names[] = {
#define N(n) #n,
  CALLBACKS (N)
#undef N
};
/* clang-format on */

/* One version of the script: the first, then one per reload, each in
 * a slot of its own.  New connections open on the newest (cur, read
 * and replaced with the host entered); each keeps the one it opened
 * on.
 */
struct version {
  int slot;
  const value *cb[CB_COUNT];
  /* pread_buf (the script fills the server's buffer), instead of pread. */
  const value *pread_buf;
};
static struct version first;
static struct version *cur = &first;
#define cbs (cur->cb)
#define HAS(n) (cbs[CB_##n] != NULL)
/* For reloading: each key=value given, and the thread model. */
static struct config_item {
  char *key, *value;
} * config_items;
static size_t n_config_items;
static int final_model = -1;
/* The key a bare value after the script goes to, if the script has one. */
static char *magic_key;

/* Before the script is loaded, "script" is the only parameter; it
 * stays first afterwards, so the server counts it.
 */
static const struct nbdkit_param script_param[] = {
  { .name = "script",
    .type = NBDKIT_PARAM_FILE,
    .flags = NBDKIT_PARAM_REQUIRED,
    .doc = "the OCaml script (.ml) or compiled plugin (.cmxs) to run" },
  { 0 },
};

static struct nbdkit_plugin plugin;
static int init_failed;
static struct nbdkit_param *cparams;

/* A connection's handle: the version it opened on, and the number
 * NBDKit.ml files the script's handle under.
 */
struct handle {
  struct version *v;
  intnat id;
};
/* In a callback of a connection: its version's callback N. */
#define HCB(hd, n) (((struct handle *)(hd))->v->cb[n])

static void
op_load (void)
{
  init_failed = host_init () == -1;
}

static void
op_unload (void)
{
  if (host_loaded (0) && HAS (unload)) {
    value a[1] = { Val_unit };
    host_enter ();
    host_call (0, "unload", cbs[CB_unload], 1, a, NULL);
    host_leave ();
  }
}

/* The script's declarations (NBDKit.param) for the server, after the
 * host's own "script"; NULL when it declares none (every key then
 * goes to its config unchecked).
 */
static const struct nbdkit_param *
script_params (int *error)
{
  CAMLparam0 ();
  CAMLlocal2 (arr, d);
  size_t n;

  *error = 0;
  arr = caml_callback (*host_cb (-1, "params"), Val_int (0));
  n = Wosize_val (arr);
  if (n == 0)
    CAMLreturnT (const struct nbdkit_param *, NULL);
  cparams = calloc (n + 2, sizeof *cparams);
  if (cparams == NULL) {
    nbdkit_error ("calloc: %m");
    *error = 1;
    CAMLreturnT (const struct nbdkit_param *, NULL);
  }
  cparams[0] = script_param[0];
  for (size_t i = 0; i < n; i++) {
    struct nbdkit_param *p = &cparams[i + 1];
    d = Field (arr, i);
    p->name = strdup (String_val (Field (d, 0)));
    p->type = Int_val (Field (d, 1));
    p->flags = Int_val (Field (d, 2));
    if (Is_block (Field (d, 3)))
      p->default_value = strdup (String_val (Field (Field (d, 3), 0)));
    if (Is_block (Field (d, 4)))
      p->doc = strdup (String_val (Field (Field (d, 4), 0)));
    if (Is_block (Field (d, 5)))
      p->choices = strdup (String_val (Field (Field (d, 5), 0)));
    if (p->name == NULL) {
      *error = 1;
      CAMLreturnT (const struct nbdkit_param *, NULL);
    }
  }
  CAMLreturnT (const struct nbdkit_param *, cparams);
}

/* Callbacks the script lacks leave the struct: the server's defaults
 * apply (e.g. can_write is true only with a pwrite).
 */
static void
drop_missing (void)
{
  /* clang-format off */
#define DROP(n) if (!HAS (n)) plugin.n = NULL;
  PLUGIN_OPTIONAL_CALLBACKS (DROP)
#undef DROP
  /* clang-format on */
}

static int
load_script (const char *path)
{
  const struct nbdkit_param *p;
  int bad;

  if (init_failed)
    return -1;
  if (host_load_script (0, path, 0) == -1)
    return -1;
  host_enter ();
  for (size_t i = 0; i < CB_COUNT; i++)
    cbs[i] = host_cb (0, cb_names[i]);
  cur->pread_buf = host_cb (0, "pread_buf");
  if (host_cb (0, "magic_config_key"))
    magic_key = strdup (String_val (*host_cb (0, "magic_config_key")));
  p = script_params (&bad);
  /* A bare value reaches us as script=VALUE: not a file then. */
  if (p && magic_key)
    cparams[0].type = NBDKIT_PARAM_STRING;
  host_leave ();
  if (bad)
    return -1;
  /* From now on the server checks the script's parameters. */
  plugin.params = p;
  drop_missing ();
  return 0;
}

static void
remember (const char *key, const char *value)
{
  struct config_item *n
      = realloc (config_items, (n_config_items + 1) * sizeof *config_items);

  if (n == NULL)
    return;
  config_items = n;
  n[n_config_items].key = strdup (key);
  n[n_config_items].value = strdup (value);
  if (n[n_config_items].key && n[n_config_items].value)
    n_config_items++;
}

/* key=value to version V's config (host entered). */
static int
call_config (struct version *v, const char *key, const char *val)
{
  int r;

  CAMLparam0 ();
  CAMLlocalN (a, 2);
  a[0] = caml_copy_string (key);
  a[1] = caml_copy_string (val);
  r = host_call (0, "config", v->cb[CB_config], 2, a, NULL);
  CAMLreturnT (int, r);
}

static int
op_config (const char *key, const char *val)
{
  int r;

  if (!host_loaded (0)) {
    if (strcmp (key, "script") != 0) {
      nbdkit_error ("the first parameter must be the OCaml script"
                    " (script=FILE.ml), not %s=%s",
                    key, val);
      return -1;
    }
    return load_script (val);
  }
  key = script_key_after_load (key, magic_key);
  remember (key, val);
  host_enter ();
  r = call_config (cur, key, val);
  host_leave ();
  return r;
}

/* A call of a unit -> unit callback. */
static int
call_unit (size_t cb, const char *what)
{
  value a[1] = { Val_unit };
  int r;

  host_enter ();
  r = host_call (0, what, cbs[cb], 1, a, NULL);
  host_leave ();
  return r;
}

static int
op_config_complete (void)
{
  if (!host_loaded (0)) {
    nbdkit_error ("no script given: nbdkit ocaml SCRIPT.ml [key=value ...]");
    return -1;
  }
  return call_unit (CB_config_complete, "config_complete");
}

static const char *
op_config_help (void)
{
  const char *h = host_help (0);

  if (h)
    return h;
  return "Runs a plugin written in OCaml: nbdkit ocaml SCRIPT.ml"
         " [key=value ...]\n(or nbdkit SCRIPT.ml ...).  'nbdkit SCRIPT.ml"
         " --help' describes the script.\nSee langs/ocaml/README.md for"
         " how to write one.";
}

static void
op_dump_plugin (void)
{
  printf ("ocaml_version=%s\n", OCAML_VERSION_STRING);
  printf ("ocaml_include=%s\n", host_include_dir ());
  printf ("ocaml_cache=%s\n", host_cache_dir ());
  if (host_loaded (0))
    printf ("ocaml_script=%s\n", host_script_path (0));
  fflush (stdout);
  if (host_loaded (0) && HAS (dump_plugin))
    call_unit (CB_dump_plugin, "dump_plugin");
}

static int
op_thread_model (void)
{
  value a[1] = { Val_unit }, r;
  int m = NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS;

  if (!host_loaded (0) || !HAS (thread_model))
    return m;
  host_enter ();
  if (host_call (0, "thread_model", cbs[CB_thread_model], 1, a, &r) == 0)
    m = Int_val (r);
  else
    m = -1;
  host_leave ();
  return m;
}

static int
op_get_ready (int model)
{
  value a[1] = { Val_int (model) };
  int r;

  final_model = model;
  host_enter ();
  r = host_call (0, "get_ready", cbs[CB_get_ready], 1, a, NULL);
  host_leave ();
  return r;
}

/* Reloading (the server calls it on SIGHUP, see "reload" in
 * abi/README.md): compile the script again (or take it from the
 * cache) and load it into a new slot, then give it the same key=value
 * parameters, config_complete and get_ready.  If all of that works,
 * connections opened afterwards use it, while those already open keep
 * the version they opened on.  A script that does not compile or load
 * is reported (the compiler's message names the file and line) and
 * changes nothing.
 */
static int
op_reload (void)
{
  struct version *n = calloc (1, sizeof *n);
  value a[1];
  int ok = 0;

  if (n == NULL) {
    nbdkit_error ("ocaml: reload: out of memory");
    return -1;
  }
  n->slot = host_new_slot (0);
  if (n->slot == -1
      || host_load_script (n->slot, host_script_path (0), 0) == -1) {
    free (n);
    return -1;
  }
  host_enter ();
  for (size_t i = 0; i < CB_COUNT; i++)
    n->cb[i] = host_cb (n->slot, cb_names[i]);
  n->pread_buf = host_cb (n->slot, "pread_buf");
  ok = n->cb[CB_open] && n->cb[CB_get_size]
       && (n->cb[CB_pread] || n->pread_buf);
  for (size_t i = 0; ok && i < n_config_items; i++)
    ok = call_config (n, config_items[i].key, config_items[i].value) == 0;
  a[0] = Val_unit;
  ok = ok
       && (n->cb[CB_config_complete] == NULL
           || host_call (0, "config_complete", n->cb[CB_config_complete], 1, a,
                         NULL)
                  == 0);
  a[0] = Val_int (final_model);
  ok = ok
       && (n->cb[CB_get_ready] == NULL
           || host_call (0, "get_ready", n->cb[CB_get_ready], 1, a, NULL) == 0);
  if (ok) {
    cur = n;
    nbdkit_debug ("%s: reloaded (slot %d)", host_script_path (0), n->slot);
  }
  host_leave ();
  /* A failed version stays loaded (code cannot be unloaded), unused. */
  return ok ? 0 : -1;
}

static int
op_after_fork (void)
{
  return call_unit (CB_after_fork, "after_fork");
}

static void
op_cleanup (void)
{
  call_unit (CB_cleanup, "cleanup");
}

static int
op_preconnect (int readonly)
{
  value a[1] = { Val_bool (readonly) };
  int r;

  host_enter ();
  r = host_call (0, "preconnect", cbs[CB_preconnect], 1, a, NULL);
  host_leave ();
  return r;
}

/* A string result for the server, or NULL (logged) if it cannot reach
 * a client as it is (values.h).
 */
static const char *
interned (const char *what, value s)
{
  const char *why
      = host_string_problem (String_val (s), caml_string_length (s));

  if (why) {
    host_fail (0, what, EIO, "returned a string that %s", why);
    return NULL;
  }
  return nbdkit_strdup_intern (String_val (s));
}

static int
op_list_exports (int readonly, int is_tls, struct nbdkit_exports *x)
{
  value a[2] = { Val_bool (readonly), Val_bool (is_tls) }, res;
  int r;

  host_enter ();
  r = host_call (0, "list_exports", cbs[CB_list_exports], 2, a, &res);
  /* An array of (name, description option); no allocation below. */
  for (size_t i = 0; r == 0 && i < Wosize_val (res); i++) {
    value e = Field (res, i), d = Field (e, 1);
    const char *n = interned ("list_exports", Field (e, 0));
    const char *ds
        = Is_block (d) ? interned ("list_exports", Field (d, 0)) : NULL;
    if (n == NULL || (Is_block (d) && ds == NULL))
      r = -1;
    else
      r = nbdkit_add_export (x, n, ds);
  }
  host_leave ();
  return r;
}

static const char *
op_default_export (int readonly, int is_tls)
{
  value a[2] = { Val_bool (readonly), Val_bool (is_tls) }, res;
  const char *r = NULL;

  host_enter ();
  if (host_call (0, "default_export", cbs[CB_default_export], 2, a, &res) == 0)
    r = interned ("default_export", res);
  host_leave ();
  return r;
}

static void *
op_open (int readonly, const char *exportname, int is_tls)
{
  struct handle *h = malloc (sizeof *h);
  value res;
  int r;

  if (h == NULL) {
    nbdkit_error ("malloc: %m");
    return NULL;
  }
  host_enter ();
  {
    CAMLparam0 ();
    CAMLlocalN (a, 3);
    a[0] = Val_bool (readonly);
    a[1] = caml_copy_string (exportname);
    a[2] = Val_bool (is_tls);
    h->v = cur;
    r = host_call (0, "open", cbs[CB_open], 3, a, &res);
    if (r == 0)
      h->id = Long_val (res);
    CAMLdrop;
  }
  host_leave ();
  if (r == -1) {
    free (h);
    return NULL;
  }
  return h;
}

static void
op_close (void *handle)
{
  struct handle *h = handle;
  value a[1] = { Val_long (h->id) };

  host_enter ();
  host_call (0, "close", HCB (h, CB_close), 1, a, NULL);
  host_leave ();
  free (h);
}

static int64_t
op_get_size (void *handle)
{
  value a[1] = { Val_long (((struct handle *)handle)->id) }, res;
  int64_t size = -1;

  host_enter ();
  if (host_call (0, "get_size", HCB (handle, CB_get_size), 1, a, &res) == 0) {
    size = Int64_val (res);
    if (size < 0)
      size = host_fail (0, "get_size", EINVAL, "negative size %" PRId64, size);
  }
  host_leave ();
  return size;
}

static const char *
op_export_description (void *handle)
{
  value a[1] = { Val_long (((struct handle *)handle)->id) }, res;
  const char *r = NULL;

  host_enter ();
  if (host_call (0, "export_description", HCB (handle, CB_export_description),
                 1, a, &res)
      == 0)
    r = host_description (interned ("export_description", res));
  host_leave ();
  return r;
}

static int
op_block_size (void *handle, struct nbdkit_block_size *bs)
{
  value a[2] = { Val_long (((struct handle *)handle)->id),
                 Val_bool (bs->client_requested) },
        res;
  int r;

  host_enter ();
  r = host_call (0, "block_size", HCB (handle, CB_block_size), 2, a, &res);
  if (r == 0) {
    int64_t v[4] = { Long_val (Field (res, 0)), Long_val (Field (res, 1)),
                     Long_val (Field (res, 2)), Int64_val (Field (res, 3)) };
    if (!host_block_size_ok (v[0]) || !host_block_size_ok (v[1])
        || !host_block_size_ok (v[2]) || v[3] < 0)
      r = host_fail (0, "block_size", EIO,
                     "sizes out of range (minimum, preferred and maximum"
                     " are 0 to 2^32-1, maximum_virtual >= 0)");
    else {
      bs->minimum = v[0];
      bs->preferred = v[1];
      bs->maximum = v[2];
      bs->maximum_virtual = v[3];
    }
  }
  host_leave ();
  return r;
}

/* can_*: NBDKit.ml already turned the answer into the ABI's number. */
#define CAN(fn)                                                                \
  static int op_##fn (void *handle)                                            \
  {                                                                            \
    value a[1] = { Val_long (((struct handle *)handle)->id) }, res;            \
    int r;                                                                     \
    host_enter ();                                                             \
    r = host_call (0, #fn, HCB (handle, CB_##fn), 1, a, &res);                 \
    if (r == 0)                                                                \
      r = Int_val (res);                                                       \
    host_leave ();                                                             \
    return r;                                                                  \
  }
CAN (can_write)
CAN (can_flush)
CAN (is_rotational)
CAN (can_trim)
CAN (can_zero)
CAN (can_fast_zero)
CAN (can_fua)
CAN (can_multi_conn)
CAN (can_extents)
CAN (can_cache)
#undef CAN

/* Copy the script's bytes to BUF, except the ranges it answered with
 * holes and loans (the server may count on finding BUF untouched
 * there).
 */
static void
copy_unanswered (char *buf, const char *src, uint64_t count,
                 struct module_read *m)
{
  uint64_t at = 0;

  /* Few ranges, usually none: a simple sort. */
  for (size_t i = 1; i < m->nranges; i++)
    for (size_t j = i; j > 0 && m->ranges[j].start < m->ranges[j - 1].start;
         j--) {
      __typeof__ (m->ranges[0]) t = m->ranges[j];
      m->ranges[j] = m->ranges[j - 1];
      m->ranges[j - 1] = t;
    }
  for (size_t i = 0; i <= m->nranges; i++) {
    uint64_t start = i < m->nranges ? m->ranges[i].start : count;
    if (start > at)
      memcpy (buf + at, src + at, start - at);
    if (i < m->nranges && m->ranges[i].end > at)
      at = m->ranges[i].end;
  }
}

/* pread fills an OCaml bytes of COUNT bytes, copied out afterwards;
 * pread_buf fills a Bigarray over BUF itself.
 */
static int
op_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
          uint32_t flags, struct nbdkit_read *rd)
{
  struct module_read m = { .rd = rd, .offset = offset, .count = count };
  const value *cb_pread_buf = ((struct handle *)handle)->v->pread_buf;
  int r;

  host_enter ();
  module_read = &m;
  {
    CAMLparam0 ();
    CAMLlocalN (a, 4);
    a[0] = Val_long (((struct handle *)handle)->id);
    if (cb_pread_buf) {
      a[1] = caml_ba_alloc_dims (CAML_BA_UINT8 | CAML_BA_C_LAYOUT, 1, buf,
                                 (intnat)count);
    } else {
      a[1] = caml_alloc_string (count);
      /* Fresh OCaml memory holds old heap data: what the script does
       * not write must reach the client as zeroes.
       */
      memset (Bytes_val (a[1]), 0, count);
      m.track = 1;
    }
    a[2] = caml_copy_int64 (offset);
    a[3] = Val_int (flags);
    r = host_call (0, "pread",
                   cb_pread_buf ? cb_pread_buf : HCB (handle, CB_pread), 4, a,
                   NULL);
    if (cb_pread_buf) {
      /* The Bigarray may outlive the call: leave it empty. */
      Caml_ba_array_val (a[1])->dim[0] = 0;
      Caml_ba_array_val (a[1])->data = NULL;
    } else /* even on failure: a partial read's first bytes count */
      copy_unanswered (buf, (const char *)Bytes_val (a[1]), count, &m);
    CAMLdrop;
  }
  module_read = NULL;
  host_leave ();
  return r;
}

static int
op_pwrite (void *handle, const void *buf, uint64_t count, uint64_t offset,
           uint32_t flags)
{
  int r;

  host_enter ();
  {
    CAMLparam0 ();
    CAMLlocalN (a, 4);
    a[0] = Val_long (((struct handle *)handle)->id);
    a[1] = caml_alloc_initialized_string (count, buf);
    a[2] = caml_copy_int64 (offset);
    a[3] = Val_int (flags);
    r = host_call (0, "pwrite", HCB (handle, CB_pwrite), 4, a, NULL);
    CAMLdrop;
  }
  host_leave ();
  return r;
}

static int
op_flush (void *handle, uint32_t flags)
{
  value a[2] = { Val_long (((struct handle *)handle)->id), Val_int (flags) };
  int r;

  host_enter ();
  r = host_call (0, "flush", HCB (handle, CB_flush), 2, a, NULL);
  host_leave ();
  return r;
}

/* trim, zero, cache, extents: (h, count, offset, flags). */
static int
call_range (size_t cb, const char *what, void *handle, uint64_t count,
            uint64_t offset, uint32_t flags, struct nbdkit_extents *e)
{
  value res;
  int r;

  host_enter ();
  {
    CAMLparam0 ();
    CAMLlocalN (a, 4);
    a[0] = Val_long (((struct handle *)handle)->id);
    a[1] = caml_copy_int64 (count);
    a[2] = caml_copy_int64 (offset);
    a[3] = Val_int (flags);
    r = host_call (0, what, HCB (handle, cb), 4, a, &res);
    /* extents: an array of (offset, length, type). */
    for (size_t i = 0; e && r == 0 && i < Wosize_val (res); i++) {
      value x = Field (res, i);
      int64_t off = Int64_val (Field (x, 0)), len = Int64_val (Field (x, 1));
      if (off < 0 || len < 0)
        r = host_fail (0, what, EIO,
                       "extent {offset = %" PRId64 "; length = %" PRId64
                       "} is out of range (both must be >= 0)",
                       off, len);
      else
        r = nbdkit_add_extent (e, off, len, Int_val (Field (x, 2)));
    }
    CAMLdrop;
  }
  host_leave ();
  return r;
}

static int
op_trim (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  return call_range (CB_trim, "trim", handle, count, offset, flags, NULL);
}

static int
op_zero (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  return call_range (CB_zero, "zero", handle, count, offset, flags, NULL);
}

static int
op_cache (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  return call_range (CB_cache, "cache", handle, count, offset, flags, NULL);
}

static int
op_extents (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
            struct nbdkit_extents *e)
{
  return call_range (CB_extents, "extents", handle, count, offset, flags, e);
}

static struct nbdkit_plugin plugin = {
  .name = "ocaml",
  .longname = "nbdkit OCaml plugin",
  .version = NBDKIT_VERSION,
  .description = "Runs a plugin written in OCaml.",
  .params = script_param,
  .magic_config_key = "script",
  .load = op_load,
  .unload = op_unload,
  .config = op_config,
  .config_complete = op_config_complete,
  .config_help = op_config_help,
  .dump_plugin = op_dump_plugin,
  .thread_model = op_thread_model,
  .get_ready = op_get_ready,
  .after_fork = op_after_fork,
  .cleanup = op_cleanup,
  .preconnect = op_preconnect,
  .list_exports = op_list_exports,
  .default_export = op_default_export,
  .open = op_open,
  .close = op_close,
  .get_size = op_get_size,
  .export_description = op_export_description,
  .block_size = op_block_size,
  .can_write = op_can_write,
  .can_flush = op_can_flush,
  .is_rotational = op_is_rotational,
  .can_trim = op_can_trim,
  .can_zero = op_can_zero,
  .can_fast_zero = op_can_fast_zero,
  .can_fua = op_can_fua,
  .can_multi_conn = op_can_multi_conn,
  .can_extents = op_can_extents,
  .can_cache = op_can_cache,
  .pread = op_pread,
  .pwrite = op_pwrite,
  .flush = op_flush,
  .trim = op_trim,
  .zero = op_zero,
  .extents = op_extents,
  .cache = op_cache,
  .reload = op_reload,
};

NBDKIT_REGISTER_PLUGIN (plugin)
