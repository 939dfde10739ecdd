/* memory.c: the memory plugin, a RAM disk.
 *
 *   nbdkit memory 1G [allocator=sparse|malloc[,mlock=true]]
 *
 * allocator=sparse (the default) keeps the disk in a sparse array
 * (sparse.c): memory grows only with the data written, trim and zero
 * give pages back, extents report unwritten ranges as holes, and disks
 * up to 2^63-1 bytes work.  allocator=malloc maps the whole disk at once
 * as anonymous memory: no lookups, but no holes either.
 *
 * Locking: one reader-writer lock.  pread and extents take it shared,
 * pwrite, trim and zero exclusive, each only for as long as the call.
 * With allocator=sparse, reads lend the stored bytes to the server
 * (nbdkit_read_lend) instead of copying them; the server returns the
 * loan after sending the reply, which may be much later if the client
 * reads slowly or not at all.  A loan therefore holds its page
 * (sparse_page_hold), not the lock: a writer copies a held page before
 * changing it (sparse.c), so it never waits for a client's socket, and
 * the bytes being sent never change under the send.  allocator=malloc
 * cannot copy a page aside, so its reads copy into the server's buffer
 * under the shared lock.  Nobody takes the lock twice, so it prefers
 * writers: a stream of reads cannot starve them.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np */
#endif

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include "sparse.h"

/* Block status replies may cover less than asked; past this many
 * extents the rest is left for the client's next request.
 */
#define MAX_EXTENTS 65536

static int64_t size = -1;
static const char *allocator = "sparse";

static const struct nbdkit_param memory_params[]
    = { { .name = "size",
          .type = NBDKIT_PARAM_SIZE,
          .flags = NBDKIT_PARAM_REQUIRED,
          .doc = "size of the disk, up to 2^63-1 bytes",
          .dest = &size },
        { .name = "allocator",
          .type = NBDKIT_PARAM_STRING,
          .default_value = "sparse",
          .doc = "sparse: memory grows with data written; "
                 "malloc: the whole disk mapped at once; "
                 "malloc,mlock=true: and locked in RAM",
          .dest = &allocator },
        { .name = NULL } };

static pthread_rwlock_t lock;
static bool lock_ready;

/* The disk: one of these, by allocator. */
static struct sparse *sa;
static uint8_t *flat;         /* size bytes, mmap'd */
static uint64_t os_page_size; /* for madvise on flat */

