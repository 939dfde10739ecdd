/* cmdline.c: the words of the nbdkit command line after its options
 * (options.c): the plugin and filters are found (a script by its
 * language host), loaded and configured with the key=value parameters,
 * -D flags are set, and --help, --version, --dump-config and
 * --dump-plugin are answered.
 */

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "internal.h"
#include "options.h"

static void
dump_config (struct server *s)
{
  struct utsname u;
  char exe[PATH_MAX];
  ssize_t n = readlink ("/proc/self/exe", exe, sizeof exe - 1);

  exe[n > 0 ? n : 0] = '\0';
  uname (&u);
  /* version= and version_major/minor are the nbdkit release whose
   * behaviour we match, as tools compare them with nbdkit's; the
   * project's own version is project_version=.
   */
  printf ("api_versions=1,2,3\n");
  printf ("binary=%s\n", exe);
  printf ("bindir=%s\n", NBDKIT_BINDIR);
  printf ("exit_with_parent=yes\n");
  printf ("extended_headers=yes\n");
  printf ("filterdir=%s\n", server_filterdir ());
  printf ("host_cpu=%s\n", u.machine);
  printf ("host_os=linux-gnu\n");
  printf ("libdir=%s\n", NBDKIT_LIBDIR);
  printf ("mandir=%s\n", NBDKIT_MANDIR);
  printf ("name=nbdkit\n");
  printf ("plugindir=%s\n", server_plugindir ());
  printf ("project_version=%s\n", NBDKIT_VERSION);
  /* Where tls.c looks when root gives no --tls-certificates. */
  printf ("root_tls_certificates_dir=/etc/pki/nbdkit\n");
  printf ("sbindir=%s\n", NBDKIT_SBINDIR);
  printf ("selinux=no\n");
  printf ("sysconfdir=%s\n", NBDKIT_SYSCONFDIR);
  printf ("thread_models=serialize_connections,serialize_all_requests,"
          "serialize_requests,serialize_retirement,parallel\n");
  printf ("tls=yes\n");
  printf ("version=%s\n", NBDKIT_COMPAT_VERSION);
  printf ("version_major=%d\n", NBDKIT_COMPAT_VERSION_MAJOR);
  printf ("version_minor=%d\n", NBDKIT_COMPAT_VERSION_MINOR);
  printf ("zero_copy_reads=yes\n");
  printf ("zstd=no\n");
}

/* "nbdkit 1.34.0 (project 3.0.0)": the nbdkit release we match first,
 * for scripts that parse it, then our own version.
 */
static void
print_version (void)
{
  printf ("nbdkit %s (project %s)\n", NBDKIT_COMPAT_VERSION, NBDKIT_VERSION);
}

/* Which language host runs a script: by extension, else by its "#!"
 * line.  NULL if PATH is not a script we know.
 */
static const char *
script_host (const char *path)
{
  static const struct {
    const char *ext, *host;
  } exts[] = {
    { ".py", "python" },  { ".lua", "lua" }, { ".ml", "ocaml" },
    { ".cmxs", "ocaml" }, { ".sh", "sh" },
  };
  static const char *hosts[] = { "python", "lua", "ocaml", "sh" };
  const char *dot = strrchr (path, '.');
  char line[256];
  FILE *fp;

  if (access (path, R_OK) == -1)
    return NULL;
  if (dot && !strchr (dot, '/'))
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
      if (strcmp (dot, exts[i].ext) == 0)
        return exts[i].host;
  fp = fopen (path, "re");
  if (fp == NULL)
    return NULL;
  if (fgets (line, sizeof line, fp) == NULL || strncmp (line, "#!", 2) != 0) {
    fclose (fp);
    return NULL;
  }
  fclose (fp);
  /* "#!/usr/bin/nbdkit python", "#!/usr/bin/env python3", ... */
  for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++)
    if (strstr (line, hosts[i]))
      return hosts[i];
  if (strstr (line, "/bin/sh") || strstr (line, "bash"))
    return "sh";
  return NULL;
}

/* A plugin or filter shipped as a script, found by its short name in
 * DIR beside the .so files (nbdkit-NAME-KIND.so wins).  Returns the
 * script's path (lives as long as the server), else NAME unchanged.
 */
