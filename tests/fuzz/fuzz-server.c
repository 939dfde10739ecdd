/* fuzz-server.c: libFuzzer harnesses that feed arbitrary bytes to a
 * server running in this process, one connection per input, served to
 * the end on the fuzzing thread.
 *
 * The server (a struct server, as the nbdkit program makes it) is set
 * up once, in LLVMFuzzerInitialize, with -t 1 so a connection never
 * starts a second thread; no watchdog runs.  For each input the
 * client's bytes are written into a memory file, and connection_start
 * (not detached) serves a connection that reads them from there and
 * writes its replies to /dev/null: no thread, no socket, no waiting.
 * AddressSanitizer still checks every byte of a reply, through its
 * interceptor of writev.
 *
 * Built three times (tests/fuzz/CMakeLists.txt), over the plugin in
 * fuzzplug.c:
 *
 * fuzz-handshake (FUZZ_MODE 1): the input is what a client sends from
 * the start: client flags, options, then requests.  The chain has the
 * cbt filter, which offers a metadata context of its own.
 *
 * fuzz-transmission (FUZZ_MODE 2): the first two bytes choose a
 * handshake that the harness writes before the rest of the input (see
 * struct mode), so every input reaches transmission with structured
 * replies, extended headers and meta contexts as it chose; the rest is
 * requests.  Same chain as fuzz-handshake.
 *
 * fuzz-plugin (FUZZ_MODE 3): the same two bytes, then two bytes (little
 * endian) giving the length of a script for the plugin, the script,
 * then requests.  The chain is blocksize, offset, cow and cache over
 * fuzzplug, whose every answer the script chooses (see fuzzplug.c):
 * short reads, errors, holes, partial errors, loans, a million extents.
 *
 * After each connection, every loan the plugin made must have been
 * released.
 */

#include <dlfcn.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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
static void __attribute__ ((unused))
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

/* The cbt filter's bitmap name, making its context name LEN long. */
static char *__attribute__ ((unused))
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

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  const char *log = getenv ("FUZZ_VERBOSE") ? "--log=stderr" : "--log=null";
  char *bitmap = NULL;

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
  char *args[] = { "nbdkit", "-t",        "1",       (char *)log,
                   "-e",     "",          "--filter=cbt", FUZZ_PLUGIN,
                   NULL,     NULL };
  const char *env = getenv ("FUZZ_CONTEXT_LEN");
  size_t len = env ? strtoul (env, NULL, 10)
                   : FUZZ_MODE == MODE_HANDSHAKE ? 4200 : 4096;
  if (len < 19)
    len = 19;
  args[8] = bitmap = bitmap_arg (len);
  server = setup (args);
  if (server == NULL && len != 4096) {
    free (bitmap);
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
  (void)bitmap; /* the server's parameters may point into it */
  if (getenv ("FUZZ_VERBOSE"))
    server->opt.verbose = 1;
  chain_top = server->top;

  plugin_loans = (long (*) (void))dlsym (server->plugin->dl, "fuzzplug_loans");
  plugin_set_script = (void (*) (const uint8_t *, size_t))dlsym (
      server->plugin->dl, "fuzzplug_set_script");
  if (plugin_loans == NULL || plugin_set_script == NULL) {
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

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  int in, out;

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
  out = dup (nullfd);
  if (in == -1 || out == -1)
    abort ();
  /* Serves the connection to its end on this thread; closes both. */
  connection_start (server, in, out, false);

  if (plugin_loans () != 0) {
    fprintf (stderr, "fuzz: %ld loans not released after the connection\n",
             plugin_loans ());
    abort ();
  }
  return 0;
}
