/* module.c: the `nbdkit` module Lua scripts see.
 *
 * The server's helper functions (logging, parsing, the current
 * connection, sleeping, shutting down), errors that carry an errno,
 * the calls a script makes from inside pread, extents and
 * list_exports, a Unix control socket served by a thread of its own,
 * and the constants of the ABI.  See README.md for the whole list.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "host.h"
#include "values.h"

#include <nbdkit-plugin.h>

__thread struct module_read *module_cur_read;
__thread struct nbdkit_extents *module_cur_extents;
__thread struct nbdkit_exports *module_cur_exports;
__thread int module_last_error;

#define ERROR_MT "nbdkit.Error"

static const struct {
  const char *name;
  int value;
} errnos[] = {
#define E(e) { #e, e },
  E (EPERM) E (ENOENT) E (EINTR) E (EIO) E (ENXIO) E (E2BIG) E (EBADF)
      E (EAGAIN) E (ENOMEM) E (EACCES) E (EFAULT) E (EBUSY) E (EEXIST)
          E (ENODEV) E (ENOTDIR) E (EISDIR) E (EINVAL) E (ENFILE) E (EMFILE)
              E (EFBIG) E (ENOSPC) E (ESPIPE) E (EROFS) E (EPIPE) E (ERANGE)
                  E (EDQUOT) E (ENOSYS) E (ENOTSUP) E (EOPNOTSUPP) E (EOVERFLOW)
                      E (ESHUTDOWN) E (ETIMEDOUT) E (ECONNREFUSED)
                          E (ECONNRESET) E (ENOTCONN) E (ECANCELED) E (EBADMSG)
                              E (ENODATA) E (ENOTEMPTY) E (ENAMETOOLONG)
                                  E (EDEADLK) E (ENOLCK) E (ELOOP) E (EMSGSIZE)
                                      E (ENOBUFS) E (EADDRINUSE)
                                          E (EHOSTUNREACH) E (ENETUNREACH)
#undef E
};

int
module_errno_by_name (const char *name)
{
  for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
    if (strcmp (errnos[i].name, name) == 0)
      return errnos[i].value;
  return 0;
}

const char *
module_errno_name (int err)
{
  for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
    if (errnos[i].value == err)
      return errnos[i].name;
  return "errno";
}

int
module_error_errno (lua_State *L, int idx)
{
  int e = 0;

  if (!lua_istable (L, idx))
    return 0;
  lua_getfield (L, idx, "errno");
  if (lua_isinteger (L, -1))
    e = lua_tointeger (L, -1);
  else if (lua_type (L, -1) == LUA_TSTRING)
    e = module_errno_by_name (lua_tostring (L, -1));
  lua_pop (L, 1);
  return e > 0 ? e : 0;
}

void
module_push_error (lua_State *L, int err, const char *msg)
{
  lua_createtable (L, 0, 3);
  lua_pushinteger (L, err);
  lua_setfield (L, -2, "errno");
  lua_pushstring (L, module_errno_name (err));
  lua_setfield (L, -2, "name");
  lua_pushstring (L, msg ? msg : module_errno_name (err));
  lua_setfield (L, -2, "message");
  luaL_setmetatable (L, ERROR_MT);
}

int
module_raise (lua_State *L, int err, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  lua_pushvfstring (L, fmt, ap);
  va_end (ap);
  module_push_error (L, err, lua_tostring (L, -1));
  return lua_error (L);
}

/* The errno of argument IDX: a number or a name such as "ENOSPC". */
static int
check_errno (lua_State *L, int idx)
{
  int e;

  if (lua_type (L, idx) == LUA_TSTRING) {
    e = module_errno_by_name (lua_tostring (L, idx));
    if (e == 0)
      return luaL_argerror (
          L, idx,
          lua_pushfstring (L, "unknown errno '%s'", lua_tostring (L, idx)));
    return e;
  }
  e = luaL_checkinteger (L, idx);
  if (e <= 0)
    return luaL_argerror (L, idx, "an errno is positive");
  return e;
}

/* nbdkit.errno(e [, message]): an error object to raise with error(). */
static int
l_errno (lua_State *L)
{
  int e = check_errno (L, 1);
  module_push_error (L, e, luaL_optstring (L, 2, NULL));
  return 1;
}

