/* host.c: the Lua host's interpreter life cycle.
 *
 * Starting and closing the Lua state, the lock and the Lua thread of
 * each server thread (see host.h), loading the script and looking up
 * its callbacks, calling them with errors turned into errnos,
 * translating the script's typed parameters for the server, the help
 * text, and the conversions of callback results both ABIs share.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

#include <nbdkit-plugin.h>

#include "fail.h"
#include "models.h"
#include "values.h"

/* One script's interpreter: the plugin has one, each --filter=X.lua
 * one of its own (see struct lhost in host.h).
 */
struct lhost {
  lua_State *mainL;
  pthread_mutex_t lock;
  pthread_key_t thread_key;
  int key_made;
  int closed;
  char *script_path;
  int *cb_refs;
  size_t n_cbs;
  char *help_text;
  struct nbdkit_param *cparams;
  size_t n_cparams;
  int params_ref; /* the script's `params` table */
  int answers_alone;
  /* One Lua state per server thread (plugins in the parallel model):
   * the script's text, its callbacks' names and the configuration,
   * to make each thread's state as the main one was made.
   */
  int per_thread;
  pthread_t main_thread;
  char *src;
  size_t src_len;
  const char *const *names;
  struct config_item {
    char *key, *value;
  } * config;
  size_t n_config;
  size_t cb_load, cb_config, cb_config_complete, cb_get_ready;
  int model;
  /* Connections open on this interpreter, and whether a reload has
   * replaced it (it is closed when the last of them goes).
   */
  int users;
  int retired;
};

/* This thread's Lua thread in one interpreter, its registry reference,
 * and how deep its calls into that interpreter nest.
 */
struct lslot {
  struct lhost *host;
  lua_State *tL;
  int ref;
  int depth;
  /* This thread's own state, when the host has one per thread. */
  lua_State *own;
  int *own_refs;
  int own_params_ref;
  int own_failed;
};

/* The interpreter the current call is for (see host_switch), else the
 * object's only one (the plugin's).
 */
static __thread struct lhost *cur_host;
static struct lhost *default_host;
void (*host_init_hook) (lua_State *L);

struct lhost *
host_new (void)
{
  struct lhost *h = calloc (1, sizeof *h);

  if (h == NULL)
    return NULL;
  pthread_mutex_init (&h->lock, NULL);
  h->params_ref = LUA_NOREF;
  if (default_host == NULL)
    default_host = h;
  return h;
}

void
host_set_default (struct lhost *h)
{
  __atomic_store_n (&default_host, h, __ATOMIC_RELEASE);
}

struct lhost *
host_switch (struct lhost *h)
{
  struct lhost *prev = cur_host;

  cur_host = h;
  return prev;
}

void
host_switch_back (struct lhost **prev)
{
  cur_host = *prev;
}

static inline struct lhost *
cur (void)
{
  struct lhost *h;

  if (cur_host)
    return cur_host;
  /* The plugin's, made the first time it is needed (a reload replaces
   * it while other threads read it).
   */
  h = __atomic_load_n (&default_host, __ATOMIC_ACQUIRE);
  if (h == NULL && (h = host_new ()) == NULL) {
    nbdkit_error ("lua: out of memory");
    abort ();
  }
  return h;
}

struct lhost *
host_current (void)
{
  return cur ();
}

static struct lslot *
slot (void)
{
  struct lhost *h = cur ();
  struct lslot *t = pthread_getspecific (h->thread_key);

  if (t == NULL) {
    t = calloc (1, sizeof *t);
    if (t == NULL) {
      /* Without it there is no way into Lua at all. */
      nbdkit_error ("lua: out of memory");
      abort ();
    }
    t->host = h;
    t->ref = LUA_NOREF;
    pthread_setspecific (h->thread_key, t);
  }
  return t;
}

/* A server thread that exits drops its Lua thread. */
static void
thread_gone (void *p)
{
  struct lslot *t = p;
  struct lhost *h = t->host;

  if (t->own) {
    lua_close (t->own);
    free (t->own_refs);
  }
  pthread_mutex_lock (&h->lock);
  if (!h->closed && h->mainL && t->ref != LUA_NOREF)
    luaL_unref (h->mainL, LUA_REGISTRYINDEX, t->ref);
  pthread_mutex_unlock (&h->lock);
  free (t);
}

static lua_State *own_state (struct lhost *h, struct lslot *t);

lua_State *
host_enter (void)
{
  struct lhost *h = cur ();
  struct lslot *t = slot ();

  /* A thread of its own state needs no lock. */
  if (t->own
      || (h->per_thread && !t->own_failed
          && !pthread_equal (pthread_self (), h->main_thread)
          && own_state (h, t))) {
    t->depth++;
    return t->own;
  }
  if (t->depth++ == 0)
    pthread_mutex_lock (&h->lock);
  if (t->tL == NULL) {
    t->tL = lua_newthread (h->mainL);
    t->ref = luaL_ref (h->mainL, LUA_REGISTRYINDEX);
  }
  return t->tL;
}

void
host_leave (void)
{
  struct lslot *t = slot ();

  if (--t->depth == 0 && !t->own)
    pthread_mutex_unlock (&cur ()->lock);
}

