/* stats.c: count requests, bytes and time per command, and write them
 * to statsfile=FILE when the server exits (statsappend=true appends).
 *
 *   total: 7 ops, 0.001234 s, 1.50 MiB, 1.19 GiB/s
 *   read: 3 ops, 0.000456 s, 192.00 KiB, 411.18 MiB/s op, 1.23 MiB/s total
 *
 * "op" throughput divides the bytes by the time spent in the command,
 * "total" by the time the server ran.  With statsthreshold=PERCENT
 * (default 95; 0 turns it off) each command is followed by a
 * breakdown of its request sizes (in powers of two) and offset
 * alignments, covering at least PERCENT of its requests.
 */

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nbdkit-filter.h>

enum op { READ, WRITE, TRIM, ZERO, EXTENTS, CACHE, FLUSH, NOPS };
static const char *const op_names[NOPS] = {
  "read", "write", "trim", "zero", "extents", "cache", "flush",
};

struct stat_op {
  uint64_t ops, bytes, ns;
  /* [bits of the size][trailing zero bits of the offset] */
  uint64_t hist[65][65];
};

static const char *statsfile;
static bool statsappend;
static int64_t threshold = 95;
static FILE *fp;
static struct timespec started;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct stat_op stats[NOPS];

static const struct nbdkit_param params[]
    = { { .name = "statsfile",
          .type = NBDKIT_PARAM_STRING,
          .flags = NBDKIT_PARAM_REQUIRED,
          .doc = "file the statistics are written to at exit",
          .dest = &statsfile },
        { .name = "statsappend",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "false",
          .doc = "append to the file instead of replacing it",
          .dest = &statsappend },
        { .name = "statsthreshold",
          .type = NBDKIT_PARAM_INT,
          .default_value = "95",
          .doc = "percent of requests shown in the size breakdown (0: none)",
          .dest = &threshold },
        { .name = NULL } };

static const char *
stats_config_help (void)
{
  return "statsfile=FILE      (required) Where the statistics go at exit.\n"
         "statsappend=BOOL    Append instead of replacing (default false).\n"
         "statsthreshold=PCT  Size breakdown down to PCT% (default 95).";
}

static int
stats_config_complete (void)
{
  if (threshold < 0 || threshold > 100) {
    nbdkit_error ("statsthreshold=%" PRId64 ": expected 0 to 100", threshold);
    return -1;
  }
  return 0;
}

/* Open the file now: an error is better reported at start than lost
 * at exit, and the server may change directory later.
 */
static int
stats_get_ready (int thread_model)
{
  fp = fopen (statsfile, statsappend ? "ae" : "we");
  if (fp == NULL) {
    nbdkit_error ("statsfile=%s: %m", statsfile);
    return -1;
  }
  clock_gettime (CLOCK_MONOTONIC, &started);
  return 0;
}

static double
secs (uint64_t ns)
{
  return ns / 1e9;
}

