/* cc.c: the cc plugin, a plugin given as source code.
 *
 *   nbdkit cc plugin.c [CC=gcc] [CFLAGS=...] [EXTRA_CFLAGS=...] [key=value]...
 *   nbdkit cc - < plugin.c
 *   nbdkit cc plugin.ml [key=value]...
 *
 * At config_complete the source is compiled into a shared object in
 * $TMPDIR, and the server is handed that object to serve instead
 * (nbdkit_hand_over), with every parameter that is not the compiler's.
 * The compiled plugin may use any API version, 1 to 3.  An OCaml
 * source (.ml, or CC naming an OCaml compiler) is handed to the OCaml
 * host, which compiles and caches it itself.
 */

#define _GNU_SOURCE /* dladdr */
#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CC_DEFAULT_CC
#define CC_DEFAULT_CC "cc"
#endif
#define CC_DEFAULT_CFLAGS "-g -O2 -fPIC -shared"

static char *script;     /* absolute path of the source */
static char *from_stdin; /* the temporary copy of "-" */
static char *compiled;   /* the temporary .so */
static const char *cc_cmd, *cflags, *extra_cflags;
static char **keys, **values; /* everything else, for the compiled plugin */
static size_t nparams;

static bool
ends_with (const char *s, const char *suffix)
{
  size_t n = strlen (s), m = strlen (suffix);
  return n >= m && strcmp (s + n - m, suffix) == 0;
}

static bool
is_ocaml (void)
{
  const char *base;

  if (cc_cmd) {
    base = strrchr (cc_cmd, '/');
    base = base ? base + 1 : cc_cmd;
    if (strncmp (base, "ocaml", 5) == 0)
      return true;
  }
  return script && ends_with (script, ".ml");
}

/* Copy standard input to a temporary source file. */
static char *
read_stdin (void)
{
  char tmpl[PATH_MAX];
  const char *dir = getenv ("TMPDIR");
  char buf[65536];
  ssize_t r;
  int fd;

  if (!nbdkit_stdio_safe ()) {
    nbdkit_error ("cc: the source cannot be read from standard input"
                  " when the server uses it (-s)");
    return NULL;
  }
  if (snprintf (tmpl, sizeof tmpl, "%s/nbdkit-cc-XXXXXX.%s",
                dir && *dir ? dir : "/tmp",
                cc_cmd && strstr (cc_cmd, "ocaml") ? "ml" : "c")
      >= (int)sizeof tmpl) {
    nbdkit_error ("cc: TMPDIR is too long");
    return NULL;
  }
  fd = mkstemps (tmpl,
                 strchr (tmpl, '.') ? (int)strlen (strrchr (tmpl, '.')) : 0);
  if (fd == -1) {
    nbdkit_error ("cc: creating %s: %m", tmpl);
    return NULL;
  }
  while ((r = read (STDIN_FILENO, buf, sizeof buf)) != 0) {
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1 || write (fd, buf, r) != r) {
      nbdkit_error ("cc: copying standard input to %s: %m", tmpl);
      close (fd);
      unlink (tmpl);
      return NULL;
    }
  }
  if (close (fd) == -1) {
    nbdkit_error ("cc: %s: %m", tmpl);
    unlink (tmpl);
    return NULL;
  }
  return strdup (tmpl);
}

static int
cc_config (const char *key, const char *value)
{
  if (strcmp (key, "script") == 0) {
    if (script) {
      nbdkit_error ("cc: only one source file may be given (script=%s"
                    " and then %s)",
                    script, value);
      return -1;
    }
    if (strcmp (value, "-") == 0) {
      from_stdin = read_stdin ();
      if (from_stdin == NULL)
        return -1;
      script = strdup (from_stdin);
    } else {
      script = nbdkit_realpath (value);
      if (script == NULL)
        return -1;
    }
    if (script == NULL) {
      nbdkit_error ("strdup: %m");
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "CC") == 0)
    cc_cmd = value;
  else if (strcmp (key, "CFLAGS") == 0)
    cflags = value;
  else if (strcmp (key, "EXTRA_CFLAGS") == 0)
    extra_cflags = value;
  else {
    char **k = realloc (keys, (nparams + 1) * sizeof *keys);
    if (k)
      keys = k;
    char **v = realloc (values, (nparams + 1) * sizeof *values);
    if (v)
      values = v;
    if (k == NULL || v == NULL) {
      nbdkit_error ("realloc: %m");
      return -1;
    }
    keys[nparams] = strdup (key);
    values[nparams] = strdup (value);
    nparams++;
    if (keys[nparams - 1] == NULL || values[nparams - 1] == NULL) {
      nbdkit_error ("strdup: %m");
      return -1;
    }
  }
  return 0;
}