int
host_suspend (void)
{
  struct lslot *t = slot ();
  int saved = t->depth;

  t->depth = 0;
  if (!t->own)
    pthread_mutex_unlock (&cur ()->lock);
  return saved;
}

void
host_resume (int saved)
{
  struct lslot *t = slot ();

  if (!t->own)
    pthread_mutex_lock (&cur ()->lock);
  t->depth = saved;
}

int
host_answers_alone (void)
{
  return cur ()->answers_alone;
}

void
host_set_answers_alone (int yes)
{
  cur ()->answers_alone = yes;
}

/* print() writes to stderr when stdout carries the protocol (-s). */
static int
l_print (lua_State *L)
{
  FILE *fp = nbdkit_stdio_safe () ? stdout : stderr;
  int n = lua_gettop (L);

  for (int i = 1; i <= n; i++) {
    size_t len;
    const char *s = luaL_tolstring (L, i, &len);
    if (i > 1)
      fputc ('\t', fp);
    fwrite (s, 1, len, fp);
    lua_pop (L, 1);
  }
  fputc ('\n', fp);
  fflush (fp);
  return 0;
}

int
host_init (void)
{
  struct lhost *h = cur ();

  if (h->mainL)
    return 0;
  if (!h->key_made) {
    if (pthread_key_create (&h->thread_key, thread_gone) != 0) {
      nbdkit_error ("lua: pthread_key_create failed");
      return -1;
    }
    h->key_made = 1;
  }
  h->mainL = luaL_newstate ();
  if (h->mainL == NULL) {
    nbdkit_error ("lua: cannot create a Lua state: out of memory");
    return -1;
  }
  luaL_openlibs (h->mainL);
  lua_pushcfunction (h->mainL, l_print);
  lua_setglobal (h->mainL, "print");
  module_open (h->mainL);
  if (host_init_hook)
    host_init_hook (h->mainL);
  return 0;
}

void
host_fini (void)
{
  struct lhost *h = cur ();
  struct lslot *t;

  if (h->mainL == NULL || h->closed)
    return;
  module_stop ();
  pthread_mutex_lock (&h->lock);
  h->closed = 1;
  lua_close (h->mainL);
  h->mainL = NULL;
  t = pthread_getspecific (h->thread_key);
  if (t)
    t->tL = NULL;
  pthread_mutex_unlock (&h->lock);
}

int
host_loaded (void)
{
  return cur ()->script_path != NULL;
}

const char *
host_script_path (void)
{
  return cur ()->script_path;
}

int
host_has (size_t i)
{
  return cur ()->cb_refs && i < cur ()->n_cbs
         && cur ()->cb_refs[i] != LUA_NOREF;
}

void
host_push_cb (lua_State *L, size_t i)
{
  struct lslot *t = slot ();

  lua_rawgeti (L, LUA_REGISTRYINDEX,
               t->own ? t->own_refs[i] : cur ()->cb_refs[i]);
}

/* The message handler of every call: an nbdkit error (a table with
 * errno) passes unchanged, anything else becomes its text with the
 * traceback.
 */
static int
msgh (lua_State *L)
{
  if (module_error_errno (L, 1))
    return 1;
  const char *msg = lua_tostring (L, 1);
  if (msg == NULL) {
    if (luaL_callmeta (L, 1, "__tostring") && lua_type (L, -1) == LUA_TSTRING)
      msg = lua_tostring (L, -1);
    else
      msg = lua_pushfstring (L, "(error object is a %s value)",
                             luaL_typename (L, 1));
  }
  luaL_traceback (L, L, msg, 1);
  return 1;
}

int
host_fail (const char *what, int err, const char *fmt, ...)
{
  va_list ap;
  int r;

  va_start (ap, fmt);
  r = host_vfail (cur ()->script_path ? cur ()->script_path : "lua", what, err,
                  fmt, ap);
  va_end (ap);
  return r;
}

int
host_call (lua_State *L, int nargs, int nresults, const char *what, int *err)
{
  int base = lua_gettop (L) - nargs;
  int e;

  lua_pushcfunction (L, msgh);
  lua_insert (L, base);
  module_last_error = 0;
  if (lua_pcall (L, nargs, nresults, base) == LUA_OK) {
    lua_remove (L, base);
    return 0;
  }
  e = module_error_errno (L, -1);
  if (e) {
    /* An error of the layer below was logged there already. */
    lua_getfield (L, -1, "below");
    int below = lua_toboolean (L, -1);
    lua_getfield (L, -2, "message");
    const char *m = lua_tostring (L, -1);
    if (below)
      nbdkit_debug ("%s: %s: %s",
                    cur ()->script_path ? cur ()->script_path : "lua", what,
                    m && *m ? m : module_errno_name (e));
    else
      nbdkit_error ("%s: %s: %s",
                    cur ()->script_path ? cur ()->script_path : "lua", what,
                    m && *m ? m : module_errno_name (e));
    lua_pop (L, 2);
  } else {
    nbdkit_error ("%s: %s: %s",
                  cur ()->script_path ? cur ()->script_path : "lua", what,
                  lua_tostring (L, -1));
    e = module_last_error ? module_last_error : EIO;
  }
  lua_settop (L, base - 1);
  nbdkit_set_error (e);
  if (err)
    *err = e;
  errno = e;
  return -1;
}