static int
memory_config_complete (void)
{
  pthread_rwlockattr_t attr;
  int err;

  if (size < 0 || (uint64_t)size > SPARSE_MAX_SIZE) {
    nbdkit_error ("size=%" PRIi64 " is out of range: the memory plugin "
                  "serves disks of 0 to 2^63-1 bytes",
                  size);
    return -1;
  }

  err = pthread_rwlockattr_init (&attr);
  if (err == 0) {
    err = pthread_rwlockattr_setkind_np (
        &attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    if (err == 0)
      err = pthread_rwlock_init (&lock, &attr);
    pthread_rwlockattr_destroy (&attr);
  }
  if (err) {
    errno = err;
    nbdkit_error ("cannot create the disk's lock: %m");
    return -1;
  }
  lock_ready = true;

  /* nbdkit's syntax: the allocator, then options after commas. */
  bool is_malloc = strncmp (allocator, "malloc", 6) == 0
                   && (allocator[6] == '\0' || allocator[6] == ',');
  bool lock_in_ram = false;
  if (is_malloc && allocator[6] == ',') {
    const char *opt = allocator + 7;
    int b = strncmp (opt, "mlock=", 6) == 0 ? nbdkit_parse_bool (opt + 6) : -1;
    if (b == -1) {
      nbdkit_error ("allocator=%s: the only option of malloc is "
                    "mlock=true|false",
                    allocator);
      return -1;
    }
    lock_in_ram = b;
  } else if (!is_malloc && strcmp (allocator, "sparse") != 0) {
    nbdkit_error ("allocator=%s: expected sparse, malloc or "
                  "malloc,mlock=true",
                  allocator);
    return -1;
  }

  if (is_malloc) {
    os_page_size = sysconf (_SC_PAGESIZE);
    if (size > 0) {
      flat = mmap (NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (flat == MAP_FAILED) {
        flat = NULL;
        nbdkit_error ("allocator=malloc: cannot map %" PRIi64 " bytes: %m "
                      "(allocator=sparse needs memory only for data written)",
                      size);
        return -1;
      }
      if (lock_in_ram && mlock (flat, size) == -1) {
        nbdkit_error ("allocator=%s: cannot lock %" PRIi64 " bytes in RAM: %m"
                      " (see ulimit -l)",
                      allocator, size);
        return -1;
      }
    }
  } else {
    sa = sparse_new (size);
    if (sa == NULL) {
      nbdkit_error ("cannot create a sparse array of %" PRIi64 " bytes: %m",
                    size);
      return -1;
    }
  }
  return 0;
}

static void
memory_unload (void)
{
  if (sa) {
    nbdkit_debug ("sparse array: %" PRIu64 " pages of %" PRIu64 " bytes "
                  "allocated at exit",
                  sparse_pages (sa), SPARSE_PAGE_SIZE);
    sparse_free (sa);
    sa = NULL;
  }
  if (flat) {
    munmap (flat, size);
    flat = NULL;
  }
  if (lock_ready) {
    pthread_rwlock_destroy (&lock);
    lock_ready = false;
  }
}

static void
memory_dump_plugin (void)
{
  printf ("memory_page_size=%" PRIu64 "\n", SPARSE_PAGE_SIZE);
  printf ("memory_max_size=%" PRIu64 "\n", SPARSE_MAX_SIZE);
  printf ("mlock=yes\n");
}

static int
memory_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_PARALLEL;
}

static int64_t
memory_get_size (void *handle)
{
  return size;
}

static int
memory_can_write (void *handle)
{
  return 1;
}

static int
memory_can_flush (void *handle)
{
  return 1;
}

static int
memory_can_trim (void *handle)
{
  return 1;
}

static int
memory_can_zero (void *handle)
{
  return NBDKIT_ZERO_NATIVE;
}

static int
memory_can_fast_zero (void *handle)
{
  return 1;
}

/* Nothing is ever more stable than it is after the write. */
static int
memory_can_fua (void *handle)
{
  return NBDKIT_FUA_NATIVE;
}

static int
memory_can_multi_conn (void *handle)
{
  return 1;
}

/* malloc has no holes to report: the server says all data. */
static int
memory_can_extents (void *handle)
{
  return sa ? NBDKIT_EXTENTS_NATIVE : NBDKIT_EXTENTS_EMULATE;
}

static int
memory_can_cache (void *handle)
{
  return NBDKIT_CACHE_NATIVE;
}

/* The release callback of every loan: lets go of the loan's page. */
static void
return_loan (void *opaque)
{
  sparse_page_release (opaque);
}

struct read_state {
  uint8_t *buf;           /* the request's buffer */
  uint64_t offset;        /* the request's offset */
  struct nbdkit_read *rd; /* NULL: fill BUF */
};

/* One run of sparse_read: a hole, or data inside one page, lent with a
 * hold on the page.  Should the server refuse a hole or a loan (it
 * then releases the loan itself), the buffer gets the bytes, which is
 * always a correct answer: the read lock still keeps them in place.
 */
static int
read_run (void *opaque, uint64_t offset, uint64_t len, const void *data,
          struct sparse_page *page)
{
  struct read_state *st = opaque;
  uint8_t *dst = st->buf + (offset - st->offset);

  if (data == NULL) {
    if (st->rd == NULL || nbdkit_read_hole (st->rd, offset, len) == -1)
      memset (dst, 0, len);
    return 0;
  }
  if (st->rd && page) {
    sparse_page_hold (page);
    if (nbdkit_read_lend (st->rd, offset, data, len, return_loan, page) == 0)
      return 0;
  }
  memcpy (dst, data, len);
  return 0;
}

static int
memory_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
              uint32_t flags, struct nbdkit_read *rd)
{
  struct read_state st = { .buf = buf, .offset = offset, .rd = rd };

  pthread_rwlock_rdlock (&lock);
  if (sa)
    sparse_read (sa, count, offset, read_run, &st);
  else if (count > 0)
    read_run (&st, offset, count, flat + offset, NULL);
  pthread_rwlock_unlock (&lock);
  return 0;
}

