/* cmdline.c: the nbdkit command line.  Options may come before or
 * after the plugin and its key=value parameters ("--" ends options);
 * the plugin is loaded and configured here, and --help, --version,
 * --dump-config and --dump-plugin are answered.
 */

#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "internal.h"

enum {
  OPT_DUMP_CONFIG = 256,
  OPT_DUMP_PLUGIN,
  OPT_EXIT_WITH_PARENT,
  OPT_FILTER,
  OPT_FD,
  OPT_LOG,
  OPT_MASK_HANDSHAKE,
  OPT_NO_SR,
  OPT_NO_MC,
  OPT_NO_EH,
  OPT_PRINT_URI,
  OPT_RUN,
  OPT_TIMEOUT,
  OPT_KEEPALIVE,
  OPT_VSOCK,
  OPT_SWAP,
  OPT_TLS,
  OPT_TLS_CERTS,
  OPT_TLS_PSK,
  OPT_TLS_VERIFY,
  OPT_HELP,
  OPT_NO_HANDSHAKE,
  OPT_SELINUX,
  OPT_REVERSE,
  OPT_LONG_OPTIONS,
  OPT_SHORT_OPTIONS,
};

static const char short_opts[] = "+46D:e:fg:i:noP:p:rst:u:U:vV";
static const struct option long_opts[] = {
  { "debug", required_argument, NULL, 'D' },
  { "dump-config", no_argument, NULL, OPT_DUMP_CONFIG },
  { "dump-plugin", no_argument, NULL, OPT_DUMP_PLUGIN },
  { "exit-with-parent", no_argument, NULL, OPT_EXIT_WITH_PARENT },
  { "export", required_argument, NULL, 'e' },
  { "exportname", required_argument, NULL, 'e' },
  { "export-name", required_argument, NULL, 'e' },
  { "fd", required_argument, NULL, OPT_FD },
  { "filter", required_argument, NULL, OPT_FILTER },
  { "foreground", no_argument, NULL, 'f' },
  { "no-fork", no_argument, NULL, 'f' },
  { "group", required_argument, NULL, 'g' },
  { "help", no_argument, NULL, OPT_HELP },
  { "ipaddr", required_argument, NULL, 'i' },
  { "ip-addr", required_argument, NULL, 'i' },
  { "ipv4-only", no_argument, NULL, '4' },
  { "ipv6-only", no_argument, NULL, '6' },
  { "keepalive", no_argument, NULL, OPT_KEEPALIVE },
  { "log", required_argument, NULL, OPT_LOG },
  { "long-options", no_argument, NULL, OPT_LONG_OPTIONS },
  { "mask-handshake", required_argument, NULL, OPT_MASK_HANDSHAKE },
  { "newstyle", no_argument, NULL, 'n' },
  { "new-style", no_argument, NULL, 'n' },
  { "no-sr", no_argument, NULL, OPT_NO_SR },
  { "no-structured-replies", no_argument, NULL, OPT_NO_SR },
  { "no-mc", no_argument, NULL, OPT_NO_MC },
  { "no-meta-contexts", no_argument, NULL, OPT_NO_MC },
  { "no-eh", no_argument, NULL, OPT_NO_EH },
  { "no-extended-headers", no_argument, NULL, OPT_NO_EH },
  { "no-handshake", no_argument, NULL, OPT_NO_HANDSHAKE },
  { "oldstyle", no_argument, NULL, 'o' },
  { "old-style", no_argument, NULL, 'o' },
  { "pidfile", required_argument, NULL, 'P' },
  { "pid-file", required_argument, NULL, 'P' },
  { "port", required_argument, NULL, 'p' },
  { "print-uri", no_argument, NULL, OPT_PRINT_URI },
  { "readonly", no_argument, NULL, 'r' },
  { "read-only", no_argument, NULL, 'r' },
  { "reverse", no_argument, NULL, OPT_REVERSE },
  { "run", required_argument, NULL, OPT_RUN },
  { "selinux-label", required_argument, NULL, OPT_SELINUX },
  { "short-options", no_argument, NULL, OPT_SHORT_OPTIONS },
  { "single", no_argument, NULL, 's' },
  { "stdin", no_argument, NULL, 's' },
  { "swap", no_argument, NULL, OPT_SWAP },
  { "threads", required_argument, NULL, 't' },
  { "timeout", required_argument, NULL, OPT_TIMEOUT },
  { "tls", required_argument, NULL, OPT_TLS },
  { "tls-certificates", required_argument, NULL, OPT_TLS_CERTS },
  { "tls-psk", required_argument, NULL, OPT_TLS_PSK },
  { "tls-verify-peer", no_argument, NULL, OPT_TLS_VERIFY },
  { "unix", required_argument, NULL, 'U' },
  { "user", required_argument, NULL, 'u' },
  { "verbose", no_argument, NULL, 'v' },
  { "version", no_argument, NULL, 'V' },
  { "vsock", no_argument, NULL, OPT_VSOCK },
  { NULL, 0, NULL, 0 },
};