static const char *
human (double bytes, char *buf, size_t len)
{
  static const char *const units[]
      = { "bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  int u = 0;

  if (bytes < 1024) {
    snprintf (buf, len, "%.0f bytes", bytes);
    return buf;
  }
  while (bytes >= 1024 && u < 6) {
    bytes /= 1024;
    u++;
  }
  snprintf (buf, len, "%.2f %s", bytes, units[u]);
  return buf;
}

static void
print_histogram (const struct stat_op *s)
{
  uint64_t shown = 0;
  bool used[65] = { false };

  fprintf (fp, "  Request size and alignment breakdown:\n");
  while (shown * 100 < s->ops * (uint64_t)threshold) {
    int best = -1;
    uint64_t best_n = 0, cum[66] = { 0 };
    for (int b = 0; b < 65; b++) {
      uint64_t n = 0;
      if (used[b])
        continue;
      for (int a = 0; a < 65; a++)
        n += s->hist[b][a];
      if (n > best_n) {
        best = b;
        best_n = n;
      }
    }
    if (best == -1)
      break;
    used[best] = true;
    fprintf (fp, "    %d bits: %4.1f%% (%" PRIu64 " reqs)\n", best,
             100.0 * best_n / s->ops, best_n);
    /* At each power of two where the count of aligned requests drops,
     * the count aligned to it.
     */
    for (int a = 64; a >= 0; a--)
      cum[a] = cum[a + 1] + s->hist[best][a];
    for (int a = 0; a < 65 && cum[a]; a++)
      if (cum[a] != cum[a + 1])
        fprintf (fp, "         %2d bit aligned: %5.1f%% (%" PRIu64 ")\n", a,
                 100.0 * cum[a] / best_n, cum[a]);
    shown += best_n;
  }
}

static void
write_stats (void)
{
  struct timespec now;
  uint64_t total_ops = 0, total_bytes = 0, run_ns;
  char b1[32], b2[32], b3[32];

  clock_gettime (CLOCK_MONOTONIC, &now);
  run_ns = (now.tv_sec - started.tv_sec) * 1000000000ULL + now.tv_nsec
           - started.tv_nsec;
  if (run_ns == 0)
    run_ns = 1;
  for (int i = 0; i < NOPS; i++) {
    total_ops += stats[i].ops;
    total_bytes += stats[i].bytes;
  }
  fprintf (fp, "total: %" PRIu64 " ops, %.6f s, %s, %s/s\n", total_ops,
           secs (run_ns), human (total_bytes, b1, sizeof b1),
           human (total_bytes / secs (run_ns), b2, sizeof b2));
  for (int i = 0; i < NOPS; i++) {
    const struct stat_op *s = &stats[i];
    double op_s = s->ns ? secs (s->ns) : 1e-9;
    if (s->ops == 0)
      continue;
    fprintf (fp, "%s: %" PRIu64 " ops, %.6f s, %s, %s/s op, %s/s total\n",
             op_names[i], s->ops, secs (s->ns), human (s->bytes, b1, sizeof b1),
             human (s->bytes / op_s, b2, sizeof b2),
             human (s->bytes / secs (run_ns), b3, sizeof b3));
    if (threshold > 0 && i != FLUSH)
      print_histogram (s);
  }
  fprintf (fp, "\n");
}

static void
stats_unload (void)
{
  if (fp) {
    write_stats ();
    fclose (fp);
  }
}

static void
record (enum op op, uint64_t count, uint64_t offset,
        const struct timespec *start)
{
  struct timespec end;
  int bits = 0, align = offset ? __builtin_ctzll (offset) : 64;

  clock_gettime (CLOCK_MONOTONIC, &end);
  for (uint64_t c = count; c; c >>= 1)
    bits++;
  pthread_mutex_lock (&lock);
  stats[op].ops++;
  stats[op].bytes += count;
  stats[op].ns += (end.tv_sec - start->tv_sec) * 1000000000ULL + end.tv_nsec
                  - start->tv_nsec;
  stats[op].hist[bits][align]++;
  pthread_mutex_unlock (&lock);
}

#define START                                                                  \
  struct timespec start_;                                                      \
  clock_gettime (CLOCK_MONOTONIC, &start_)

static int
stats_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
             uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  START;
  int r = nbdkit_next_pread (next, buf, count, offset, flags, rd, err);
  if (r == 0)
    record (READ, count, offset, &start_);
  return r;
}

static int
stats_pwrite (nbdkit_next *next, void *handle, const void *buf, uint64_t count,
              uint64_t offset, uint32_t flags, int *err)
{
  START;
  int r = nbdkit_next_pwrite (next, buf, count, offset, flags, err);
  if (r == 0)
    record (WRITE, count, offset, &start_);
  return r;
}

static int
stats_trim (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
            uint32_t flags, int *err)
{
  START;
  int r = nbdkit_next_trim (next, count, offset, flags, err);
  if (r == 0)
    record (TRIM, count, offset, &start_);
  return r;
}

static int
stats_zero (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
            uint32_t flags, int *err)
{
  START;
  int r = nbdkit_next_zero (next, count, offset, flags, err);
  if (r == 0)
    record (ZERO, count, offset, &start_);
  return r;
}

static int
stats_extents (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
               uint32_t flags, struct nbdkit_extents *e, int *err)
{
  START;
  int r = nbdkit_next_extents (next, count, offset, flags, e, err);
  if (r == 0)
    record (EXTENTS, count, offset, &start_);
  return r;
}

static int
stats_cache (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
             uint32_t flags, int *err)
{
  START;
  int r = nbdkit_next_cache (next, count, offset, flags, err);
  if (r == 0)
    record (CACHE, count, offset, &start_);
  return r;
}

static int
stats_flush (nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
  START;
  int r = nbdkit_next_flush (next, flags, err);
  if (r == 0)
    record (FLUSH, 0, 0, &start_);
  return r;
}

static struct nbdkit_filter filter = {
  .name = "stats",
  .longname = "nbdkit stats filter",
  .description = "write request statistics to a file at exit",
  .params = params,
  .config_help = stats_config_help,
  .config_complete = stats_config_complete,
  .get_ready = stats_get_ready,
  .unload = stats_unload,
  .pread = stats_pread,
  .pread_fills_buffer = 1, /* or reads it from below */
  .pwrite = stats_pwrite,
  .trim = stats_trim,
  .zero = stats_zero,
  .extents = stats_extents,
  .cache = stats_cache,
  .flush = stats_flush,
};

NBDKIT_REGISTER_FILTER (filter)