/* The script's leading comment block (after a "#!" line): "--" lines,
 * or one "--[[ ... ]]" block, without the comment marks.
 */
static char *
leading_comment (const char *src)
{
  const char *p = src;
  char *out;
  size_t n = 0;

  if (p[0] == '#' && p[1] == '!')
    p += strcspn (p, "\n") + (p[strcspn (p, "\n")] != 0);
  while (*p == '\n' || *p == ' ' || *p == '\t' || *p == '\r')
    p++;
  out = malloc (strlen (p) + 1);
  if (out == NULL)
    return NULL;
  if (strncmp (p, "--[", 3) == 0 && (p[3] == '[' || p[3] == '=')) {
    const char *start = strchr (p, '\n'), *end = strstr (p, "]]");
    if (start && end && start < end) {
      n = end - start - 1;
      memcpy (out, start + 1, n);
    }
  } else {
    while (strncmp (p, "--", 2) == 0) {
      size_t len = strcspn (p, "\n");
      const char *t = p + 2;
      size_t tl = len - 2;
      if (tl && *t == ' ') {
        t++;
        tl--;
      }
      memcpy (out + n, t, tl);
      n += tl;
      out[n++] = '\n';
      p += len + (p[len] != 0);
    }
  }
  while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
    n--;
  out[n] = '\0';
  return out;
}

/* package.path gets the script's directory first, so a script can
 * require its neighbours.
 */
static void
set_package_path (lua_State *L, const char *path)
{
  const char *slash = strrchr (path, '/');

  lua_getglobal (L, "package");
  if (slash && slash > path)
    lua_pushlstring (L, path, slash - path);
  else
    lua_pushstring (L, slash ? "" : ".");
  lua_pushliteral (L, "/?.lua;");
  lua_getfield (L, -3, "path");
  lua_concat (L, 3);
  lua_setfield (L, -2, "path");
  lua_pop (L, 1);
}

int
host_load_script (const char *path, const char *const *names, size_t n)
{
  lua_State *L;
  char *abs;
  FILE *fp;
  char *src = NULL;
  size_t len = 0;
  int r = -1;

  if (cur ()->script_path) {
    nbdkit_error ("lua: a script is already loaded (%s); the second, %s,"
                  " cannot be (one Lua script per plugin or filter)",
                  cur ()->script_path, path);
    return -1;
  }
  abs = nbdkit_realpath (path);
  if (abs == NULL)
    return -1;
  fp = fopen (abs, "re");
  if (fp == NULL) {
    nbdkit_error ("%s: cannot open the script: %m", abs);
    free (abs);
    return -1;
  }
  /* --watch: a change reloads, even if this version fails. */
  nbdkit_watch_file (abs);
  {
    char chunk[8192];
    size_t k;
    while ((k = fread (chunk, 1, sizeof chunk, fp)) > 0) {
      char *ns = realloc (src, len + k + 1);
      if (ns == NULL) {
        free (src);
        fclose (fp);
        free (abs);
        nbdkit_error ("realloc: %m");
        return -1;
      }
      src = ns;
      memcpy (src + len, chunk, k);
      len += k;
    }
  }
  fclose (fp);
  if (src == NULL && (src = calloc (1, 1)) == NULL) {
    free (abs);
    return -1;
  }
  src[len] = '\0';

  L = host_enter ();
  cur ()->script_path = abs;
  set_package_path (L, abs);
  lua_pushstring (L, abs);
  lua_setfield (L, LUA_REGISTRYINDEX, "nbdkit.script");

  /* Names a standard library also defines (load) count only if the
   * script defines them: keep what they were before it ran.
   */
  lua_createtable (L, n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_getglobal (L, names[i]);
    lua_rawseti (L, -2, i + 1);
  }
  lua_setfield (L, LUA_REGISTRYINDEX, "nbdkit.before");

  /* luaL_loadbuffer skips no "#!" line: blank it, keeping line numbers. */
  {
    char *body = src;
    if (src[0] == '#' && src[1] == '!')
      for (char *q = src; *q && *q != '\n'; q++)
        *q = ' ';
    if (luaL_loadbuffer (L, body, len, lua_pushfstring (L, "@%s", abs))
        != LUA_OK) {
      nbdkit_error ("%s", lua_tostring (L, -1));
      lua_pop (L, 2);
      goto out;
    }
    lua_remove (L, -2);
  }
  /* Kept for the states of other threads (host_per_thread). */
  cur ()->src = malloc (len + 1);
  if (cur ()->src) {
    memcpy (cur ()->src, src, len + 1);
    cur ()->src_len = len;
  }
  cur ()->names = names;
  if (host_call (L, 0, 0, "loading the script", NULL) == -1)
    goto out;

  {
    lua_getglobal (L, "help");
    if (lua_type (L, -1) == LUA_TSTRING)
      cur ()->help_text = strdup (lua_tostring (L, -1));
    else {
      /* The text before blanking the "#!" line is not needed. */
      cur ()->help_text = leading_comment (src);
    }
    lua_pop (L, 1);
  }

  cur ()->cb_refs = malloc (n * sizeof *cur ()->cb_refs);
  if (cur ()->cb_refs == NULL)
    goto out;
  cur ()->n_cbs = n;
  lua_getfield (L, LUA_REGISTRYINDEX, "nbdkit.before");
  for (size_t i = 0; i < n; i++) {
    lua_getglobal (L, names[i]);
    lua_rawgeti (L, -2, i + 1);
    int same = lua_rawequal (L, -1, -2);
    lua_pop (L, 1);
    if (same && !lua_isnil (L, -1)) {
      lua_pop (L, 1);
      cur ()->cb_refs[i] = LUA_NOREF;
    } else if (lua_isfunction (L, -1))
      cur ()->cb_refs[i] = luaL_ref (L, LUA_REGISTRYINDEX);
    else {
      if (!lua_isnil (L, -1))
        nbdkit_debug ("%s: global '%s' is not a function: ignored", abs,
                      names[i]);
      lua_pop (L, 1);
      cur ()->cb_refs[i] = LUA_NOREF;
    }
  }
  lua_pop (L, 1);
  lua_pushnil (L);
  lua_setfield (L, LUA_REGISTRYINDEX, "nbdkit.before");
  r = 0;
out:
  free (src);
  host_leave ();
  return r;
}

