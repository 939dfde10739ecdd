/* info.c: the info plugin, a disk holding facts about the connection.
 *
 *   nbdkit info [mode=]exportname|base64exportname|address|time|uptime|conntime
 *
 * exportname: the export name the client asked for, as the disk;
 * base64exportname: the same, base64-decoded; address: the client's
 * address as text ("127.0.0.1:PORT", "[::1]:PORT", "unix"); time,
 * uptime and conntime: 12 bytes, big-endian seconds (8) and
 * microseconds (4) of the wall clock, the server's uptime and the
 * connection's age, taken at each read.  Read-only.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/un.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

static const char *mode = "exportname";
static struct timeval loaded;

static const struct nbdkit_param info_params[]
    = { { .name = "mode",
          .type = NBDKIT_PARAM_ENUM,
          .default_value = "exportname",
          .choices = "exportname|base64exportname|address|time|uptime|conntime",
          .doc = "what the disk holds",
          .dest = &mode },
        { .name = NULL } };

struct handle {
  struct timeval opened;
  size_t len;
  char data[]; /* the content for the static modes */
};

static bool
is_time (void)
{
  return strstr (mode, "time") != NULL;
}

static void
info_load (void)
{
  gettimeofday (&loaded, NULL);
}

static int
info_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_PARALLEL;
}

static int
b64val (int c)
{
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+' || c == '-')
    return 62;
  if (c == '/' || c == '_')
    return 63;
  return -1;
}

/* Decode S into OUT (room for strlen(S)); -1 on a bad character. */
static ssize_t
base64_decode (const char *s, char *out)
{
  uint32_t acc = 0;
  int bits = 0;
  ssize_t n = 0;

  for (; *s && *s != '='; s++) {
    int v = b64val ((unsigned char)*s);
    if (v < 0)
      return -1;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = acc >> bits;
    }
  }
  return n;
}

static int
address (char *out, size_t n)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char a[INET6_ADDRSTRLEN];

  if (nbdkit_peer_name ((struct sockaddr *)&ss, &len) == -1)
    return -1;
  switch (ss.ss_family) {
    case AF_INET: {
      struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
      inet_ntop (AF_INET, &sin->sin_addr, a, sizeof a);
      return snprintf (out, n, "%s:%d", a, ntohs (sin->sin_port));
    }
    case AF_INET6: {
      struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
      inet_ntop (AF_INET6, &sin6->sin6_addr, a, sizeof a);
      return snprintf (out, n, "[%s]:%d", a, ntohs (sin6->sin6_port));
    }
    case AF_UNIX:
      return snprintf (out, n, "unix");
    default:
      return snprintf (out, n, "unknown");
  }
}

static void *
info_open (int readonly, const char *exportname, int is_tls)
{
  size_t room = strlen (exportname) + 256;
  struct handle *h = malloc (sizeof *h + room);
  ssize_t n = 0;

  if (h == NULL) {
    nbdkit_error ("malloc: %m");
    return NULL;
  }
  gettimeofday (&h->opened, NULL);
  if (strcmp (mode, "exportname") == 0) {
    n = strlen (exportname);
    memcpy (h->data, exportname, n);
  } else if (strcmp (mode, "base64exportname") == 0) {
    n = base64_decode (exportname, h->data);
    if (n == -1) {
      nbdkit_error ("mode=base64exportname: the export name is not "
                    "base64: '%s'",
                    exportname);
      nbdkit_set_error (EINVAL);
      free (h);
      return NULL;
    }
  } else if (strcmp (mode, "address") == 0) {
    n = address (h->data, room);
    if (n < 0) {
      free (h);
      return NULL;
    }
  } else
    n = 12;
  h->len = n;
  return h;
}

static void
info_close (void *handle)
{
  free (handle);
}

static int64_t
info_get_size (void *handle)
{
  struct handle *h = handle;
  return h->len;
}

static int
info_true (void *handle)
{
  return 1;
}

static int
info_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
            uint32_t flags, struct nbdkit_read *rd)
{
  struct handle *h = handle;
  struct timeval now, t;
  uint8_t tb[12];

  if (!is_time ()) {
    memcpy (buf, h->data + offset, count);
    return 0;
  }
  gettimeofday (&now, NULL);
  if (strcmp (mode, "time") == 0)
    t = now;
  else
    timersub (&now, strcmp (mode, "uptime") == 0 ? &loaded : &h->opened, &t);
  for (int i = 0; i < 8; i++)
    tb[i] = (uint64_t)t.tv_sec >> (56 - 8 * i);
  for (int i = 0; i < 4; i++)
    tb[8 + i] = (uint32_t)t.tv_usec >> (24 - 8 * i);
  memcpy (buf, tb + offset, count);
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name = "info",
  .longname = "nbdkit info plugin",
  .version = NBDKIT_VERSION,
  .description = "a disk holding the export name, the client's address "
                 "or the time",
  .params = info_params,
  .magic_config_key = "mode",
  .load = info_load,
  .thread_model = info_thread_model,
  .open = info_open,
  .close = info_close,
  .get_size = info_get_size,
  .can_multi_conn = info_true,
  .pread = info_pread,
  .pread_fills_buffer = 1, /* every byte, or a hole */
};

NBDKIT_REGISTER_PLUGIN (plugin)
