/* ssh.c: the ssh plugin, a file on another machine over SFTP (libssh).
 *
 *   nbdkit ssh host=HOST [path=]PATH [port=PORT] [user=USER]
 *              [password=PASSWORD|-|-FD|+FILE] [identity=FILE]...
 *              [known-hosts=FILE]... [verify-remote-host=BOOL]
 *              [config=FILE] [compression=BOOL] [timeout=SECS]
 *              [create=BOOL create-size=SIZE [create-mode=MODE]]
 *
 * Each client connection opens its own SSH session and SFTP channel,
 * in open, and closes them in close; a session is not shared between
 * threads, so requests of one connection are serialized.  Reads keep
 * several SFTP read requests in flight (libssh's asynchronous reads);
 * writes go out in pieces the server accepts.  Flush is the
 * fsync@openssh.com extension when the server offers it, and then FUA
 * is a flush after the write and multi-conn is advertised: every
 * connection writes straight into the same remote file, and fsync of
 * that file makes all of them durable.
 *
 * The host key is checked against the known hosts files unless
 * verify-remote-host=false.  Authentication tries "none", then public
 * keys (the agent, identity= files, then the default ones), then
 * password= by "password" and "keyboard-interactive".  timeout= bounds
 * connecting, and each wait for the answer to a read.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/sftp.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* Bytes asked for by one SFTP read, and how many reads are in flight
 * at once.  OpenSSH answers reads of up to 255 KiB (older versions 64
 * KiB: a connection that sees shorter answers asks for less from then
 * on) and accepts messages of up to 256 KiB, so writes go in pieces
 * of WRITE_CHUNK.
 */
#define READ_CHUNK (128 * 1024)
#define READ_DEPTH 16
#define WRITE_CHUNK (128 * 1024)

#define CIPHERS                                                                \
  "aes128-gcm@openssh.com,aes256-gcm@openssh.com,"                             \
  "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr"

/* -D ssh.log=N: libssh's log level (1 warnings .. 4 functions). */
NBDKIT_DLL_PUBLIC int ssh_debug_log = 0;
/* -D ssh.read_chunk=N: ask for N bytes per SFTP read (4 KiB .. 1 MiB),
 * e.g. more than the server answers, to see that cut reads still work.
 */
NBDKIT_DLL_PUBLIC int ssh_debug_read_chunk = 0;

/* Configuration. */
static const char *host, *path, *port, *user, *password, *config_file;
static const char *create_mode_str = "0600";
static char **identities, **known_hosts;
static size_t nidentities, nknown_hosts;
static bool verify_remote_host = true, compression, create;
static int64_t timeout = -1, create_size = -1;
static mode_t create_mode = 0600;

/* create=true makes the file on the first connection only. */
static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;
static bool created;

static const struct nbdkit_param ssh_params[]
    = { { .name = "host",
          .type = NBDKIT_PARAM_STRING,
          .flags = NBDKIT_PARAM_REQUIRED,
          .doc = "name or address of the SSH server",
          .dest = &host },
        { .name = "path",
          .type = NBDKIT_PARAM_STRING,
          .flags = NBDKIT_PARAM_REQUIRED,
          .doc = "remote file (relative: to the remote home directory)",
          .dest = &path },
        { .name = "port",
          .type = NBDKIT_PARAM_STRING,
          .doc = "SSH port number or service name (default 22)",
          .dest = &port },
        { .name = "user",
          .type = NBDKIT_PARAM_STRING,
          .doc = "remote user name (default: the local one)",
          .dest = &user },
        { .name = "password",
          .type = NBDKIT_PARAM_PASSWORD,
          .doc = "password: PASSWORD, - (ask), -FD or +FILE",
          .dest = &password },
        { .name = "identity",
          .type = NBDKIT_PARAM_LIST,
          .doc = "private key file to try first" },
        { .name = "known-hosts",
          .type = NBDKIT_PARAM_LIST,
          .doc = "known hosts file to check the host key in" },
        { .name = "verify-remote-host",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "true",
          .doc = "check the host key against the known hosts files",
          .dest = &verify_remote_host },
        { .name = "config",
          .type = NBDKIT_PARAM_STRING,
          .doc = "SSH client configuration file; empty: read none",
          .dest = &config_file },
        { .name = "compression",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "false",
          .doc = "compress the SSH traffic",
          .dest = &compression },
        { .name = "timeout",
          .type = NBDKIT_PARAM_INT,
          .doc = "SSH timeout in seconds (connecting and waiting)",
          .dest = &timeout },
        { .name = "create",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "false",
          .doc = "create (or replace) the remote file on the first connection",
          .dest = &create },
        { .name = "create-size",
          .type = NBDKIT_PARAM_SIZE,
          .doc = "size of the file create=true makes",
          .dest = &create_size },
        { .name = "create-mode",
          .type = NBDKIT_PARAM_STRING,
          .default_value = "0600",
          .doc = "permissions (octal) of the file create=true makes",
          .dest = &create_mode_str },
        { .name = NULL } };