static const struct {
  const char *name;
  int type;
} param_types[] = {
  { "string", NBDKIT_PARAM_STRING },
  { "bool", NBDKIT_PARAM_BOOL },
  { "boolean", NBDKIT_PARAM_BOOL },
  { "int", NBDKIT_PARAM_INT },
  { "integer", NBDKIT_PARAM_INT },
  { "size", NBDKIT_PARAM_SIZE },
  { "enum", NBDKIT_PARAM_ENUM },
  { "file", NBDKIT_PARAM_FILE },
  { "directory", NBDKIT_PARAM_DIRECTORY },
  { "password", NBDKIT_PARAM_PASSWORD },
  { "list", NBDKIT_PARAM_LIST },
};

/* A field of the declaration at the top of L's stack as a string the
 * server keeps (numbers and booleans as text), or NULL if absent.
 */
static const char *
decl_string (lua_State *L, const char *field, int *error)
{
  const char *r = NULL;

  lua_getfield (L, -1, field);
  switch (lua_type (L, -1)) {
    case LUA_TNIL:
      break;
    case LUA_TBOOLEAN:
      r = lua_toboolean (L, -1) ? "true" : "false";
      break;
    case LUA_TNUMBER:
    case LUA_TSTRING:
      r = nbdkit_strdup_intern (lua_tostring (L, -1));
      break;
    case LUA_TTABLE:
      if (strcmp (field, "choices") == 0) {
        /* A list of choices, joined with '|' as the server wants. */
        luaL_Buffer b;
        lua_Integer nc = luaL_len (L, -1);
        luaL_buffinit (L, &b);
        for (lua_Integer i = 1; i <= nc; i++) {
          if (i > 1)
            luaL_addchar (&b, '|');
          lua_geti (L, -2, i);
          luaL_addvalue (&b);
        }
        luaL_pushresult (&b);
        r = nbdkit_strdup_intern (lua_tostring (L, -1));
        lua_pop (L, 1);
        break;
      }
      /* fallthrough */
    default:
      *error = 1;
  }
  lua_pop (L, 1);
  return r;
}

const struct nbdkit_param *
host_params (const struct nbdkit_param *first, size_t nfirst, int *error)
{
  lua_State *L = host_enter ();
  const struct nbdkit_param *ret = NULL;
  lua_Integer n;

  *error = 0;
  lua_getglobal (L, "params");
  if (lua_isnil (L, -1)) {
    lua_pop (L, 1);
    host_leave ();
    return NULL;
  }
  if (!lua_istable (L, -1)) {
    nbdkit_error ("%s: `params` must be a list of parameter declarations"
                  " ({name=, type=, ...}), not a %s",
                  cur ()->script_path, luaL_typename (L, -1));
    goto fail;
  }
  n = luaL_len (L, -1);
  cur ()->cparams = calloc (nfirst + n + 1, sizeof *cur ()->cparams);
  if (cur ()->cparams == NULL) {
    nbdkit_error ("calloc: %m");
    goto fail;
  }
  if (nfirst)
    memcpy (cur ()->cparams, first, nfirst * sizeof *first);
  cur ()->n_cparams = nfirst;
  for (lua_Integer i = 1; i <= n; i++) {
    struct nbdkit_param *p = &cur ()->cparams[cur ()->n_cparams];
    const char *type;
    int bad = 0;

    lua_geti (L, -1, i);
    if (!lua_istable (L, -1)) {
      nbdkit_error ("%s: params[%lld] must be a table {name=, type=, ...}",
                    cur ()->script_path, (long long)i);
      goto fail;
    }
    p->name = decl_string (L, "name", &bad);
    type = decl_string (L, "type", &bad);
    p->doc = decl_string (L, "doc", &bad);
    p->default_value = decl_string (L, "default", &bad);
    p->choices = decl_string (L, "choices", &bad);
    if (bad || p->name == NULL || *p->name == '\0') {
      nbdkit_error ("%s: params[%lld]: name must be a non-empty string, and"
                    " doc, default and choices strings (choices may be a"
                    " list)",
                    cur ()->script_path, (long long)i);
      goto fail;
    }
    if (type == NULL)
      type = "string";
    for (size_t t = 0; t < sizeof param_types / sizeof param_types[0]; t++)
      if (strcmp (type, param_types[t].name) == 0)
        p->type = param_types[t].type;
    if (p->type == 0) {
      nbdkit_error ("%s: parameter '%s': unknown type '%s' (expected string,"
                    " bool, int, size, enum, file, directory, password or"
                    " list)",
                    cur ()->script_path, p->name, type);
      goto fail;
    }
    if (p->type == NBDKIT_PARAM_ENUM && p->choices == NULL) {
      nbdkit_error ("%s: parameter '%s': an enum needs choices",
                    cur ()->script_path, p->name);
      goto fail;
    }
    lua_getfield (L, -1, "required");
    if (lua_toboolean (L, -1))
      p->flags |= NBDKIT_PARAM_REQUIRED;
    lua_getfield (L, -2, "multiple");
    if (lua_toboolean (L, -1))
      p->flags |= NBDKIT_PARAM_MULTIPLE;
    lua_pop (L, 2);
    /* Boolean defaults in the server's words. */
    if (p->default_value && p->type == NBDKIT_PARAM_BOOL)
      p->default_value = strcmp (p->default_value, "true") == 0 ? "1"
                         : strcmp (p->default_value, "false") == 0
                             ? "0"
                             : p->default_value;
    /* A list starts as an empty list, so the script can iterate it. */
    if (p->type == NBDKIT_PARAM_LIST || (p->flags & NBDKIT_PARAM_MULTIPLE)) {
      lua_newtable (L);
      lua_setfield (L, -2, "value");
    }
    lua_pop (L, 1);
    cur ()->n_cparams++;
  }
  cur ()->params_ref = luaL_ref (L, LUA_REGISTRYINDEX);
  ret = cur ()->cparams;
  host_leave ();
  return ret;

fail:
  lua_settop (L, 0);
  host_leave ();
  *error = 1;
  return NULL;
}

