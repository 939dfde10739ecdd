/* fuzz-server.c: libFuzzer harnesses that feed arbitrary bytes to a
 * server running in this process, one connection per input, served to
 * the end on the fuzzing thread.
 *
 * The server (a struct server, as the nbdkit program makes it) is set
 * up once, in LLVMFuzzerInitialize, with -t 1 so a connection never
 * starts a second thread; no watchdog runs.  For each input the
 * client's bytes are written into a memory file, and connection_start
 * (not detached) serves a connection that reads them from there and
 * writes its replies to /dev/null (or, for the inputs whose replies are
 * checked, to another memory file): no thread, no socket, no waiting.
 * AddressSanitizer still checks every byte of a reply, through its
 * interceptor of writev.  The core needed no change for this.
 *
 * Built three times (tests/fuzz/CMakeLists.txt), over the plugin in
 * fuzzplug.c:
 *
 * fuzz-handshake (FUZZ_MODE 1): the input is what a client sends from
 * the start: client flags, options, then requests.  The chain has the
 * cbt filter, which offers a metadata context of its own.
 *
 * fuzz-transmission (FUZZ_MODE 2): the first two bytes choose a
 * handshake that the harness writes before the rest of the input (the
 * M_* bits below), so every input reaches transmission with structured
 * replies, extended headers and meta contexts as it chose; the rest is
 * requests.  Same chain as fuzz-handshake.
 *
 * fuzz-plugin (FUZZ_MODE 3): the same two bytes, then two bytes (little
 * endian) giving the length of a script for the plugin, the script,
 * then requests.  The chain is blocksize, offset, cow and cache over
 * fuzzplug (or fuzzplug alone, with M_ALT), whose every answer the
 * script chooses (see fuzzplug.c): short reads, errors, holes, partial
 * errors, loans, a million extents.
 *
 * After each connection, every loan the plugin made must have been
 * released; and fuzz-plugin checks the replies of connections with
 * extended headers and no filters (see check_replies).
 */

#include <dlfcn.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#ifndef FUZZ_PLUGIN
#error "FUZZ_PLUGIN must be the path of nbdkit-fuzzplug-plugin.so"
#endif
#ifndef FUZZ_FILTERDIR
#error "FUZZ_FILTERDIR must be the directory of the filters built"
#endif
#ifndef FUZZ_MODE
#error "FUZZ_MODE must be 1 (handshake), 2 (transmission) or 3 (plugin)"
#endif

#define MODE_HANDSHAKE 1
#define MODE_TRANSMISSION 2
#define MODE_PLUGIN 3

/* The first two bytes of a transmission or plugin input. */
enum {
  M_SR = 1 << 0,          /* OPT_STRUCTURED_REPLY */
  M_EH = 1 << 1,          /* OPT_EXTENDED_HEADERS */
  M_META_BASE = 1 << 2,   /* SET_META_CONTEXT base:allocation */
  M_META_OWN = 1 << 3,    /* ... and the cbt filter's context */
  M_EXPORT_A = 1 << 4,    /* export "a" instead of "" */
  M_ASK_BS = 1 << 5,      /* OPT_GO asks for block sizes */
  M_EXPORT_NAME = 1 << 6, /* OPT_EXPORT_NAME instead of OPT_GO */
  M_ALT = 1 << 7,         /* no handshake (transmission), or no filters
                           * (plugin) */
  M_READONLY = 1 << 8,    /* the server is read-only (-r) */
};

#define NBD_FLAG_C_FIXED_NEWSTYLE 1
#define NBD_FLAG_C_NO_ZEROES 2
#define IHAVEOPT 0x49484156454F5054ULL
#define OPT_EXPORT_NAME 1
#define OPT_GO 7
#define OPT_STRUCTURED_REPLY 8
#define OPT_SET_META_CONTEXT 10
#define OPT_EXTENDED_HEADERS 11
#define INFO_BLOCK_SIZE 3

