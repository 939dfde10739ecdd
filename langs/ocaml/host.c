/* host.c: the OCaml host's runtime life cycle and script loading.
 *
 * Starting the OCaml native runtime linked into this object, the
 * locks and thread registration (see host.h), compiling a script with
 * ocamlfind into a .cmxs kept in a cache keyed by its content, loading
 * it with Dynlink, and calling OCaml with exceptions turned into
 * errnos.
 */

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host.h"

#include <caml/signals.h>
#include <caml/threads.h>

#include <nbdkit-plugin.h>

#include "fail.h"

extern char **environ;

static int started, start_failed;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t thread_key;
static __thread int depth;

static char *script_paths[HOST_MAX_SLOTS];
static char *help_texts[HOST_MAX_SLOTS];
static int next_slot = HOST_SLOTS;
static char *include_dir;
static char *cache_dir;

/* A server thread the runtime knew leaves it when it exits. */
static void
thread_gone (void *p)
{
  caml_c_thread_unregister ();
}

/* Forks.  The threads library's own fork handler rebuilds the
 * runtime in the child around the thread that last held the master
 * lock, and leaves the lock taken, as if the child had forked from
 * OCaml (Unix.fork).  That thread may have exited since (a server
 * thread unregisters as it exits), and the fork may come from any
 * thread of the process (the server daemonizing, the sh plugin running
 * a script under an OCaml filter).  So every fork takes the host first
 * (the forking thread then is that thread); the parent gives it back,
 * and so does the child, unless it forked from OCaml code (depth > 1:
 * the script goes on in the child).
 */
static void
before_fork (void)
{
  host_enter ();
}

static void
parent_after_fork (void)
{
  host_leave ();
}

static void
child_after_fork (void)
{
  if (depth == 1) {
    depth = 0;
    caml_release_runtime_system ();
    pthread_mutex_unlock (&lock);
  } else
    depth--;
}

int
host_init (void)
{
  static char *argv[] = { "nbdkit", NULL };
  value r;

  if (started)
    return start_failed ? -1 : 0;
  started = 1;
  if (pthread_key_create (&thread_key, thread_gone) != 0) {
    nbdkit_error ("ocaml: pthread_key_create failed");
    start_failed = 1;
    return -1;
  }
  /* The runtime starts on this thread, holding its master lock. */
  r = caml_startup_exn (argv);
  if (Is_exception_result (r)) {
    nbdkit_error ("ocaml: the OCaml runtime failed to start");
    start_failed = 1;
    return -1;
  }
  caml_release_runtime_system ();
  pthread_atfork (before_fork, parent_after_fork, child_after_fork);
  return 0;
}

int
host_loaded (int slot)
{
  return script_paths[slot] != NULL;
}

const char *
host_script_path (int slot)
{
  return script_paths[slot];
}

int
host_new_slot (int from)
{
  int slot = __atomic_fetch_add (&next_slot, 1, __ATOMIC_RELAXED);

  if (slot >= HOST_MAX_SLOTS) {
    nbdkit_error ("%s: cannot reload: the server has reloaded OCaml scripts"
                  " %d times already (compiled code cannot be unloaded):"
                  " restart it",
                  script_paths[from], HOST_MAX_SLOTS - HOST_SLOTS);
    return -1;
  }
  return slot;
}

static const char *
who (int slot)
{
  return slot >= 0 && script_paths[slot] ? script_paths[slot] : "ocaml";
}

void
host_enter (void)
{
  if (depth++ > 0)
    return;
  pthread_mutex_lock (&lock);
  /* 1 for a thread the runtime did not know yet (0 for the one that
   * started it, or one already registered).
   */
  if (caml_c_thread_register () == 1)
    pthread_setspecific (thread_key, (void *)1);
  caml_acquire_runtime_system ();
}

void
host_leave (void)
{
  if (--depth > 0)
    return;
  caml_release_runtime_system ();
  pthread_mutex_unlock (&lock);
}

int
host_suspend (void)
{
  int saved = depth;

  depth = 0;
  caml_release_runtime_system ();
  pthread_mutex_unlock (&lock);
  return saved;
}

void
host_resume (int saved)
{
  pthread_mutex_lock (&lock);
  caml_acquire_runtime_system ();
  depth = saved;
}