/* The declaration of KEY pushed (and its type returned), or 0 with
 * nothing pushed.
 */
static int
push_decl (lua_State *L, const char *key)
{
  for (size_t i = 0; i < cur ()->n_cparams; i++)
    if (strcmp (cur ()->cparams[i].name, key) == 0) {
      lua_rawgeti (L, LUA_REGISTRYINDEX,
                   slot ()->own ? slot ()->own_params_ref : cur ()->params_ref);
      lua_Integer n = luaL_len (L, -1);
      for (lua_Integer j = 1; j <= n; j++) {
        lua_geti (L, -1, j);
        lua_getfield (L, -1, "name");
        int same = lua_isstring (L, -1) && !strcmp (lua_tostring (L, -1), key);
        lua_pop (L, 1);
        if (same) {
          lua_remove (L, -2);
          return cur ()->cparams[i].type;
        }
        lua_pop (L, 1);
      }
      lua_pop (L, 1);
    }
  return 0;
}

/* Each key=value, for the states of other threads. */
static void
remember_config (struct lhost *h, const char *key, const char *value)
{
  struct config_item *n
      = realloc (h->config, (h->n_config + 1) * sizeof *h->config);

  if (n == NULL)
    return;
  h->config = n;
  n[h->n_config].key = strdup (key);
  n[h->n_config].value = strdup (value);
  if (n[h->n_config].key && n[h->n_config].value)
    h->n_config++;
}

int
host_config (const char *key, const char *value, size_t cb_config)
{
  lua_State *L = host_enter ();

  if (!slot ()->own)
    remember_config (cur (), key, value);
  int type = push_decl (L, key);
  int r = 0;

  if (!type && !host_has (cb_config)) {
    nbdkit_error ("%s: this script takes no parameters (it declares no"
                  " params and has no config function): %s=%s",
                  cur ()->script_path, key, value);
    host_leave ();
    return -1;
  }
  /* The value as the script sees it. */
  switch (type) {
    case NBDKIT_PARAM_INT:
    case NBDKIT_PARAM_SIZE:
      lua_pushinteger (L, strtoll (value, NULL, 10));
      break;
    case NBDKIT_PARAM_BOOL:
      lua_pushboolean (L, strcmp (value, "1") == 0);
      break;
    default:
      lua_pushstring (L, value);
  }
  if (type) {
    lua_getfield (L, -2, "value");
    if (lua_istable (L, -1)) {
      lua_pushvalue (L, -2);
      lua_seti (L, -2, luaL_len (L, -2) + 1);
      lua_pop (L, 1);
    } else {
      lua_pop (L, 1);
      lua_pushvalue (L, -1);
      lua_setfield (L, -3, "value");
    }
  }
  if (host_has (cb_config)) {
    host_push_cb (L, cb_config);
    lua_pushstring (L, key);
    lua_pushvalue (L, -3);
    r = host_call (L, 2, 0, "config", NULL);
  }
  lua_settop (L, 0);
  host_leave ();
  return r;
}

const char *
host_help (void)
{
  return cur ()->help_text;
}

const char *
host_thread_model_name (int model)
{
  return host_model_name (model);
}