static struct server *server;
static struct backend *chain_top;
static const char *own_context; /* the cbt filter's, or NULL */
static int memfd, nullfd;
static long (*plugin_loans) (void);
static void (*plugin_set_script) (const uint8_t *, size_t);
static uint32_t (*plugin_types) (uint64_t, uint64_t);
static const uint8_t *(*plugin_data) (uint64_t *);

/* The stream written for one input, grown as needed. */
static uint8_t *stream;
static size_t stream_len, stream_alloc;

static void
put (const void *p, size_t n)
{
  if (n == 0)
    return;
  if (stream_len + n > stream_alloc) {
    size_t na = (stream_len + n) * 2;
    uint8_t *ns = realloc (stream, na);
    if (ns == NULL)
      abort ();
    stream = ns;
    stream_alloc = na;
  }
  memcpy (stream + stream_len, p, n);
  stream_len += n;
}

#if FUZZ_MODE != MODE_HANDSHAKE
static void
put32 (uint32_t v)
{
  v = htobe32 (v);
  put (&v, 4);
}

static void
put_opt (uint32_t option, uint32_t len)
{
  uint64_t magic = htobe64 (IHAVEOPT);
  put (&magic, 8);
  put32 (option);
  put32 (len);
}

/* The client's side of the handshake chosen by MODE. */
static void
put_handshake (unsigned mode)
{
  const char *name = mode & M_EXPORT_A ? "a" : "";
  uint32_t nlen = strlen (name);

  put32 (NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  if (mode & M_SR)
    put_opt (OPT_STRUCTURED_REPLY, 0);
  if (mode & M_EH)
    put_opt (OPT_EXTENDED_HEADERS, 0);
  if (mode & (M_META_BASE | M_META_OWN)) {
    static const char base[] = "base:allocation";
    bool own = mode & M_META_OWN && own_context;
    uint32_t len = 4 + nlen + 4;
    if (mode & M_META_BASE)
      len += 4 + strlen (base);
    if (own)
      len += 4 + strlen (own_context);
    put_opt (OPT_SET_META_CONTEXT, len);
    put32 (nlen);
    put (name, nlen);
    put32 (!!(mode & M_META_BASE) + own);
    if (mode & M_META_BASE) {
      put32 (strlen (base));
      put (base, strlen (base));
    }
    if (own) {
      put32 (strlen (own_context));
      put (own_context, strlen (own_context));
    }
  }
  if (mode & M_EXPORT_NAME) {
    put_opt (OPT_EXPORT_NAME, nlen);
    put (name, nlen);
  } else {
    uint16_t ninfo = htobe16 (mode & M_ASK_BS ? 1 : 0);
    uint16_t info = htobe16 (INFO_BLOCK_SIZE);
    put_opt (OPT_GO, 4 + nlen + 2 + (mode & M_ASK_BS ? 2 : 0));
    put32 (nlen);
    put (name, nlen);
    put (&ninfo, 2);
    if (mode & M_ASK_BS)
      put (&info, 2);
  }
}
#endif

/* What server_run does before it serves its first client, without
 * listening: server_prepare, then each layer's after_fork.
 */
static int
prepare (struct server *s)
{
  if (server_prepare (s) == -1)
    return -1;
  for (struct backend *b = s->top; b; b = b->next) {
    thread_ctx_set (s, NULL, b->name);
    if (b->ops->after_fork (b) == -1)
      return -1;
  }
  thread_ctx_set (s, NULL, NULL);
  return 0;
}

/* A server that refused its configuration is kept, not freed: it
 * still holds the layers it loaded, which the leak checker would
 * otherwise report.
 */
static struct server *refused;

static struct server *
setup (char **args)
{
  struct server *s = server_new ();
  int argc = 0, status;

  while (args[argc])
    argc++;
  if (s == NULL || cmdline_parse (s, argc, args, &status) != 0
      || prepare (s) == -1) {
    refused = s;
    return NULL;
  }
  return s;
}

#if FUZZ_MODE != MODE_PLUGIN
/* The cbt filter's bitmap= argument, making its context name LEN long;
 * kept for the life of the process, as the server may point into it
 * (the refused server's too).
 */
static char *bitmap, *refused_bitmap;

static char *
bitmap_arg (size_t len)
{
  static const char prefix[] = "qemu:dirty-bitmap:";
  size_t n = len - strlen (prefix);
  char *a = malloc (sizeof "bitmap=" + n);

  if (a == NULL)
    abort ();
  strcpy (a, "bitmap=");
  memset (a + 7, 'A', n);
  a[7 + n] = '\0';
  return a;
}
#endif

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  const char *log = getenv ("FUZZ_VERBOSE") ? "--log=stderr" : "--log=null";

  signal (SIGPIPE, SIG_IGN);
  setenv ("NBDKIT_FILTERDIR", FUZZ_FILTERDIR, 0);
#if FUZZ_MODE == MODE_PLUGIN
  char *args[] = { "nbdkit",
                   "-t",
                   "1",
                   (char *)log,
                   "--filter=blocksize",
                   "--filter=offset",
                   "--filter=cow",
                   "--filter=cache",
                   FUZZ_PLUGIN,
                   "minblock=512",
                   "maxdata=64K",
                   "offset=512",
                   "cow-block-size=4K",
                   "cache-min-block-size=4K",
                   NULL };
  server = setup (args);
#else
  /* The cbt filter's context name: fuzz-handshake tries one longer
   * than the protocol allows (4096 bytes), which the server must
   * refuse or bound, and if the server refuses it one of exactly that
   * length, which fuzz-transmission always uses.  FUZZ_CONTEXT_LEN
   * chooses the length instead (at least 19).
   */
  char *args[] = { "nbdkit", "-t",           "1",         (char *)log, "-e",
                   "",       "--filter=cbt", FUZZ_PLUGIN, NULL,        NULL };
  const char *env = getenv ("FUZZ_CONTEXT_LEN");
  size_t len = env                           ? strtoul (env, NULL, 10)
               : FUZZ_MODE == MODE_HANDSHAKE ? 4200
                                             : 4096;
  if (len < 19)
    len = 19;
  args[8] = bitmap = bitmap_arg (len);
  server = setup (args);
  if (server == NULL && len != 4096) {
    refused_bitmap = bitmap;
    args[8] = bitmap = bitmap_arg (4096);
    server = setup (args);
  }
  if (server && server->nmeta > 1)
    own_context = server->meta_names[1];
#endif
  if (server == NULL) {
    fprintf (stderr, "fuzz: cannot set up the server\n");
    abort ();
  }
  if (getenv ("FUZZ_VERBOSE"))
    server->opt.verbose = 1;
  chain_top = server->top;

  plugin_loans = (long (*) (void))dlsym (server->plugin->dl, "fuzzplug_loans");
  plugin_set_script = (void (*) (const uint8_t *, size_t))dlsym (
      server->plugin->dl, "fuzzplug_set_script");
  plugin_types = (uint32_t (*) (uint64_t, uint64_t))dlsym (server->plugin->dl,
                                                           "fuzzplug_types");
  plugin_data = (const uint8_t *(*)(uint64_t *))dlsym (server->plugin->dl,
                                                       "fuzzplug_data");
  if (plugin_loans == NULL || plugin_set_script == NULL || plugin_types == NULL
      || plugin_data == NULL) {
    fprintf (stderr, "fuzz: %s is not the fuzzing plugin\n", FUZZ_PLUGIN);
    abort ();
  }

  memfd = memfd_create ("fuzz-input", MFD_CLOEXEC);
  nullfd = open ("/dev/null", O_WRONLY | O_CLOEXEC);
  if (memfd == -1 || nullfd == -1) {
    perror ("fuzz: memfd_create or /dev/null");
    abort ();
  }
  return 0;
}

