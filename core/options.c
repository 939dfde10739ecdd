/* options.c: the nbdkit command line's options: the table getopt
 * reads, --help's text, and the checks that options make sense
 * together.  Options may come before or after the plugin and its
 * key=value parameters ("--" ends options); the words that are not
 * options are kept in order for cmdline.c.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "options.h"

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
  OPT_WATCH,
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
  { "watch", no_argument, NULL, OPT_WATCH },
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

void
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
      "  --watch                reload the scripts (as on SIGHUP) when one\n"
      "                         of their files changes\n"
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

/* Options an embedded server refuses: they print on the program's
 * stdout, or act on the whole process, which belongs to the program.
 */
static int
embedded_refuses (struct server *s, const struct cmdline *cl)
{
  const struct server_options *o = &s->opt;
  const char *bad = cl->help              ? "--help"
                    : cl->version         ? "--version"
                    : cl->dump_config     ? "--dump-config"
                    : cl->dump_plugin     ? "--dump-plugin"
                    : o->single           ? "-s"
                    : o->run              ? "--run"
                    : o->pidfile          ? "-P"
                    : o->user             ? "-u"
                    : o->group            ? "-g"
                    : o->mlock            ? "--swap"
                    : o->exit_with_parent ? "--exit-with-parent"
                    : o->print_uri        ? "--print-uri"
                                          : NULL;

  if (bad) {
    log_error (s,
               "%s cannot be used in an embedded server: it prints on the"
               " program's output or acts on the whole process",
               bad);
    return -1;
  }
  return 0;
}

/* Do the options make sense together?  Also makes the paths given
 * absolute.  0, or -1 with the reason logged.
 */
static int
check_options (struct server *s, const struct cmdline *cl)
{
  struct server_options *o = &s->opt;

  /* Under socket activation the sockets are given: options that say
   * where to listen make no sense, and the supervisor that started us
   * waits on this process, so it stays in the foreground.
   */
  if (!s->embedded && socket_activated ()) {
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
      return -1;
    }
    o->foreground = true;
  }
  if (o->oldstyle && o->tls == TLS_REQUIRE) {
    log_error (s, "cannot use the oldstyle protocol (-o) and require TLS");
    return -1;
  }
  if (o->oldstyle && o->tls == TLS_ON) {
    log_debug (s, "-o: the oldstyle protocol has no TLS: serving without");
    o->tls = TLS_OFF;
  }
  /* Paths on the command line are relative to where nbdkit was
   * started, not to "/" where it runs once in the background.
   */
  if (make_absolute (s, &o->pidfile) == -1
      || make_absolute (s, &o->tls_certificates) == -1
      || make_absolute (s, &o->tls_psk) == -1
      || (o->unixsocket && strcmp (o->unixsocket, "-") != 0
          && make_absolute (s, &o->unixsocket) == -1))
    return -1;

  /* As with nbdkit, credentials alone do not turn TLS on. */
  if ((o->tls_certificates || o->tls_psk) && o->tls == TLS_OFF)
    log_debug (s, "TLS credentials given, but --tls is off");
  if (o->tls_certificates && o->tls_psk) {
    log_error (s, "choose one of --tls-certificates and --tls-psk");
    return -1;
  }

  if (cl->dump_plugin && (o->single || o->fd >= 0)) {
    log_error (s, "--dump-plugin cannot be used with -s or --fd: it prints"
                  " on stdout");
    return -1;
  }
  /* Conflicting ways of listening. */
  {
    int ways = !!o->unixsocket + !!(o->port || o->nipaddr) + o->single
               + (o->fd >= 0) + o->vsock;
    if (ways > 1) {
      log_error (s, "choose one of -U, -p/-i, -s, --fd and --vsock");
      return -1;
    }
    if (o->reverse && !o->unixsocket && !o->port && o->nipaddr == 0) {
      log_error (s, "--reverse needs -U SOCKET or -p PORT [-i HOST]: where to"
                    " connect to");
      return -1;
    }
    if (o->reverse && (o->single || o->fd >= 0 || o->vsock || o->run)) {
      log_error (s, "--reverse cannot be used with -s, --fd, --vsock or --run");
      return -1;
    }
    if (o->single && o->run) {
      log_error (s, "-s and --run cannot be used together");
      return -1;
    }
    if (o->transmission_only && !o->single && o->fd < 0) {
      log_error (s, "--no-handshake needs -s or --fd");
      return -1;
    }
  }
  return 0;
}