static int
push (char ***list, size_t *n, const char *value)
{
  char **l = realloc (*list, (*n + 1) * sizeof *l);

  if (l == NULL) {
    nbdkit_error ("realloc: %m");
    return -1;
  }
  *list = l;
  l[*n] = strdup (value);
  if (l[*n] == NULL) {
    nbdkit_error ("strdup: %m");
    return -1;
  }
  (*n)++;
  return 0;
}

static int
ssh_config (const char *key, const char *value)
{
  if (strcmp (key, "identity") == 0)
    return push (&identities, &nidentities, value);
  if (strcmp (key, "known-hosts") == 0)
    return push (&known_hosts, &nknown_hosts, value);
  return 0;
}

static int
ssh_config_complete (void)
{
  char *end;
  unsigned long m;

  if (*host == '\0' || *path == '\0') {
    nbdkit_error ("%s= must not be empty", *host ? "path" : "host");
    return -1;
  }
  if (timeout != -1 && (timeout <= 0 || timeout > 86400 * 365)) {
    nbdkit_error ("timeout=%" PRIi64 ": expected a number of seconds > 0",
                  timeout);
    return -1;
  }
  /* libssh skips a configuration file it cannot read: say so here
   * (unless the name has %-sequences, known only when connecting).
   */
  if (config_file && *config_file && strchr (config_file, '%') == NULL
      && access (config_file, R_OK) == -1) {
    nbdkit_error ("config=%s: %m", config_file);
    return -1;
  }
  errno = 0;
  m = strtoul (create_mode_str, &end, 8);
  if (errno || end == create_mode_str || *end || m > 07777) {
    nbdkit_error ("create-mode=%s: expected an octal mode such as 0644",
                  create_mode_str);
    return -1;
  }
  create_mode = m;
  if (create && create_size < 0) {
    nbdkit_error ("create=true needs create-size=SIZE");
    return -1;
  }
  if (!create && create_size >= 0) {
    nbdkit_error ("create-size= is only used with create=true");
    return -1;
  }
  return 0;
}

static const char *
ssh_config_help (void)
{
  return "host= and path= are required; path= may be given without the "
         "key.\n"
         "-D ssh.log=1..4 sends libssh's messages to the debug log.";
}

static void
ssh_unload (void)
{
  for (size_t i = 0; i < nidentities; i++)
    free (identities[i]);
  free (identities);
  for (size_t i = 0; i < nknown_hosts; i++)
    free (known_hosts[i]);
  free (known_hosts);
}

static void
ssh_dump_plugin (void)
{
  printf ("libssh_version=%s\n", ssh_version (0));
}

static int
ssh_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS;
}

/* libssh keeps its log callback and level per thread: set them on
 * each thread that calls it.
 */
static void
log_cb (int priority, const char *function, const char *buffer, void *opaque)
{
  (void)priority;
  (void)function;
  (void)opaque;
  nbdkit_debug ("libssh: %s", buffer);
}

static void
setup_log (void)
{
  if (ssh_debug_log > 0) {
    ssh_set_log_callback (log_cb);
    ssh_set_log_level (ssh_debug_log);
  }
}

struct handle {
  ssh_session session;
  sftp_session sftp;
  sftp_file file;
  const char *where; /* "user@host:port", for messages */
  int64_t size;
  uint32_t read_chunk; /* READ_CHUNK, or what the server answers */
  bool can_fsync;
  bool stalled; /* a read found no answer within timeout= */
};