/* ---- fuzz-plugin: checking the block status the server sends ----
 *
 * For a connection to fuzzplug without filters, with extended headers
 * and base:allocation, the replies are kept (in a memory file of at
 * most REPLY_CAP bytes; a server writing more sees an error) and read
 * back: every extent the server reports for base:allocation must be
 * one the plugin's layout allows (fuzzplug_types), so a hole or zeroes
 * reported over data is caught; every byte of read data must be the
 * disk's or zero (what the plugin left unwritten), so a byte of the
 * server's memory sent to the client is caught; and the reply stream
 * must stay in step.  The harness made the handshake, so it knows what to
 * expect.
 */
#define REPLY_CAP (64 * 1024 * 1024)
#define NBD_REP_MAGIC 0x3e889045565a9ULL
#define NBD_EXTENDED_REPLY_MAGIC 0x6e8a278cU
#define NBD_REP_ACK 1
#define NBD_REP_META_CONTEXT 4
#define NBD_REPLY_TYPE_OFFSET_DATA 1
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_BLOCK_STATUS_EXT 6

static uint64_t
get64 (const uint8_t *p)
{
  uint64_t v;
  memcpy (&v, p, 8);
  return be64toh (v);
}

static uint32_t
get32 (const uint8_t *p)
{
  uint32_t v;
  memcpy (&v, p, 4);
  return be32toh (v);
}