static void
usage (FILE *fp)
{
  fprintf (
      fp,
      "nbdkit - a Network Block Device server with plugins\n"
      "\n"
      "Usage:\n"
      "  nbdkit [-U SOCKET | -p PORT [-i ADDR]... | -s | --fd N] [OPTIONS]\n"
      "         [--filter=FILTER ...] PLUGIN [key=value ...]\n"
      "  nbdkit PLUGIN --help           the plugin's parameters\n"
      "  nbdkit SCRIPT.{py,lua,ml} ...  a script, run by its language host\n"
      "\n"
      "Where clients connect:\n"
      "  -U, --unix SOCKET      a Unix socket ('-' for a private one)\n"
      "  -p, --port PORT        TCP port (default 10809)\n"
      "  -i, --ipaddr ADDR      listen on this address (repeatable)\n"
      "  -4, -6, --ipv4-only, --ipv6-only\n"
      "                         IPv4 or IPv6 only\n"
      "  --vsock                AF_VSOCK (port from -p)\n"
      "  -s, --single           one client on stdin/stdout\n"
      "  --fd N                 one client on the connected socket N\n"
      "  --reverse              connect out to the client at -U or -p/-i,\n"
      "                         which waits for its server to call; serve it,\n"
      "                         then exit\n"
      "  --no-handshake         with -s or --fd: the client has negotiated\n"
      "                         already; serve -e EXPORT at once\n"
      "Running:\n"
      "  --run CMD              run CMD with $uri, $nbd, $unixsocket, $port,\n"
      "                         $exportname set; exit when it does, with its "
      "status\n"
      "  -f, --foreground       do not go into the background\n"
      "  -P, --pidfile FILE     write the pid once ready for clients\n"
      "  --swap                 lock the server in memory (mlockall), to "
      "serve\n"
      "                         swap space on this machine\n"
      "  --exit-with-parent     exit when the parent process does\n"
      "  -u, --user USER        -g, --group GROUP   change identity after "
      "binding\n"
      "  -t, --threads N        threads per connection (default 16)\n"
      "  --timeout SECS         drop clients whose handshake takes longer\n"
      "  --keepalive            TCP keepalive on client sockets\n"
      "  --print-uri            print the URI clients connect to\n"
      "Protocol:\n"
      "  -e, --exportname NAME  export name for $uri and --no-handshake\n"
      "  -r, --readonly         refuse writes\n"
      "  -n, --newstyle         the newstyle handshake (the default)\n"
      "  -o, --oldstyle         the oldstyle handshake: no export names, no "
      "TLS\n"
      "  --mask-handshake N     0 to withhold NO_ZEROES from the greeting\n"
      "  --no-sr, --no-mc, --no-eh\n"
      "                         refuse structured replies, meta contexts,\n"
      "                         extended headers\n"
      "  --tls off|on|require   TLS (see --tls-certificates, --tls-psk)\n"
      "Other:\n"
      "  -v, --verbose          debug messages\n"
      "  -D, --debug P.FLAG=N   set a plugin's debug flag\n"
      "  --log stderr|syslog|null\n"
      "  --dump-config          facts about this build\n"
      "  --dump-plugin          facts about PLUGIN\n"
      "  -V, --version          the version (and the plugin's)\n"
      "  --long-options, --short-options\n"
      "                         list the options, one a line\n");
}