static const char *
find_script (struct server *s, const char *dir, const char *name,
             const char *kind)
{
  static const char *exts[] = { "lua", "py", "ml" };
  char path[PATH_MAX];

  if (strpbrk (name, "/.") || *name == '\0')
    return name;
  if (snprintf (path, sizeof path, "%s/nbdkit-%s-%s.so", dir, name, kind)
          >= (int)sizeof path
      || access (path, F_OK) == 0)
    return name;
  for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
    if (snprintf (path, sizeof path, "%s/%s.%s", dir, name, exts[i])
            < (int)sizeof path
        && access (path, R_OK) == 0) {
      const char *r;
      thread_ctx_set (s, NULL, NULL);
      r = nbdkit_strdup_intern (path);
      return r ? r : name;
    }
  }
  return name;
}

/* Pick up the layer's parameter declarations again, keeping the
 * counts of keys already seen (matched by name).
 */
int
refresh_params (struct backend *b)
{
  const struct nbdkit_param *np = b->ops->params (b);
  size_t n = np ? param_count (np) : 0;
  unsigned *seen;

  if (np == b->params && (np == NULL || b->params_seen))
    return 0;
  seen = calloc (n + 1, sizeof *seen);
  if (seen == NULL) {
    log_error (b->server, "calloc: %m");
    return -1;
  }
  for (size_t i = 0; i < n && b->params && b->params_seen; i++)
    for (size_t j = 0; b->params[j].name; j++)
      if (strcmp (np[i].name, b->params[j].name) == 0)
        seen[i] = b->params_seen[j];
  free (b->params_seen);
  b->params_seen = seen;
  b->params = np;
  return 0;
}

/* Apply one key=value to backend B: typed parameters are checked and
 * converted first; the plugin's config then sees the canonical value.
 */
int
config_one (struct backend *b, const char *key, const char *value)
{
  char *canon = NULL;
  int r;

  /* Messages about parameters name the plugin themselves. */
  thread_ctx_set (b->server, NULL, NULL);
  if (b->params) {
    r = param_parse (b->name, b->params, b->params_seen, key, value, &canon);
    if (r == -2) {
      log_error (b->server,
                 "%s: unknown parameter '%s' (see 'nbdkit %s%s"
                 " --help' for the parameters it takes)",
                 b->name, key, b->is_filter ? "--filter=" : "", b->given);
      return -1;
    }
    if (r == -1)
      return -1;
  }
  thread_ctx_set (b->server, NULL, b->name);
  r = b->ops->config (b, key, canon ? canon : value);
  thread_ctx_set (b->server, NULL, NULL);
  free (canon);
  if (r == 0)
    r = refresh_params (b);
  return r;
}

/* Is ARG a bare value rather than key=value?  As in nbdkit, only a
 * key name before the '=' makes a key: a letter, then letters, digits,
 * '.', '_' or '-'.  So "a=b" is a key, and '"a=b"' or "./x=y" values.
 */
static bool
is_bare (const char *arg)
{
  const char *eq = strchr (arg, '=');
  size_t n;

  if (eq == NULL)
    return true;
  n = eq - arg;
  if (n == 0
      || !((arg[0] >= 'a' && arg[0] <= 'z')
           || (arg[0] >= 'A' && arg[0] <= 'Z')))
    return true;
  return strspn (arg, "abcdefghijklmnopqrstuvwxyz"
                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                      "0123456789._-")
         < n;
}

/* The layer a key belongs to: the first filter that declares it, else
 * the plugin.
 */
static struct backend *
owner_of (struct server *s, const char *key)
{
  for (struct backend *l = s->top; l != s->plugin; l = l->next)
    if (l->params)
      for (const struct nbdkit_param *p = l->params; p->name; p++)
        if (strcmp (p->name, key) == 0)
          return l;
  return s->plugin;
}

/* Apply ARGS[FROM..TO): bare values to the plugin's magic key, each
 * key=value to the layer that declares the key.
 */
static int
configure (struct server *s, char **args, int from, int to)
{
  struct backend *b = s->plugin;

  for (int i = from; i < to; i++) {
    const char *a = args[i], *eq = strchr (a, '=');
    int r;
    if (is_bare (a)) {
      /* Without a magic key, a bare first word is the script, as in
       * nbdkit ("nbdkit perl foo.pl").
       */
      if (b->magic_config_key == NULL && i == from)
        r = config_one (b, "script", a);
      else if (b->magic_config_key == NULL) {
        log_error (s,
                   "%s: '%s' is not key=value, and this plugin"
                   " takes no bare parameter",
                   b->name, a);
        return -1;
      } else
        r = config_one (b, b->magic_config_key, a);
    } else {
      char *key = strndup (a, eq - a);
      if (key == NULL)
        return -1;
      r = config_one (owner_of (s, key), key, eq + 1);
      free (key);
    }
    if (r == -1)
      return -1;
  }
  return 0;
}