int
host_thread_model (size_t cb, int dflt)
{
  lua_State *L;
  int r = dflt;

  if (!host_has (cb))
    return dflt;
  L = host_enter ();
  host_push_cb (L, cb);
  if (host_call (L, 0, 1, "thread_model", NULL) == -1) {
    host_leave ();
    return -1;
  }
  if (lua_type (L, -1) == LUA_TSTRING) {
    const char *s = lua_tostring (L, -1);
    r = host_model_by_name (s);
    if (r == -1)
      host_fail ("thread_model", EINVAL, "unknown thread model '%s'", s);
  } else if (lua_isinteger (L, -1)) {
    lua_Integer m = lua_tointeger (L, -1);
    /* A model's number, or nbdkit's old 0 to 3 (models.h). */
    r = host_model_by_number (m);
    if (r == -1)
      host_fail ("thread_model", EINVAL,
                 "returned %lld: expected a name or an"
                 " nbdkit.THREAD_MODEL_* number",
                 (long long)m);
  } else if (!lua_isnil (L, -1))
    r = host_fail ("thread_model", EINVAL,
                   "expected a name or a number,"
                   " got a %s",
                   luaL_typename (L, -1));
  lua_pop (L, 1);
  host_leave ();
  return r;
}

int
host_to_int64 (lua_State *L, int idx, const char *what, int64_t *r)
{
  int ok;
  lua_Integer v = lua_tointegerx (L, idx, &ok);

  if (!ok)
    return host_fail (what, EIO, "expected an integer, got %s",
                      lua_type (L, idx) == LUA_TNUMBER
                          ? "a fraction"
                          : luaL_typename (L, idx));
  *r = v;
  return 0;
}

int
host_to_can (lua_State *L, int idx, const char *what, int tri)
{
  int64_t v = 0;

  if (lua_isboolean (L, idx))
    return lua_toboolean (L, idx) ? (tri ? tri : 1) : 0;
  if (lua_isnil (L, idx))
    return host_fail (what, EIO, "returned nothing: expected a boolean%s",
                      tri ? " or a constant" : "");
  if (host_to_int64 (L, idx, what, &v) == -1)
    return -1;
  if (!tri)
    return v != 0;
  if (v < 0 || v > 2)
    return host_fail (what, EIO,
                      "returned %" PRId64 ": expected a boolean or 0, 1, 2"
                      " (nbdkit.*_NONE, _EMULATE, _NATIVE)",
                      v);
  return v;
}

const char *
host_to_interned (lua_State *L, int idx, const char *what, int *error)
{
  const char *r, *why;
  size_t len;

  *error = 0;
  if (lua_isnil (L, idx))
    return NULL;
  if (lua_type (L, idx) != LUA_TSTRING) {
    host_fail (what, EIO, "expected a string, got a %s",
               luaL_typename (L, idx));
    *error = 1;
    return NULL;
  }
  r = lua_tolstring (L, idx, &len);
  if ((why = host_string_problem (r, len)) != NULL) {
    host_fail (what, EIO, "returned a string that %s", why);
    *error = 1;
    return NULL;
  }
  r = nbdkit_strndup_intern (r, len);
  if (r == NULL)
    *error = 1;
  return r;
}

static int
field_u64 (lua_State *L, int t, const char *name, int pos, uint64_t *r)
{
  int ok;

  lua_getfield (L, t, name);
  if (lua_isnil (L, -1)) {
    lua_pop (L, 1);
    lua_geti (L, t, pos);
  }
  if (lua_isnil (L, -1)) {
    lua_pop (L, 1);
    return 0;
  }
  *r = lua_tointegerx (L, -1, &ok);
  lua_pop (L, 1);
  return ok ? 1 : -1;
}

int
host_to_block_size (lua_State *L, int idx, int n, const char *what,
                    struct nbdkit_block_size *bs)
{
  uint64_t v[4] = { 0, 0, 0, 0 };
  static const char *names[]
      = { "minimum", "preferred", "maximum", "maximum_virtual" };

  idx = lua_absindex (L, idx);
  if (lua_istable (L, idx)) {
    for (int i = 0; i < 4; i++)
      if (field_u64 (L, idx, names[i], i + 1, &v[i]) == -1)
        return host_fail (what, EIO, "%s must be an integer", names[i]);
  } else if (lua_isnil (L, idx))
    return 0;
  else
    for (int i = 0; i < 4 && i < n; i++) {
      int ok;
      if (lua_isnil (L, idx + i))
        continue;
      v[i] = lua_tointegerx (L, idx + i, &ok);
      if (!ok)
        return host_fail (what, EIO, "%s must be an integer", names[i]);
    }
  if (!host_block_size_ok (v[0]) || !host_block_size_ok (v[1])
      || !host_block_size_ok (v[2]) || v[3] > INT64_MAX)
    return host_fail (what, EIO,
                      "block sizes out of range (minimum, preferred and"
                      " maximum are 0 to 2^32-1, maximum_virtual >= 0)");
  bs->minimum = v[0];
  bs->preferred = v[1];
  bs->maximum = v[2];
  bs->maximum_virtual = v[3];
  return 0;
}

int
host_to_extents (lua_State *L, int idx, const char *what,
                 struct nbdkit_extents *e)
{
  lua_Integer n;