const value *
host_cb (int slot, const char *name)
{
  char full[64];

  if (slot < 0)
    snprintf (full, sizeof full, "NBDKit.%s", name);
  else
    snprintf (full, sizeof full, "NBDKit.%d.%s", slot, name);
  return caml_named_value (full);
}

int
host_fail (int slot, const char *what, int err, const char *fmt, ...)
{
  va_list ap;
  int r;

  va_start (ap, fmt);
  r = host_vfail (who (slot), what, err, fmt, ap);
  va_end (ap);
  return r;
}

int
host_call (int slot, const char *what, const value *f, int nargs, value *args,
           value *result)
{
  if (f == NULL) {
    /* A reloaded script that lacks a callback the first one had. */
    nbdkit_error ("%s: %s: the script loaded last does not define it",
                  who (slot), what);
    nbdkit_set_error (EIO);
    errno = EIO;
    return -1;
  }

  CAMLparam0 ();
  CAMLlocal2 (r, d);
  int err;

  module_last_error = 0;
  r = caml_callbackN_exn (*f, nargs, args);
  if (!Is_exception_result (r)) {
    if (result)
      *result = r;
    CAMLreturnT (int, 0);
  }
  r = Extract_exception (r);
  /* (errno or 0, message, whether the script meant it) */
  d = caml_callback_exn (*host_cb (-1, "describe_exn"), r);
  if (Is_exception_result (d)) {
    nbdkit_error ("%s: %s: an exception that cannot be printed", who (slot),
                  what);
    err = EIO;
  } else {
    err = Int_val (Field (d, 0));
    /* Meant or not, the message names the script, as in every host. */
    nbdkit_error ("%s: %s: %s", who (slot), what, String_val (Field (d, 1)));
  }
  if (err == 0)
    err = module_last_error ? module_last_error : EIO;
  nbdkit_set_error (err);
  errno = err;
  CAMLreturnT (int, -1);
}

/* ---- files ---- */

static char *
read_file (const char *path, size_t *len)
{
  FILE *fp = fopen (path, "re");
  char *buf = NULL;
  size_t n = 0, k;
  char chunk[8192];

  if (fp == NULL)
    return NULL;
  while ((k = fread (chunk, 1, sizeof chunk, fp)) > 0) {
    char *nb = realloc (buf, n + k + 1);
    if (nb == NULL) {
      free (buf);
      fclose (fp);
      errno = ENOMEM;
      return NULL;
    }
    buf = nb;
    memcpy (buf + n, chunk, k);
    n += k;
  }
  fclose (fp);
  if (buf == NULL && (buf = malloc (1)) == NULL)
    return NULL;
  buf[n] = '\0';
  *len = n;
  return buf;
}

static int
write_file (const char *path, const char *a, size_t alen, const char *b,
            size_t blen)
{
  FILE *fp = fopen (path, "we");

  if (fp == NULL)
    return -1;
  if (fwrite (a, 1, alen, fp) != alen || fwrite (b, 1, blen, fp) != blen) {
    fclose (fp);
    return -1;
  }
  return fclose (fp);
}

static void
remove_tree (const char *dir)
{
  DIR *d = opendir (dir);
  struct dirent *e;
  char *p;

  if (d) {
    while ((e = readdir (d)) != NULL) {
      if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
        continue;
      if (asprintf (&p, "%s/%s", dir, e->d_name) != -1) {
        unlink (p);
        free (p);
      }
    }
    closedir (d);
  }
  rmdir (dir);
}

static int
mkdir_p (char *path)
{
  for (char *s = strchr (path + 1, '/'); s; s = strchr (s + 1, '/')) {
    *s = '\0';
    if (mkdir (path, 0700) == -1 && errno != EEXIST) {
      *s = '/';
      return -1;
    }
    *s = '/';
  }
  if (mkdir (path, 0700) == -1 && errno != EEXIST)
    return -1;
  return 0;
}

const char *
host_include_dir (void)
{
  Dl_info info;

  if (include_dir)
    return include_dir;
  /* NBDKit.cmi lies in ocaml/ beside this object, built or installed
   * (the filter's name is a link to it).
   */
  if (dladdr ((void *)host_init, &info) && info.dli_fname) {
    char *real = realpath (info.dli_fname, NULL);
    const char *f = real ? real : info.dli_fname;
    const char *slash = strrchr (f, '/');
    int n = slash ? (int)(slash - f) : 1;
    if (asprintf (&include_dir, "%.*s/ocaml", n, slash ? f : ".") == -1)
      include_dir = NULL;
    free (real);
  }
  return include_dir;
}

