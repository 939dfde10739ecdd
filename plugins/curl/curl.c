/* curl.c: the curl plugin, a disk image read over HTTP, HTTPS, FTP or
 * anything else libcurl speaks.
 *
 *   nbdkit [-r] curl [url=]URL [header=H]... [cookie=C] [user=U password=P]
 *                    [header-script=SH [header-script-renew=SECS]]
 *                    [cookie-script=SH [cookie-script-renew=SECS]]
 *                    [sslverify=false] [cainfo=FILE] [capath=DIR]
 *                    [timeout=SECS] [connections=N] [transfer-threads=N]
 *                    [followlocation=false]
 *                    [proxy=URL] [user-agent=UA] [protocols=P,P...] ...
 *
 * The keys are nbdkit's curl plugin's.  The size comes from the server
 * (HEAD, or a one-byte range request), asked again by every client
 * connection, so a changed or restarted server is seen by the next
 * client.  Reads are Range requests; a server that ignores Range fails
 * the connection at open rather than giving wrong data.  Writes, over
 * HTTP only and without -r, are PUT requests with a Content-Range
 * header, as nbdkit does; few servers take them.
 *
 * One pool of CONNECTIONS easy handles (request.c) serves every client
 * connection, so the thread model is parallel: as many requests run at
 * once as there are handles.  Reads and writes are asynchronous
 * (async.c) unless async=false: a few threads of the plugin
 * (transfer-threads=) run their transfers, and no server thread waits
 * for them.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#endif

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include "curldefs.h"

struct curl_config cfg;
static struct nbdkit_plugin plugin; /* async=false clears its async_* */

/* -D curl.verbose=1: libcurl's own trace on stderr. */
NBDKIT_DLL_PUBLIC int curl_debug_verbose = 0;

static const char *ssl_version_s, *http_version_s;
static int64_t connections_v = 4, timeout_v = 0;
static bool sslverify_v = true, followlocation_v = true;
static bool tcp_keepalive_v = false, tcp_nodelay_v = true;
static bool async_v = true;
static int64_t transfer_threads_v = 0;