/* The errno matching the last SFTP error of H. */
static int
sftp_errno (struct handle *h)
{
  if (h->sftp == NULL || ssh_get_error_code (h->session) == SSH_FATAL)
    return EIO;
  switch (sftp_get_error (h->sftp)) {
    case SSH_FX_NO_SUCH_FILE:
    case SSH_FX_NO_SUCH_PATH:
      return ENOENT;
    case SSH_FX_PERMISSION_DENIED:
      return EACCES;
    case SSH_FX_OP_UNSUPPORTED:
      return ENOTSUP;
    case SSH_FX_FILE_ALREADY_EXISTS:
      return EEXIST;
    case SSH_FX_WRITE_PROTECT:
      return EROFS;
    case SSH_FX_NO_MEDIA:
      return ENXIO;
    default:
      return EIO;
  }
}

/* What went wrong, in words: the connection or the server's answer. */
static const char *
sftp_reason (struct handle *h)
{
  if (h->sftp == NULL || ssh_get_error_code (h->session) == SSH_FATAL)
    return nbdkit_printf_intern ("connection lost: %s",
                                 ssh_get_error (h->session));
  switch (sftp_get_error (h->sftp)) {
    case SSH_FX_NO_SUCH_FILE:
    case SSH_FX_NO_SUCH_PATH:
      return "no such file or directory";
    case SSH_FX_PERMISSION_DENIED:
      return "permission denied";
    default:
      return ssh_get_error (h->session);
  }
}

/* Log that OP on the remote file failed, set the errno, return -1. */
static int
sftp_fail (struct handle *h, const char *op)
{
  int err = sftp_errno (h);

  nbdkit_error ("%s: %s: %s: %s", h->where, path, op, sftp_reason (h));
  nbdkit_set_error (err);
  errno = err;
  return -1;
}

/* Expand what libssh expands in file names (%d %u %l %h %r %p %%, a
 * leading ~), for the known hosts files checked after connecting.
 */
static char *
expand_path (struct handle *h, const char *p)
{
  struct passwd pw, *pwp = NULL;
  char pwbuf[4096], lhost[256] = "", *rhost = NULL, *ruser = NULL;
  char *out = NULL;
  size_t outlen = 0;
  FILE *f;
  unsigned rport = 22;

  getpwuid_r (getuid (), &pw, pwbuf, sizeof pwbuf, &pwp);
  gethostname (lhost, sizeof lhost - 1);
  ssh_options_get (h->session, SSH_OPTIONS_HOST, &rhost);
  ssh_options_get (h->session, SSH_OPTIONS_USER, &ruser);
  ssh_options_get_port (h->session, &rport);

  f = open_memstream (&out, &outlen);
  if (f == NULL) {
    nbdkit_error ("open_memstream: %m");
    goto done;
  }
  if (p[0] == '~' && p[1] == '/' && pwp) {
    fputs (pwp->pw_dir, f);
    p++;
  }
  for (; *p; p++) {
    if (*p != '%' || p[1] == '\0') {
      fputc (*p, f);
      continue;
    }
    switch (*++p) {
      case 'd':
        fprintf (f, "%s/.ssh", pwp ? pwp->pw_dir : "");
        break;
      case 'u':
        fputs (pwp ? pwp->pw_name : "", f);
        break;
      case 'l':
        fputs (lhost, f);
        break;
      case 'h':
        fputs (rhost ? rhost : "", f);
        break;
      case 'r':
        fputs (ruser ? ruser : "", f);
        break;
      case 'p':
        fprintf (f, "%u", rport);
        break;
      case '%':
        fputc ('%', f);
        break;
      default:
        fputc ('%', f);
        fputc (*p, f);
    }
  }
  if (fclose (f) == EOF) {
    nbdkit_error ("open_memstream: %m");
    free (out);
    out = NULL;
  }

done:
  ssh_string_free_char (rhost);
  ssh_string_free_char (ruser);
  return out;
}

/* The known hosts files, for messages. */
static const char *
known_hosts_names (void)
{
  const char *s = "";

  if (nknown_hosts == 0)
    return "~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts";
  for (size_t i = 0; i < nknown_hosts; i++)
    s = nbdkit_printf_intern ("%s%s%s", s, i ? ", " : "", known_hosts[i]);
  return s;
}

/* Check the server's host key in each known hosts file in turn: a
 * match in one is enough; a different key for this host in any is a
 * refusal.
 */
