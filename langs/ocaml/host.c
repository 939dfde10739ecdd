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

static char *script_path;
static char *help_text;
static char *include_dir;
static char *cache_dir;

/* A server thread the runtime knew leaves it when it exits. */
static void
thread_gone (void *p)
{
  caml_c_thread_unregister ();
}

/* fork() in the threads library leaves the runtime's master lock
 * taken in the child, for the thread that forked, as if it had forked
 * from OCaml (Unix.fork).  The server forks from C (to daemonize,
 * before any client), holding nothing: give the lock back.
 */
static void
child_after_fork (void)
{
  if (depth == 0)
    caml_release_runtime_system ();
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
  pthread_atfork (NULL, NULL, child_after_fork);
  return 0;
}

int
host_loaded (void)
{
  return script_path != NULL;
}

const char *
host_script_path (void)
{
  return script_path;
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
host_cb (const char *name)
{
  char full[64];

  snprintf (full, sizeof full, "NBDKit.%s", name);
  return caml_named_value (full);
}

int
host_fail (const char *what, int err, const char *fmt, ...)
{
  va_list ap;
  int r;

  va_start (ap, fmt);
  r = host_vfail (script_path ? script_path : "ocaml", what, err, fmt, ap);
  va_end (ap);
  return r;
}

int
host_call (const char *what, const value *f, int nargs, value *args,
           value *result)
{
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
  d = caml_callback_exn (*host_cb ("describe_exn"), r);
  if (Is_exception_result (d)) {
    nbdkit_error ("%s: %s: an exception that cannot be printed",
                  script_path ? script_path : "ocaml", what);
    err = EIO;
  } else {
    err = Int_val (Field (d, 0));
    /* Meant or not, the message names the script, as in every host. */
    nbdkit_error ("%s: %s: %s", script_path ? script_path : "ocaml", what,
                  String_val (Field (d, 1)));
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
  /* NBDKit.cmi lies in ocaml/ beside this object, built or installed. */
  if (dladdr ((void *)host_init, &info) && info.dli_fname) {
    const char *slash = strrchr (info.dli_fname, '/');
    int n = slash ? (int)(slash - info.dli_fname) : 1;
    if (asprintf (&include_dir, "%.*s/ocaml", n, slash ? info.dli_fname : ".")
        == -1)
      include_dir = NULL;
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
  r = caml_callback (*host_cb ("digest"), s);
  hex = strdup (String_val (r));
  CAMLreturnT (char *, hex);
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
  if (ok) {
    CAMLparam0 ();
    CAMLlocal1 (s);
    char cap[256];
    snprintf (cap, sizeof cap, "%c%s", u[0] & ~0x20, u + 1);
    s = caml_copy_string (cap);
    if (Bool_val (caml_callback (*host_cb ("unit_taken"), s)))
      ok = 0;
    CAMLdrop;
  }
  if (!ok) {
    free (u);
    u = strdup ("nbdkit_script");
  }
  return u;
}

#define COMPILE_FLAGS "-shared -g -thread -package unix,str,threads.posix"

/* Compile the script at ABS (source SRC) unless the cache has it;
 * returns the .cmxs path.
 */
static char *
compile_cached (const char *abs, const char *src, size_t len)
{
  const char *inc = host_include_dir (), *cache = host_cache_dir ();
  char *cmi_path = NULL, *cmi = NULL, *key = NULL, *cmxs = NULL;
  char *dir = NULL, *unit = NULL, *ml = NULL, *out = NULL, *output = NULL;
  size_t cmi_len = 0;
  const char *version;
  int status;

  if (inc == NULL || cache == NULL) {
    nbdkit_error ("ocaml: out of memory");
    return NULL;
  }
  if (asprintf (&cmi_path, "%s/NBDKit.cmi", inc) == -1)
    return NULL;
  cmi = read_file (cmi_path, &cmi_len);
  if (cmi == NULL) {
    nbdkit_error ("ocaml: cannot read %s, which scripts compile against: %m",
                  cmi_path);
    goto out;
  }

  host_enter ();
  version = String_val (caml_callback (*host_cb ("ocaml_version"), Val_unit));
  {
    char *v = strdup (version);
    const char *parts[] = { v ? v : "", COMPILE_FLAGS, cmi, src };
    size_t lens[] = { strlen (parts[0]), strlen (COMPILE_FLAGS), cmi_len, len };
    key = digest (parts, lens, 4);
    free (v);
  }
  unit = unit_name (abs);
  host_leave ();
  if (key == NULL || unit == NULL)
    goto out;

  {
    char *c = strdup (cache);
    if (c == NULL || mkdir_p (c) == -1) {
      nbdkit_error ("ocaml: cannot create the compile cache %s: %m", cache);
      free (c);
      goto out;
    }
    free (c);
  }
  if (asprintf (&cmxs, "%s/%s.cmxs", cache, key) == -1) {
    cmxs = NULL;
    goto out;
  }
  if (access (cmxs, R_OK) == 0) {
    nbdkit_debug ("ocaml: %s: using the cached %s", abs, cmxs);
    goto out;
  }

  /* Compile a copy in a directory of our own (ocamlopt leaves .cmi,
   * .cmx and .o beside the source), with a line directive so that
   * messages name the script itself.
   */
  if (asprintf (&dir, "%s/build-XXXXXX", cache) == -1
      || mkdtemp (dir) == NULL) {
    nbdkit_error ("ocaml: cannot make a build directory in %s: %m", cache);
    free (cmxs);
    cmxs = NULL;
    goto out;
  }
  if (asprintf (&ml, "%s/%s.ml", dir, unit) == -1
      || asprintf (&out, "%s/%s.cmxs", dir, unit) == -1)
    goto fail;
  {
    char *directive;
    if (asprintf (&directive, "# 1 \"%s\"\n", abs) == -1)
      goto fail;
    if (write_file (ml, directive, strlen (directive), src, len) == -1) {
      nbdkit_error ("ocaml: cannot write %s: %m", ml);
      free (directive);
      goto fail;
    }
    free (directive);
  }
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
                     ml,
                     "-o",
                     out,
                     NULL };
    nbdkit_debug ("ocaml: compiling %s into %s", abs, cmxs);
    status = run (argv, &output);
    if (status == -1) {
      nbdkit_error ("%s: cannot run the OCaml compiler %s: %m", abs, ocamlfind);
      goto fail;
    }
    if (!WIFEXITED (status) || WEXITSTATUS (status) != 0) {
      nbdkit_error ("%s: the script does not compile (%s ocamlopt -shared"
                    " exited with status %d):\n%s",
                    abs, ocamlfind,
                    WIFEXITED (status) ? WEXITSTATUS (status) : -1,
                    output && *output ? output : "(no output)");
      goto fail;
    }
    if (output && *output)
      nbdkit_debug ("ocaml: the compiler says:\n%s", output);
  }
  if (rename (out, cmxs) == -1) {
    nbdkit_error ("ocaml: cannot move %s to %s: %m", out, cmxs);
    goto fail;
  }
  goto done;

fail:
  free (cmxs);
  cmxs = NULL;
done:
  remove_tree (dir);
out:
  free (cmi_path);
  free (cmi);
  free (key);
  free (dir);
  free (unit);
  free (ml);
  free (out);
  free (output);
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
make_help (const char *src)
{
  CAMLparam0 ();
  CAMLlocal1 (id);
  const value *f = host_cb ("identity");
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
  if (asprintf (&help_text, "Script %s (%s)%s%s%s%s", name ? name : "?",
                script_path, desc ? ":\n" : "", desc ? desc : "",
                extra ? "\n\n" : "", extra ? extra : "")
      == -1)
    help_text = NULL;
  free (name);
  free (desc);
  free (extra);
  CAMLreturn0;
}

int
host_load_script (const char *path)
{
  char *abs, *src = NULL, *cmxs;
  size_t len = 0, plen;
  int r = -1;

  if (script_path) {
    nbdkit_error ("ocaml: a script is already loaded (%s); the second, %s,"
                  " cannot be (one OCaml script per plugin)",
                  script_path, path);
    return -1;
  }
  abs = nbdkit_realpath (path);
  if (abs == NULL)
    return -1;
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

  script_path = abs;
  host_enter ();
  {
    CAMLparam0 ();
    CAMLlocal2 (s, res);
    s = caml_copy_string (cmxs);
    res = caml_callback (*host_cb ("loadfile"), s);
    if (Is_block (res))
      nbdkit_error ("%s: loading %s failed: %s", abs, cmxs,
                    String_val (Field (res, 0)));
    else if (!Bool_val (caml_callback (*host_cb ("registered"), Val_unit)))
      nbdkit_error ("%s: the script did not call NBDKit.register_plugin", abs);
    else {
      make_help (src);
      r = 0;
    }
    CAMLdrop;
  }
  host_leave ();
  if (r == -1) {
    script_path = NULL;
    free (abs);
  }
  free (src);
  free (cmxs);
  return r;
}

const char *
host_help (void)
{
  return help_text;
}