  if (lua_isnil (L, idx))
    return 0;
  if (!lua_istable (L, idx))
    return host_fail (what, EIO, "expected a list of extents, got a %s",
                      luaL_typename (L, idx));
  idx = lua_absindex (L, idx);
  n = luaL_len (L, idx);
  for (lua_Integer i = 1; i <= n; i++) {
    uint64_t off = 0, len = 0, type = 0;
    lua_geti (L, idx, i);
    int t = lua_gettop (L);
    if (!lua_istable (L, t) || field_u64 (L, t, "offset", 1, &off) != 1
        || field_u64 (L, t, "length", 2, &len) != 1
        || field_u64 (L, t, "type", 3, &type) == -1) {
      lua_pop (L, 1);
      return host_fail (what, EIO,
                        "extent %lld: expected {offset, length,"
                        " type}",
                        (long long)i);
    }
    lua_pop (L, 1);
    if (off > INT64_MAX || len > INT64_MAX || type > UINT32_MAX)
      return host_fail (what, EIO,
                        "extent %lld is out of range (offset and length"
                        " >= 0, type 0 to 2^32-1)",
                        (long long)i);
    if (nbdkit_add_extent (e, off, len, type) == -1) {
      nbdkit_set_error (errno ? errno : EIO);
      return -1;
    }
  }
  return 0;
}

int
host_to_exports (lua_State *L, int idx, const char *what,
                 struct nbdkit_exports *x)
{
  lua_Integer n;

  if (lua_isnil (L, idx))
    return 0;
  if (!lua_istable (L, idx))
    return host_fail (what, EIO, "expected a list of exports, got a %s",
                      luaL_typename (L, idx));
  idx = lua_absindex (L, idx);
  n = luaL_len (L, idx);
  for (lua_Integer i = 1; i <= n; i++) {
    const char *name = NULL, *desc = NULL;
    lua_geti (L, idx, i);
    if (lua_type (L, -1) == LUA_TSTRING)
      name = lua_tostring (L, -1);
    else if (lua_istable (L, -1)) {
      lua_getfield (L, -1, "name");
      if (lua_isnil (L, -1)) {
        lua_pop (L, 1);
        lua_geti (L, -1, 1);
      }
      name = lua_tostring (L, -1);
      lua_getfield (L, -2, "description");
      if (lua_isnil (L, -1)) {
        lua_pop (L, 1);
        lua_geti (L, -2, 2);
      }
      desc = lua_tostring (L, -1);
    }
    if (name == NULL) {
      lua_settop (L, idx);
      return host_fail (what, EIO,
                        "export %lld: expected a name or"
                        " {name=, description=}",
                        (long long)i);
    }
    {
      /* The name and description are the strings on top (with their
       * lengths: Lua strings may hold NULs).
       */
      const char *why = NULL;
      for (int k = -2; why == NULL && k <= -1; k++) {
        size_t len;
        const char *v = lua_type (L, k) == LUA_TSTRING
                            ? lua_tolstring (L, k, &len)
                            : NULL;
        if (v)
          why = host_string_problem (v, len);
      }
      if (why) {
        lua_settop (L, idx);
        return host_fail (what, EIO, "export %lld: a string that %s",
                          (long long)i, why);
      }
    }
    if (nbdkit_add_export (x, name, desc) == -1) {
      lua_settop (L, idx);
      return -1;
    }
    lua_settop (L, idx);
  }
  return 0;
}

/* ---- one Lua state per thread ----
 *
 * For a plugin in the parallel model, each server thread but the
 * main one gets a state of its own, made the first time the thread
 * calls in, as the main one was: the script run, then load, each
 * key=value the server gave (into params and config), config_complete
 * and get_ready.  No lock: requests on different threads run at
 * once, whatever they do.  Nothing is shared between the states but
 * what the script keeps outside Lua (files, the layer below).
 */
void
host_per_thread (int model, size_t cb_load, size_t cb_config,
                 size_t cb_config_complete, size_t cb_get_ready)
{
  struct lhost *h = cur ();

  host_set_model (model, cb_load, cb_config, cb_config_complete, cb_get_ready);
  h->main_thread = pthread_self ();
  h->per_thread = h->src != NULL;
}

int
host_is_per_thread (void)
{
  return cur ()->per_thread;
}

/* Run the script in T's new state and configure it; 0 or -1 (logged,
 * and the thread then shares the main state).
 */