static int
verify_host (struct handle *h)
{
  enum ssh_known_hosts_e state = SSH_KNOWN_HOSTS_UNKNOWN;

  if (!verify_remote_host)
    return 0;
  if (nknown_hosts == 0)
    state = ssh_session_is_known_server (h->session);
  for (size_t i = 0; i < nknown_hosts; i++) {
    char *f = expand_path (h, known_hosts[i]);
    enum ssh_known_hosts_e s;

    if (f == NULL)
      return -1;
    if (ssh_options_set (h->session, SSH_OPTIONS_KNOWNHOSTS, f) != SSH_OK
        || ssh_options_set (h->session, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, f)
               != SSH_OK) {
      nbdkit_error ("%s: known-hosts=%s: %s", h->where, f,
                    ssh_get_error (h->session));
      free (f);
      return -1;
    }
    free (f);
    s = ssh_session_is_known_server (h->session);
    if (s == SSH_KNOWN_HOSTS_OK) {
      state = s;
      break;
    }
    if (s == SSH_KNOWN_HOSTS_CHANGED || s == SSH_KNOWN_HOSTS_OTHER
        || s == SSH_KNOWN_HOSTS_ERROR) {
      state = s;
      break;
    }
  }

  switch (state) {
    case SSH_KNOWN_HOSTS_OK:
      return 0;
    case SSH_KNOWN_HOSTS_CHANGED:
    case SSH_KNOWN_HOSTS_OTHER:
      nbdkit_error ("%s: the host key has CHANGED: it differs from the one "
                    "recorded for this host in %s; refusing to connect, as "
                    "someone may be impersonating the server (if the change "
                    "is expected, update the known hosts file)",
                    h->where, known_hosts_names ());
      break;
    case SSH_KNOWN_HOSTS_ERROR:
      nbdkit_error ("%s: checking the host key: %s", h->where,
                    ssh_get_error (h->session));
      break;
    default:
      nbdkit_error ("%s: the host key is unknown: this host is not in %s "
                    "(add it, give known-hosts=FILE, or, at the risk of "
                    "talking to an impostor, verify-remote-host=false)",
                    h->where, known_hosts_names ());
  }
  errno = EACCES;
  return -1;
}

/* keyboard-interactive with the password as the answer to each hidden
 * prompt (what PAM asks for a password).
 */
static int
auth_kbdint (struct handle *h)
{
  int rc = ssh_userauth_kbdint (h->session, NULL, NULL);

  for (int round = 0; rc == SSH_AUTH_INFO && round < 8; round++) {
    int n = ssh_userauth_kbdint_getnprompts (h->session);

    for (int i = 0; i < n; i++) {
      char echo = 1;

      ssh_userauth_kbdint_getprompt (h->session, i, &echo);
      if (ssh_userauth_kbdint_setanswer (h->session, i, echo ? "" : password)
          < 0)
        return SSH_AUTH_ERROR;
    }
    rc = ssh_userauth_kbdint (h->session, NULL, NULL);
  }
  return rc;
}

static const char *
methods_names (int m)
{
  return nbdkit_printf_intern (
      "%s%s%s%s%s", m & SSH_AUTH_METHOD_NONE ? " none" : "",
      m & SSH_AUTH_METHOD_PUBLICKEY ? " publickey" : "",
      m & SSH_AUTH_METHOD_PASSWORD ? " password" : "",
      m & SSH_AUTH_METHOD_INTERACTIVE ? " keyboard-interactive" : "",
      m & SSH_AUTH_METHOD_GSSAPI_MIC ? " gssapi-with-mic" : "");
}