static const struct nbdkit_param curl_params[]
    = { { .name = "url",
          .type = NBDKIT_PARAM_STRING,
          .flags = NBDKIT_PARAM_REQUIRED,
          .doc = "URL of the disk image (http://, https://, ftp://, ...)",
          .dest = &cfg.url },
        { .name = "header",
          .type = NBDKIT_PARAM_LIST,
          .doc = "'Name: value' sent with every HTTP request" },
        { .name = "cookie",
          .type = NBDKIT_PARAM_PASSWORD,
          .doc = "'name=value; name2=value2' sent with every request",
          .dest = &cfg.cookie },
        { .name = "cookiefile",
          .type = NBDKIT_PARAM_STRING,
          .doc = "enable cookies, starting from this file (or empty)",
          .dest = &cfg.cookiefile },
        { .name = "cookiejar",
          .type = NBDKIT_PARAM_STRING,
          .doc = "enable cookies, saved to this file on close",
          .dest = &cfg.cookiejar },
        { .name = "header-script",
          .type = NBDKIT_PARAM_STRING,
          .doc = "shell command printing more headers, one a line",
          .dest = &cfg.header_script },
        { .name = "header-script-renew",
          .type = NBDKIT_PARAM_INT,
          .doc = "run header-script again after this many seconds",
          .dest = &cfg.header_script_renew },
        { .name = "cookie-script",
          .type = NBDKIT_PARAM_STRING,
          .doc = "shell command printing the cookie",
          .dest = &cfg.cookie_script },
        { .name = "cookie-script-renew",
          .type = NBDKIT_PARAM_INT,
          .doc = "run cookie-script again after this many seconds",
          .dest = &cfg.cookie_script_renew },
        { .name = "user",
          .type = NBDKIT_PARAM_STRING,
          .doc = "user name for the server",
          .dest = &cfg.user },
        { .name = "password",
          .type = NBDKIT_PARAM_PASSWORD,
          .doc = "password for the server (-, -FD or +FILE to read it)",
          .dest = &cfg.password },
        { .name = "proxy",
          .type = NBDKIT_PARAM_STRING,
          .doc = "proxy to go through",
          .dest = &cfg.proxy },
        { .name = "proxy-user",
          .type = NBDKIT_PARAM_STRING,
          .doc = "user name for the proxy",
          .dest = &cfg.proxy_user },
        { .name = "proxy-password",
          .type = NBDKIT_PARAM_PASSWORD,
          .doc = "password for the proxy",
          .dest = &cfg.proxy_password },
        { .name = "sslverify",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "true",
          .doc = "verify the server's certificate and name",
          .dest = &sslverify_v },
        { .name = "cainfo",
          .type = NBDKIT_PARAM_STRING,
          .doc = "CA certificates to trust (empty: none, not the system's)",
          .dest = &cfg.cainfo },
        { .name = "capath",
          .type = NBDKIT_PARAM_STRING,
          .doc = "directory of CA certificates to trust",
          .dest = &cfg.capath },
        { .name = "ssl-version",
          .type = NBDKIT_PARAM_ENUM,
          .choices
          = "default|tlsv1|sslv2|sslv3|tlsv1.0|tlsv1.1|tlsv1.2|tlsv1.3|"
            "max-default|max-tlsv1.0|max-tlsv1.1|max-tlsv1.2|max-tlsv1.3",
          .doc = "TLS version to use",
          .dest = &ssl_version_s },
        { .name = "ssl-cipher-list",
          .type = NBDKIT_PARAM_STRING,
          .doc = "TLS ciphers (libcurl's CURLOPT_SSL_CIPHER_LIST)",
          .dest = &cfg.ssl_cipher_list },
        { .name = "tls13-ciphers",
          .type = NBDKIT_PARAM_STRING,
          .doc = "TLS 1.3 cipher suites",
          .dest = &cfg.tls13_ciphers },
        { .name = "http-version",
          .type = NBDKIT_PARAM_ENUM,
          .choices = "none|1.0|1.1|2.0|2TLS|2-prior-knowledge|3|3only",
          .doc = "HTTP version to use (default none: negotiated)",
          .dest = &http_version_s },
        { .name = "timeout",
          .type = NBDKIT_PARAM_INT,
          .doc = "seconds a request may take (0: no limit)",
          .dest = &timeout_v },
        { .name = "connections",
          .type = NBDKIT_PARAM_INT,
          .default_value = "4",
          .doc = "requests in flight to the server, for all clients together",
          .dest = &connections_v },
        { .name = "followlocation",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "true",
          .doc = "follow redirects",
          .dest = &followlocation_v },
        { .name = "user-agent",
          .type = NBDKIT_PARAM_STRING,
          .doc = "User-Agent header (default: none)",
          .dest = &cfg.user_agent },
        { .name = "protocols",
          .type = NBDKIT_PARAM_STRING,
          .doc = "protocols allowed, also in redirects (e.g. http,https)",
          .dest = &cfg.protocols },
        { .name = "unix-socket-path",
          .type = NBDKIT_PARAM_STRING,
          .doc = "connect to this Unix socket instead of TCP",
          .dest = &cfg.unix_socket_path },
        { .name = "tcp-keepalive",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "false",
          .doc = "TCP keepalive probes",
          .dest = &tcp_keepalive_v },
        { .name = "tcp-nodelay",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "true",
          .doc = "disable Nagle's algorithm",
          .dest = &tcp_nodelay_v },
        { .name = "async",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "true",
          .doc = "run reads and writes on the plugin's transfer threads, "
                 "without a server thread waiting for each (false: one waits)",
          .dest = &async_v },
        { .name = "transfer-threads",
          .type = NBDKIT_PARAM_INT,
          .doc = "threads running the asynchronous transfers (default: "
                 "one per CPU, at most connections)",
          .dest = &transfer_threads_v },
        { .name = NULL } };

static void
curl_load (void)
{
  CURLcode r = curl_global_init (CURL_GLOBAL_DEFAULT);

  if (r != CURLE_OK)
    nbdkit_error ("curl_global_init: %s", curl_easy_strerror (r));
}

static void
curl_unload (void)
{
  driver_stop ();
  pool_free ();
  scripts_free ();
  curl_slist_free_all (cfg.headers);
  cfg.headers = NULL;
  curl_global_cleanup ();
}

static int
curl_config (const char *key, const char *value)
{
  if (strcmp (key, "header") == 0) {
    struct curl_slist *l = curl_slist_append (cfg.headers, value);
    if (l == NULL) {
      nbdkit_error ("header=%s: out of memory", value);
      return -1;
    }
    cfg.headers = l;
  }
  return 0;
}