static uint16_t
get16 (const uint8_t *p)
{
  uint16_t v;
  memcpy (&v, p, 2);
  return be16toh (v);
}

static void finding (const char *fmt, ...)
    __attribute__ ((noreturn, format (printf, 1, 2)));

static void
finding (const char *fmt, ...)
{
  va_list ap;
  fprintf (stderr, "fuzz: ");
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fprintf (stderr, "\n");
  abort ();
}

static void
check_replies (const uint8_t *p, size_t n)
{
  size_t pos = 18; /* NBDMAGIC, IHAVEOPT, handshake flags */
  bool ext = false;
  int64_t base_id = -1;

  /* Option replies, up to the end of OPT_GO. */
  for (;;) {
    uint32_t option, type, len;
    if (pos > n || n - pos < 20)
      return; /* the server stopped */
    if (get64 (p + pos) != NBD_REP_MAGIC)
      finding ("option reply at byte %zu: bad magic", pos);
    option = get32 (p + pos + 8);
    type = get32 (p + pos + 12);
    len = get32 (p + pos + 16);
    pos += 20;
    if (n - pos < len)
      return;
    if (option == OPT_EXTENDED_HEADERS && type == NBD_REP_ACK)
      ext = true;
    if (option == OPT_SET_META_CONTEXT && type == NBD_REP_META_CONTEXT
        && len == 4 + 15 && memcmp (p + pos + 4, "base:allocation", 15) == 0)
      base_id = get32 (p + pos);
    pos += len;
    if (option == OPT_GO && type == NBD_REP_ACK)
      break;
    if (option == OPT_GO && type & 0x80000000)
      return; /* no export: the rest of the input is more options */
  }
  if (!ext)
    return;

  /* Transmission: extended replies only. */
  while (n - pos >= 32) {
    uint32_t magic = get32 (p + pos);
    uint16_t type = get16 (p + pos + 6);
    uint64_t offset = get64 (p + pos + 16);
    uint64_t len = get64 (p + pos + 24);
    const uint8_t *d = p + pos + 32;

    if (magic != NBD_EXTENDED_REPLY_MAGIC)
      finding ("reply at byte %zu: magic 0x%x, not an extended reply", pos,
               magic);
    if (len > n - pos - 32)
      return; /* cut short */
    if (type == NBD_REPLY_TYPE_OFFSET_DATA) {
      uint64_t disk_size, at;
      const uint8_t *disk = plugin_data (&disk_size);
      if (len < 8)
        finding ("read data at byte %zu: length %" PRIu64, pos, len);
      at = get64 (d);
      if (at > disk_size || len - 8 > disk_size - at)
        finding ("read data at byte %zu: [%" PRIu64 ", +%" PRIu64
                 ") is past the end of the disk",
                 pos, at, len - 8);
      for (uint64_t i = 0; i < len - 8; i++)
        if (d[8 + i] != 0 && d[8 + i] != disk[at + i])
          finding ("read data at byte %zu: byte %" PRIu64 " of the disk is"
                   " 0x%02x, neither the disk's 0x%02x nor zero",
                   pos, at + i, d[8 + i], disk[at + i]);
    }
    if (type == NBD_REPLY_TYPE_BLOCK_STATUS)
      finding ("reply at byte %zu: compact block status with extended"
               " headers",
               pos);
    if (type == NBD_REPLY_TYPE_BLOCK_STATUS_EXT) {
      uint32_t id, count;
      if (len < 8 || (len - 8) % 16)
        finding ("block status at byte %zu: length %" PRIu64, pos, len);
      id = get32 (d);
      count = get32 (d + 4);
      if (count != (len - 8) / 16)
        finding ("block status at byte %zu: %" PRIu32 " extents in %" PRIu64
                 " bytes",
                 pos, count, len);
      if (count == 0)
        finding ("block status at byte %zu: no extent", pos);
      for (uint32_t i = 0; id == base_id && i < count; i++) {
        uint64_t elen = get64 (d + 8 + i * 16);
        uint64_t etype = get64 (d + 16 + i * 16);
        uint32_t allowed;
        if (elen == 0)
          finding ("block status at byte %zu: extent %" PRIu32 " is empty", pos,
                   i);
        allowed = etype ? plugin_types (offset, elen) : 0;
        if (etype & ~(uint64_t)allowed)
          finding ("block status at byte %zu: extent %" PRIu32 " of %" PRIu32
                   " says type %" PRIu64 " for [%" PRIu64 ", +%" PRIu64
                   "), where the plugin allows only %" PRIu32,
                   pos, i, count, etype, offset, elen, allowed);
        offset += elen;
      }
    }
    pos += 32 + len;
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  int in, out, replies = -1;

  stream_len = 0;
  server->top = chain_top;
  server->opt.readonly = false;
  server->opt.transmission_only = false;
  plugin_set_script (NULL, 0);

#if FUZZ_MODE == MODE_HANDSHAKE
  put (data, size);
#else
  if (size < 2)
    return -1; /* not an input for this harness */
  unsigned mode = data[0] | data[1] << 8;
  data += 2;
  size -= 2;
#if FUZZ_MODE == MODE_PLUGIN
  {
    size_t slen;
    if (size < 2)
      return -1;
    slen = data[0] | data[1] << 8;
    data += 2;
    size -= 2;
    if (slen > size)
      slen = size;
    plugin_set_script (data, slen);
    data += slen;
    size -= slen;
    if (mode & M_ALT)
      server->top = server->plugin;
    if ((mode & (M_ALT | M_EH | M_META_BASE | M_EXPORT_NAME))
        == (M_ALT | M_EH | M_META_BASE)) {
      replies = memfd_create ("fuzz-replies", MFD_CLOEXEC | MFD_ALLOW_SEALING);
      if (replies == -1 || ftruncate (replies, REPLY_CAP) == -1
          || fcntl (replies, F_ADD_SEALS, F_SEAL_GROW) == -1)
        abort ();
    }
  }
#else
  if (mode & M_ALT)
    server->opt.transmission_only = true;
#endif
  server->opt.readonly = mode & M_READONLY;
  if (!server->opt.transmission_only)
    put_handshake (mode);
  put (data, size);
#endif

  if (ftruncate (memfd, 0) == -1
      || pwrite (memfd, stream, stream_len, 0) != (ssize_t)stream_len
      || lseek (memfd, 0, SEEK_SET) == -1)
    abort ();
  in = dup (memfd);
  out = dup (replies >= 0 ? replies : nullfd);
  if (in == -1 || out == -1)
    abort ();
  /* Serves the connection to its end on this thread; closes both. */
  connection_start (server, in, out, false);

  if (replies >= 0) {
    off_t n = lseek (replies, 0, SEEK_CUR);
    if (n > 0) {
      void *p = mmap (NULL, n, PROT_READ, MAP_SHARED, replies, 0);
      if (p == MAP_FAILED)
        abort ();
      check_replies (p, n);
      munmap (p, n);
    }
    close (replies);
  }

  if (plugin_loans () != 0) {
    fprintf (stderr, "fuzz: %ld loans not released after the connection\n",
             plugin_loans ());
    abort ();
  }
  return 0;
}