enum cmdline_result
options_parse (struct server *s, int argc, char **argv, struct cmdline *cl,
               int *status)
{
  struct server_options *o = &s->opt;
  int c;

  /* Collect options from anywhere on the line, and the other words in
   * order: the plugin, then its parameters.
   */
  cl->args = calloc (argc + 2, sizeof *cl->args);
  if (cl->args == NULL) {
    log_error (s, "calloc: %m");
    return CMDLINE_ERROR;
  }
  optind = 0; /* 0, not 1: glibc then forgets a previous parse entirely */
  opterr = !s->embedded;
  for (;;) {
    c = getopt_long (argc, argv, short_opts, long_opts, NULL);
    if (c == -1) {
      if (optind >= argc)
        break;
      if (strcmp (argv[optind - 1], "--") == 0) {
        while (optind < argc)
          cl->args[cl->nargs++] = argv[optind++];
        break;
      }
      cl->args[cl->nargs++] = argv[optind++];
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
          return CMDLINE_ERROR;
        if (cl->ndebug < MAX_DEBUG_FLAGS)
          cl->debug_args[cl->ndebug++] = optarg;
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
          return CMDLINE_ERROR;
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
          return CMDLINE_ERROR;
        if (t == 0 || t > 1024) {
          log_error (s, "-t %s: threads must be between 1 and 1024", optarg);
          return CMDLINE_ERROR;
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
        cl->version = true;
        break;
      case OPT_DUMP_CONFIG:
        cl->dump_config = true;
        break;
      case OPT_DUMP_PLUGIN:
        cl->dump_plugin = true;
        break;
      case OPT_EXIT_WITH_PARENT:
        o->exit_with_parent = true;
        break;
      case OPT_FD:
        if (nbdkit_parse_int ("--fd", optarg, &o->fd) == -1)
          return CMDLINE_ERROR;
        if (o->fd < 3) {
          log_error (s, "--fd %s: must be 3 or more (use -s for stdin)",
                     optarg);
          return CMDLINE_ERROR;
        }
        break;
      case OPT_FILTER:
        if (cl->nfilters < MAX_FILTERS)
          cl->filters[cl->nfilters++] = optarg;
        break;
      case OPT_HELP:
        cl->help = true;
        break;
      case OPT_KEEPALIVE:
        o->keepalive = true;
        break;
      case OPT_WATCH:
        o->watch = true;
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
          return CMDLINE_ERROR;
        }
        break;
      case OPT_MASK_HANDSHAKE: {
        unsigned m;
        if (nbdkit_parse_unsigned ("--mask-handshake", optarg, &m) == -1)
          return CMDLINE_ERROR;
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
        return CMDLINE_ERROR;
      case OPT_SWAP:
        o->mlock = true;
        break;
      case OPT_REVERSE:
        o->reverse = true;
        break;
      case OPT_LONG_OPTIONS:
        if (s->embedded)
          goto embedded_print;
        print_long_options ();
        *status = 0;
        return CMDLINE_DONE;
      case OPT_SHORT_OPTIONS:
        if (s->embedded)
          goto embedded_print;
        print_short_options ();
        *status = 0;
        return CMDLINE_DONE;
      case OPT_TIMEOUT:
        if (nbdkit_parse_unsigned ("--timeout", optarg, &o->timeout) == -1)
          return CMDLINE_ERROR;
        break;
      case OPT_TLS:
        if (strcmp (optarg, "off") == 0)
          o->tls = TLS_OFF;
        else if (strcmp (optarg, "on") == 0)
          o->tls = TLS_ON;
        else if (strcmp (optarg, "require") == 0)
          o->tls = TLS_REQUIRE;
        else {
          log_error (s, "--tls %s: expected off, on or require", optarg);
          return CMDLINE_ERROR;
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
        /* getopt said what was wrong, except to an embedding program. */
        if (s->embedded)
          log_error (s, "%s: unknown option, or its value is missing",
                     argv[optind - 1]);
        else
          fprintf (stderr, "%s: try '%s --help'\n", s->program_name,
                   s->program_name);
        return CMDLINE_ERROR;
    }
  }

  if (check_options (s, cl) == -1
      || (s->embedded && embedded_refuses (s, cl) == -1))
    return CMDLINE_ERROR;
  return CMDLINE_RUN;

embedded_print:
  log_error (s,
             "%s cannot be used in an embedded server: it prints on the"
             " program's output",
             argv[optind - 1]);
  return CMDLINE_ERROR;
}
