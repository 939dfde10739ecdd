/* nbd-raw: a raw-socket NBD client for tests that real clients cannot
 * write (libnbd 1.14 and qemu 7.2 refuse to send malformed requests and
 * know nothing of extended headers).
 *
 *   nbd-raw [-t SECONDS] SOCKET [LINE...]
 *
 * Connects to the Unix socket SOCKET and runs a tiny script, one command
 * per LINE argument, or, without any, one per line of stdin.  Every
 * result is printed as one line of space-separated key=value words so a
 * shell test can grep it.  Commands:
 *
 *   hello [CLIENTFLAGS]     read the greeting, send client flags (default:
 *                           FIXED_NEWSTYLE, plus NO_ZEROES if offered)
 *   opt TYPE                send option TYPE with no data, read its replies
 *   opt-raw TYPE HEX        the same with HEX as the data
 *   opt-len TYPE LEN [HEX]  an option header declaring LEN bytes of data,
 *                           followed only by HEX; replies are not read
 *   optreply                read one option reply
 *   go [NAME]               NBD_OPT_GO; prints size and transmission flags
 *   export-name [NAME]      NBD_OPT_EXPORT_NAME
 *   req CMD FLAGS OFFSET LENGTH [DATA]
 *                           send a request (extended once extended headers
 *                           are on).  DATA is hex or fill:BYTE:COUNT; with
 *                           extended headers DATA sets PAYLOAD_LEN and is
 *                           sent as the payload, LENGTH still the header's
 *   reply                   read one whole reply (all chunks up to DONE)
 *   check-fill BYTE         the last read data is all BYTE (else exit 1)
 *   check-hex HEX           the last read data starts with HEX (else exit 1)
 *   expect-closed           the server closes the connection (else exit 1)
 *   raw HEX                 send raw bytes
 *   sleep MS
 *
 * Numbers may be decimal or 0x-hex.  Exit status: 0 if every command ran
 * and every check passed; 1 on a failed check; 2 on EOF or an I/O error
 * where data was expected; 3 on a timeout.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_PROTOCOL_H
#include "protocol.h"
#else
#define NBD_MAGIC UINT64_C (0x4e42444d41474943)
#define NBD_IHAVEOPT UINT64_C (0x49484156454F5054)
#define NBD_REP_MAGIC UINT64_C (0x3e889045565a9)
#define NBD_REQUEST_MAGIC UINT32_C (0x25609513)
#define NBD_EXTENDED_REQUEST_MAGIC UINT32_C (0x21e41c71)
#define NBD_SIMPLE_REPLY_MAGIC UINT32_C (0x67446698)
#define NBD_STRUCTURED_REPLY_MAGIC UINT32_C (0x668e33ef)
#define NBD_EXTENDED_REPLY_MAGIC UINT32_C (0x6e8a278c)
#define NBD_FLAG_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_NO_ZEROES (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES (1u << 1)
#define NBD_OPT_EXPORT_NAME 1
#define NBD_OPT_GO 7
#define NBD_OPT_STRUCTURED_REPLY 8
#define NBD_OPT_EXTENDED_HEADERS 11
#define NBD_REP_ACK UINT32_C (1)
#define NBD_REP_INFO UINT32_C (3)
#define NBD_REP_ERR_BIT UINT32_C (0x80000000)
#define NBD_INFO_EXPORT 0
#define NBD_CMD_READ 0
#define NBD_CMD_DISC 2
#define NBD_CMD_BLOCK_STATUS 7
#define NBD_CMD_FLAG_PAYLOAD_LEN (1u << 5)
#define NBD_REPLY_FLAG_DONE (1u << 0)
#define NBD_REPLY_TYPE_NONE 0
#define NBD_REPLY_TYPE_OFFSET_DATA 1
#define NBD_REPLY_TYPE_OFFSET_HOLE 2
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_BLOCK_STATUS_EXT 6
#define NBD_REPLY_TYPE_ERR_BIT (1u << 15)
#endif

/* Largest reply payload or read buffer we accept. */
#define MAX_BUF (UINT64_C (64) << 20)
#define MAX_PENDING 64

static int sock = -1;
static bool ext_headers; /* extended headers negotiated */
static bool structured;  /* structured replies negotiated */
static bool no_zeroes;   /* both sides set NO_ZEROES */
static uint64_t next_cookie = 1;