static long
ssl_version_of (const char *s)
{
  static const struct {
    const char *name;
    long v;
  } t[] = {
    { "default", CURL_SSLVERSION_DEFAULT },
    { "tlsv1", CURL_SSLVERSION_TLSv1 },
    { "sslv2", CURL_SSLVERSION_SSLv2 },
    { "sslv3", CURL_SSLVERSION_SSLv3 },
    { "tlsv1.0", CURL_SSLVERSION_TLSv1_0 },
    { "tlsv1.1", CURL_SSLVERSION_TLSv1_1 },
    { "tlsv1.2", CURL_SSLVERSION_TLSv1_2 },
    { "tlsv1.3", CURL_SSLVERSION_TLSv1_3 },
    { "max-default", CURL_SSLVERSION_MAX_DEFAULT },
    { "max-tlsv1.0", CURL_SSLVERSION_MAX_TLSv1_0 },
    { "max-tlsv1.1", CURL_SSLVERSION_MAX_TLSv1_1 },
    { "max-tlsv1.2", CURL_SSLVERSION_MAX_TLSv1_2 },
    { "max-tlsv1.3", CURL_SSLVERSION_MAX_TLSv1_3 },
  };

  for (size_t i = 0; s && i < sizeof t / sizeof t[0]; i++)
    if (strcmp (s, t[i].name) == 0)
      return t[i].v;
  return CURL_SSLVERSION_DEFAULT;
}

static long
http_version_of (const char *s)
{
  static const struct {
    const char *name;
    long v;
  } t[] = {
    { "none", CURL_HTTP_VERSION_NONE },
    { "1.0", CURL_HTTP_VERSION_1_0 },
    { "1.1", CURL_HTTP_VERSION_1_1 },
    { "2.0", CURL_HTTP_VERSION_2_0 },
    { "2TLS", CURL_HTTP_VERSION_2TLS },
    { "2-prior-knowledge", CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE },
    { "3", CURL_HTTP_VERSION_3 },
    { "3only", CURL_HTTP_VERSION_3ONLY },
  };

  for (size_t i = 0; s && i < sizeof t / sizeof t[0]; i++)
    if (strcmp (s, t[i].name) == 0)
      return t[i].v;
  return CURL_HTTP_VERSION_NONE;
}