static int
memory_pwrite (void *handle, const void *buf, uint64_t count, uint64_t offset,
               uint32_t flags)
{
  int r = 0;

  pthread_rwlock_wrlock (&lock);
  if (sa)
    r = sparse_write (sa, buf, count, offset);
  else
    memcpy (flat + offset, buf, count);
  pthread_rwlock_unlock (&lock);

  if (r == -1) {
    nbdkit_set_error (ENOMEM);
    nbdkit_error ("write of %" PRIu64 " bytes at offset %" PRIu64 ": "
                  "cannot allocate a page: %m",
                  count, offset);
  }
  return r;
}

static int
memory_flush (void *handle, uint32_t flags)
{
  return 0;
}

/* Zero the flat disk, handing whole OS pages back to the kernel: a
 * private anonymous page dropped with MADV_DONTNEED reads as zeroes.
 */
static void
flat_zero (uint64_t count, uint64_t offset)
{
  uint8_t *p = flat + offset;
  uint8_t *end = p + count;
  uint8_t *a = (uint8_t *)(((uintptr_t)p + os_page_size - 1)
                           & ~(uintptr_t)(os_page_size - 1));
  uint8_t *b = (uint8_t *)((uintptr_t)end & ~(uintptr_t)(os_page_size - 1));

  if (a < b && madvise (a, b - a, MADV_DONTNEED) == 0) {
    memset (p, 0, a - p);
    memset (b, 0, end - b);
  } else
    memset (p, 0, count);
}

/* Trimmed ranges read as zeroes afterwards, as zeroed ones do; both
 * give the memory back.
 */
static int
memory_zero (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  int r = 0;

  pthread_rwlock_wrlock (&lock);
  if (sa)
    r = sparse_zero (sa, count, offset);
  else if (count > 0)
    flat_zero (count, offset);
  pthread_rwlock_unlock (&lock);

  if (r == -1) {
    nbdkit_set_error (ENOMEM);
    nbdkit_error ("zero of %" PRIu64 " bytes at offset %" PRIu64 ": "
                  "cannot copy a page being read: %m",
                  count, offset);
  }
  return r;
}

static int
memory_trim (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  return memory_zero (handle, count, offset, flags);
}

struct extents_state {
  struct nbdkit_extents *extents;
  bool req_one;
  unsigned n;
};

static int
add_run (void *opaque, uint64_t offset, uint64_t len, bool allocated)
{
  struct extents_state *st = opaque;
  const uint32_t type = allocated ? 0 : NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;

  if (nbdkit_add_extent (st->extents, offset, len, type) == -1)
    return -1;
  if (st->req_one || ++st->n >= MAX_EXTENTS)
    return 1;
  return 0;
}

static int
memory_extents (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
                struct nbdkit_extents *extents)
{
  struct extents_state st
      = { .extents = extents, .req_one = flags & NBDKIT_FLAG_REQ_ONE };
  int r;

  if (sa == NULL)
    return nbdkit_add_extent (extents, offset, count, 0);
  pthread_rwlock_rdlock (&lock);
  r = sparse_extents (sa, count, offset, add_run, &st);
  pthread_rwlock_unlock (&lock);
  return r < 0 ? -1 : 0;
}

/* The data is in RAM already. */
static int
memory_cache (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name = "memory",
  .longname = "nbdkit memory plugin",
  .version = NBDKIT_VERSION,
  .description = "A RAM disk, sparse: memory grows with the data written.",
  .params = memory_params,
  .magic_config_key = "size",
  .config_complete = memory_config_complete,
  .unload = memory_unload,
  .dump_plugin = memory_dump_plugin,
  .thread_model = memory_thread_model,
  .get_size = memory_get_size,
  .can_write = memory_can_write,
  .can_flush = memory_can_flush,
  .can_trim = memory_can_trim,
  .can_zero = memory_can_zero,
  .can_fast_zero = memory_can_fast_zero,
  .can_fua = memory_can_fua,
  .can_multi_conn = memory_can_multi_conn,
  .can_extents = memory_can_extents,
  .can_cache = memory_can_cache,
  .pread = memory_pread,
  .pwrite = memory_pwrite,
  .flush = memory_flush,
  .trim = memory_trim,
  .zero = memory_zero,
  .extents = memory_extents,
  .cache = memory_cache,
};

NBDKIT_REGISTER_PLUGIN (plugin)