/* Requests sent and not yet answered: a simple reply to a READ carries
 * no length, so remember each request's. */
static struct {
  uint64_t cookie;
  uint16_t type;
  uint64_t offset, length;
} pending[MAX_PENDING];
static int npending;

/* The data of the last read reply, for check-fill / check-hex. */
static unsigned char *lastbuf;
static uint64_t lastlen;

static void
die (int status, const char *what)
{
  printf ("%s\n", what);
  fflush (stdout);
  exit (status);
}

/* Read exactly n bytes or exit: EOF and errors exit 2, timeouts exit 3. */
static void
read_full (void *buf, size_t n)
{
  unsigned char *p = buf;

  while (n > 0) {
    ssize_t r = read (sock, p, n);
    if (r == 0)
      die (2, "eof");
    if (r < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        die (3, "timeout");
      printf ("ioerror errno=%d\n", errno);
      die (2, "eof");
    }
    p += r;
    n -= r;
  }
}

static void
write_full (const void *buf, size_t n)
{
  const unsigned char *p = buf;

  while (n > 0) {
    ssize_t r = send (sock, p, n, MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      printf ("ioerror errno=%d\n", errno);
      die (2, "write-failed");
    }
    p += r;
    n -= r;
  }
}

static uint16_t
get16 (const unsigned char *p)
{
  uint16_t v;
  memcpy (&v, p, 2);
  return be16toh (v);
}

static uint32_t
get32 (const unsigned char *p)
{
  uint32_t v;
  memcpy (&v, p, 4);
  return be32toh (v);
}

static uint64_t
get64 (const unsigned char *p)
{
  uint64_t v;
  memcpy (&v, p, 8);
  return be64toh (v);
}

static unsigned char *
put16 (unsigned char *p, uint16_t v)
{
  v = htobe16 (v);
  memcpy (p, &v, 2);
  return p + 2;
}

static unsigned char *
put32 (unsigned char *p, uint32_t v)
{
  v = htobe32 (v);
  memcpy (p, &v, 4);
  return p + 4;
}

static unsigned char *
put64 (unsigned char *p, uint64_t v)
{
  v = htobe64 (v);
  memcpy (p, &v, 8);
  return p + 8;
}

static uint64_t
number (const char *s)
{
  char *end;
  uint64_t v;

  if (s == NULL)
    die (1, "syntax missing-number");
  errno = 0;
  v = strtoull (s, &end, 0);
  if (errno || *end) {
    printf ("syntax bad-number=%s\n", s);
    exit (1);
  }
  return v;
}

/* Parse DATA: hex digits, or fill:BYTE:COUNT.  Returns a malloc'd buffer. */
static unsigned char *
parse_data (const char *s, size_t *len)
{
  unsigned char *buf;

  if (strncmp (s, "fill:", 5) == 0) {
    char byte[32];
    const char *colon = strchr (s + 5, ':');
    if (!colon || colon - (s + 5) >= (long)sizeof byte)
      die (1, "syntax bad-fill");
    memcpy (byte, s + 5, colon - (s + 5));
    byte[colon - (s + 5)] = 0;
    *len = number (colon + 1);
    if (*len > MAX_BUF)
      die (1, "syntax fill-too-big");
    buf = malloc (*len ? *len : 1);
    if (!buf)
      die (2, "oom");
    memset (buf, (int)number (byte), *len);
    return buf;
  }
  *len = strlen (s) / 2;
  if (strlen (s) % 2)
    die (1, "syntax odd-hex");
  buf = malloc (*len ? *len : 1);
  if (!buf)
    die (2, "oom");
  for (size_t i = 0; i < *len; i++) {
    unsigned v;
    if (sscanf (s + 2 * i, "%2x", &v) != 1)
      die (1, "syntax bad-hex");
    buf[i] = v;
  }
  return buf;
}

/* FNV-1a, 64 bit: a short fingerprint of data for the output. */
static uint64_t
fnv (const unsigned char *p, uint64_t n)
{
  uint64_t h = UINT64_C (0xcbf29ce484222325);
  for (uint64_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= UINT64_C (0x100000001b3);
  }
  return h;
}