static int
error_tostring (lua_State *L)
{
  lua_getfield (L, 1, "name");
  lua_getfield (L, 1, "message");
  lua_pushfstring (L, "%s: %s", lua_tostring (L, -2), lua_tostring (L, -1));
  return 1;
}

/* Arguments joined as print() would, for the log functions. */
static const char *
joined (lua_State *L)
{
  int n = lua_gettop (L);
  luaL_Buffer b;

  luaL_buffinit (L, &b);
  for (int i = 1; i <= n; i++) {
    if (i > 1)
      luaL_addchar (&b, ' ');
    luaL_tolstring (L, i, NULL);
    luaL_addvalue (&b);
  }
  luaL_pushresult (&b);
  return lua_tostring (L, -1);
}

static int
l_debug (lua_State *L)
{
  nbdkit_debug ("%s", joined (L));
  return 0;
}

static int
l_error (lua_State *L)
{
  nbdkit_error ("%s", joined (L));
  return 0;
}

static int
l_set_error (lua_State *L)
{
  module_last_error = check_errno (L, 1);
  nbdkit_set_error (module_last_error);
  return 0;
}

static int
l_export_name (lua_State *L)
{
  const char *n = nbdkit_export_name ();
  if (n == NULL)
    lua_pushnil (L);
  else
    lua_pushstring (L, n);
  return 1;
}

static int
l_is_tls (lua_State *L)
{
  int r = nbdkit_is_tls ();
  if (r == -1)
    return module_raise (L, EINVAL, "is_tls: not in a connection");
  lua_pushboolean (L, r);
  return 1;
}

/* family, address, port: "unix", PATH; "ipv4"/"ipv6", ADDR, PORT. */
static int
l_peer_name (lua_State *L)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char buf[INET6_ADDRSTRLEN];

  memset (&ss, 0, sizeof ss);
  if (nbdkit_peer_name ((struct sockaddr *)&ss, &len) == -1)
    return module_raise (L, errno ? errno : EINVAL,
                         "peer_name: no client address (not in a connection?)");
  switch (ss.ss_family) {
    case AF_UNIX: {
      struct sockaddr_un *u = (struct sockaddr_un *)&ss;
      lua_pushstring (L, "unix");
      lua_pushstring (
          L, len > offsetof (struct sockaddr_un, sun_path) ? u->sun_path : "");
      return 2;
    }
    case AF_INET: {
      struct sockaddr_in *in = (struct sockaddr_in *)&ss;
      lua_pushstring (L, "ipv4");
      lua_pushstring (L, inet_ntop (AF_INET, &in->sin_addr, buf, sizeof buf));
      lua_pushinteger (L, ntohs (in->sin_port));
      return 3;
    }
    case AF_INET6: {
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
      lua_pushstring (L, "ipv6");
      lua_pushstring (L,
                      inet_ntop (AF_INET6, &in6->sin6_addr, buf, sizeof buf));
      lua_pushinteger (L, ntohs (in6->sin6_port));
      return 3;
    }
    default:
      lua_pushstring (L, "other");
      lua_pushinteger (L, ss.ss_family);
      return 2;
  }
}