static int
authenticate (struct handle *h)
{
  int rc, methods, tried = 0;

  rc = ssh_userauth_none (h->session, NULL);
  if (rc == SSH_AUTH_SUCCESS)
    return 0;
  if (rc == SSH_AUTH_ERROR)
    goto error;
  methods = ssh_userauth_list (h->session, NULL);

  if (methods & SSH_AUTH_METHOD_PUBLICKEY) {
    tried |= SSH_AUTH_METHOD_PUBLICKEY;
    rc = ssh_userauth_publickey_auto (h->session, NULL, NULL);
    if (rc == SSH_AUTH_SUCCESS)
      return 0;
    if (rc == SSH_AUTH_ERROR)
      goto error;
  }
  if (password && (methods & SSH_AUTH_METHOD_PASSWORD)) {
    tried |= SSH_AUTH_METHOD_PASSWORD;
    rc = ssh_userauth_password (h->session, NULL, password);
    if (rc == SSH_AUTH_SUCCESS)
      return 0;
    if (rc == SSH_AUTH_ERROR)
      goto error;
  }
  if (password && (methods & SSH_AUTH_METHOD_INTERACTIVE)) {
    tried |= SSH_AUTH_METHOD_INTERACTIVE;
    rc = auth_kbdint (h);
    if (rc == SSH_AUTH_SUCCESS)
      return 0;
    if (rc == SSH_AUTH_ERROR)
      goto error;
  }

  nbdkit_error ("%s: authentication failed (the server accepts:%s; "
                "tried:%s%s%s)",
                h->where, methods_names (methods),
                tried ? methods_names (tried) : " nothing",
                (tried & SSH_AUTH_METHOD_PUBLICKEY)
                    ? "; publickey offered the agent's keys, identity= and "
                      "~/.ssh/id_*"
                    : "",
                password ? "" : "; no password= given");
  errno = EACCES;
  return -1;

error:
  nbdkit_error ("%s: authenticating: %s", h->where, ssh_get_error (h->session));
  errno = EIO;
  return -1;
}

/* Set the options of H's session, in the order that lets what the
 * command line says win over the configuration files.
 */
static int
set_options (struct handle *h)
{
  ssh_session s = h->session;
  int verbosity = ssh_debug_log;
  long t = timeout;
  bool no = false;
  int yes = 1;

  if (ssh_options_set (s, SSH_OPTIONS_HOST, host) != SSH_OK)
    goto err;
  /* AES-GCM first: with the processors' AES instructions it costs both
   * ends much less than chacha20-poly1305, libssh's first choice.  Set
   * before the configuration files, which may choose otherwise.
   */
  if (ssh_options_set (s, SSH_OPTIONS_CIPHERS_C_S, CIPHERS) != SSH_OK
      || ssh_options_set (s, SSH_OPTIONS_CIPHERS_S_C, CIPHERS) != SSH_OK)
    goto err;
  if (config_file == NULL) {
    if (ssh_options_parse_config (s, NULL) != SSH_OK)
      goto err;
  } else if (*config_file) {
    if (ssh_options_parse_config (s, config_file) != SSH_OK)
      goto err;
  }
  if (ssh_options_set (s, SSH_OPTIONS_PROCESS_CONFIG, &no) != SSH_OK)
    goto err;
  if (port && ssh_options_set (s, SSH_OPTIONS_PORT_STR, port) != SSH_OK)
    goto err;
  if (user && ssh_options_set (s, SSH_OPTIONS_USER, user) != SSH_OK)
    goto err;
  /* Each one goes in front of the list: the first given is tried first. */
  for (size_t i = nidentities; i-- > 0;)
    if (ssh_options_set (s, SSH_OPTIONS_IDENTITY, identities[i]) != SSH_OK)
      goto err;
  if (nknown_hosts > 0
      && ssh_options_set (s, SSH_OPTIONS_KNOWNHOSTS, known_hosts[0]) != SSH_OK)
    goto err;
  /* Several read requests go out back to back: without this, Nagle's
   * algorithm holds each one until the previous is acknowledged.
   */
  if (ssh_options_set (s, SSH_OPTIONS_NODELAY, &yes) != SSH_OK)
    goto err;
  if (timeout > 0 && ssh_options_set (s, SSH_OPTIONS_TIMEOUT, &t) != SSH_OK)
    goto err;
  if (compression
      && ssh_options_set (s, SSH_OPTIONS_COMPRESSION, "yes") != SSH_OK)
    goto err;
  if (verbosity > 0
      && ssh_options_set (s, SSH_OPTIONS_LOG_VERBOSITY, &verbosity) != SSH_OK)
    goto err;
  return 0;

err:
  nbdkit_error ("ssh %s: setting the SSH options: %s", host, ssh_get_error (s));
  return -1;
}

/* "user@host:port" once the options are known; the host as given,
 * and the name the configuration gave it, if another.
 */