static void
cmd_hello (const char *flagstr)
{
  unsigned char g[18], c[4];
  uint32_t cflags;

  read_full (g, sizeof g);
  uint64_t magic = get64 (g), ihaveopt = get64 (g + 8);
  uint16_t gflags = get16 (g + 16);
  printf ("greeting magic=%s flags=0x%x\n",
          magic == NBD_MAGIC && ihaveopt == NBD_IHAVEOPT ? "ok" : "bad",
          gflags);
  if (flagstr)
    cflags = number (flagstr);
  else {
    cflags = NBD_FLAG_C_FIXED_NEWSTYLE;
    if (gflags & NBD_FLAG_NO_ZEROES)
      cflags |= NBD_FLAG_C_NO_ZEROES;
  }
  no_zeroes = (gflags & NBD_FLAG_NO_ZEROES) && (cflags & NBD_FLAG_C_NO_ZEROES);
  put32 (c, cflags);
  write_full (c, sizeof c);
}

static void
send_option (uint32_t opt, uint32_t declared, const unsigned char *data,
             size_t len)
{
  unsigned char h[16], *p = h;

  p = put64 (p, NBD_IHAVEOPT);
  p = put32 (p, opt);
  put32 (p, declared);
  write_full (h, sizeof h);
  if (len)
    write_full (data, len);
}

/* Read one option reply; print it and return its type.  INFO_EXPORT
 * payloads are decoded. */
static uint32_t
read_optreply (uint32_t *optp)
{
  unsigned char h[20];
  unsigned char *data;

  read_full (h, sizeof h);
  uint64_t magic = get64 (h);
  uint32_t opt = get32 (h + 8), type = get32 (h + 12), len = get32 (h + 16);
  if (magic != NBD_REP_MAGIC) {
    printf ("optreply magic=bad value=0x%" PRIx64 "\n", magic);
    die (2, "protocol-error");
  }
  if (len > MAX_BUF)
    die (2, "optreply-too-long");
  data = malloc (len ? len : 1);
  if (!data)
    die (2, "oom");
  read_full (data, len);
  printf ("optreply opt=%u type=0x%x len=%u", opt, type, len);
  if (type & NBD_REP_ERR_BIT)
    printf (" error=%u", type & ~NBD_REP_ERR_BIT);
  else if (type == NBD_REP_ACK)
    printf (" ack");
  if (type == NBD_REP_INFO && len >= 2) {
    uint16_t info = get16 (data);
    printf (" info=%u", info);
    if (info == NBD_INFO_EXPORT && len == 12)
      printf (" size=%" PRIu64 " flags=0x%x", get64 (data + 2),
              get16 (data + 10));
  }
  printf ("\n");
  free (data);
  if (optp)
    *optp = opt;
  return type;
}

/* Send an option and read replies until the final one (ACK or error). */
static uint32_t
run_option (uint32_t opt, const unsigned char *data, size_t len)
{
  uint32_t type;

  send_option (opt, len, data, len);
  do
    type = read_optreply (NULL);
  while (type != NBD_REP_ACK && !(type & NBD_REP_ERR_BIT));
  if (type == NBD_REP_ACK && opt == NBD_OPT_EXTENDED_HEADERS)
    ext_headers = true;
  if (type == NBD_REP_ACK && opt == NBD_OPT_STRUCTURED_REPLY)
    structured = true;
  return type;
}

static void
cmd_go (const char *name)
{
  size_t n = name ? strlen (name) : 0;
  unsigned char *d = malloc (n + 6), *p = d;
  unsigned char h[20], *data;

  if (!d)
    die (2, "oom");
  p = put32 (p, n);
  if (n)
    memcpy (p, name, n);
  put16 (p + n, 0);
  send_option (NBD_OPT_GO, n + 6, d, n + 6);
  free (d);
  /* Replies: INFO..., then ACK or an error. */
  for (;;) {
    read_full (h, sizeof h);
    uint32_t type = get32 (h + 12), len = get32 (h + 16);
    if (get64 (h) != NBD_REP_MAGIC)
      die (2, "protocol-error");
    if (len > MAX_BUF)
      die (2, "optreply-too-long");
    data = malloc (len ? len : 1);
    if (!data)
      die (2, "oom");
    read_full (data, len);
    if (type == NBD_REP_INFO && len == 12 && get16 (data) == NBD_INFO_EXPORT)
      printf ("go info size=%" PRIu64 " flags=0x%x\n", get64 (data + 2),
              get16 (data + 10));
    free (data);
    if (type == NBD_REP_ACK) {
      printf ("go ok\n");
      return;
    }
    if (type & NBD_REP_ERR_BIT) {
      printf ("go error=%u\n", type & ~NBD_REP_ERR_BIT);
      return;
    }
  }
}