/* The directory the running program is in ("" if unknown). */
static void
exe_dir (char *dir, size_t len)
{
  ssize_t n = readlink ("/proc/self/exe", dir, len - 1);
  char *slash;

  dir[n > 0 ? n : 0] = '\0';
  slash = strrchr (dir, '/');
  if (slash)
    *slash = '\0';
}

/* Plugins and filters come from the build tree when the program runs
 * from there, so nothing needs installing to try it; an installed
 * program finds them relative to itself, so the tree can be moved.
 * Worked out once per process: it depends only on where the program
 * is and on the environment at start.
 */
static char plugindir[PATH_MAX], filterdir[PATH_MAX];
static pthread_once_t dirs_once = PTHREAD_ONCE_INIT;

static void
layer_dir (char *out, const char *env, const char *build_sub,
           const char *from_bin, const char *configured)
{
  const char *e = getenv (env);
  char dir[PATH_MAX];

  exe_dir (dir, sizeof dir);
  if (e && *e && strlen (e) < PATH_MAX) {
    strcpy (out, e);
    return;
  }
  if (strcmp (dir, NBDKIT_BUILD_DIR) == 0
      && snprintf (out, PATH_MAX, "%s/%s", NBDKIT_BUILD_DIR, build_sub)
             < PATH_MAX)
    return;
  if (*dir && snprintf (out, PATH_MAX, "%s/%s", dir, from_bin) < PATH_MAX
      && access (out, X_OK) == 0)
    return;
  snprintf (out, PATH_MAX, "%s", configured);
}

static void
find_dirs (void)
{
  layer_dir (plugindir, "NBDKIT_PLUGINDIR", "plugins", NBDKIT_BIN_TO_PLUGINDIR,
             NBDKIT_PLUGINDIR);
  layer_dir (filterdir, "NBDKIT_FILTERDIR", "filters", NBDKIT_BIN_TO_FILTERDIR,
             NBDKIT_FILTERDIR);
}

const char *
server_plugindir (void)
{
  pthread_once (&dirs_once, find_dirs);
  return plugindir;
}

const char *
server_filterdir (void)
{
  pthread_once (&dirs_once, find_dirs);
  return filterdir;
}

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

static void
print_long_options (void)
{
  for (size_t i = 0; long_opts[i].name; i++)
    if (long_opts[i].val != OPT_LONG_OPTIONS
        && long_opts[i].val != OPT_SHORT_OPTIONS)
      printf ("--%s\n", long_opts[i].name);
}

static void
print_short_options (void)
{
  for (const char *p = short_opts; *p; p++)
    if (*p != ':' && *p != '+')
      printf ("-%c\n", *p);
}

/* Is this process socket activated (LISTEN_PID is us)? */
static bool
socket_activated (void)
{
  const char *pid = getenv ("LISTEN_PID"), *fds = getenv ("LISTEN_FDS");
  return pid && fds && atoi (pid) == getpid ();
}

/* Make *PATH absolute, if set and relative; the copy lives as long as
 * the server.
 */
