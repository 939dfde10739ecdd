/* handshake.c: the fixed newstyle handshake.  Options are handled one
 * at a time until the client picks an export (OPT_GO, OPT_EXPORT_NAME)
 * or leaves; the chosen export is opened here, its capabilities turned
 * into transmission flags and its block sizes fixed.
 */

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "internal.h"
#include "protocol.h"

/* A client sending more options than this is not negotiating (nbdkit
 * allows as many).  It also bounds what a connection can make the
 * plugin allocate before an export is chosen.
 */
#define MAX_OPTIONS 32

/* The default largest data request we advertise and accept: nbdkit's
 * limit, which clients (nbdcopy, qemu) are known to use whole.
 */
#define DEFAULT_MAX_DATA MAX_REQUEST_SIZE

static int
send_opt_reply (struct connection *c, uint32_t option, uint32_t reply,
                const void *data, uint32_t len)
{
  struct nbd_fixed_new_option_reply h = {
    .magic = htobe64 (NBD_REP_MAGIC),
    .option = htobe32 (option),
    .reply = htobe32 (reply),
    .replylen = htobe32 (len),
  };
  struct iovec iov[2] = {
    { .iov_base = &h, .iov_len = sizeof h },
    { .iov_base = (void *)data, .iov_len = len },
  };
  return conn_sendv (c, iov, len ? 2 : 1);
}

/* An error reply with a message for people reading traces. */
static int
send_opt_error (struct connection *c, uint32_t option, uint32_t reply,
                const char *msg)
{
  log_debug (c->server, "option %" PRIu32 " refused: %s", option, msg);
  return send_opt_reply (c, option, reply, msg, strlen (msg));
}

/* Close whatever export the handshake has open. */
static void
close_export (struct connection *c)
{
  if (c->top) {
    backend_close (c->top);
    c->top = NULL;
  }
  free (c->exportname);
  free (c->requested_name);
  c->exportname = c->requested_name = NULL;
}

/* The name to open for what the client asked: "" means the plugin's
 * default export.
 */
static char *
resolve_name (struct connection *c, const char *name)
{
  struct server *s = c->server;
  const char *r = name;

  if (*name == '\0') {
    r = exports_default (s->top, c->readonly, c->is_tls);
    if (r == NULL)
      return NULL;
  }
  return strdup (r);
}

/* Forget the strings the plugin interned for this connection since
 * MARK: an export that could not be opened keeps none, so refused
 * options do not make the connection grow.
 */
static size_t
intern_mark (struct connection *c)
{
  pthread_mutex_lock (&c->server->intern_lock);
  size_t n = c->ninterned;
  pthread_mutex_unlock (&c->server->intern_lock);
  return n;
}

static void
intern_rollback (struct connection *c, size_t mark)
{
  pthread_mutex_lock (&c->server->intern_lock);
  while (c->ninterned > mark)
    free (c->interned[--c->ninterned]);
  pthread_mutex_unlock (&c->server->intern_lock);
}

static int open_export_1 (struct connection *c, const char *name);

/* Open NAME (unless already open), and compute everything the client
 * is told about it.  Returns 0, or -1 if it cannot be served.
 */
static int
open_export (struct connection *c, const char *name)
{
  bool reopen
      = !(c->top && c->requested_name && strcmp (c->requested_name, name) == 0);
  size_t mark = intern_mark (c);

  if (open_export_1 (c, name) == -1) {
    /* Closed by now; only a fresh open's strings can be dropped. */
    if (reopen)
      intern_rollback (c, mark);
    return -1;
  }
  return 0;
}