static void
cmd_export_name (const char *name)
{
  unsigned char r[134];
  size_t n = name ? strlen (name) : 0;

  send_option (NBD_OPT_EXPORT_NAME, n, (const unsigned char *)name, n);
  read_full (r, no_zeroes ? 10 : sizeof r);
  printf ("export size=%" PRIu64 " flags=0x%x\n", get64 (r), get16 (r + 8));
}

static void
cmd_req (char **args, int nargs)
{
  unsigned char h[32], *p = h;
  unsigned char *data = NULL;
  size_t dlen = 0;

  if (nargs < 4)
    die (1, "syntax req-needs-4-args");
  uint16_t type = number (args[0]);
  uint16_t flags = number (args[1]);
  uint64_t offset = number (args[2]), length = number (args[3]);
  if (nargs > 4)
    data = parse_data (args[4], &dlen);
  uint64_t cookie = next_cookie++;

  if (ext_headers) {
    if (data)
      flags |= NBD_CMD_FLAG_PAYLOAD_LEN;
    p = put32 (p, NBD_EXTENDED_REQUEST_MAGIC);
    p = put16 (p, flags);
    p = put16 (p, type);
    p = put64 (p, cookie);
    p = put64 (p, offset);
    p = put64 (p, length);
  } else {
    p = put32 (p, NBD_REQUEST_MAGIC);
    p = put16 (p, flags);
    p = put16 (p, type);
    p = put64 (p, cookie);
    p = put64 (p, offset);
    p = put32 (p, (uint32_t)length);
  }
  write_full (h, p - h);
  if (dlen)
    write_full (data, dlen);
  free (data);
  printf ("sent cookie=%" PRIu64 " type=%u flags=0x%x offset=%" PRIu64
          " length=%" PRIu64 " %s\n",
          cookie, type, flags, offset, length,
          ext_headers ? "extended" : "compact");
  if (type != NBD_CMD_DISC) {
    if (npending == MAX_PENDING)
      die (1, "too-many-pending");
    pending[npending].cookie = cookie;
    pending[npending].type = type;
    pending[npending].offset = offset;
    pending[npending].length = length;
    npending++;
  }
}

/* Find and forget the pending request with this cookie; -1 if none. */
static int
take_pending (uint64_t cookie, uint16_t *type, uint64_t *offset,
              uint64_t *length)
{
  for (int i = 0; i < npending; i++) {
    if (pending[i].cookie == cookie) {
      *type = pending[i].type;
      *offset = pending[i].offset;
      *length = pending[i].length;
      pending[i] = pending[--npending];
      return 0;
    }
  }
  return -1;
}

static void
set_lastbuf (uint64_t len)
{
  free (lastbuf);
  lastlen = len;
  lastbuf = calloc (len ? len : 1, 1);
  if (!lastbuf)
    die (2, "oom");
}

/* Read one chunk payload of a structured or extended reply and print it. */
static void
read_chunk_payload (uint16_t type, uint64_t len, uint64_t reqoff,
                    uint32_t *error, uint64_t *datalen)
{
  unsigned char *pl;

  if (len > MAX_BUF + 64)
    die (2, "chunk-too-long");
  pl = malloc (len ? len : 1);
  if (!pl)
    die (2, "oom");
  read_full (pl, len);
  if (type == NBD_REPLY_TYPE_OFFSET_DATA && len >= 8) {
    uint64_t off = get64 (pl), n = len - 8;
    printf ("data offset=%" PRIu64 " len=%" PRIu64 "\n", off, n);
    if (off >= reqoff && off - reqoff + n <= lastlen)
      memcpy (lastbuf + (off - reqoff), pl + 8, n);
    else
      printf ("data-outside-request\n");
    *datalen += n;
  } else if (type == NBD_REPLY_TYPE_OFFSET_HOLE && len == 12) {
    uint64_t off = get64 (pl);
    uint32_t n = get32 (pl + 8);
    printf ("hole offset=%" PRIu64 " len=%u\n", off, n);
    *datalen += n;
  } else if (type == NBD_REPLY_TYPE_BLOCK_STATUS && len >= 4) {
    printf ("block-status context=%u\n", get32 (pl));
    for (uint64_t i = 4; i + 8 <= len; i += 8)
      printf ("extent len=%u flags=0x%x\n", get32 (pl + i), get32 (pl + i + 4));
  } else if (type == NBD_REPLY_TYPE_BLOCK_STATUS_EXT && len >= 8) {
    printf ("block-status-ext context=%u count=%u\n", get32 (pl),
            get32 (pl + 4));
    for (uint64_t i = 8; i + 16 <= len; i += 16)
      printf ("extent len=%" PRIu64 " flags=0x%" PRIx64 "\n", get64 (pl + i),
              get64 (pl + i + 8));
  } else if ((type & NBD_REPLY_TYPE_ERR_BIT) && len >= 6) {
    uint32_t err = get32 (pl);
    uint16_t mlen = get16 (pl + 4);
    if (mlen > len - 6)
      mlen = len - 6;
    printf ("error-chunk error=%u msg=\"%.*s\"\n", err, (int)mlen,
            (char *)pl + 6);
    if (*error == 0)
      *error = err;
  }
  free (pl);
}