/* The URL for messages: without the password it may carry. */
static const char *
shown_url_of (const char *url)
{
  CURLU *u = curl_url ();
  char *s = NULL;
  const char *r = url;

  if (u && curl_url_set (u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == 0
      && curl_url_set (u, CURLUPART_PASSWORD, NULL, 0) == 0
      && curl_url_get (u, CURLUPART_URL, &s, 0) == 0) {
    r = nbdkit_strdup_intern (s);
    if (r == NULL)
      r = url;
  }
  curl_free (s);
  curl_url_cleanup (u);
  return r;
}

static int
curl_config_complete (void)
{
  if (connections_v < 1 || connections_v > 1024) {
    nbdkit_error ("connections=%" PRIi64 ": must be between 1 and 1024",
                  connections_v);
    return -1;
  }
  if (timeout_v < 0 || timeout_v > 365 * 86400) {
    nbdkit_error ("timeout=%" PRIi64 ": must be 0 (no limit) or seconds",
                  timeout_v);
    return -1;
  }
  cfg.shown_url = shown_url_of (cfg.url);
  cfg.connections = connections_v;
  cfg.timeout = timeout_v;
  cfg.sslverify = sslverify_v;
  cfg.followlocation = followlocation_v;
  cfg.tcp_keepalive = tcp_keepalive_v;
  cfg.tcp_nodelay = tcp_nodelay_v;
  cfg.ssl_version = ssl_version_of (ssl_version_s);
  cfg.http_version = http_version_of (http_version_s);
  cfg.verbose = curl_debug_verbose != 0;
  cfg.async = async_v;
  if (transfer_threads_v == 0) {
    /* The CPUs this process may run on (taskset), as the server counts. */
    cpu_set_t cpus;
    transfer_threads_v = sched_getaffinity (0, sizeof cpus, &cpus) == 0
                             ? CPU_COUNT (&cpus)
                             : 1;
    if (transfer_threads_v > connections_v)
      transfer_threads_v = connections_v;
  } else if (transfer_threads_v < 0 || transfer_threads_v > connections_v) {
    nbdkit_error ("transfer-threads=%" PRIi64
                  ": must be 0 (one per CPU) or 1 to connections (%" PRIi64 ")",
                  transfer_threads_v, connections_v);
    return -1;
  }
  cfg.transfer_threads = (unsigned)transfer_threads_v;
  if (!cfg.async) {
    plugin.async_pread = NULL;
    plugin.async_pwrite = NULL;
  }
  if (scripts_config_complete () == -1)
    return -1;
  return pool_init ();
}

/* The driver threads, in the process that serves. */
static int
curl_after_fork (void)
{
  return cfg.async ? driver_start () : 0;
}

static void
curl_cleanup (void)
{
  driver_stop ();
  pool_free ();
  scripts_free ();
}

static void
curl_dump_plugin (void)
{
  const curl_version_info_data *v = curl_version_info (CURLVERSION_NOW);

  printf ("curl_version=%s\n", curl_version ());
  if (v && v->protocols) {
    printf ("curl_protocols=");
    for (size_t i = 0; v->protocols[i]; i++)
      printf ("%s%s", i ? "," : "", v->protocols[i]);
    printf ("\n");
  }
}

struct handle {
  int64_t size;
  bool is_http;
  bool readonly;
};

static void *
curl_open (int readonly, const char *exportname, int is_tls)
{
  struct handle *h = calloc (1, sizeof *h);
  struct url_info info = { 0 };
  struct chandle *ch;
  int r;

  (void)exportname;
  (void)is_tls;
  if (h == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  ch = pool_get ();
  if (ch == NULL) {
    free (h);
    return NULL;
  }
  r = probe (ch, &info);
  pool_put (ch);
  if (r == -1) {
    free (h);
    return NULL;
  }
  h->size = info.size;
  h->is_http = info.is_http;
  h->readonly = readonly;
  nbdkit_debug ("%s: size %" PRIi64 "%s", cfg.shown_url, h->size,
                h->is_http ? ", byte ranges supported" : "");
  return h;
}

static void
curl_close (void *handle)
{
  free (handle);
}

static int64_t
curl_get_size (void *handle)
{
  struct handle *h = handle;

  return h->size;
}

/* Writes are HTTP PUTs of a range; other protocols would replace the
 * whole file.
 */
static int
curl_can_write (void *handle)
{
  struct handle *h = handle;

  return h->is_http;
}

/* HTTP has no flush: several connections see each other's writes only
 * when the server does, so multi-conn is for read-only clients.
 */
static int
curl_can_multi_conn (void *handle)
{
  struct handle *h = handle;

  return h->readonly;
}

static int
curl_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
            uint32_t flags, struct nbdkit_read *rd)
{
  struct chandle *ch = pool_get ();
  int r, err;

  (void)handle;
  (void)flags;
  if (ch == NULL)
    return -1;
  r = range_read (ch, buf, count, offset, rd);
  err = errno;
  pool_put (ch);
  if (r == -1)
    nbdkit_set_error (err);
  return r;
}

static int
curl_pwrite (void *handle, const void *buf, uint64_t count, uint64_t offset,
             uint32_t flags)
{
  struct handle *h = handle;
  struct chandle *ch = pool_get ();
  int r, err;

  (void)flags;
  if (ch == NULL)
    return -1;
  r = range_write (ch, buf, count, offset, h->size);
  err = errno;
  pool_put (ch);
  if (r == -1)
    nbdkit_set_error (err);
  return r;
}

static int
curl_async_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
                  uint32_t flags, struct nbdkit_read *rd,
                  struct nbdkit_completion *c)
{
  (void)handle;
  (void)flags;
  return async_read (buf, count, offset, rd, c);
}

static int
curl_async_pwrite (void *handle, const void *buf, uint64_t count,
                   uint64_t offset, uint32_t flags, struct nbdkit_completion *c)
{
  struct handle *h = handle;

  (void)flags;
  return async_write (buf, count, offset, h->size, c);
}

static struct nbdkit_plugin plugin = {
  .name = "curl",
  .longname = "nbdkit curl plugin",
  .description = "a disk image read over HTTP, HTTPS, FTP, ... by libcurl",
  .params = curl_params,
  .magic_config_key = "url",
  .load = curl_load,
  .unload = curl_unload,
  .config = curl_config,
  .config_complete = curl_config_complete,
  .after_fork = curl_after_fork,
  .cleanup = curl_cleanup,
  .dump_plugin = curl_dump_plugin,
  .open = curl_open,
  .close = curl_close,
  .get_size = curl_get_size,
  .can_write = curl_can_write,
  .can_multi_conn = curl_can_multi_conn,
  .pread = curl_pread,
  .pwrite = curl_pwrite,
  .pread_fills_buffer = 1,
  .async_pread = curl_async_pread,
  .async_pwrite = curl_async_pwrite,
};

NBDKIT_REGISTER_PLUGIN (plugin)
