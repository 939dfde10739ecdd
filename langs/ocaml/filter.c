/* filter.c: the ocaml filter, which runs filters written in OCaml.
 *
 *   nbdkit --filter=./myfilter.ml PLUGIN ...
 *
 * The same object as the ocaml plugin (build/filters/nbdkit-ocaml-
 * filter.so links to it), so a plugin and filters in OCaml share one
 * runtime.  Each --filter=SCRIPT.ml gets a layer of its own (slot 1,
 * 2, ... in host.c); the server-wide callbacks, which carry no handle,
 * reach it through small per-layer functions.  A callback the script
 * lacks is taken out of the layer's struct, so the call passes
 * through.  The Next functions of NBDKit are in next.c.
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

#include <nbdkit-filter.h>

/* clang-format off */
#define CALLBACKS(X) FILTER_CALLBACKS (X)

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

#define MAX_LAYERS (HOST_SLOTS - 1)

struct layer {
  struct nbdkit_filter f;
  int slot;
  nbdkit_backend *backend; /* the layer below, once the server shows it */
  int init_failed;
  /* The newest version's callbacks, which new connections open on:
   * first's, then a reload's (each in a slot of its own).  Read and
   * replaced with the host entered.
   */
  const value **cbs;
  const value *first[CB_COUNT];
  struct nbdkit_param *params;
  /* For reloading: each key=value given, and the thread model. */
  struct config_item {
    char *key, *value;
  } * config;
  size_t n_config;
  int model;
};
static struct layer layers[MAX_LAYERS];
static int nlayers;

#define LHAS(l, n) ((l)->cbs[CB_##n] != NULL)

static const struct nbdkit_param script_param[] = {
  { .name = "script",
    .type = NBDKIT_PARAM_FILE,
    .flags = NBDKIT_PARAM_REQUIRED,
    .doc = "the OCaml filter script (.ml) or compiled filter (.cmxs)" },
  { 0 },
};

/* A connection's handle: the layer, and the number NBDKit.ml files
 * the script's handle under.
 */
struct handle {
  struct layer *l;
  const value **cbs; /* the version it opened on */
  intnat id;
};

/* The nexts of the filter callbacks running on this thread (they nest
 * when OCaml filters sit on each other): a script's Next call with any
 * other value is refused, not a use after free.
 */
static __thread void *active[4 * HOST_SLOTS];
static __thread int nactive;

__thread struct filter_read *filter_read;
__thread nbdkit_context *filter_open_ctx;
__thread nbdkit_backend *filter_backend;

int
filter_next_active (void *n)
{
  for (int i = 0; i < nactive; i++)
    if (active[i] == n)
      return 1;
  return 0;
}

/* The layer whose callback runs on this thread, for
 * NBDKit.next_context_open.
 */
static __thread struct layer *filter_layer;

void *
filter_backend_now (void)
{
  return filter_layer
             ? __atomic_load_n (&filter_layer->backend, __ATOMIC_ACQUIRE)
             : NULL;
}

static void
seen_backend (struct layer *l, nbdkit_backend *b)
{
  if (b)
    __atomic_store_n (&l->backend, b, __ATOMIC_RELEASE);
}

/* host_call for a callback of layer L. */
static int
lcall (struct layer *l, const char *what, const value *f, int nargs,
       value *args, value *result)
{
  struct layer *outer = filter_layer;
  int r;

  filter_layer = l;
  r = host_call (l->slot, what, f, nargs, args, result);
  filter_layer = outer;
  return r;
}

/* Call callback CB of handle H's layer with (next, id, ARGS...). */
static int
call (struct handle *h, size_t cb, nbdkit_next *next, int nargs, value *args,
      value *result, int *err)
{
  struct layer *l = h->l;
  int r;

  /* Nesting deeper than the layers there are: a script loops. */
  if (nactive >= (int)(sizeof active / sizeof active[0])) {
    r = host_fail (l->slot, cb_names[cb], EIO,
                   "OCaml filter calls nested too deeply");
    if (err)
      *err = EIO;
    return r;
  }
  args[0] = caml_copy_nativeint ((intnat)next);
  args[1] = Val_long (h->id);
  active[nactive++] = next;
  r = lcall (l, cb_names[cb], h->cbs[cb], nargs, args, result);
  nactive--;
  if (r == -1 && err)
    *err = errno;
  return r;
}