static void
cmd_reply (void)
{
  unsigned char h[32];
  uint16_t type = 0;
  uint64_t offset = 0, length = 0, datalen = 0, cookie;
  uint32_t error = 0;
  const char *kind;
  bool first = true;

  for (;;) {
    read_full (h, 4);
    uint32_t magic = get32 (h);
    uint16_t cflags, ctype;
    uint64_t clen = 0, coff = 0;

    if (magic == NBD_SIMPLE_REPLY_MAGIC) {
      read_full (h + 4, 12);
      error = get32 (h + 4);
      cookie = get64 (h + 8);
      if (take_pending (cookie, &type, &offset, &length) == -1)
        printf ("unknown-cookie=%" PRIu64 "\n", cookie);
      set_lastbuf (0);
      if (error == 0 && type == NBD_CMD_READ) {
        if (length > MAX_BUF)
          die (2, "read-too-long");
        set_lastbuf (length);
        read_full (lastbuf, length);
        datalen = length;
      }
      printf ("reply kind=simple cookie=%" PRIu64 " error=%u datalen=%" PRIu64
              " hash=%016" PRIx64 "\n",
              cookie, error, datalen, fnv (lastbuf, lastlen));
      return;
    }
    if (magic == NBD_STRUCTURED_REPLY_MAGIC) {
      kind = "structured";
      read_full (h + 4, 16);
      clen = get32 (h + 16);
    } else if (magic == NBD_EXTENDED_REPLY_MAGIC) {
      kind = "extended";
      read_full (h + 4, 28);
      coff = get64 (h + 16);
      clen = get64 (h + 24);
    } else {
      printf ("reply kind=bad magic=0x%08x\n", magic);
      die (2, "protocol-error");
    }
    cflags = get16 (h + 4);
    ctype = get16 (h + 6);
    cookie = get64 (h + 8);
    if (first) {
      if (take_pending (cookie, &type, &offset, &length) == -1)
        printf ("unknown-cookie=%" PRIu64 "\n", cookie);
      set_lastbuf (type == NBD_CMD_READ && length <= MAX_BUF ? length : 0);
      first = false;
    }
    printf ("chunk kind=%s flags=0x%x type=%u cookie=%" PRIu64, kind, cflags,
            ctype, cookie);
    if (magic == NBD_EXTENDED_REPLY_MAGIC)
      printf (" offset=%" PRIu64, coff);
    printf (" length=%" PRIu64 "\n", clen);
    read_chunk_payload (ctype, clen, offset, &error, &datalen);
    if (cflags & NBD_REPLY_FLAG_DONE)
      break;
  }
  printf ("reply kind=%s cookie=%" PRIu64 " error=%u datalen=%" PRIu64
          " hash=%016" PRIx64 "\n",
          kind, cookie, error, datalen, fnv (lastbuf, lastlen));
}

static void
cmd_expect_closed (void)
{
  unsigned char buf[4096];
  uint64_t total = 0;

  for (;;) {
    ssize_t r = read (sock, buf, sizeof buf);
    if (r == 0 || (r < 0 && errno == ECONNRESET)) {
      printf ("closed after=%" PRIu64 "\n", total);
      return;
    }
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      printf ("not-closed errno=%d got=%" PRIu64 "\n", errno, total);
      fflush (stdout);
      exit (1);
    }
    /* Print what arrived (e.g. an error reply before the close). */
    if (total == 0 && r >= 4)
      printf ("received magic=0x%08x\n", get32 (buf));
    total += r;
  }
}