int
config_apply_default (void *opaque, const char *key, const char *canonical)
{
  struct backend *b = opaque;
  return b->ops->config (b, key, canonical);
}

/* -D NAME.FLAG=N: the form is checked as the option is read. */

/* The server's own flags, -D nbdkit.FLAG=N. */
static void
set_server_debug_flag (struct server *s, const char *flag, size_t len, int v)
{
  static const struct {
    const char *name;
    size_t offset;
  } flags[] = {
    { "backend.controlpath", offsetof (struct server, debug_controlpath) },
    { "backend.datapath", offsetof (struct server, debug_datapath) },
    { "tls.log", offsetof (struct server, debug_tls_log) },
    { "tls.session", offsetof (struct server, debug_tls_session) },
  };

  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
    if (strlen (flags[i].name) == len
        && strncmp (flags[i].name, flag, len) == 0) {
      *(int *)((char *)s + flags[i].offset) = v;
      return;
    }
  log_warning (s, "-D nbdkit.%.*s: the server has no such debug flag", (int)len,
               flag);
}

/* PLUGIN.FLAG=N sets the int PLUGIN_debug_FLAG in the plugin or
 * filter of that name ('.' and '-' in FLAG become '_').  Flags that
 * name nothing are warned about, as nbdkit does.
 */
static int
set_debug_flag (struct server *s, const char *arg)
{
  const char *dot = strchr (arg, '.'), *eq = strchr (arg, '=');
  size_t nlen = dot - arg, flen = eq - dot - 1;
  bool used = false;
  char *sym;
  int *p, v;

  if (nbdkit_parse_int ("-D", eq + 1, &v) == -1)
    return -1;
  if (nlen == 6 && strncmp (arg, "nbdkit", 6) == 0) {
    set_server_debug_flag (s, dot + 1, flen, v);
    return 0;
  }
  if (asprintf (&sym, "%.*s_debug_%.*s", (int)nlen, arg, (int)flen, dot + 1)
      == -1)
    return -1;
  for (char *q = sym; *q; q++)
    if (*q == '-' || *q == '.')
      *q = '_';
  for (struct backend *b = s->top; b; b = b->next) {
    if (strncmp (b->name, arg, nlen) != 0 || b->name[nlen])
      continue;
    used = true;
    p = b->dl ? dlsym (b->dl, sym) : NULL;
    if (p)
      *p = v;
    else
      log_warning (s,
                   "-D %.*s: %s does not contain a global variable called %s",
                   (int)(eq - arg), arg, b->name, sym);
  }
  if (!used)
    log_warning (s, "debug flag -D %.*s was not used", (int)(eq - arg), arg);
  free (sym);
  return 0;
}

static void
plugin_help (struct backend *b)
{
  const char *h = b->ops->config_help (b);

  printf ("%s", b->name);
  if (b->longname)
    printf (" (%s)", b->longname);
  printf ("\n");
  if (b->description)
    printf ("%s\n", b->description);
  printf ("\n");
  if (b->params && param_count (b->params) > 0) {
    printf ("Parameters:\n");
    param_help (stdout, b->params);
  }
  if (h && *h) {
    if (b->params)
      printf ("\n");
    printf ("%s\n", h);
  }
  if (b->magic_config_key)
    printf ("\nA bare value is taken as %s=VALUE.\n", b->magic_config_key);
}

/* After the options: load the chain (filters in command-line order,
 * then the plugin), answer --help, --version and --dump-plugin, or
 * configure every layer.
 */