#define PEER_ID(fn)                                                            \
  static int l_##fn (lua_State *L)                                             \
  {                                                                            \
    int64_t r = nbdkit_##fn ();                                                \
    if (r == -1)                                                               \
      return module_raise (L, errno ? errno : ENOTSUP,                         \
                           #fn ": not known (Unix sockets only)");             \
    lua_pushinteger (L, r);                                                    \
    return 1;                                                                  \
  }
PEER_ID (peer_pid)
PEER_ID (peer_uid)
PEER_ID (peer_gid)

static int
l_parse_size (lua_State *L)
{
  int64_t r;

  if (lua_isinteger (L, 1)) {
    lua_settop (L, 1);
    return 1;
  }
  r = nbdkit_parse_size (luaL_checkstring (L, 1));
  if (r == -1)
    return module_raise (L, EINVAL, "cannot parse size '%s'",
                         lua_tostring (L, 1));
  lua_pushinteger (L, r);
  return 1;
}

static int
l_parse_bool (lua_State *L)
{
  int r;

  if (lua_isboolean (L, 1)) {
    lua_settop (L, 1);
    return 1;
  }
  r = nbdkit_parse_bool (luaL_checkstring (L, 1));
  if (r == -1)
    return module_raise (L, EINVAL, "cannot parse boolean '%s'",
                         lua_tostring (L, 1));
  lua_pushboolean (L, r);
  return 1;
}

static int
l_parse_probability (lua_State *L)
{
  double d;

  if (nbdkit_parse_probability (luaL_checkstring (L, 1),
                                luaL_checkstring (L, 2), &d)
      == -1)
    return module_raise (L, EINVAL, "%s: cannot parse probability '%s'",
                         lua_tostring (L, 1), lua_tostring (L, 2));
  lua_pushnumber (L, d);
  return 1;
}

/* A delay: "2", "1.5", "2s", "100ms", "50us", "10ns"; in seconds. */
static int
l_parse_delay (lua_State *L)
{
  const char *what = luaL_checkstring (L, 1);
  const char *s = luaL_checkstring (L, 2);
  char *end;
  double d;

  errno = 0;
  d = strtod (s, &end);
  if (end == s || errno || d < 0 || !isfinite (d))
    goto bad;
  if (strcmp (end, "") == 0 || strcmp (end, "s") == 0)
    ;
  else if (strcmp (end, "ms") == 0)
    d /= 1e3;
  else if (strcmp (end, "us") == 0 || strcmp (end, "\xce\xbcs") == 0)
    d /= 1e6;
  else if (strcmp (end, "ns") == 0)
    d /= 1e9;
  else
    goto bad;
  lua_pushnumber (L, d);
  return 1;
bad:
  return module_raise (L, EINVAL,
                       "%s: cannot parse delay '%s' (expected"
                       " seconds, or a number with s, ms, us or ns)",
                       what, s);
}

static int
l_parse_int (lua_State *L)
{
  int64_t r;

  if (nbdkit_parse_int64_t (luaL_checkstring (L, 1), luaL_checkstring (L, 2),
                            &r)
      == -1)
    return module_raise (L, EINVAL, "%s: cannot parse integer '%s'",
                         lua_tostring (L, 1), lua_tostring (L, 2));
  lua_pushinteger (L, r);
  return 1;
}

static int
l_read_password (lua_State *L)
{
  char *pw;

  if (nbdkit_read_password (luaL_checkstring (L, 1), &pw) == -1)
    return module_raise (L, EINVAL, "cannot read the password");
  lua_pushstring (L, pw);
  free (pw);
  return 1;
}

static int
l_absolute_path (lua_State *L)
{
  char *p = nbdkit_absolute_path (luaL_checkstring (L, 1));
  if (p == NULL)
    return module_raise (L, errno ? errno : EINVAL, "absolute_path failed");
  lua_pushstring (L, p);
  free (p);
  return 1;
}

static int
l_realpath (lua_State *L)
{
  char *p = nbdkit_realpath (luaL_checkstring (L, 1));
  if (p == NULL)
    return module_raise (L, errno ? errno : ENOENT, "realpath '%s' failed",
                         lua_tostring (L, 1));
  lua_pushstring (L, p);
  free (p);
  return 1;
}

static int
l_stdio_safe (lua_State *L)
{
  lua_pushboolean (L, nbdkit_stdio_safe ());
  return 1;
}

static int
l_shutdown (lua_State *L)
{
  nbdkit_shutdown ();
  return 0;
}

static int
l_disconnect (lua_State *L)
{
  nbdkit_disconnect (lua_toboolean (L, 1));
  return 0;
}

/* Sleeping lets go of the lock, so other requests run meanwhile.
 * WHOLE: sleep the whole time even if the client has gone or the
 * server is stopping (a delay on closing, which has no request to
 * abandon); otherwise wake early with ESHUTDOWN, as nbdkit_nanosleep.
 */
static int
do_sleep (lua_State *L, double secs, bool whole)
{
  int saved, r = 0;

  if (!(secs >= 0) || secs > 1e9)
    return luaL_error (L, "sleep: bad duration %f", secs);
  saved = host_suspend ();
  if (whole) {
    struct timespec ts = {
      .tv_sec = (time_t)secs,
      .tv_nsec = (long)((secs - floor (secs)) * 1e9),
    };
    while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
      ;
  } else
    r = nbdkit_nanosleep ((unsigned)secs,
                          (unsigned)((secs - floor (secs)) * 1e9));
  host_resume (saved);
  if (r == -1)
    return module_raise (L, ESHUTDOWN, "sleep interrupted: shutting down");
  return 0;
}

/* nbdkit.clock(): seconds of the monotonic clock, for measuring. */
static int
l_clock (lua_State *L)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  lua_pushnumber (L, ts.tv_sec + ts.tv_nsec / 1e9);
  return 1;
}