static int
open_export_1 (struct connection *c, const char *name)
{
  struct server *s = c->server;
  struct context *t;
  struct nbdkit_block_size bs;
  int64_t size;
  int r;
  char *resolved;

  /* The same export again (e.g. SET_META_CONTEXT, then GO) stays open;
   * what the client is told is worked out again, as it may depend on
   * what the client asked this time (block sizes).
   */
  if (!(c->top && c->requested_name && strcmp (c->requested_name, name) == 0)) {
    close_export (c);
    c->readonly = s->opt.readonly;
    resolved = resolve_name (c, name);
    if (resolved == NULL) {
      nbdkit_error ("cannot find a default export");
      return -1;
    }
    /* Plugins see the resolved name through nbdkit_export_name. */
    c->exportname = resolved;
    c->requested_name = strdup (name);
    t = backend_open (s->top, c, c->readonly, resolved, c->is_tls);
    if (t == NULL || c->requested_name == NULL) {
      backend_close (t);
      close_export (c);
      return -1;
    }
    c->top = t;
  }
  t = c->top;

  size = backend_get_size (t);
  if (size == -1)
    goto fail;
  c->exportsize = size;

  r = backend_can_write (t);
  if (r == -1)
    goto fail;
  if (r == 0)
    c->readonly = true;

  /* Block sizes: the plugin's, or the protocol's defaults ("Block size
   * constraints" in proto.md); checked for sanity: powers of 2, the
   * minimum at most 64K.
   */
  if (backend_block_size (t, &bs) == -1)
    goto fail;
  if (bs.minimum == 0) {
    bs.minimum = NBD_DEFAULT_MIN_BLOCK;
    bs.preferred = NBD_DEFAULT_PREF_BLOCK;
    if (bs.maximum == 0)
      bs.maximum = DEFAULT_MAX_DATA;
  }
  if (bs.minimum & (bs.minimum - 1) || bs.minimum > NBD_MAX_MIN_BLOCK
      || bs.preferred < bs.minimum || bs.preferred & (bs.preferred - 1)
      || bs.maximum < bs.minimum) {
    nbdkit_error ("block_size: invalid sizes minimum %" PRIu32
                  " preferred %" PRIu32 " maximum %" PRIu32
                  " (minimum and preferred must be powers of 2, minimum"
                  " <= 64K, preferred and maximum >= minimum)",
                  bs.minimum, bs.preferred, bs.maximum);
    goto fail;
  }
  if (bs.maximum > MAX_REQUEST_SIZE && !bs.advisory)
    bs.maximum = MAX_REQUEST_SIZE - MAX_REQUEST_SIZE % bs.minimum;
  c->bs = bs;

  /* Transmission flags. */
  uint16_t f = NBD_FLAG_HAS_FLAGS;
  if (c->readonly)
    f |= NBD_FLAG_READ_ONLY;
  if ((r = backend_can_flush (t)) == -1)
    goto fail;
  if (r)
    f |= NBD_FLAG_SEND_FLUSH;
  if ((r = backend_can_fua (t)) == -1)
    goto fail;
  if (r != NBDKIT_FUA_NONE)
    f |= NBD_FLAG_SEND_FUA;
  if ((r = backend_is_rotational (t)) == -1)
    goto fail;
  if (r)
    f |= NBD_FLAG_ROTATIONAL;
  if ((r = backend_can_trim (t)) == -1)
    goto fail;
  if (r)
    f |= NBD_FLAG_SEND_TRIM;
  if ((r = backend_can_zero (t)) == -1)
    goto fail;
  if (r != NBDKIT_ZERO_NONE) {
    f |= NBD_FLAG_SEND_WRITE_ZEROES;
    if ((r = backend_can_fast_zero (t)) == -1)
      goto fail;
    if (r)
      f |= NBD_FLAG_SEND_FAST_ZERO;
  }
  if ((r = backend_can_multi_conn (t)) == -1)
    goto fail;
  /* A server taking one connection at a time cannot promise what
   * several connections would see.
   */
  if (r && c->server->thread_model != TM_SERIALIZE_CONNECTIONS)
    f |= NBD_FLAG_CAN_MULTI_CONN;
  if ((r = backend_can_cache (t)) == -1)
    goto fail;
  if (r != NBDKIT_CACHE_NONE)
    f |= NBD_FLAG_SEND_CACHE;
  if (c->structured_replies)
    f |= NBD_FLAG_SEND_DF;
  c->eflags = f;
  return 0;

fail:
  close_export (c);
  return -1;
}