static const char *
where (struct handle *h)
{
  char *u = NULL, *hn = NULL;
  unsigned p = 22;
  const char *w;

  ssh_options_get (h->session, SSH_OPTIONS_USER, &u);
  ssh_options_get (h->session, SSH_OPTIONS_HOST, &hn);
  ssh_options_get_port (h->session, &p);
  w = nbdkit_printf_intern ("ssh %s%s%s:%u%s%s%s", u ? u : "", u ? "@" : "",
                            host, p, hn && strcmp (hn, host) ? " (" : "",
                            hn && strcmp (hn, host) ? hn : "",
                            hn && strcmp (hn, host) ? ")" : "");
  ssh_string_free_char (u);
  ssh_string_free_char (hn);
  return w ? w : host;
}

/* create=true: make (or empty) the file and give it its size, once. */
static int
create_file (struct handle *h)
{
  struct sftp_attributes_struct attr = { 0 };
  sftp_file f;
  int r = 0;

  pthread_mutex_lock (&create_lock);
  if (created)
    goto out;
  f = sftp_open (h->sftp, path, O_WRONLY | O_CREAT | O_TRUNC, create_mode);
  if (f == NULL) {
    r = sftp_fail (h, "creating the file");
    goto out;
  }
  sftp_close (f);
  attr.flags = SSH_FILEXFER_ATTR_SIZE;
  attr.size = create_size;
  if (sftp_setstat (h->sftp, path, &attr) < 0) {
    r = sftp_fail (
        h, nbdkit_printf_intern ("setting the size to %" PRIi64, create_size));
    goto out;
  }
  created = true;
out:
  pthread_mutex_unlock (&create_lock);
  return r;
}

static void ssh_close (void *handle);