/* Where <nbdkit-plugin.h> is: the source and build trees when this
 * plugin runs from the build tree, else the installed include
 * directory, found relative to this plugin so the tree can move.
 */
static void
include_flags (FILE *fp)
{
  Dl_info info;
  char dir[PATH_MAX];

  if (dladdr ((void *)include_flags, &info) && info.dli_fname
      && strlen (info.dli_fname) < sizeof dir) {
    strcpy (dir, info.dli_fname);
    char *slash = strrchr (dir, '/');
    if (slash)
      *slash = '\0';
    if (strcmp (dir, CC_BUILD_PLUGINDIR) == 0) {
      fprintf (fp, " -I%s -I%s", CC_SOURCE_ABIDIR, CC_BUILD_ABIDIR);
      return;
    }
    fprintf (fp, " -I%s/%s", dir, CC_PLUGINDIR_TO_INCLUDEDIR);
  }
  fprintf (fp, " -I%s", CC_INCLUDEDIR);
}

/* Single quotes for /bin/sh. */
static void
shell_quote (FILE *fp, const char *s)
{
  fputc ('\'', fp);
  for (; *s; s++)
    if (*s == '\'')
      fputs ("'\\''", fp);
    else
      fputc (*s, fp);
  fputc ('\'', fp);
}

static int
compile (void)
{
  char tmpl[PATH_MAX];
  const char *dir = getenv ("TMPDIR");
  char *cmd = NULL;
  size_t len = 0;
  FILE *fp;
  int fd, status;

  if (snprintf (tmpl, sizeof tmpl, "%s/nbdkit-cc-XXXXXX.so",
                dir && *dir ? dir : "/tmp")
      >= (int)sizeof tmpl) {
    nbdkit_error ("cc: TMPDIR is too long");
    return -1;
  }
  fd = mkstemps (tmpl, 3);
  if (fd == -1) {
    nbdkit_error ("cc: creating %s: %m", tmpl);
    return -1;
  }
  close (fd);
  compiled = strdup (tmpl);
  if (compiled == NULL) {
    nbdkit_error ("strdup: %m");
    unlink (tmpl);
    return -1;
  }

  /* CC and the flags are words for the shell, as in a Makefile. */
  fp = open_memstream (&cmd, &len);
  if (fp == NULL) {
    nbdkit_error ("open_memstream: %m");
    return -1;
  }
  fprintf (fp, "%s %s", cc_cmd ? cc_cmd : CC_DEFAULT_CC,
           cflags ? cflags : CC_DEFAULT_CFLAGS);
  if (extra_cflags)
    fprintf (fp, " %s", extra_cflags);
  include_flags (fp);
  fputc (' ', fp);
  shell_quote (fp, script);
  fputs (" -o ", fp);
  shell_quote (fp, compiled);
  if (fclose (fp) == EOF) {
    nbdkit_error ("cc: %m");
    free (cmd);
    return -1;
  }

  nbdkit_debug ("cc: %s", cmd);
  fflush (NULL);
  status = system (cmd);
  if (status == -1) {
    nbdkit_error ("cc: running the compiler: %m");
    free (cmd);
    return -1;
  }
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0) {
    unlink (compiled);
    if (WIFEXITED (status))
      nbdkit_error ("cc: compiling %s failed: the compiler exited with"
                    " status %d (command: %s)",
                    from_stdin ? "standard input" : script,
                    WEXITSTATUS (status), cmd);
    else
      nbdkit_error ("cc: compiling %s failed: the compiler was killed by"
                    " signal %d (command: %s)",
                    from_stdin ? "standard input" : script, WTERMSIG (status),
                    cmd);
    free (cmd);
    return -1;
  }
  free (cmd);
  return 0;
}