static int
l_nanosleep (lua_State *L)
{
  lua_Integer s = luaL_checkinteger (L, 1), ns = luaL_optinteger (L, 2, 0);
  luaL_argcheck (L, s >= 0 && ns >= 0 && ns < 1000000000, 1,
                 "expected seconds >= 0 and 0 <= nanoseconds < 1e9");
  return do_sleep (L, s + ns / 1e9, false);
}

static int
l_sleep (lua_State *L)
{
  return do_sleep (L, luaL_checknumber (L, 1), lua_toboolean (L, 2));
}

/* ---- inside pread ---- */

static struct module_read *
cur_read (lua_State *L, const char *fn)
{
  if (module_cur_read == NULL)
    luaL_error (L, "nbdkit.%s: only inside pread", fn);
  return module_cur_read;
}

static void
check_range (lua_State *L, struct module_read *r, const char *fn, uint64_t off,
             uint64_t len)
{
  if (off < r->offset || len > r->count || off - r->offset > r->count - len)
    luaL_error (L, "nbdkit.%s: [%I, +%I) is outside the request [%I, +%I)", fn,
                (lua_Integer)off, (lua_Integer)len, (lua_Integer)r->offset,
                (lua_Integer)r->count);
}

static int
l_read_hole (lua_State *L)
{
  struct module_read *r = cur_read (L, "read_hole");
  uint64_t off = luaL_checkinteger (L, 1), len = luaL_checkinteger (L, 2);

  check_range (L, r, "read_hole", off, len);
  if (r->rd) {
    if (nbdkit_read_hole (r->rd, off, len) == -1)
      return module_raise (L, EIO, "read_hole failed");
  } else
    memset (r->buf + (off - r->offset), 0, len);
  r->covered += len;
  return 0;
}

/* The string lent to the server is kept in the registry until it is
 * done with it.  The release comes on the thread that lent.
 */
static void
release_string (void *opaque)
{
  lua_State *L = host_enter ();
  luaL_unref (L, LUA_REGISTRYINDEX, (int)(intptr_t)opaque);
  host_leave ();
}

/* Below this, copying costs less than lending. */
#define LEND_MIN 16384

int
module_read_data (lua_State *L, struct module_read *r, uint64_t off, int idx)
{
  size_t len;
  const char *s = lua_tolstring (L, idx, &len);

  if (r->rd && len >= LEND_MIN) {
    lua_pushvalue (L, idx);
    int ref = luaL_ref (L, LUA_REGISTRYINDEX);
    if (nbdkit_read_lend (r->rd, off, s, len, release_string,
                          (void *)(intptr_t)ref)
        == -1)
      return -1;
  } else
    memcpy (r->buf + (off - r->offset), s, len);
  r->covered += len;
  return 0;
}

static int
l_read_data (lua_State *L)
{
  struct module_read *r = cur_read (L, "read_data");
  uint64_t off = luaL_checkinteger (L, 1);
  size_t len;

  luaL_checklstring (L, 2, &len);
  check_range (L, r, "read_data", off, len);
  if (module_read_data (L, r, off, 2) == -1)
    return module_raise (L, EIO, "read_data failed");
  return 0;
}