static enum cmdline_result
load_and_configure (struct server *s, const struct cmdline *cl, int *status)
{
  if (cl->dump_config) {
    dump_config (s);
    *status = 0;
    return CMDLINE_DONE;
  }
  if (cl->nargs == 0) {
    if (cl->help) {
      usage (stdout);
      *status = 0;
      return CMDLINE_DONE;
    }
    if (cl->version) {
      print_version ();
      *status = 0;
      return CMDLINE_DONE;
    }
    log_error (s, "no plugin given: try 'nbdkit --help'");
    return CMDLINE_ERROR;
  }

  /* A script runs under its language host, which takes the script as
   * its bare parameter.
   */
  const char *plugin_name
      = find_script (s, server_plugindir (), cl->args[0], "plugin");
  int first_param = 1;
  cl->args[0] = (char *)plugin_name;
  const char *host = strchr (plugin_name, '/') || strchr (plugin_name, '.')
                         ? script_host (plugin_name)
                         : NULL;
  if (host
      && !(strlen (plugin_name) > 3
           && !strcmp (plugin_name + strlen (plugin_name) - 3, ".so"))) {
    plugin_name = host;
    first_param = 0;
  }

  /* The chain: filters in command-line order (the first is nearest
   * the client), then the plugin.
   */
  struct backend **link = &s->top;
  for (int i = 0; i < cl->nfilters; i++) {
    const char *fname
        = find_script (s, server_filterdir (), cl->filters[i], "filter");
    const char *fhost = strchr (fname, '.') ? script_host (fname) : NULL;
    bool is_so
        = strlen (fname) > 3 && strcmp (fname + strlen (fname) - 3, ".so") == 0;
    struct backend *f = filter_load (s, fhost && !is_so ? fhost : fname);
    if (f == NULL)
      return CMDLINE_ERROR;
    *link = f;
    link = &f->next;
    if (refresh_params (f) == -1)
      return CMDLINE_ERROR;
    thread_ctx_set (s, NULL, f->name);
    f->ops->load (f);
    thread_ctx_set (s, NULL, NULL);
    /* A script filter: its host takes the script first. */
    if (fhost && !is_so && config_one (f, "script", fname) == -1)
      return CMDLINE_ERROR;
    /* Found by its short name, it goes by that name in messages, -v
     * traces and -D flags, as the filter nbdkit users know.
     */
    if (fname != cl->filters[i])
      f->name = f->given = cl->filters[i];
  }
  s->plugin = *link = plugin_load (s, plugin_name);
  if (s->plugin == NULL)
    return CMDLINE_ERROR;
  struct backend *b = s->plugin;
  if (refresh_params (b) == -1)
    return CMDLINE_ERROR;
  thread_ctx_set (s, NULL, b->name);
  b->ops->load (b);
  thread_ctx_set (s, NULL, NULL);

  for (int i = 0; i < cl->ndebug; i++)
    if (set_debug_flag (s, cl->debug_args[i]) == -1)
      return CMDLINE_ERROR;

  if (cl->version) {
    print_version ();
    /* Layers that come with the server carry its versions; others
     * their own.
     */
    for (struct backend *l = s->top; l; l = l->next)
      if (l->version == NULL || strcmp (l->version, NBDKIT_VERSION) == 0)
        printf ("%s %s (project %s)\n", l->name, NBDKIT_COMPAT_VERSION,
                NBDKIT_VERSION);
      else
        printf ("%s %s\n", l->name, l->version);
    *status = 0;
    return CMDLINE_DONE;
  }
  /* A script given to a language host is what --help and --dump-plugin
   * describe: load it first.
   */
  if (cl->help && first_param < cl->nargs && is_bare (cl->args[first_param])
      && b->magic_config_key) {
    if (configure (s, cl->args, first_param, first_param + 1) == -1)
      return CMDLINE_ERROR;
  }
  /* --dump-plugin sees every parameter (a filter's may change the
   * thread model), but nothing checks that required ones are there.
   */
  if (cl->dump_plugin && configure (s, cl->args, first_param, cl->nargs) == -1)
    return CMDLINE_ERROR;
  if (cl->help) {
    for (struct backend *l = s->top; l; l = l->next) {
      plugin_help (l);
      if (l->next)
        printf ("\n");
    }
    *status = 0;
    return CMDLINE_DONE;
  }
  if (cl->dump_plugin) {
    if (dump_plugin (s, b) == -1)
      return CMDLINE_ERROR;
    *status = 0;
    return CMDLINE_DONE;
  }

  if (configure (s, cl->args, first_param, cl->nargs) == -1)
    return CMDLINE_ERROR;
  for (struct backend **lp = &s->top; *lp; lp = &(*lp)->next) {
    struct backend *l = *lp;
    if (l->params
        && param_finish (l->name, l->params, l->params_seen,
                         config_apply_default, l)
               == -1)
      return CMDLINE_ERROR;
    if (layer_config_complete (lp) == -1)
      return CMDLINE_ERROR;
  }
  return CMDLINE_RUN;
}

enum cmdline_result
cmdline_parse (struct server *s, int argc, char **argv, int *status)
{
  struct cmdline cl = { .nargs = 0 };
  enum cmdline_result r;

  *status = EXIT_FAILURE;
  r = options_parse (s, argc, argv, &cl, status);
  if (r != CMDLINE_RUN) {
    free (cl.args);
    return r;
  }
  r = load_and_configure (s, &cl, status);
  free (cl.args);
  if (r == CMDLINE_ERROR)
    *status = EXIT_FAILURE;
  return r;
}