static int
cc_config_complete (void)
{
  if (script == NULL) {
    nbdkit_error ("cc: no source file given: 'nbdkit cc FILE.c' or"
                  " 'nbdkit cc -' to read it from standard input");
    return -1;
  }

  if (is_ocaml ()) {
    /* The OCaml host compiles the script (and caches the result); it
     * takes it as its script parameter, first.
     */
    const char **k = calloc (nparams + 1, sizeof *k);
    const char **v = calloc (nparams + 1, sizeof *v);
    int r;

    if (k == NULL || v == NULL) {
      nbdkit_error ("calloc: %m");
      free (k);
      free (v);
      return -1;
    }
    if (cc_cmd || cflags || extra_cflags)
      nbdkit_debug ("cc: an OCaml source is compiled by the OCaml host;"
                    " CC, CFLAGS and EXTRA_CFLAGS are not used");
    k[0] = "script";
    v[0] = script;
    for (size_t i = 0; i < nparams; i++) {
      k[i + 1] = keys[i];
      v[i + 1] = values[i];
    }
    r = nbdkit_hand_over ("ocaml", nparams + 1, k, v);
    free (k);
    free (v);
    return r;
  }

  if (compile () == -1)
    return -1;
  return nbdkit_hand_over (compiled, nparams, (const char *const *)keys,
                           (const char *const *)values);
}

/* The temporary files go when this plugin is unloaded (by then the
 * compiled plugin is loaded) or, if the server stops on an error
 * first, when the process exits.
 */
static void
remove_temporary_files (void)
{
  if (compiled)
    unlink (compiled);
  if (from_stdin)
    unlink (from_stdin);
  free (compiled);
  free (from_stdin);
  compiled = from_stdin = NULL;
}

__attribute__ ((destructor)) static void
at_exit_or_dlclose (void)
{
  remove_temporary_files ();
}

static void
cc_unload (void)
{
  remove_temporary_files ();
  free (script);
  for (size_t i = 0; i < nparams; i++) {
    free (keys[i]);
    free (values[i]);
  }
  free (keys);
  free (values);
}

static void
cc_dump_plugin (void)
{
  printf ("CC=%s\n", CC_DEFAULT_CC);
  printf ("CFLAGS=%s\n", CC_DEFAULT_CFLAGS);
}

static const char *
cc_config_help (void)
{
  return "FILE.c | -           (required) the plugin's source; '-' reads it"
         " from standard input\n"
         "CC=<COMMAND>         the compiler (default: " CC_DEFAULT_CC ")\n"
         "CFLAGS=<FLAGS>       replace the default flags (" CC_DEFAULT_CFLAGS
         ")\n"
         "EXTRA_CFLAGS=<FLAGS> added to the flags\n"
         "Every other key=value goes to the compiled plugin.";
}

/* Never called: the compiled plugin serves in this one's place. */
static int64_t
cc_get_size (void *handle)
{
  (void)handle;
  nbdkit_error ("cc: no plugin was compiled");
  return -1;
}

static int
cc_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
          uint32_t flags, struct nbdkit_read *rd)
{
  (void)handle, (void)buf, (void)count, (void)offset, (void)flags, (void)rd;
  nbdkit_error ("cc: no plugin was compiled");
  return -1;
}

static struct nbdkit_plugin plugin = {
  .name = "cc",
  .longname = "nbdkit C plugin compiler",
  .description = "Compile a plugin given as source (C, C++, OCaml) and"
                 " serve it.",
  .magic_config_key = "script",
  .config = cc_config,
  .config_complete = cc_config_complete,
  .config_help = cc_config_help,
  .unload = cc_unload,
  .dump_plugin = cc_dump_plugin,
  .get_size = cc_get_size,
  .pread = cc_pread,
};

NBDKIT_REGISTER_PLUGIN (plugin)