int
handshake_finish_export (struct connection *c, const char *name)
{
  if (open_export (c, name) == -1)
    return -1;
  /* Contexts count only if selected for this very export. */
  c->meta_selected
      = c->meta_export && strcmp (c->meta_export, name) == 0 ? c->meta_set : 0;
  return 0;
}

/* ---- options ---- */

static int
opt_export_name (struct connection *c, const char *data, uint32_t len)
{
  char name[MAX_STRING + 1];
  unsigned char reply[134] = { 0 };
  uint64_t size;
  uint16_t flags;

  if (c->extended_headers) {
    log_debug (c->server, "EXPORT_NAME after extended headers: closing");
    return -1;
  }
  if (len > MAX_STRING)
    return -1;
  memcpy (name, data, len);
  name[len] = '\0';
  /* A name cut short at a NUL is another export: no error reply
   * exists for this option, so the client goes.
   */
  if (strlen (name) != len) {
    log_debug (c->server, "EXPORT_NAME contains a NUL byte: closing");
    return -1;
  }
  if (handshake_finish_export (c, name) == -1)
    return -1; /* no error reply exists for this option */
  size = htobe64 (c->exportsize);
  flags = htobe16 (c->eflags);
  memcpy (reply, &size, 8);
  memcpy (reply + 8, &flags, 2);
  return conn_send (c, reply, c->no_zeroes ? 10 : sizeof reply);
}