static void
check (bool ok, const char *what)
{
  printf ("check %s %s\n", what, ok ? "ok" : "FAIL");
  if (!ok) {
    fflush (stdout);
    exit (1);
  }
}

static void
run_line (char *line)
{
  char *args[16];
  int n = 0;
  char *save, *tok;

  for (tok = strtok_r (line, " \t\r\n", &save); tok && n < 16;
       tok = strtok_r (NULL, " \t\r\n", &save))
    args[n++] = tok;
  if (n == 0 || args[0][0] == '#')
    return;
  const char *c = args[0];
  const char *a1 = n > 1 ? args[1] : NULL;

  if (strcmp (c, "hello") == 0)
    cmd_hello (a1);
  else if (strcmp (c, "opt") == 0)
    run_option (number (a1), NULL, 0);
  else if (strcmp (c, "opt-raw") == 0) {
    size_t len = 0;
    unsigned char *d = parse_data (n > 2 ? args[2] : "", &len);
    run_option (number (a1), d, len);
    free (d);
  } else if (strcmp (c, "opt-len") == 0) {
    size_t len = 0;
    unsigned char *d = parse_data (n > 3 ? args[3] : "", &len);
    send_option (number (a1), number (n > 2 ? args[2] : NULL), d, len);
    free (d);
  } else if (strcmp (c, "optreply") == 0)
    read_optreply (NULL);
  else if (strcmp (c, "go") == 0)
    cmd_go (a1);
  else if (strcmp (c, "export-name") == 0)
    cmd_export_name (a1);
  else if (strcmp (c, "req") == 0)
    cmd_req (args + 1, n - 1);
  else if (strcmp (c, "reply") == 0)
    cmd_reply ();
  else if (strcmp (c, "check-fill") == 0) {
    uint64_t b = number (a1), i;
    for (i = 0; i < lastlen && lastbuf[i] == b; i++)
      ;
    check (lastlen > 0 && i == lastlen, "fill");
  } else if (strcmp (c, "check-hex") == 0) {
    size_t len;
    unsigned char *d = parse_data (a1 ? a1 : "", &len);
    check (len <= lastlen && memcmp (d, lastbuf, len) == 0, "hex");
    free (d);
  } else if (strcmp (c, "expect-closed") == 0)
    cmd_expect_closed ();
  else if (strcmp (c, "raw") == 0) {
    size_t len;
    unsigned char *d = parse_data (a1 ? a1 : "", &len);
    write_full (d, len);
    free (d);
  } else if (strcmp (c, "sleep") == 0) {
    uint64_t ms = number (a1);
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
    nanosleep (&ts, NULL);
  } else {
    printf ("syntax unknown-command=%s\n", c);
    exit (1);
  }
  fflush (stdout);
}

int
main (int argc, char **argv)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  struct timeval tv = { .tv_sec = 10 };
  int i = 1;

  if (argc > 2 && strcmp (argv[1], "-t") == 0) {
    tv.tv_sec = number (argv[2]);
    i = 3;
  }
  if (i >= argc) {
    fprintf (stderr, "usage: nbd-raw [-t SECONDS] SOCKET [LINE...]\n");
    return 1;
  }
  if (strlen (argv[i]) >= sizeof addr.sun_path) {
    fprintf (stderr, "nbd-raw: socket path too long: %s\n", argv[i]);
    return 1;
  }
  strcpy (addr.sun_path, argv[i]);
  sock = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock == -1 || connect (sock, (struct sockaddr *)&addr, sizeof addr)) {
    perror ("nbd-raw: connect");
    return 2;
  }
  setsockopt (sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setvbuf (stdout, NULL, _IOLBF, 0);

  if (i + 1 < argc) {
    for (i++; i < argc; i++) {
      char *line = strdup (argv[i]);
      if (!line)
        die (2, "oom");
      run_line (line);
      free (line);
    }
  } else {
    char *line = NULL;
    size_t cap = 0;
    while (getline (&line, &cap, stdin) != -1)
      run_line (line);
    free (line);
  }
  free (lastbuf);
  close (sock);
  return 0;
}