static void *
ssh_open (int readonly, const char *exportname, int is_tls)
{
  struct handle *h;
  sftp_attributes attr;

  (void)exportname;
  (void)is_tls;
  setup_log ();
  h = calloc (1, sizeof *h);
  if (h == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  h->where = host;
  h->session = ssh_new ();
  if (h->session == NULL) {
    nbdkit_error ("ssh_new: cannot make an SSH session");
    free (h);
    return NULL;
  }
  if (set_options (h) == -1)
    goto fail;
  h->where = where (h);

  if (ssh_connect (h->session) != SSH_OK) {
    nbdkit_error ("%s: cannot connect: %s", h->where,
                  ssh_get_error (h->session));
    errno = ECONNREFUSED;
    goto fail;
  }
  h->where = where (h); /* now with the user the configuration chose */
  if (verify_host (h) == -1 || authenticate (h) == -1)
    goto fail;

  h->sftp = sftp_new (h->session);
  if (h->sftp == NULL) {
    nbdkit_error ("%s: cannot open an SFTP channel: %s", h->where,
                  ssh_get_error (h->session));
    goto fail;
  }
  if (sftp_init (h->sftp) != SSH_OK) {
    nbdkit_error ("%s: cannot start SFTP (is the sftp subsystem enabled?): "
                  "%s",
                  h->where, ssh_get_error (h->session));
    goto fail;
  }
  if (create && create_file (h) == -1)
    goto fail;

  h->file = sftp_open (h->sftp, path, readonly ? O_RDONLY : O_RDWR, 0);
  if (h->file == NULL) {
    sftp_fail (h, readonly ? "opening read-only" : "opening read-write");
    goto fail;
  }
  attr = sftp_fstat (h->file);
  if (attr == NULL) {
    sftp_fail (h, "stat");
    goto fail;
  }
  if (attr->type == SSH_FILEXFER_TYPE_DIRECTORY) {
    nbdkit_error ("%s: %s: is a directory, expected a file", h->where, path);
    sftp_attributes_free (attr);
    errno = EISDIR;
    goto fail;
  }
  if (!(attr->flags & SSH_FILEXFER_ATTR_SIZE) || attr->size > INT64_MAX) {
    nbdkit_error ("%s: %s: the server did not tell the file's size", h->where,
                  path);
    sftp_attributes_free (attr);
    errno = EIO;
    goto fail;
  }
  h->size = attr->size;
  h->read_chunk = READ_CHUNK;
  if (ssh_debug_read_chunk >= 4096 && ssh_debug_read_chunk <= (1 << 20))
    h->read_chunk = ssh_debug_read_chunk;
  sftp_attributes_free (attr);
  h->can_fsync = sftp_extension_supported (h->sftp, "fsync@openssh.com", "1");
  nbdkit_debug ("%s: %s: %" PRIi64 " bytes, fsync %s", h->where, path, h->size,
                h->can_fsync ? "supported" : "not supported");
  return h;

fail:
  ssh_close (h);
  return NULL;
}

static void
ssh_close (void *handle)
{
  struct handle *h = handle;

  setup_log ();
  /* Closing the file waits for the server's answer: not after a
   * timeout (the small sftp_file is then left behind).
   */
  if (h->file && !h->stalled)
    sftp_close (h->file);
  if (h->sftp)
    sftp_free (h->sftp);
  if (ssh_is_connected (h->session))
    ssh_disconnect (h->session);
  ssh_free (h->session);
  free (h);
}

static int64_t
ssh_get_size (void *handle)
{
  struct handle *h = handle;

  return h->size;
}

static int
ssh_can_flush (void *handle)
{
  struct handle *h = handle;

  return h->can_fsync;
}

static int
ssh_can_fua (void *handle)
{
  struct handle *h = handle;

  return h->can_fsync ? NBDKIT_FUA_EMULATE : NBDKIT_FUA_NONE;
}

static int
ssh_can_multi_conn (void *handle)
{
  struct handle *h = handle;

  return h->can_fsync;
}

static int
short_file (struct handle *h, uint64_t offset)
{
  nbdkit_error ("%s: %s: the file ends at offset %" PRIu64
                ", before its size of %" PRIi64 " (was it truncated?)",
                h->where, path, offset, h->size);
  nbdkit_set_error (EIO);
  return -1;
}

/* With timeout=, wait at most that long for the next answer to a read
 * (libssh 0.10 waits for ever).  After a timeout the answers still due
 * would be out of step with the requests: the session is not used
 * again, and the client is disconnected so that it can connect anew.
 */
static int
await_answer (struct handle *h, uint64_t at)
{
  int r;

  if (timeout <= 0)
    return 0;
  r = ssh_channel_poll_timeout (h->sftp->channel, (int)timeout * 1000, 0);
  if (r != 0)
    return 0; /* data, or an end or error the read will report */
  nbdkit_error ("%s: %s: reading at offset %" PRIu64 ": no answer within "
                "timeout=%" PRIi64 " s; this connection stops here",
                h->where, path, at, timeout);
  h->stalled = true;
  nbdkit_disconnect (0);
  nbdkit_set_error (ETIMEDOUT); /* EIO for the client (core/request.c) */
  return -1;
}

static int
check_stalled (struct handle *h)
{
  if (!h->stalled)
    return 0;
  nbdkit_error ("%s: %s: the server stopped answering earlier", h->where, path);
  nbdkit_set_error (EIO);
  return -1;
}

/* Read COUNT bytes at OFFSET one request at a time. */
static int
read_sync (struct handle *h, char *buf, uint64_t count, uint64_t offset)
{
  while (count > 0) {
    uint32_t len = MIN (count, h->read_chunk);
    int id, got;

    if (sftp_seek64 (h->file, offset) < 0)
      return sftp_fail (h, "seek");
    id = sftp_async_read_begin (h->file, len);
    if (id < 0)
      return sftp_fail (
          h, nbdkit_printf_intern ("reading at offset %" PRIu64, offset));
    if (await_answer (h, offset) == -1)
      return -1;
    got = sftp_async_read (h->file, buf, len, id);
    sftp_seek64 (h->file, offset + len); /* forget an end of file */
    if (got < 0)
      return sftp_fail (
          h, nbdkit_printf_intern ("reading at offset %" PRIu64, offset));
    if (got == 0)
      return short_file (h, offset);
    buf += got;
    count -= got;
    offset += got;
  }
  return 0;
}

/* Reads go in batches of up to READ_DEPTH requests in flight, collected
 * in the order sent.  libssh looks for an answer in its queue only
 * after reading one more message from the channel: this relies on the
 * server answering in order (OpenSSH does), and no other request may be
 * sent before the batch is collected, so a request the server cut
 * short (it may answer less than asked) is completed after the batch.
 * After an error the rest of the batch is still collected, so that no
 * answer is left behind in the queue.
 */
static int
ssh_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
           uint32_t flags, struct nbdkit_read *rd)
{
  struct handle *h = handle;
  char *p = buf;
  uint64_t done = 0;
  int r = 0;

  (void)flags;
  (void)rd;
  setup_log ();
  if (check_stalled (h) == -1)
    return -1;
  while (r == 0 && done < count) {
    int ids[READ_DEPTH], got[READ_DEPTH];
    uint32_t lens[READ_DEPTH];
    uint64_t start = done, at;
    size_t n = 0;

    for (at = start; n < READ_DEPTH && at < count; at += lens[n++]) {
      lens[n] = MIN (count - at, h->read_chunk);
      /* Each request reads where the file offset is. */
      if (sftp_seek64 (h->file, offset + at) < 0) {
        r = sftp_fail (h, "seek");
        break;
      }
      ids[n] = sftp_async_read_begin (h->file, lens[n]);
      if (ids[n] < 0) {
        r = sftp_fail (h, nbdkit_printf_intern ("reading at offset %" PRIu64,
                                                offset + at));
        break;
      }
    }
    at = start;
    for (size_t i = 0; i < n; at += lens[i++]) {
      if (r == 0 && await_answer (h, offset + at) == -1)
        return -1;
      got[i] = sftp_async_read (h->file, p + at, lens[i], ids[i]);
      /* After an end of file libssh answers 0 at once: forget it. */
      sftp_seek64 (h->file, offset + at);
      if (r == 0 && got[i] < 0)
        r = sftp_fail (h, nbdkit_printf_intern ("reading at offset %" PRIu64,
                                                offset + at));
    }
    /* Complete the requests that came back short. */
    at = start;
    for (size_t i = 0; r == 0 && i < n; at += lens[i++]) {
      if ((uint32_t)got[i] == lens[i])
        continue;
      if (got[i] == 0) {
        r = short_file (h, offset + at);
        break;
      }
      /* The server cut the read: ask for no more than that. */
      if (got[i] >= 4096 && (uint32_t)got[i] < h->read_chunk) {
        nbdkit_debug ("%s: the server answers reads of %d bytes", h->where,
                      got[i]);
        h->read_chunk = got[i];
      }
      r = read_sync (h, p + at + got[i], lens[i] - got[i],
                     offset + at + got[i]);
    }
    done = at;
  }
  return r;
}