static int
opt_list (struct connection *c, uint32_t len)
{
  struct server *s = c->server;
  struct nbdkit_exports *x;
  int r = 0;

  if (len != 0)
    return send_opt_error (c, NBD_OPT_LIST, NBD_REP_ERR_INVALID,
                           "OPT_LIST takes no data");
  x = exports_new ();
  if (x == NULL
      || s->top->ops->list_exports (s->top, c->readonly, c->is_tls, x) == -1) {
    exports_free (x);
    return send_opt_error (c, NBD_OPT_LIST, NBD_REP_ERR_PLATFORM,
                           "cannot list exports");
  }
  if (exports_use_default (x)) {
    const char *def = exports_default (s->top, c->readonly, c->is_tls);
    if (def && nbdkit_add_export (x, def, NULL) == -1) {
      exports_free (x);
      return send_opt_error (c, NBD_OPT_LIST, NBD_REP_ERR_PLATFORM,
                             "cannot list exports");
    }
  }
  for (size_t i = 0; r == 0 && i < exports_count (x); i++) {
    struct nbdkit_export e = exports_get (x, i);
    size_t nlen = strlen (e.name);
    size_t dlen = e.description ? strlen (e.description) : 0;
    char *buf = malloc (4 + nlen + dlen);
    uint32_t be = htobe32 (nlen);
    if (buf == NULL) {
      r = -1;
      break;
    }
    memcpy (buf, &be, 4);
    memcpy (buf + 4, e.name, nlen);
    if (dlen)
      memcpy (buf + 4 + nlen, e.description, dlen);
    r = send_opt_reply (c, NBD_OPT_LIST, NBD_REP_SERVER, buf, 4 + nlen + dlen);
    free (buf);
  }
  exports_free (x);
  if (r == -1)
    return -1;
  return send_opt_reply (c, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

static int
send_info (struct connection *c, uint32_t option, uint16_t type,
           const void *data, size_t len)
{
  unsigned char buf[2 + MAX_STRING];
  uint16_t t = htobe16 (type);

  if (len > MAX_STRING)
    len = MAX_STRING;
  memcpy (buf, &t, 2);
  memcpy (buf + 2, data, len);
  return send_opt_reply (c, option, NBD_REP_INFO, buf, 2 + len);
}

/* OPT_INFO and OPT_GO.  Returns 1 when GO succeeded. */
static int
opt_info_go (struct connection *c, uint32_t option, const char *data,
             uint32_t len)
{
  char name[MAX_STRING + 1];
  uint32_t namelen;
  uint16_t nreq;
  bool want_name = false, want_desc = false;

  if (len < 6)
    return send_opt_error (c, option, NBD_REP_ERR_INVALID,
                           "option data too short");
  memcpy (&namelen, data, 4);
  namelen = be32toh (namelen);
  if (namelen > len - 6 || namelen > MAX_STRING)
    return send_opt_error (c, option, NBD_REP_ERR_INVALID,
                           "export name length is wrong");
  memcpy (name, data + 4, namelen);
  name[namelen] = '\0';
  if (strlen (name) != namelen)
    return send_opt_error (c, option, NBD_REP_ERR_INVALID,
                           "export name contains a NUL byte");
  memcpy (&nreq, data + 4 + namelen, 2);
  nreq = be16toh (nreq);
  if (4 + namelen + 2 + 2 * (uint32_t)nreq != len)
    return send_opt_error (c, option, NBD_REP_ERR_INVALID,
                           "number of information requests is wrong");
  c->client_requested_bs = false;
  for (uint16_t i = 0; i < nreq; i++) {
    uint16_t t;
    memcpy (&t, data + 4 + namelen + 2 + 2 * i, 2);
    switch (be16toh (t)) {
      case NBD_INFO_NAME:
        want_name = true;
        break;
      case NBD_INFO_DESCRIPTION:
        want_desc = true;
        break;
      case NBD_INFO_BLOCK_SIZE:
        c->client_requested_bs = true;
        break;
      default:
        break;
    }
  }

  if (handshake_finish_export (c, name) == -1)
    return send_opt_error (c, option, NBD_REP_ERR_UNKNOWN,
                           "export unknown or cannot be opened");

  if (want_name) {
    char *canon = resolve_name (c, name);
    if (canon) {
      int r = send_info (c, option, NBD_INFO_NAME, canon, strlen (canon));
      free (canon);
      if (r == -1)
        return -1;
    }
  }
  if (want_desc) {
    const char *d = backend_export_description (c->top);
    if (d && send_info (c, option, NBD_INFO_DESCRIPTION, d, strlen (d)) == -1)
      return -1;
  }
  {
    unsigned char b[12];
    uint64_t size = htobe64 (c->exportsize);
    uint16_t fl = htobe16 (c->eflags);
    memcpy (b, &size, 8);
    memcpy (b + 8, &fl, 2);
    if (send_info (c, option, NBD_INFO_EXPORT, b, 10) == -1)
      return -1;
  }
  {
    uint32_t b[3] = { htobe32 (c->bs.minimum), htobe32 (c->bs.preferred),
                      htobe32 (c->bs.maximum) };
    if (send_info (c, option, NBD_INFO_BLOCK_SIZE, b, 12) == -1)
      return -1;
  }
  if (send_opt_reply (c, option, NBD_REP_ACK, NULL, 0) == -1)
    return -1;
  if (option == NBD_OPT_GO)
    return 1;
  return 0;
}

/* The contexts a query names: exact names, and in LIST a namespace
 * or prefix ending in ':' ("base:", "qemu:dirty-bitmap:") as a
 * wildcard.  Unknown names match nothing.
 */
static uint32_t
meta_match (struct server *s, const char *q, uint32_t len, bool list)
{
  uint32_t mask = 0;

  for (int i = 0; i < s->nmeta; i++) {
    const char *n = s->meta_names[i];
    size_t nlen = strlen (n);
    if (len == nlen && memcmp (q, n, len) == 0)
      mask |= 1u << i;
    else if (list && len > 0 && q[len - 1] == ':' && len <= nlen
             && memcmp (q, n, len) == 0)
      mask |= 1u << i;
  }
  return mask;
}

/* LIST_META_CONTEXT and SET_META_CONTEXT. */
static int
opt_meta_context (struct connection *c, uint32_t option, const char *data,
                  uint32_t len)
{
  struct server *s = c->server;
  bool set = option == NBD_OPT_SET_META_CONTEXT;
  char name[MAX_STRING + 1];
  uint32_t namelen, nq, pos, mask = 0;

  if (set) {
    /* A SET replaces earlier selections even if it fails. */
    c->meta_set = 0;
    free (c->meta_export);
    c->meta_export = NULL;
  }
  if (s->opt.no_mc)
    return send_opt_error (c, option, NBD_REP_ERR_UNSUP,
                           "meta contexts are disabled");
  if (!c->structured_replies)
    return send_opt_error (c, option, NBD_REP_ERR_INVALID,
                           "structured replies must be negotiated first");
  if (len < 8)
    return send_opt_error (c, option, NBD_REP_ERR_INVALID,
                           "option data too short");
  memcpy (&namelen, data, 4);
  namelen = be32toh (namelen);
  if (namelen > len - 8 || namelen > MAX_STRING)
    return send_opt_error (c, option, NBD_REP_ERR_INVALID,
                           "export name length is wrong");
  memcpy (name, data + 4, namelen);
  name[namelen] = '\0';
  if (strlen (name) != namelen)
    return send_opt_error (c, option, NBD_REP_ERR_INVALID,
                           "export name contains a NUL byte");
  memcpy (&nq, data + 4 + namelen, 4);
  nq = be32toh (nq);
  pos = 8 + namelen;

  /* Parse every query first: a malformed one fails the whole option. */
  for (uint32_t i = 0; i < nq; i++) {
    uint32_t qlen;
    if (len - pos < 4)
      return send_opt_error (c, option, NBD_REP_ERR_INVALID,
                             "query runs past the end of the option");
    memcpy (&qlen, data + pos, 4);
    qlen = be32toh (qlen);
    pos += 4;
    if (qlen > len - pos)
      return send_opt_error (c, option, NBD_REP_ERR_INVALID,
                             "query runs past the end of the option");
    if (memchr (data + pos, '\0', qlen))
      return send_opt_error (c, option, NBD_REP_ERR_INVALID,
                             "context name contains a NUL byte");
    /* proto.md: strings are at most NBD_MAX_STRING bytes. */
    if (qlen > NBD_MAX_STRING)
      return send_opt_error (c, option, NBD_REP_ERR_INVALID,
                             "context name is longer than the protocol's"
                             " 4096-byte limit");
    mask |= meta_match (s, data + pos, qlen, !set);
    pos += qlen;
  }
  if (pos != len)
    return send_opt_error (c, option, NBD_REP_ERR_INVALID,
                           "option has trailing bytes");
  if (nq == 0 && !set)
    mask = (s->nmeta >= 32 ? 0 : 1u << s->nmeta) - 1; /* everything */

  if (mask & 1) {
    /* base:allocation only where the export reports extents. */
    if (handshake_finish_export (c, name) == -1)
      return send_opt_error (c, option, NBD_REP_ERR_UNKNOWN,
                             "export unknown or cannot be opened");
    int r = backend_can_extents (c->top);
    if (r == -1)
      return send_opt_error (c, option, NBD_REP_ERR_PLATFORM,
                             "cannot ask the plugin about extents");
    if (r == NBDKIT_EXTENTS_NONE)
      mask &= ~1u;
  }
  for (int i = 0; i < s->nmeta; i++) {
    unsigned char b[4 + MAX_STRING];
    size_t nlen = strnlen (s->meta_names[i], MAX_STRING + 1);
    uint32_t id = htobe32 (set ? i + 1 : 0);
    /* Names are bounded when registered; never trust that here. */
    if (!(mask & (1u << i)) || nlen > MAX_STRING)
      continue;
    memcpy (b, &id, 4);
    memcpy (b + 4, s->meta_names[i], nlen);
    if (send_opt_reply (c, option, NBD_REP_META_CONTEXT, b, 4 + nlen) == -1)
      return -1;
  }
  if (set && mask) {
    c->meta_set = mask;
    c->meta_export = strdup (name);
  }
  return send_opt_reply (c, option, NBD_REP_ACK, NULL, 0);
}

/* STARTTLS: upgrade, then forget everything negotiated before it. */
static int
opt_starttls (struct connection *c, uint32_t len)
{
  struct server *s = c->server;

  if (len != 0)
    return send_opt_error (c, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID,
                           "STARTTLS takes no data");
  if (s->opt.tls == TLS_OFF)
    return send_opt_error (c, NBD_OPT_STARTTLS, NBD_REP_ERR_POLICY,
                           "TLS is not enabled on this server");
  if (c->is_tls)
    return send_opt_error (c, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID,
                           "TLS is already negotiated");
  /* Bytes sent after STARTTLS but before our reply would be read as
   * plain text by us and as TLS by the client: refuse that client.
   */
  if (conn_input_pending (c)) {
    log_debug (s, "data pipelined after STARTTLS: closing");
    return -1;
  }
  if (send_opt_reply (c, NBD_OPT_STARTTLS, NBD_REP_ACK, NULL, 0) == -1
      || tls_handshake (c) == -1)
    return -1;
  c->structured_replies = c->extended_headers = false;
  c->meta_set = 0;
  free (c->meta_export);
  c->meta_export = NULL;
  close_export (c);
  return 0;
}

/* The protocol document's name of an option, for -v. */
static const char *
option_name (uint32_t option)
{
  switch (option) {
    case NBD_OPT_EXPORT_NAME:
      return "NBD_OPT_EXPORT_NAME";
    case NBD_OPT_ABORT:
      return "NBD_OPT_ABORT";
    case NBD_OPT_LIST:
      return "NBD_OPT_LIST";
    case NBD_OPT_STARTTLS:
      return "NBD_OPT_STARTTLS";
    case NBD_OPT_INFO:
      return "NBD_OPT_INFO";
    case NBD_OPT_GO:
      return "NBD_OPT_GO";
    case NBD_OPT_STRUCTURED_REPLY:
      return "NBD_OPT_STRUCTURED_REPLY";
    case NBD_OPT_LIST_META_CONTEXT:
      return "NBD_OPT_LIST_META_CONTEXT";
    case NBD_OPT_SET_META_CONTEXT:
      return "NBD_OPT_SET_META_CONTEXT";
    case NBD_OPT_EXTENDED_HEADERS:
      return "NBD_OPT_EXTENDED_HEADERS";
    default:
      return "unknown option";
  }
}

static int
negotiate (struct connection *c)
{
  struct server *s = c->server;
  char *data = NULL;
  int ret = -1;

  for (unsigned n = 0; n < MAX_OPTIONS; n++) {
    struct nbd_option h;
    uint32_t option, len;
    int r;

    if (atomic_load (&s->quit)) {
      log_debug (s, "server shutting down during the handshake");
      break;
    }
    if (conn_recv (c, &h, sizeof h) == -1)
      break;
    if (be64toh (h.version) != NBD_IHAVEOPT) {
      log_debug (s, "bad option magic: closing");
      break;
    }
    option = be32toh (h.option);
    len = be32toh (h.optlen);
    if (len > MAX_OPTION_LENGTH) {
      log_debug (s,
                 "option %" PRIu32 " is %" PRIu32
                 " bytes long, more than the limit %d: closing",
                 option, len, MAX_OPTION_LENGTH);
      break;
    }
    free (data);
    data = malloc (len + 1);
    if (data == NULL || conn_recv (c, data, len) == -1)
      break;
    data[len] = '\0';
    log_debug (s, "newstyle negotiation: %s: client option, %" PRIu32 " bytes",
               option_name (option), len);

    /* A client without fixed newstyle knows no option replies: it may
     * only choose an export by name (as nbdkit).
     */
    if (!c->fixed_newstyle && option != NBD_OPT_EXPORT_NAME) {
      r = send_opt_error (c, option, NBD_REP_ERR_INVALID,
                          "the client did not ask for fixed newstyle");
      if (r == -1)
        break;
      continue;
    }

    /* With --tls=require nothing but STARTTLS and ABORT is answered
     * before TLS; EXPORT_NAME has no error reply, so the client goes.
     */
    if (s->opt.tls == TLS_REQUIRE && !c->is_tls && option != NBD_OPT_STARTTLS
        && option != NBD_OPT_ABORT) {
      if (option == NBD_OPT_EXPORT_NAME) {
        log_debug (s, "EXPORT_NAME before TLS: closing");
        goto out;
      }
      r = send_opt_error (c, option, NBD_REP_ERR_TLS_REQD,
                          "TLS is required on this server");
      if (r == -1)
        break;
      continue;
    }

    switch (option) {
      case NBD_OPT_EXPORT_NAME:
        if (opt_export_name (c, data, len) == 0)
          ret = 0;
        goto out;
      case NBD_OPT_ABORT:
        send_opt_reply (c, option, NBD_REP_ACK, NULL, 0);
        goto out;
      case NBD_OPT_LIST:
        r = opt_list (c, len);
        break;
      case NBD_OPT_STARTTLS:
        r = opt_starttls (c, len);
        break;
      case NBD_OPT_INFO:
      case NBD_OPT_GO:
        r = opt_info_go (c, option, data, len);
        if (r == 1) {
          ret = 0;
          goto out;
        }
        break;
      case NBD_OPT_STRUCTURED_REPLY:
        if (len != 0)
          r = send_opt_error (c, option, NBD_REP_ERR_INVALID,
                              "STRUCTURED_REPLY takes no data");
        else if (s->opt.no_sr)
          r = send_opt_error (c, option, NBD_REP_ERR_UNSUP,
                              "structured replies are disabled");
        else if (c->extended_headers)
          r = send_opt_error (c, option, NBD_REP_ERR_EXT_HEADER_REQD,
                              "extended headers are already negotiated");
        else {
          c->structured_replies = true;
          r = send_opt_reply (c, option, NBD_REP_ACK, NULL, 0);
        }
        break;
      case NBD_OPT_EXTENDED_HEADERS:
        if (len != 0)
          r = send_opt_error (c, option, NBD_REP_ERR_INVALID,
                              "EXTENDED_HEADERS takes no data");
        else if (s->opt.no_sr || s->opt.no_eh)
          r = send_opt_error (c, option, NBD_REP_ERR_UNSUP,
                              "extended headers are disabled");
        else {
          c->extended_headers = c->structured_replies = true;
          r = send_opt_reply (c, option, NBD_REP_ACK, NULL, 0);
        }
        break;
      case NBD_OPT_LIST_META_CONTEXT:
      case NBD_OPT_SET_META_CONTEXT:
        r = opt_meta_context (c, option, data, len);
        break;
      default:
        r = send_opt_error (c, option, NBD_REP_ERR_UNSUP, "unknown option");
        break;
    }
    if (r == -1)
      break;
    if (n + 1 == MAX_OPTIONS)
      log_debug (s, "%d options without choosing an export: closing",
                 MAX_OPTIONS);
  }
out:
  free (data);
  return ret;
}

int
handshake (struct connection *c)
{
  struct server *s = c->server;
  struct nbd_new_handshake g = {
    .nbdmagic = htobe64 (NBD_MAGIC),
    .version = htobe64 (NBD_IHAVEOPT),
  };
  uint16_t gflags = NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES;
  uint32_t cflags;
  int r;

  if (s->opt.mask_handshake)
    gflags &= ~NBD_FLAG_NO_ZEROES;
  g.gflags = htobe16 (gflags);

  /* A handshake that takes too long is dropped (slow clients). */
  if (s->opt.timeout)
    c->deadline = monotonic_ns () + (uint64_t)s->opt.timeout * 1000000000;

  if (conn_send (c, &g, sizeof g) == -1 || conn_recv (c, &cflags, 4) == -1) {
    log_debug (s, "client went away during the greeting");
    return -1;
  }
  cflags = be32toh (cflags);
  if (cflags & ~(uint32_t)(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)
      || (cflags & NBD_FLAG_C_NO_ZEROES && !(gflags & NBD_FLAG_NO_ZEROES))) {
    log_debug (s, "unknown client flags 0x%" PRIx32 ": closing", cflags);
    return -1;
  }
  c->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;
  c->fixed_newstyle = cflags & NBD_FLAG_C_FIXED_NEWSTYLE;

  r = negotiate (c);
  conn_clear_deadline (c);
  if (r == -1)
    close_export (c);
  return r;
}