/* $XDG_CACHE_HOME/nbdkit-ocaml, ~/.cache/nbdkit-ocaml, else
 * $TMPDIR/nbdkit-ocaml-UID.
 */
const char *
host_cache_dir (void)
{
  const char *x = getenv ("XDG_CACHE_HOME"), *home = getenv ("HOME");
  const char *tmp = getenv ("TMPDIR");
  int r;

  if (cache_dir)
    return cache_dir;
  if (x && *x == '/')
    r = asprintf (&cache_dir, "%s/nbdkit-ocaml", x);
  else if (home && *home == '/')
    r = asprintf (&cache_dir, "%s/.cache/nbdkit-ocaml", home);
  else
    r = asprintf (&cache_dir, "%s/nbdkit-ocaml-%u", tmp ? tmp : "/tmp",
                  (unsigned)getuid ());
  if (r == -1)
    cache_dir = NULL;
  return cache_dir;
}

/* ---- compiling ---- */

/* Run ARGV, its stdout and stderr collected in *OUT.  Returns the
 * wait status, or -1 if it could not run.
 */
static int
run (char *const *argv, char **out)
{
  int fds[2], status = -1;
  pid_t pid;
  posix_spawn_file_actions_t fa;
  size_t n = 0;
  char *buf = NULL;

  *out = NULL;
  if (pipe2 (fds, O_CLOEXEC) == -1)
    return -1;
  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_addopen (&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2 (&fa, fds[1], 1);
  posix_spawn_file_actions_adddup2 (&fa, fds[1], 2);
  errno = posix_spawnp (&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  close (fds[1]);
  if (errno != 0) {
    close (fds[0]);
    return -1;
  }
  for (;;) {
    char chunk[4096];
    ssize_t k = read (fds[0], chunk, sizeof chunk);
    if (k == -1 && errno == EINTR)
      continue;
    if (k <= 0)
      break;
    char *nb = realloc (buf, n + k + 1);
    if (nb == NULL)
      break;
    buf = nb;
    memcpy (buf + n, chunk, k);
    n += k;
  }
  close (fds[0]);
  while (waitpid (pid, &status, 0) == -1 && errno == EINTR)
    ;
  if (buf) {
    buf[n] = '\0';
    while (n > 0 && buf[n - 1] == '\n')
      buf[--n] = '\0';
  }
  *out = buf;
  return status;
}

/* An OCaml string holding A..B, digested in OCaml (MD5, hex). */
static char *
digest (const char *parts[], const size_t lens[], size_t nparts)
{
  CAMLparam0 ();
  CAMLlocal2 (s, r);
  size_t total = 0, at = 0;
  char *hex;

  for (size_t i = 0; i < nparts; i++)
    total += lens[i] + 1;
  s = caml_alloc_string (total);
  for (size_t i = 0; i < nparts; i++) {
    memcpy (Bytes_val (s) + at, parts[i], lens[i]);
    at += lens[i];
    Bytes_val (s)[at++] = '\0';
  }
  r = caml_callback (*host_cb (-1, "digest"), s);
  hex = strdup (String_val (r));
  CAMLreturnT (char *, hex);
}

/* Whether a compilation unit named U (capitalized) is loaded. */
static int
unit_taken (const char *u)
{
  CAMLparam0 ();
  CAMLlocal1 (s);
  char cap[256];
  int r;

  snprintf (cap, sizeof cap, "%c%s", u[0] & ~0x20, u + 1);
  s = caml_copy_string (cap);
  r = Bool_val (caml_callback (*host_cb (-1, "unit_taken"), s));
  CAMLreturnT (int, r);
}

/* The compilation unit name of the script: its base name when that
 * makes a valid name not taken by the host, else nbdkit_script.
 */
static char *
unit_name (const char *path)
{
  const char *base = strrchr (path, '/');
  char *u;
  size_t n;
  int ok = 1;

  base = base ? base + 1 : path;
  n = strcspn (base, ".");
  u = strndup (base, n);
  if (u == NULL)
    return NULL;
  if (n == 0 || !((u[0] >= 'a' && u[0] <= 'z') || (u[0] >= 'A' && u[0] <= 'Z')))
    ok = 0;
  for (size_t i = 0; ok && i < n; i++)
    if (!((u[i] >= 'a' && u[i] <= 'z') || (u[i] >= 'A' && u[i] <= 'Z')
          || (u[i] >= '0' && u[i] <= '9') || u[i] == '_' || u[i] == '\''))
      ok = 0;
  if (ok && unit_taken (u))
    ok = 0;
  /* Else nbdkit_script, nbdkit_script2, ...: filters may share a name. */
  for (int i = 1; !ok && i < HOST_MAX_SLOTS + 100; i++) {
    free (u);
    if (i == 1)
      u = strdup ("nbdkit_script");
    else if (asprintf (&u, "nbdkit_script%d", i) == -1)
      u = NULL;
    if (u == NULL)
      return NULL;
    ok = !unit_taken (u);
  }
  return u;
}

#define COMPILE_FLAGS "-shared -g -thread -package unix,str,threads.posix"

/* The two APIs a script may be written for: ours, and nbdkit's own
 * (NBDKit_compat.ml), which the script sees as NBDKit through -open.
 */
enum api { API_OURS, API_NBDKIT };

/* Where the cache keeps the script SRC compiled as UNIT for API; NULL
 * (logged) on failure.
 */
static char *
cache_path (const char *cache, const char *cmi, size_t cmi_len,
            const char *unit, enum api api, const char *src, size_t len)
{
  char *key, *v, *path = NULL;

  host_enter ();
  v = strdup (
      String_val (caml_callback (*host_cb (-1, "ocaml_version"), Val_unit)));
  {
    const char *apis = api == API_OURS ? "ours" : "nbdkit";
    const char *parts[] = { v ? v : "", COMPILE_FLAGS, apis, unit, cmi, src };
    size_t lens[] = { strlen (parts[0]), strlen (COMPILE_FLAGS),
                      strlen (apis),     strlen (unit),
                      cmi_len,           len };
    key = digest (parts, lens, 6);
  }
  host_leave ();
  free (v);
  if (key == NULL || asprintf (&path, "%s/%s.cmxs", cache, key) == -1)
    path = NULL;
  free (key);
  return path;
}

/* Compile SRC (the script at ABS) as UNIT for API into CMXS.  Returns
 * 0, or -1 with the compiler's messages in *MSG (logged already if
 * *MSG is NULL).
 */
static int
compile_one (const char *abs, const char *src, size_t len, const char *unit,
             enum api api, const char *cmxs, char **msg)
{
  const char *inc = host_include_dir (), *cache = host_cache_dir ();
  char *dir = NULL, *ml = NULL, *out = NULL, *output = NULL, *directive;
  int status, r = -1;

  *msg = NULL;
  /* Compile a copy in a directory of our own (ocamlopt leaves .cmi,
   * .cmx and .o beside the source), with a line directive so that
   * messages name the script itself.
   */
  if (asprintf (&dir, "%s/build-XXXXXX", cache) == -1
      || mkdtemp (dir) == NULL) {
    nbdkit_error ("ocaml: cannot make a build directory in %s: %m", cache);
    free (dir);
    return -1;
  }
  if (asprintf (&ml, "%s/%s.ml", dir, unit) == -1
      || asprintf (&out, "%s/%s.cmxs", dir, unit) == -1)
    goto done;
  if (asprintf (&directive, "# 1 \"%s\"\n", abs) == -1)
    goto done;
  if (write_file (ml, directive, strlen (directive), src, len) == -1) {
    nbdkit_error ("ocaml: cannot write %s: %m", ml);
    free (directive);
    goto done;
  }
  free (directive);
  {
    const char *ocamlfind
        = access (OCAMLFIND, X_OK) == 0 ? OCAMLFIND : "ocamlfind";
    char *argv[] = { (char *)ocamlfind,
                     "ocamlopt",
                     "-shared",
                     "-g",
                     "-thread",
                     "-package",
                     "unix,str,threads.posix",
                     "-I",
                     (char *)inc,
                     api == API_NBDKIT ? "-open" : ml,
                     api == API_NBDKIT ? "NBDKit_compat" : "-o",
                     api == API_NBDKIT ? ml : out,
                     api == API_NBDKIT ? "-o" : NULL,
                     out,
                     NULL };
    nbdkit_debug ("ocaml: compiling %s%s into %s", abs,
                  api == API_NBDKIT ? " (nbdkit's OCaml API)" : "", cmxs);
    status = run (argv, &output);
    if (status == -1) {
      nbdkit_error ("%s: cannot run the OCaml compiler %s: %m", abs, ocamlfind);
      goto done;
    }
    if (!WIFEXITED (status) || WEXITSTATUS (status) != 0) {
      if (asprintf (msg, "%s ocamlopt -shared exited with status %d:\n%s",
                    ocamlfind, WIFEXITED (status) ? WEXITSTATUS (status) : -1,
                    output && *output ? output : "(no output)")
          == -1)
        *msg = NULL;
      goto done;
    }
    if (output && *output)
      nbdkit_debug ("ocaml: the compiler says:\n%s", output);
  }
  if (rename (out, cmxs) == -1) {
    nbdkit_error ("ocaml: cannot move %s to %s: %m", out, cmxs);
    goto done;
  }
  r = 0;
done:
  remove_tree (dir);
  free (dir);
  free (ml);
  free (out);
  free (output);
  return r;
}

/* Compile the script at ABS (source SRC) unless the cache has it;
 * returns the .cmxs path.  A script that does not compile against our
 * NBDKit is tried against nbdkit's API.
 */
static char *
compile_cached (const char *abs, const char *src, size_t len)
{
  const char *inc = host_include_dir (), *cache = host_cache_dir ();
  char *cmi_path = NULL, *cmi = NULL, *unit = NULL;
  char *paths[2] = { NULL, NULL }, *msgs[2] = { NULL, NULL }, *cmxs = NULL;
  size_t cmi_len = 0;

  if (inc == NULL || cache == NULL) {
    nbdkit_error ("ocaml: out of memory");
    return NULL;
  }
  /* The key covers both interfaces a script may be compiled against. */
  for (int i = 0; i < 2; i++) {
    char *part;
    size_t part_len;
    free (cmi_path);
    if (asprintf (&cmi_path, "%s/%s.cmi", inc,
                  i == 0 ? "NBDKit" : "NBDKit_compat")
        == -1) {
      cmi_path = NULL;
      goto out;
    }
    part = read_file (cmi_path, &part_len);
    if (part == NULL) {
      nbdkit_error ("ocaml: cannot read %s, which scripts compile against:"
                    " %m",
                    cmi_path);
      goto out;
    }
    char *both = realloc (cmi, cmi_len + part_len + 1);
    if (both == NULL) {
      free (part);
      goto out;
    }
    memcpy (both + cmi_len, part, part_len);
    cmi = both;
    cmi_len += part_len;
    free (part);
  }
  {
    char *c = strdup (cache);
    if (c == NULL || mkdir_p (c) == -1) {
      nbdkit_error ("ocaml: cannot create the compile cache %s: %m", cache);
      free (c);
      goto out;
    }
    free (c);
  }
  host_enter ();
  unit = unit_name (abs);
  host_leave ();
  if (unit == NULL)
    goto out;
  for (int api = API_OURS; api <= API_NBDKIT; api++) {
    paths[api] = cache_path (cache, cmi, cmi_len, unit, api, src, len);
    if (paths[api] == NULL)
      goto out;
    if (access (paths[api], R_OK) == 0) {
      nbdkit_debug ("ocaml: %s: using the cached %s", abs, paths[api]);
      cmxs = paths[api];
      paths[api] = NULL;
      goto out;
    }
  }
  for (int api = API_OURS; api <= API_NBDKIT; api++) {
    if (compile_one (abs, src, len, unit, api, paths[api], &msgs[api]) == 0) {
      cmxs = paths[api];
      paths[api] = NULL;
      goto out;
    }
    if (msgs[api] == NULL)
      goto out;
  }
  nbdkit_error ("%s: the script does not compile (%s)\n"
                "Compiled for nbdkit's OCaml API (NBDKit_compat) instead,"
                " it does not either (%s)",
                abs, msgs[API_OURS], msgs[API_NBDKIT]);
out:
  free (cmi_path);
  free (cmi);
  free (unit);
  for (int i = 0; i < 2; i++) {
    free (paths[i]);
    free (msgs[i]);
  }
  return cmxs;
}

/* The script's leading comment "(* ... *)", for --help. */
static char *
leading_comment (const char *src)
{
  const char *p = src, *end;

  while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
    p++;
  if (strncmp (p, "(*", 2) != 0 || (end = strstr (p, "*)")) == NULL)
    return NULL;
  p += 2;
  while (*p == ' ' || *p == '\n')
    p++;
  while (end > p && (end[-1] == ' ' || end[-1] == '\n'))
    end--;
  return strndup (p, end - p);
}

/* The help: the script's description, then its config_help, else
 * its leading comment.
 */
static void
make_help (int slot, const char *src)
{
  CAMLparam0 ();
  CAMLlocal1 (id);
  const value *f = host_cb (slot, "identity");
  char *desc = NULL, *extra = NULL, *name = NULL;

  if (f == NULL)
    CAMLreturn0;
  id = *f; /* a tuple, not a function */
  name = strdup (String_val (Field (id, 0)));
  if (Is_block (Field (id, 3)))
    desc = strdup (String_val (Field (Field (id, 3), 0)));
  if (Is_block (Field (id, 4)))
    extra = strdup (String_val (Field (Field (id, 4), 0)));
  if (extra == NULL && src)
    extra = leading_comment (src);
  if (asprintf (&help_texts[slot], "Script %s (%s)%s%s%s%s", name ? name : "?",
                script_paths[slot], desc ? ":\n" : "", desc ? desc : "",
                extra ? "\n\n" : "", extra ? extra : "")
      == -1)
    help_texts[slot] = NULL;
  free (name);
  free (desc);
  free (extra);
  CAMLreturn0;
}

int
host_load_script (int slot, const char *path, int filter)
{
  char *abs, *src = NULL, *cmxs;
  size_t len = 0, plen;
  int r = -1;

  if (script_paths[slot]) {
    nbdkit_error ("ocaml: a script is already loaded (%s); the second, %s,"
                  " cannot be (one OCaml script per plugin or filter)",
                  script_paths[slot], path);
    return -1;
  }
  abs = nbdkit_realpath (path);
  if (abs == NULL)
    return -1;
  /* --watch: a change reloads, even if this version fails. */
  nbdkit_watch_file (abs);
  plen = strlen (abs);
  if (plen > 5 && strcmp (abs + plen - 5, ".cmxs") == 0) {
    /* Built already (against the same NBDKit.cmi): load as it is. */
    cmxs = strdup (abs);
    if (cmxs == NULL) {
      free (abs);
      return -1;
    }
  } else {
    src = read_file (abs, &len);
    if (src == NULL) {
      nbdkit_error ("%s: cannot read the script: %m", abs);
      free (abs);
      return -1;
    }
    cmxs = compile_cached (abs, src, len);
    if (cmxs == NULL) {
      free (src);
      free (abs);
      return -1;
    }
  }

  script_paths[slot] = abs;
  host_enter ();
  {
    CAMLparam0 ();
    CAMLlocal2 (s, res);
    const value *is_filter;
    caml_callback (*host_cb (-1, "set_slot"), Val_int (slot));
    s = caml_copy_string (cmxs);
    res = caml_callback (*host_cb (-1, "loadfile"), s);
    is_filter = host_cb (slot, "filter");
    if (Is_block (res))
      nbdkit_error ("%s: loading %s failed: %s", abs, cmxs,
                    String_val (Field (res, 0)));
    else if (!Bool_val (
                 caml_callback (*host_cb (-1, "registered"), Val_int (slot))))
      nbdkit_error ("%s: the script did not call NBDKit.%s", abs,
                    filter ? "register_filter" : "register_plugin");
    else if (filter && is_filter == NULL)
      nbdkit_error ("%s: a plugin script (NBDKit.register_plugin) cannot be"
                    " used as a filter",
                    abs);
    else if (!filter && is_filter != NULL)
      nbdkit_error ("%s: a filter script (NBDKit.register_filter) cannot be"
                    " used as a plugin: nbdkit --filter=%s PLUGIN ...",
                    abs, path);
    else {
      make_help (slot, src);
      r = 0;
    }
    CAMLdrop;
  }
  host_leave ();
  if (r == -1) {
    script_paths[slot] = NULL;
    free (abs);
  }
  free (src);
  free (cmxs);
  return r;
}

const char *
host_help (int slot)
{
  return help_texts[slot];
}