static int
l_read_error_at (lua_State *L)
{
  struct module_read *r = cur_read (L, "read_error_at");
  uint64_t off = luaL_checkinteger (L, 1);

  check_range (L, r, "read_error_at", off, 0);
  if (r->rd && nbdkit_read_error_at (r->rd, off) == -1)
    return module_raise (L, EIO, "read_error_at failed");
  return 0;
}

static int
l_add_extent (lua_State *L)
{
  lua_Integer off = luaL_checkinteger (L, 1), len = luaL_checkinteger (L, 2);
  lua_Integer type = luaL_optinteger (L, 3, 0);

  if (module_cur_extents == NULL)
    return luaL_error (L, "nbdkit.add_extent: only inside extents");
  luaL_argcheck (L, off >= 0, 1, "offset must not be negative");
  luaL_argcheck (L, len >= 0, 2, "length must not be negative");
  luaL_argcheck (L, type >= 0 && type <= UINT32_MAX, 3,
                 "type must be 0 to 2^32-1");
  if (nbdkit_add_extent (module_cur_extents, off, len, type) == -1)
    return module_raise (L, errno ? errno : EINVAL, "add_extent failed");
  return 0;
}

static int
l_add_export (lua_State *L)
{
  size_t nlen, dlen = 0;
  const char *name, *desc, *why;

  if (module_cur_exports == NULL)
    return luaL_error (L, "nbdkit.add_export: only inside list_exports");
  name = luaL_checklstring (L, 1, &nlen);
  desc = luaL_optlstring (L, 2, NULL, &dlen);
  why = host_string_problem (name, nlen);
  if (why == NULL && desc)
    why = host_string_problem (desc, dlen);
  if (why)
    return module_raise (L, EINVAL, "nbdkit.add_export: a string that %s", why);
  if (nbdkit_add_export (module_cur_exports, name, desc) == -1)
    return module_raise (L, errno ? errno : EINVAL, "add_export failed");
  return 0;
}

static int
l_use_default_export (lua_State *L)
{
  if (module_cur_exports == NULL)
    return luaL_error (L, "nbdkit.use_default_export: only inside"
                          " list_exports");
  if (nbdkit_use_default_export (module_cur_exports) == -1)
    return module_raise (L, errno ? errno : EINVAL,
                         "use_default_export failed");
  return 0;
}

/* nbdkit.param(name): the value the server gave a declared parameter. */
static int
l_param (lua_State *L)
{
  const char *name = luaL_checkstring (L, 1);

  lua_getglobal (L, "params");
  if (lua_istable (L, -1)) {
    lua_Integer n = luaL_len (L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_geti (L, -1, i);
      if (lua_istable (L, -1)) {
        lua_getfield (L, -1, "name");
        if (lua_type (L, -1) == LUA_TSTRING
            && strcmp (lua_tostring (L, -1), name) == 0) {
          lua_getfield (L, -2, "value");
          return 1;
        }
        lua_pop (L, 1);
      }
      lua_pop (L, 1);
    }
  }
  return luaL_error (L, "nbdkit.param: no parameter '%s' is declared", name);
}

/* ---- control sockets ----
 *
 * nbdkit.listen_unix(path, fn): a thread of the host accepts clients
 * on the Unix socket PATH (one at a time); whatever a client sends is
 * given to fn(data), and what fn returns (a string) is sent back.
 */
struct listener {
  struct listener *next;
  char *path;
  int fd;
  int stop[2]; /* a pipe: written to stop the thread */
  int fn_ref;
  pthread_t thread;
  struct lhost *host; /* the interpreter fn belongs to */
};
static struct listener *listeners;
static pthread_mutex_t listeners_lock = PTHREAD_MUTEX_INITIALIZER;