/* ---- server-wide callbacks, per layer ---- */

static void
l_load (struct layer *l)
{
  l->init_failed = host_init () == -1;
}

static const struct nbdkit_param *
layer_params (struct layer *l, int *error)
{
  CAMLparam0 ();
  CAMLlocal2 (arr, d);
  size_t n;

  *error = 0;
  arr = caml_callback (*host_cb (-1, "params"), Val_int (l->slot));
  n = Wosize_val (arr);
  l->params = calloc (n + 2, sizeof *l->params);
  if (l->params == NULL) {
    nbdkit_error ("calloc: %m");
    *error = 1;
    CAMLreturnT (const struct nbdkit_param *, NULL);
  }
  l->params[0] = script_param[0];
  for (size_t i = 0; i < n; i++) {
    struct nbdkit_param *p = &l->params[i + 1];
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
  CAMLreturnT (const struct nbdkit_param *, l->params);
}

/* Callbacks the script lacks leave the struct: the call passes through. */
static void
drop_missing (struct layer *l)
{
  /* clang-format off */
#define DROP(n) if (!LHAS (l, n)) l->f.n = NULL;
  FILTER_OPTIONAL_CALLBACKS (DROP)
#undef DROP
  /* clang-format on */
}

static void
remember (struct layer *l, const char *key, const char *value)
{
  struct config_item *n
      = realloc (l->config, (l->n_config + 1) * sizeof *l->config);

  if (n == NULL)
    return;
  l->config = n;
  n[l->n_config].key = strdup (key);
  n[l->n_config].value = strdup (value);
  if (n[l->n_config].key && n[l->n_config].value)
    l->n_config++;
}

/* key=value to the config of version CBS of L (host entered). */
static int
call_config (struct layer *l, const value **cbs, const char *key,
             const char *val)
{
  int r;

  CAMLparam0 ();
  CAMLlocalN (a, 2);
  a[0] = caml_copy_string (key);
  a[1] = caml_copy_string (val);
  r = lcall (l, "config", cbs[CB_config], 2, a, NULL);
  CAMLreturnT (int, r);
}

static int
l_config (struct layer *l, const char *key, const char *val)
{
  const struct nbdkit_param *p;
  int r, bad;

  if (!host_loaded (l->slot)) {
    if (strcmp (key, "script") != 0) {
      nbdkit_error ("the first parameter must be the OCaml filter script"
                    " (script=FILE.ml), not %s=%s",
                    key, val);
      return -1;
    }
    if (l->init_failed || host_load_script (l->slot, val, 1) == -1)
      return -1;
    host_enter ();
    for (size_t i = 0; i < CB_COUNT; i++)
      l->first[i] = host_cb (l->slot, cb_names[i]);
    p = layer_params (l, &bad);
    host_leave ();
    if (bad)
      return -1;
    l->f.params = p;
    drop_missing (l);
    return 0;
  }
  /* Filters have no magic key: a later script= is the script's. */
  key = script_key_after_load (key, NULL);
  remember (l, key, val);
  host_enter ();
  r = call_config (l, l->cbs, key, val);
  host_leave ();
  return r;
}

static int
l_call_unit (struct layer *l, size_t cb)
{
  value a[1] = { Val_unit };
  int r = 0;

  if (!host_loaded (l->slot) || l->cbs[cb] == NULL)
    return 0;
  host_enter ();
  r = lcall (l, cb_names[cb], l->cbs[cb], 1, a, NULL);
  host_leave ();
  return r;
}

static int
l_config_complete (struct layer *l)
{
  if (!host_loaded (l->slot)) {
    nbdkit_error ("no script given: nbdkit --filter=SCRIPT.ml PLUGIN ...");
    return -1;
  }
  return l_call_unit (l, CB_config_complete);
}

static const char *
l_config_help (struct layer *l)
{
  const char *h = host_loaded (l->slot) ? host_help (l->slot) : NULL;

  return h ? h
           : "Runs a filter written in OCaml: nbdkit --filter=./SCRIPT.ml"
             " PLUGIN ...\nSee langs/ocaml/README.md for how to write one.";
}

static int
l_thread_model (struct layer *l)
{
  value a[1] = { Val_unit }, r;
  int m = NBDKIT_THREAD_MODEL_PARALLEL;

  if (!host_loaded (l->slot) || !LHAS (l, thread_model))
    return m;
  host_enter ();
  if (lcall (l, "thread_model", l->cbs[CB_thread_model], 1, a, &r) == 0)
    m = Int_val (r);
  else
    m = -1;
  host_leave ();
  return m;
}

static int
l_get_ready (struct layer *l, int model)
{
  value a[1] = { Val_int (model) };
  int r;

  l->model = model;
  if (!LHAS (l, get_ready))
    return 0;
  host_enter ();
  r = lcall (l, "get_ready", l->cbs[CB_get_ready], 1, a, NULL);
  host_leave ();
  return r;
}

static int
l_preconnect (struct layer *l, nbdkit_backend *b, int readonly)
{
  value a[1] = { Val_bool (readonly) };
  int r;

  seen_backend (l, b);
  host_enter ();
  r = lcall (l, "preconnect", l->cbs[CB_preconnect], 1, a, NULL);
  host_leave ();
  return r;
}

/* A string the script returned, for the server, or NULL (logged). */
static const char *
interned (struct layer *l, const char *what, value s)
{
  const char *why
      = host_string_problem (String_val (s), caml_string_length (s));

  if (why) {
    host_fail (l->slot, what, EIO, "returned a string that %s", why);
    return NULL;
  }
  return nbdkit_strdup_intern (String_val (s));
}

static int
l_list_exports (struct layer *l, nbdkit_backend *b, int readonly, int is_tls,
                struct nbdkit_exports *x)
{
  value a[2] = { Val_bool (readonly), Val_bool (is_tls) }, res;
  nbdkit_backend *outer;
  int r;

  seen_backend (l, b);
  host_enter ();
  outer = filter_backend;
  filter_backend = b;
  r = lcall (l, "list_exports", l->cbs[CB_list_exports], 2, a, &res);
  filter_backend = outer;
  /* An array of (name, description option); no allocation below. */
  for (size_t i = 0; r == 0 && i < Wosize_val (res); i++) {
    value e = Field (res, i), d = Field (e, 1);
    const char *n = interned (l, "list_exports", Field (e, 0));
    const char *ds
        = Is_block (d) ? interned (l, "list_exports", Field (d, 0)) : NULL;
    if (n == NULL || (Is_block (d) && ds == NULL))
      r = -1;
    else
      r = nbdkit_add_export (x, n, ds);
  }
  host_leave ();
  return r;
}

static const char *
l_default_export (struct layer *l, nbdkit_backend *b, int readonly, int is_tls)
{
  value a[2] = { Val_bool (readonly), Val_bool (is_tls) }, res;
  nbdkit_backend *outer;
  const char *r = NULL;

  seen_backend (l, b);
  host_enter ();
  outer = filter_backend;
  filter_backend = b;
  if (lcall (l, "default_export", l->cbs[CB_default_export], 2, a, &res) == 0)
    r = interned (l, "default_export", res);
  filter_backend = outer;
  host_leave ();
  return r;
}

static void *
l_open (struct layer *l, nbdkit_context *ctx, int readonly,
        const char *exportname, int is_tls)
{
  struct handle *h = malloc (sizeof *h);
  nbdkit_context *outer;
  value res;
  int r;

  if (h == NULL) {
    nbdkit_error ("malloc: %m");
    return NULL;
  }
  h->l = l;
  seen_backend (l, nbdkit_context_get_backend (ctx));
  host_enter ();
  {
    CAMLparam0 ();
    CAMLlocalN (a, 3);
    a[0] = Val_bool (readonly);
    a[1] = caml_copy_string (exportname);
    a[2] = Val_bool (is_tls);
    /* For NBDKit.next_open, and the backend for the _below functions. */
    outer = filter_open_ctx;
    filter_open_ctx = ctx;
    h->cbs = l->cbs;
    r = lcall (l, "open", h->cbs[CB_open], 3, a, &res);
    filter_open_ctx = outer;
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

/* Reloading (the server calls it on SIGHUP, see "reload" in
 * abi/README.md): compile the layer's script again (or take it from
 * the cache) and load it into a new slot, then give it the same
 * key=value parameters, config_complete and get_ready.  If all of that
 * works, connections opened afterwards use it, while those already
 * open keep the version they opened on.  A script that does not
 * compile or load is reported and changes nothing.
 */
static int
l_reload (struct layer *l)
{
  const value **cbs = calloc (CB_COUNT, sizeof *cbs);
  value a[1];
  int slot, ok;

  if (cbs == NULL) {
    nbdkit_error ("ocaml: reload: out of memory");
    return -1;
  }
  slot = host_new_slot (l->slot);
  if (slot == -1
      || host_load_script (slot, host_script_path (l->slot), 1) == -1) {
    free (cbs);
    return -1;
  }
  host_enter ();
  for (size_t i = 0; i < CB_COUNT; i++)
    cbs[i] = host_cb (slot, cb_names[i]);
  ok = 1;
  for (size_t i = 0; ok && i < l->n_config; i++)
    ok = call_config (l, cbs, l->config[i].key, l->config[i].value) == 0;
  a[0] = Val_unit;
  ok = ok
       && (cbs[CB_config_complete] == NULL
           || lcall (l, "config_complete", cbs[CB_config_complete], 1, a, NULL)
                  == 0);
  a[0] = Val_int (l->model);
  ok = ok
       && (cbs[CB_get_ready] == NULL
           || lcall (l, "get_ready", cbs[CB_get_ready], 1, a, NULL) == 0);
  if (ok) {
    l->cbs = cbs;
    nbdkit_debug ("%s: reloaded (slot %d)", host_script_path (l->slot), slot);
  }
  host_leave ();
  /* A failed version stays loaded (code cannot be unloaded), unused. */
  if (!ok)
    free (cbs);
  return ok ? 0 : -1;
}

/* clang-format off */
#define LAYER(i)                                                               \
  static void load_##i (void) { l_load (&layers[i]); }                         \
  static void unload_##i (void) { l_call_unit (&layers[i], CB_unload); }       \
  static void dump_plugin_##i (void)                                           \
  { l_call_unit (&layers[i], CB_dump_plugin); }                                \
  static int config_##i (const char *k, const char *v)                         \
  { return l_config (&layers[i], k, v); }                                      \
  static int config_complete_##i (void)                                        \
  { return l_config_complete (&layers[i]); }                                   \
  static const char *config_help_##i (void)                                    \
  { return l_config_help (&layers[i]); }                                       \
  static int thread_model_##i (void) { return l_thread_model (&layers[i]); }   \
  static int get_ready_##i (int m) { return l_get_ready (&layers[i], m); }     \
  static int after_fork_##i (nbdkit_backend *b)                                \
  { seen_backend (&layers[i], b);                                              \
    return l_call_unit (&layers[i], CB_after_fork); }                          \
  static void cleanup_##i (nbdkit_backend *b)                                  \
  { seen_backend (&layers[i], b); l_call_unit (&layers[i], CB_cleanup); }      \
  static int preconnect_##i (nbdkit_backend *b, int ro)                        \
  { return l_preconnect (&layers[i], b, ro); }                                 \
  static int list_exports_##i (nbdkit_backend *b, int ro, int tls,             \
                               struct nbdkit_exports *e)                       \
  { return l_list_exports (&layers[i], b, ro, tls, e); }                       \
  static const char *default_export_##i (nbdkit_backend *b, int ro, int tls)   \
  { return l_default_export (&layers[i], b, ro, tls); }                        \
  static void *open_##i (nbdkit_context *c, int ro, const char *n, int tls)    \
  { return l_open (&layers[i], c, ro, n, tls); }                               \
  static int reload_##i (void) { return l_reload (&layers[i]); }
#define LAYERS(X) X (0) X (1) X (2) X (3) X (4) X (5) X (6) X (7)
LAYERS (LAYER)
#undef LAYER
/* clang-format on */

/* ---- per connection ---- */

static void
f_close (void *handle)
{
  struct handle *h = handle;
  value a[1] = { Val_long (h->id) };

  host_enter ();
  host_call (h->l->slot, "close", h->cbs[CB_close], 1, a, NULL);
  host_leave ();
  free (h);
}

static int
f_prepare (nbdkit_next *next, void *handle, int readonly)
{
  value a[3];
  int r;

  host_enter ();
  a[2] = Val_bool (readonly);
  r = call (handle, CB_prepare, next, 3, a, NULL, NULL);
  host_leave ();
  return r;
}

static int
f_finalize (nbdkit_next *next, void *handle)
{
  value a[2];
  int r;

  host_enter ();
  r = call (handle, CB_finalize, next, 2, a, NULL, NULL);
  host_leave ();
  return r;
}

static int64_t
f_get_size (nbdkit_next *next, void *handle)
{
  value a[2], res;
  int64_t r = -1;

  host_enter ();
  if (call (handle, CB_get_size, next, 2, a, &res, NULL) == 0) {
    r = Int64_val (res);
    if (r < 0)
      r = host_fail (((struct handle *)handle)->l->slot, "get_size", EINVAL,
                     "negative size %" PRId64, r);
  }
  host_leave ();
  return r;
}

static const char *
f_export_description (nbdkit_next *next, void *handle)
{
  struct handle *h = handle;
  value a[2], res;
  const char *r = NULL;

  host_enter ();
  if (call (h, CB_export_description, next, 2, a, &res, NULL) == 0) {
    const char *why
        = host_string_problem (String_val (res), caml_string_length (res));
    if (why)
      host_fail (h->l->slot, "export_description", EIO,
                 "returned a string that %s", why);
    else
      r = host_description (nbdkit_strdup_intern (String_val (res)));
  }
  host_leave ();
  return r;
}

static int
f_block_size (nbdkit_next *next, void *handle, struct nbdkit_block_size *bs)
{
  struct handle *h = handle;
  value a[3], res;
  int r;

  host_enter ();
  a[2] = Val_bool (bs->client_requested);
  r = call (h, CB_block_size, next, 3, a, &res, NULL);
  if (r == 0) {
    int64_t v[4] = { Long_val (Field (res, 0)), Long_val (Field (res, 1)),
                     Long_val (Field (res, 2)), Int64_val (Field (res, 3)) };
    if (!host_block_size_ok (v[0]) || !host_block_size_ok (v[1])
        || !host_block_size_ok (v[2]) || v[3] < 0)
      r = host_fail (h->l->slot, "block_size", EIO,
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

#define CAN(fn)                                                                \
  static int f_##fn (nbdkit_next *next, void *handle)                          \
  {                                                                            \
    value a[2], res;                                                           \
    int r;                                                                     \
    host_enter ();                                                             \
    r = call (handle, CB_##fn, next, 2, a, &res, NULL);                        \
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

static int
f_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
         uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  struct filter_read fr = {
    .next = next, .buf = buf, .count = count, .offset = offset, .rd = rd
  };
  int r;

  host_enter ();
  fr.outer = filter_read;
  filter_read = &fr;
  {
    CAMLparam0 ();
    CAMLlocalN (a, 5);
    a[2] = caml_alloc_string (count);
    memset (Bytes_val (a[2]), 0, count);
    a[3] = caml_copy_int64 (offset);
    a[4] = Val_int (flags);
    r = call (handle, CB_pread, next, 5, a, NULL, err);
    /* Answered by Next.pread_request: BUF holds the answer already. */
    if (r == 0 && !fr.forwarded)
      memcpy (buf, Bytes_val (a[2]), count);
    CAMLdrop;
  }
  filter_read = fr.outer;
  host_leave ();
  return r;
}

static int
f_pwrite (nbdkit_next *next, void *handle, const void *buf, uint64_t count,
          uint64_t offset, uint32_t flags, int *err)
{
  int r;

  host_enter ();
  {
    CAMLparam0 ();
    CAMLlocalN (a, 5);
    a[2] = caml_alloc_initialized_string (count, buf);
    a[3] = caml_copy_int64 (offset);
    a[4] = Val_int (flags);
    r = call (handle, CB_pwrite, next, 5, a, NULL, err);
    CAMLdrop;
  }
  host_leave ();
  return r;
}

static int
f_flush (nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
  value a[3];
  int r;

  host_enter ();
  a[2] = Val_int (flags);
  r = call (handle, CB_flush, next, 3, a, NULL, err);
  host_leave ();
  return r;
}

/* trim, zero, cache, extents: (next, h, count, offset, flags). */
static int
range (size_t cb, nbdkit_next *next, void *handle, uint64_t count,
       uint64_t offset, uint32_t flags, struct nbdkit_extents *e, int *err)
{
  struct handle *h = handle;
  value res;
  int r;

  host_enter ();
  {
    CAMLparam0 ();
    CAMLlocalN (a, 5);
    a[2] = caml_copy_int64 (count);
    a[3] = caml_copy_int64 (offset);
    a[4] = Val_int (flags);
    r = call (h, cb, next, 5, a, &res, err);
    for (size_t i = 0; e && r == 0 && i < Wosize_val (res); i++) {
      value x = Field (res, i);
      int64_t off = Int64_val (Field (x, 0)), len = Int64_val (Field (x, 1));
      if (off < 0 || len < 0) {
        r = host_fail (h->l->slot, "extents", EIO,
                       "extent {offset = %" PRId64 "; length = %" PRId64
                       "} is out of range (both must be >= 0)",
                       off, len);
        *err = EIO;
      } else if ((r = nbdkit_add_extent (e, off, len, Int_val (Field (x, 2))))
                 == -1)
        *err = errno;
    }
    CAMLdrop;
  }
  host_leave ();
  return r;
}

static int
f_trim (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
        uint32_t flags, int *err)
{
  return range (CB_trim, next, handle, count, offset, flags, NULL, err);
}

static int
f_zero (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
        uint32_t flags, int *err)
{
  return range (CB_zero, next, handle, count, offset, flags, NULL, err);
}

static int
f_cache (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
         uint32_t flags, int *err)
{
  return range (CB_cache, next, handle, count, offset, flags, NULL, err);
}

static int
f_extents (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
           uint32_t flags, struct nbdkit_extents *e, int *err)
{
  return range (CB_extents, next, handle, count, offset, flags, e, err);
}

/* clang-format off */
#define FILTER(i)                                                              \
  { .name = "ocaml",                                                           \
    .longname = "nbdkit OCaml filter",                                         \
    .version = NBDKIT_VERSION,                                                 \
    .description = "Runs a filter written in OCaml: "                          \
                   "nbdkit --filter=./SCRIPT.ml PLUGIN ...",                   \
    .params = script_param,                                                    \
    .config = config_##i, .config_complete = config_complete_##i,              \
    .config_help = config_help_##i, .load = load_##i,                          \
    .unload = unload_##i, .dump_plugin = dump_plugin_##i,                      \
    .thread_model = thread_model_##i, .get_ready = get_ready_##i,              \
    .after_fork = after_fork_##i, .cleanup = cleanup_##i,                      \
    .preconnect = preconnect_##i, .list_exports = list_exports_##i,            \
    .default_export = default_export_##i,                                      \
    .prepare = f_prepare, .finalize = f_finalize,                              \
    .open = open_##i, .close = f_close,                                        \
    .get_size = f_get_size, .export_description = f_export_description,        \
    .block_size = f_block_size, .can_write = f_can_write,                      \
    .can_flush = f_can_flush, .is_rotational = f_is_rotational,                \
    .can_trim = f_can_trim, .can_zero = f_can_zero,                            \
    .can_fast_zero = f_can_fast_zero, .can_fua = f_can_fua,                    \
    .can_multi_conn = f_can_multi_conn, .can_extents = f_can_extents,          \
    .can_cache = f_can_cache, .pread = f_pread, .pwrite = f_pwrite,            \
    .flush = f_flush, .trim = f_trim, .zero = f_zero,                          \
    .extents = f_extents, .cache = f_cache, .reload = reload_##i },
static const struct nbdkit_filter templates[MAX_LAYERS] = { LAYERS (FILTER) };
#undef FILTER
/* clang-format on */

NBDKIT_EXTERN_C NBDKIT_DLL_PUBLIC struct nbdkit_filter *filter_init (void);

/* Called once per --filter=SCRIPT.ml: the next free layer. */
NBDKIT_EXTERN_C NBDKIT_DLL_PUBLIC struct nbdkit_filter *
filter_init (void)
{
  struct layer *l;

  if (nlayers >= MAX_LAYERS) {
    fprintf (stderr, "nbdkit: ocaml: at most %d OCaml filters can be stacked\n",
             MAX_LAYERS);
    return NULL;
  }
  l = &layers[nlayers];
  l->f = templates[nlayers];
  l->slot = nlayers + 1;
  l->cbs = l->first;
  nlayers++;
  l->f._struct_size = sizeof l->f;
  l->f._api_version = NBDKIT_API_VERSION;
  l->f._unused = 0;
  return &l->f;
}