static int
ssh_pwrite (void *handle, const void *buf, uint64_t count, uint64_t offset,
            uint32_t flags)
{
  struct handle *h = handle;
  const char *p = buf;

  (void)flags;
  setup_log ();
  if (check_stalled (h) == -1)
    return -1;
  if (sftp_seek64 (h->file, offset) < 0)
    return sftp_fail (h, "seek");
  while (count > 0) {
    ssize_t r = sftp_write (h->file, p, MIN (count, WRITE_CHUNK));

    if (r <= 0) {
      if (r == 0) {
        nbdkit_error ("%s: %s: the server wrote nothing at offset %" PRIu64,
                      h->where, path, offset);
        nbdkit_set_error (EIO);
        return -1;
      }
      return sftp_fail (
          h, nbdkit_printf_intern ("writing at offset %" PRIu64, offset));
    }
    p += r;
    count -= r;
    offset += r;
  }
  return 0;
}

static int
ssh_flush (void *handle, uint32_t flags)
{
  struct handle *h = handle;

  (void)flags;
  setup_log ();
  if (check_stalled (h) == -1)
    return -1;
  if (sftp_fsync (h->file) < 0)
    return sftp_fail (h, "fsync");
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name = "ssh",
  .longname = "nbdkit ssh plugin",
  .version = NBDKIT_VERSION,
  .description = "Serve a file on another machine over SSH (SFTP).",
  .params = ssh_params,
  .magic_config_key = "path",
  .config = ssh_config,
  .config_complete = ssh_config_complete,
  .config_help = ssh_config_help,
  .unload = ssh_unload,
  .dump_plugin = ssh_dump_plugin,
  .thread_model = ssh_thread_model,
  .open = ssh_open,
  .close = ssh_close,
  .get_size = ssh_get_size,
  .can_flush = ssh_can_flush,
  .can_fua = ssh_can_fua,
  .can_multi_conn = ssh_can_multi_conn,
  .pread = ssh_pread,
  .pread_fills_buffer = 1, /* every byte, or an error */
  .pwrite = ssh_pwrite,
  .flush = ssh_flush,
};

NBDKIT_REGISTER_PLUGIN (plugin)