static void
serve_client (struct listener *ls, int fd)
{
  char buf[4096];
  HOST_USE (ls->host);

  for (;;) {
    struct pollfd p[2] = { { fd, POLLIN, 0 }, { ls->stop[0], POLLIN, 0 } };
    if (poll (p, 2, -1) == -1 && errno != EINTR)
      return;
    if (p[1].revents)
      return;
    if (!p[0].revents)
      continue;
    ssize_t n = read (fd, buf, sizeof buf);
    if (n <= 0)
      return;
    lua_State *L = host_enter ();
    lua_rawgeti (L, LUA_REGISTRYINDEX, ls->fn_ref);
    lua_pushlstring (L, buf, n);
    if (host_call (L, 1, 1, "control socket", NULL) == 0) {
      size_t len;
      const char *reply = lua_tolstring (L, -1, &len);
      if (reply) {
        /* Copied: writing may block, and the lock must not be held. */
        char *copy = malloc (len);
        if (copy)
          memcpy (copy, reply, len);
        lua_pop (L, 1);
        host_leave ();
        for (size_t k = 0; copy && k < len;) {
          ssize_t w = write (fd, copy + k, len - k);
          if (w <= 0)
            break;
          k += w;
        }
        free (copy);
        continue;
      }
      lua_pop (L, 1);
    }
    host_leave ();
  }
}

static void *
listener_thread (void *p)
{
  struct listener *ls = p;

  for (;;) {
    struct pollfd pf[2] = { { ls->fd, POLLIN, 0 }, { ls->stop[0], POLLIN, 0 } };
    if (poll (pf, 2, -1) == -1 && errno != EINTR)
      break;
    if (pf[1].revents)
      break;
    if (!pf[0].revents)
      continue;
    int c = accept4 (ls->fd, NULL, NULL, SOCK_CLOEXEC);
    if (c == -1)
      continue;
    serve_client (ls, c);
    close (c);
  }
  return NULL;
}

static int
l_listen_unix (lua_State *L)
{
  const char *path = luaL_checkstring (L, 1);
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  struct listener *ls;

  luaL_checktype (L, 2, LUA_TFUNCTION);
  if (strlen (path) >= sizeof sun.sun_path)
    return module_raise (L, ENAMETOOLONG, "listen_unix: path too long: %s",
                         path);
  strcpy (sun.sun_path, path);
  ls = calloc (1, sizeof *ls);
  if (ls == NULL)
    return module_raise (L, ENOMEM, "listen_unix: out of memory");
  ls->fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (ls->fd == -1 || pipe2 (ls->stop, O_CLOEXEC) == -1) {
    int e = errno;
    if (ls->fd >= 0)
      close (ls->fd);
    free (ls);
    return module_raise (L, e, "listen_unix: %s", strerror (e));
  }
  unlink (path);
  if (bind (ls->fd, (struct sockaddr *)&sun, sizeof sun) == -1
      || listen (ls->fd, 4) == -1) {
    int e = errno;
    close (ls->fd);
    close (ls->stop[0]);
    close (ls->stop[1]);
    free (ls);
    return module_raise (L, e, "listen_unix: %s: cannot listen", path);
  }
  ls->path = strdup (path);
  lua_pushvalue (L, 2);
  ls->fn_ref = luaL_ref (L, LUA_REGISTRYINDEX);
  ls->host = host_current ();
  if (pthread_create (&ls->thread, NULL, listener_thread, ls) != 0) {
    close (ls->fd);
    unlink (path);
    return module_raise (L, EAGAIN, "listen_unix: cannot start a thread");
  }
  pthread_mutex_lock (&listeners_lock);
  ls->next = listeners;
  listeners = ls;
  pthread_mutex_unlock (&listeners_lock);
  return 0;
}

/* The current interpreter's listeners (each filter has its own). */
void
module_stop (void)
{
  struct lhost *h = host_current ();

  for (;;) {
    struct listener **p, *ls;
    pthread_mutex_lock (&listeners_lock);
    for (p = &listeners; *p && (*p)->host != h; p = &(*p)->next)
      ;
    ls = *p;
    if (ls)
      *p = ls->next;
    pthread_mutex_unlock (&listeners_lock);
    if (ls == NULL)
      break;
    if (write (ls->stop[1], "x", 1) != 1)
      nbdkit_debug ("lua: cannot stop the control socket thread");
    pthread_join (ls->thread, NULL);
    close (ls->fd);
    close (ls->stop[0]);
    close (ls->stop[1]);
    unlink (ls->path);
    free (ls->path);
    free (ls);
  }
}