static lua_State *
own_state (struct lhost *h, struct lslot *t)
{
  lua_State *L = luaL_newstate ();
  int *refs = calloc (h->n_cbs, sizeof *refs);
  int ok = 0;

  if (L == NULL || refs == NULL) {
    nbdkit_error ("%s: no Lua state for this thread: out of memory",
                  h->script_path);
    goto fail;
  }
  luaL_openlibs (L);
  lua_pushcfunction (L, l_print);
  lua_setglobal (L, "print");
  module_open (L);
  set_package_path (L, h->script_path);
  lua_pushstring (L, h->script_path);
  lua_setfield (L, LUA_REGISTRYINDEX, "nbdkit.script");
  t->own = L;
  t->own_refs = refs;
  t->depth++;

  /* What the standard library defines under a callback's name (load)
   * counts only if the script defines it, as in host_load_script.
   */
  lua_createtable (L, h->n_cbs, 0);
  for (size_t i = 0; i < h->n_cbs; i++) {
    lua_getglobal (L, h->names[i]);
    lua_rawseti (L, -2, i + 1);
  }
  if (luaL_loadbuffer (L, h->src, h->src_len,
                       lua_pushfstring (L, "@%s", h->script_path))
      != LUA_OK) {
    nbdkit_error ("%s", lua_tostring (L, -1));
    goto out;
  }
  lua_remove (L, -2);
  if (host_call (L, 0, 0, "loading the script", NULL) == -1)
    goto out;
  for (size_t i = 0; i < h->n_cbs; i++) {
    lua_getglobal (L, h->names[i]);
    lua_rawgeti (L, -2, i + 1);
    int same = lua_rawequal (L, -1, -2);
    lua_pop (L, 1);
    if (!same && lua_isfunction (L, -1))
      refs[i] = luaL_ref (L, LUA_REGISTRYINDEX);
    else {
      lua_pop (L, 1);
      refs[i] = LUA_NOREF;
    }
  }
  lua_pop (L, 1);
  lua_getglobal (L, "params");
  t->own_params_ref = luaL_ref (L, LUA_REGISTRYINDEX);

  if (host_has (h->cb_load) && refs[h->cb_load] != LUA_NOREF) {
    host_push_cb (L, h->cb_load);
    if (host_call (L, 0, 0, "load", NULL) == -1)
      goto out;
  }
  for (size_t i = 0; i < h->n_config; i++) {
    t->depth--;
    int r = host_config (h->config[i].key, h->config[i].value, h->cb_config);
    t->depth++;
    if (r == -1)
      goto out;
  }
  if (refs[h->cb_config_complete] != LUA_NOREF) {
    host_push_cb (L, h->cb_config_complete);
    if (host_call (L, 0, 0, "config_complete", NULL) == -1)
      goto out;
  }
  if (refs[h->cb_get_ready] != LUA_NOREF) {
    host_push_cb (L, h->cb_get_ready);
    lua_pushstring (L, host_thread_model_name (h->model));
    if (host_call (L, 1, 0, "get_ready", NULL) == -1)
      goto out;
  }
  ok = 1;
out:
  t->depth--;
  lua_settop (L, 0);
  if (ok)
    return L;
  nbdkit_error ("%s: this thread's Lua state could not be made: it shares"
                " the main one",
                h->script_path);
fail:
  t->own = NULL;
  t->own_refs = NULL;
  t->own_failed = 1;
  if (L)
    lua_close (L);
  free (refs);
  return NULL;
}

/* ---- reloading (SIGHUP) ----
 *
 * A new interpreter from the current one's script, read again, and
 * its configuration: the script run, load, every key=value again,
 * config_complete, get_ready.  New connections then use it; those
 * open on the old one keep it until they close.
 */
struct lhost *
host_reload (const struct nbdkit_param *first, size_t nfirst)
{
  struct lhost *old = cur (), *h = calloc (1, sizeof *h);
  int bad = 0, ok = 0;

  if (h == NULL)
    return NULL;
  pthread_mutex_init (&h->lock, NULL);
  h->params_ref = LUA_NOREF;
  {
    HOST_USE (h);
    if (host_init () == -1
        || host_load_script (old->script_path, old->names, old->n_cbs) == -1)
      goto out;
    host_params (first, nfirst, &bad);
    if (bad)
      goto out;
    if (host_has (old->cb_load) && call0 (old->cb_load, "load") == -1)
      goto out;
    for (size_t i = 0; i < old->n_config; i++)
      if (host_config (old->config[i].key, old->config[i].value, old->cb_config)
          == -1)
        goto out;
    if (host_has (old->cb_config_complete)
        && call0 (old->cb_config_complete, "config_complete") == -1)
      goto out;
    if (host_has (old->cb_get_ready)
        && call_get_ready (old->cb_get_ready, old->model) == -1)
      goto out;
    host_set_model (old->model, old->cb_load, old->cb_config,
                    old->cb_config_complete, old->cb_get_ready);
    if (old->per_thread)
      host_per_thread (old->model, old->cb_load, old->cb_config,
                       old->cb_config_complete, old->cb_get_ready);
    ok = 1;
  out:
    if (!ok)
      host_fini ();
  }
  if (ok)
    return h;
  /* The struct may still be named by this thread's key: keep it. */
  return NULL;
}

void
host_set_model (int model, size_t cb_load, size_t cb_config,
                size_t cb_config_complete, size_t cb_get_ready)
{
  struct lhost *h = cur ();

  h->model = model;
  h->cb_load = cb_load;
  h->cb_config = cb_config;
  h->cb_config_complete = cb_config_complete;
  h->cb_get_ready = cb_get_ready;
}

void
host_retire (struct lhost *h)
{
  pthread_mutex_lock (&h->lock);
  h->retired = 1;
  int last = h->users == 0;
  pthread_mutex_unlock (&h->lock);
  if (last) {
    HOST_USE (h);
    host_fini ();
  }
}

void
host_use_count (struct lhost *h, int delta)
{
  pthread_mutex_lock (&h->lock);
  h->users += delta;
  int last = h->retired && h->users == 0;
  pthread_mutex_unlock (&h->lock);
  if (last) {
    HOST_USE (h);
    host_fini ();
  }
}