static int
make_absolute (struct server *s, const char **path)
{
  char *abs;

  if (*path == NULL || **path == '/')
    return 0;
  thread_ctx_set (s, NULL, NULL);
  abs = nbdkit_absolute_path (*path);
  if (abs == NULL)
    return -1;
  *path = nbdkit_strdup_intern (abs);
  free (abs);
  return *path ? 0 : -1;
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
static int
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
static int
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

static int
apply_default (void *opaque, const char *key, const char *canonical)
{
  struct backend *b = opaque;
  return b->ops->config (b, key, canonical);
}

/* -D NAME.FLAG=N: the form is checked as the option is read. */
static int
check_debug_flag (struct server *s, const char *arg)
{
  const char *dot = strchr (arg, '.'), *eq = strchr (arg, '=');
  int v;

  if (dot == NULL || eq == NULL || dot == arg || eq < dot + 2
      || eq[1] == '\0') {
    log_error (s, "-D %s: a debug flag must have the format NAME.FLAG=N", arg);
    return -1;
  }
  return nbdkit_parse_int ("-D", eq + 1, &v);
}

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

int
cmdline_parse (struct server *s, int argc, char **argv, int *status)
{
  struct server_options *o = &s->opt;
  const char *filters[64];
  int nfilters = 0;
  const char *debug_args[64];
  int ndebug = 0;
  bool help = false, version = false, dump_cfg = false, dump_plg = false;
  int c;
  char **args = NULL;
  int nargs = 0;

  *status = 1;
  /* Collect options from anywhere on the line, and the other words in
   * order: the plugin, then its parameters.
   */
  args = calloc (argc + 2, sizeof *args);
  if (args == NULL)
    return -1;
  optind = 1;
  for (;;) {
    c = getopt_long (argc, argv, short_opts, long_opts, NULL);
    if (c == -1) {
      if (optind >= argc)
        break;
      if (strcmp (argv[optind - 1], "--") == 0) {
        while (optind < argc)
          args[nargs++] = argv[optind++];
        break;
      }
      args[nargs++] = argv[optind++];
      continue;
    }
    switch (c) {
      case '4':
        o->family = AF_INET;
        break;
      case '6':
        o->family = AF_INET6;
        break;
      case 'D':
        if (check_debug_flag (s, optarg) == -1)
          goto err;
        if (ndebug < 64)
          debug_args[ndebug++] = optarg;
        break;
      case 'e':
        o->exportname = optarg;
        break;
      case 'f':
        o->foreground = true;
        break;
      case 'g':
        o->group = optarg;
        break;
      case 'i':
        if (o->nipaddr >= MAX_LISTEN_ADDRS) {
          log_error (s, "-i: at most %d addresses", MAX_LISTEN_ADDRS);
          goto err;
        }
        o->ipaddr[o->nipaddr++] = optarg;
        break;
      case 'n':
        o->oldstyle = false;
        break;
      case 'o':
        o->oldstyle = true;
        break;
      case 'P':
        o->pidfile = optarg;
        break;
      case 'p':
        o->port = optarg;
        break;
      case 'r':
        o->readonly = true;
        break;
      case 's':
        o->single = true;
        break;
      case 't': {
        unsigned t;
        if (nbdkit_parse_unsigned ("-t", optarg, &t) == -1)
          goto err;
        if (t == 0 || t > 1024) {
          log_error (s, "-t %s: threads must be between 1 and 1024", optarg);
          goto err;
        }
        o->threads = t;
        break;
      }
      case 'u':
        o->user = optarg;
        break;
      case 'U':
        o->unixsocket = optarg;
        break;
      case 'v':
        o->verbose++;
        break;
      case 'V':
        version = true;
        break;
      case OPT_DUMP_CONFIG:
        dump_cfg = true;
        break;
      case OPT_DUMP_PLUGIN:
        dump_plg = true;
        break;
      case OPT_EXIT_WITH_PARENT:
        o->exit_with_parent = true;
        break;
      case OPT_FD:
        if (nbdkit_parse_int ("--fd", optarg, &o->fd) == -1)
          goto err;
        if (o->fd < 3) {
          log_error (s, "--fd %s: must be 3 or more (use -s for stdin)",
                     optarg);
          goto err;
        }
        break;
      case OPT_FILTER:
        if (nfilters < 64)
          filters[nfilters++] = optarg;
        break;
      case OPT_HELP:
        help = true;
        break;
      case OPT_KEEPALIVE:
        o->keepalive = true;
        break;
      case OPT_LOG:
        if (strcmp (optarg, "stderr") == 0)
          o->log_to = LOG_TO_STDERR;
        else if (strcmp (optarg, "syslog") == 0)
          o->log_to = LOG_TO_SYSLOG;
        else if (strcmp (optarg, "null") == 0)
          o->log_to = LOG_TO_NULL;
        else {
          log_error (s, "--log %s: expected stderr, syslog or null", optarg);
          goto err;
        }
        break;
      case OPT_MASK_HANDSHAKE: {
        unsigned m;
        if (nbdkit_parse_unsigned ("--mask-handshake", optarg, &m) == -1)
          goto err;
        o->mask_handshake = !(m & 2);
        break;
      }
      case OPT_NO_SR:
        o->no_sr = true;
        break;
      case OPT_NO_MC:
        o->no_mc = true;
        break;
      case OPT_NO_EH:
        o->no_eh = true;
        break;
      case OPT_NO_HANDSHAKE:
        o->transmission_only = true;
        break;
      case OPT_PRINT_URI:
        o->print_uri = true;
        break;
      case OPT_RUN:
        o->run = optarg;
        break;
      case OPT_SELINUX:
        log_error (s, "--selinux-label: SELinux is not supported by this"
                      " build");
        goto err;
      case OPT_SWAP:
        o->mlock = true;
        break;
      case OPT_REVERSE:
        o->reverse = true;
        break;
      case OPT_LONG_OPTIONS:
        print_long_options ();
        *status = 0;
        goto done;
      case OPT_SHORT_OPTIONS:
        print_short_options ();
        *status = 0;
        goto done;
      case OPT_TIMEOUT:
        if (nbdkit_parse_unsigned ("--timeout", optarg, &o->timeout) == -1)
          goto err;
        break;
      case OPT_TLS:
        if (strcmp (optarg, "off") == 0)
          o->tls = 0;
        else if (strcmp (optarg, "on") == 0)
          o->tls = 1;
        else if (strcmp (optarg, "require") == 0)
          o->tls = 2;
        else {
          log_error (s, "--tls %s: expected off, on or require", optarg);
          goto err;
        }
        break;
      case OPT_TLS_CERTS:
        o->tls_certificates = optarg;
        break;
      case OPT_TLS_PSK:
        o->tls_psk = optarg;
        break;
      case OPT_TLS_VERIFY:
        o->tls_verify_peer = true;
        break;
      case OPT_VSOCK:
        o->vsock = true;
        break;
      default:
        fprintf (stderr, "%s: try '%s --help'\n", s->program_name,
                 s->program_name);
        goto err;
    }
  }

  /* Under socket activation the sockets are given: options that say
   * where to listen make no sense, and the supervisor that started us
   * waits on this process, so it stays in the foreground.
   */
  if (socket_activated ()) {
    const char *bad = o->unixsocket ? "-U"
                      : o->port     ? "-p"
                      : o->nipaddr  ? "-i"
                      : o->single   ? "-s"
                      : o->run      ? "--run"
                      : o->vsock    ? "--vsock"
                      : o->fd >= 0  ? "--fd"
                      : o->reverse  ? "--reverse"
                                    : NULL;
    if (bad) {
      log_error (s, "cannot use socket activation with %s", bad);
      goto err;
    }
    o->foreground = true;
  }
  if (o->oldstyle && o->tls == 2) {
    log_error (s, "cannot use the oldstyle protocol (-o) and require TLS");
    goto err;
  }
  if (o->oldstyle && o->tls == 1) {
    log_debug (s, "-o: the oldstyle protocol has no TLS: serving without");
    o->tls = 0;
  }
  /* Paths on the command line are relative to where nbdkit was
   * started, not to "/" where it runs once in the background.
   */
  if (make_absolute (s, &o->pidfile) == -1
      || make_absolute (s, &o->tls_certificates) == -1
      || make_absolute (s, &o->tls_psk) == -1
      || (o->unixsocket && strcmp (o->unixsocket, "-") != 0
          && make_absolute (s, &o->unixsocket) == -1))
    goto err;

  /* As with nbdkit, credentials alone do not turn TLS on. */
  if ((o->tls_certificates || o->tls_psk) && o->tls == 0)
    log_debug (s, "TLS credentials given, but --tls is off");
  if (o->tls_certificates && o->tls_psk) {
    log_error (s, "choose one of --tls-certificates and --tls-psk");
    goto err;
  }

  if (dump_plg && (o->single || o->fd >= 0)) {
    log_error (s, "--dump-plugin cannot be used with -s or --fd: it prints"
                  " on stdout");
    goto err;
  }
  if (dump_cfg) {
    dump_config (s);
    *status = 0;
    goto done;
  }
  if (nargs == 0) {
    if (help) {
      usage (stdout);
      *status = 0;
      goto done;
    }
    if (version) {
      print_version ();
      *status = 0;
      goto done;
    }
    log_error (s, "no plugin given: try 'nbdkit --help'");
    goto err;
  }

  /* Conflicting ways of listening. */
  {
    int ways = !!o->unixsocket + !!(o->port || o->nipaddr) + o->single
               + (o->fd >= 0) + o->vsock;
    if (ways > 1) {
      log_error (s, "choose one of -U, -p/-i, -s, --fd and --vsock");
      goto err;
    }
    if (o->reverse && !o->unixsocket && !o->port && o->nipaddr == 0) {
      log_error (s, "--reverse needs -U SOCKET or -p PORT [-i HOST]: where to"
                    " connect to");
      goto err;
    }
    if (o->reverse && (o->single || o->fd >= 0 || o->vsock || o->run)) {
      log_error (s, "--reverse cannot be used with -s, --fd, --vsock or --run");
      goto err;
    }
    if (o->single && o->run) {
      log_error (s, "-s and --run cannot be used together");
      goto err;
    }
    if (o->transmission_only && !o->single && o->fd < 0) {
      log_error (s, "--no-handshake needs -s or --fd");
      goto err;
    }
  }

  /* A script runs under its language host, which takes the script as
   * its bare parameter.
   */
  const char *plugin_name
      = find_script (s, server_plugindir (), args[0], "plugin");
  int first_param = 1;
  args[0] = (char *)plugin_name;
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
  for (int i = 0; i < nfilters; i++) {
    const char *fname
        = find_script (s, server_filterdir (), filters[i], "filter");
    const char *fhost = strchr (fname, '.') ? script_host (fname) : NULL;
    bool is_so
        = strlen (fname) > 3 && strcmp (fname + strlen (fname) - 3, ".so") == 0;
    struct backend *f = filter_load (s, fhost && !is_so ? fhost : fname);
    if (f == NULL)
      goto err;
    *link = f;
    link = &f->next;
    if (refresh_params (f) == -1)
      goto err;
    thread_ctx_set (s, NULL, f->name);
    f->ops->load (f);
    thread_ctx_set (s, NULL, NULL);
    /* A script filter: its host takes the script first. */
    if (fhost && !is_so && config_one (f, "script", fname) == -1)
      goto err;
    /* Found by its short name, it goes by that name in messages, -v
     * traces and -D flags, as the filter nbdkit users know.
     */
    if (fname != filters[i])
      f->name = f->given = filters[i];
  }
  s->plugin = *link = plugin_load (s, plugin_name);
  if (s->plugin == NULL)
    goto err;
  struct backend *b = s->plugin;
  if (refresh_params (b) == -1)
    goto err;
  thread_ctx_set (s, NULL, b->name);
  b->ops->load (b);
  thread_ctx_set (s, NULL, NULL);

  for (int i = 0; i < ndebug; i++)
    if (set_debug_flag (s, debug_args[i]) == -1)
      goto err;

  if (version) {
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
    goto done;
  }
  /* A script given to a language host is what --help and --dump-plugin
   * describe: load it first.
   */
  if (help && first_param < nargs && is_bare (args[first_param])
      && b->magic_config_key) {
    if (configure (s, args, first_param, first_param + 1) == -1)
      goto err;
  }
  /* --dump-plugin sees every parameter (a filter's may change the
   * thread model), but nothing checks that required ones are there.
   */
  if (dump_plg && configure (s, args, first_param, nargs) == -1)
    goto err;
  if (help) {
    for (struct backend *l = s->top; l; l = l->next) {
      plugin_help (l);
      if (l->next)
        printf ("\n");
    }
    *status = 0;
    goto done;
  }
  if (dump_plg) {
    if (dump_plugin (s, b) == -1)
      goto err;
    *status = 0;
    goto done;
  }

  if (configure (s, args, first_param, nargs) == -1)
    goto err;
  for (struct backend *l = s->top; l; l = l->next) {
    if (l->params
        && param_finish (l->name, l->params, l->params_seen, apply_default, l)
               == -1)
      goto err;
    thread_ctx_set (s, NULL, l->name);
    if (l->ops->config_complete (l) == -1) {
      thread_ctx_set (s, NULL, NULL);
      goto err;
    }
    thread_ctx_set (s, NULL, NULL);
  }
  free (args);
  return 0;

done:
  free (args);
  return 1;
err:
  free (args);
  *status = 1;
  return -1;
}