static const luaL_Reg functions[] = {
  { "errno", l_errno },
  { "debug", l_debug },
  { "error", l_error },
  { "set_error", l_set_error },
  { "export_name", l_export_name },
  { "is_tls", l_is_tls },
  { "peer_name", l_peer_name },
  { "peer_pid", l_peer_pid },
  { "peer_uid", l_peer_uid },
  { "peer_gid", l_peer_gid },
  { "parse_size", l_parse_size },
  { "parse_bool", l_parse_bool },
  { "parse_probability", l_parse_probability },
  { "parse_delay", l_parse_delay },
  { "parse_int", l_parse_int },
  { "read_password", l_read_password },
  { "absolute_path", l_absolute_path },
  { "realpath", l_realpath },
  { "stdio_safe", l_stdio_safe },
  { "shutdown", l_shutdown },
  { "disconnect", l_disconnect },
  { "nanosleep", l_nanosleep },
  { "sleep", l_sleep },
  { "clock", l_clock },
  { "read_hole", l_read_hole },
  { "read_data", l_read_data },
  { "read_error_at", l_read_error_at },
  { "add_extent", l_add_extent },
  { "add_export", l_add_export },
  { "use_default_export", l_use_default_export },
  { "param", l_param },
  { "listen_unix", l_listen_unix },
  { NULL, NULL },
};

static const struct {
  const char *name;
  lua_Integer value;
} constants[] = {
  { "THREAD_MODEL_SERIALIZE_CONNECTIONS",
    NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS },
  { "THREAD_MODEL_SERIALIZE_ALL_REQUESTS",
    NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS },
  { "THREAD_MODEL_SERIALIZE_REQUESTS", NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS },
  { "THREAD_MODEL_SERIALIZE_RETIREMENT",
    NBDKIT_THREAD_MODEL_SERIALIZE_RETIREMENT },
  { "THREAD_MODEL_PARALLEL", NBDKIT_THREAD_MODEL_PARALLEL },
  { "FLAG_MAY_TRIM", NBDKIT_FLAG_MAY_TRIM },
  { "FLAG_FUA", NBDKIT_FLAG_FUA },
  { "FLAG_REQ_ONE", NBDKIT_FLAG_REQ_ONE },
  { "FLAG_FAST_ZERO", NBDKIT_FLAG_FAST_ZERO },
  { "FUA_NONE", NBDKIT_FUA_NONE },
  { "FUA_EMULATE", NBDKIT_FUA_EMULATE },
  { "FUA_NATIVE", NBDKIT_FUA_NATIVE },
  { "CACHE_NONE", NBDKIT_CACHE_NONE },
  { "CACHE_EMULATE", NBDKIT_CACHE_EMULATE },
  { "CACHE_NATIVE", NBDKIT_CACHE_NATIVE },
  { "ZERO_NONE", NBDKIT_ZERO_NONE },
  { "ZERO_EMULATE", NBDKIT_ZERO_EMULATE },
  { "ZERO_NATIVE", NBDKIT_ZERO_NATIVE },
  { "EXTENTS_NONE", NBDKIT_EXTENTS_NONE },
  { "EXTENTS_EMULATE", NBDKIT_EXTENTS_EMULATE },
  { "EXTENTS_NATIVE", NBDKIT_EXTENTS_NATIVE },
  { "EXTENT_HOLE", NBDKIT_EXTENT_HOLE },
  { "EXTENT_ZERO", NBDKIT_EXTENT_ZERO },
};

static int
open_module (lua_State *L)
{
  luaL_newlib (L, functions);
  for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++) {
    lua_pushinteger (L, constants[i].value);
    lua_setfield (L, -2, constants[i].name);
  }
  for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++) {
    lua_pushinteger (L, errnos[i].value);
    lua_setfield (L, -2, errnos[i].name);
  }
  lua_pushstring (L, LUA_RELEASE);
  lua_setfield (L, -2, "lua_version");
  return 1;
}

void
module_open (lua_State *L)
{
  if (luaL_newmetatable (L, ERROR_MT)) {
    lua_pushcfunction (L, error_tostring);
    lua_setfield (L, -2, "__tostring");
  }
  lua_pop (L, 1);
  luaL_requiref (L, "nbdkit", open_module, 1);
  lua_pop (L, 1);
}
