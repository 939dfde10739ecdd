/* rbd.c: the rbd plugin, a Ceph RBD image through librbd.
 *
 *   nbdkit rbd [image=][POOL/[NAMESPACE/]]IMAGE[@SNAP]
 *              [pool=POOL] [namespace=NS] [snapshot=SNAP]
 *              [conf=FILE] [cluster=NAME] [id=USER] [keyring=FILE]
 *              [timeout=SECONDS] [io-timeout=SECONDS] [async=false]
 *
 * The server connects to the cluster (as client.USER, cephx keys from
 * KEYRING or from the configuration) and opens the image once, when it
 * is ready to serve; every connection shares that one image handle.
 * librbd handles are safe for concurrent asynchronous I/O, one handle
 * means one exclusive lock and one cache for all clients, and a flush
 * on any connection covers the writes of all of them: multi-conn is
 * safe.  A snapshot is served read-only.
 *
 * Data requests go through librbd's aio calls (rbd_aio_read, write,
 * flush, discard, write_zeroes); FUA is a write followed by a flush.
 * Where the server allows it (async_* callbacks), no server thread
 * waits: librbd's completion callback queues the request to one
 * thread of ours, which completes it with nbdkit_complete (or first
 * sends the flush of a FUA write).  Elsewhere, and with async=false,
 * the synchronous callbacks wait for each completion.
 *
 * Extents come from rbd_diff_iterate2 at byte granularity: ranges it
 * does not report are holes that read as zeroes.  Zero without
 * may-trim allocates (thick-provisioned zeroes), which is a plain
 * write: it is refused to fast-zero requests.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* Configuration. */
static const char *image_arg; /* image= as given, for messages */
static const char *pool_name, *image_name, *namespace_name, *snap_name;
static const char *conf_file, *cluster_name = "ceph", *user_id = "admin";
static const char *keyring_file;
static int64_t timeout_secs = 20;
static int64_t io_timeout_secs = 0; /* 0: wait while the cluster recovers */
static bool use_async = true;

/* The cluster and the image, shared by every connection. */
static rados_t cluster;
static rados_ioctx_t ioctx;
static rbd_image_t image;
static bool connected, ioctx_open, image_open;
static bool image_readonly;  /* snapshot, or no write permission */
static uint64_t object_size; /* bytes per RADOS object of the image */
static char where[1024];     /* "image POOL/IMAGE (conf=..., client.ID)" */

/* Extents requests look at most this many objects at a time. */
#define EXTENTS_MAX_OBJECTS 256

static const struct nbdkit_param rbd_params[]
    = { { .name = "image",
          .type = NBDKIT_PARAM_STRING,
          .flags = NBDKIT_PARAM_REQUIRED,
          .doc = "the image: IMAGE, POOL/IMAGE or POOL/NAMESPACE/IMAGE, with "
                 "an optional @SNAPSHOT" },
        { .name = "pool",
          .type = NBDKIT_PARAM_STRING,
          .doc = "the pool holding the image (default: rbd)",
          .dest = &pool_name },
        { .name = "namespace",
          .type = NBDKIT_PARAM_STRING,
          .doc = "the RADOS namespace of the image in its pool",
          .dest = &namespace_name },
        { .name = "snapshot",
          .type = NBDKIT_PARAM_STRING,
          .doc = "serve this snapshot of the image, read-only",
          .dest = &snap_name },
        { .name = "conf",
          .type = NBDKIT_PARAM_FILE,
          .doc = "the Ceph configuration file (default: librados' search path)",
          .dest = &conf_file },
        { .name = "cluster",
          .type = NBDKIT_PARAM_STRING,
          .default_value = "ceph",
          .doc = "the cluster name, which picks /etc/ceph/NAME.conf",
          .dest = &cluster_name },
        { .name = "id",
          .type = NBDKIT_PARAM_STRING,
          .default_value = "admin",
          .doc = "the cephx user, without the 'client.' prefix",
          .dest = &user_id },
        { .name = "keyring",
          .type = NBDKIT_PARAM_FILE,
          .doc = "the keyring with the user's key (default: from the conf)",
          .dest = &keyring_file },
        { .name = "timeout",
          .type = NBDKIT_PARAM_INT,
          .default_value = "20",
          .doc = "seconds to wait for the monitors when connecting",
          .dest = &timeout_secs },
        { .name = "io-timeout",
          .type = NBDKIT_PARAM_INT,
          .default_value = "0",
          .doc = "seconds a request may wait for the OSDs before it fails "
                 "(0: wait while the cluster recovers, as librbd does)",
          .dest = &io_timeout_secs },
        { .name = "async",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "true",
          .doc = "complete requests asynchronously, without a server "
                 "thread waiting for each (false: one thread per request)",
          .dest = &use_async },
        { .name = NULL } };

/* Split image=[POOL/[NAMESPACE/]]IMAGE[@SNAP]. */
static int
plugin_config (const char *key, const char *value)
{
  if (strcmp (key, "image") != 0)
    return 0;

  image_arg = nbdkit_strdup_intern (value);
  char *s = strdup (value);
  if (image_arg == NULL || s == NULL) {
    free (s);
    nbdkit_error ("strdup: %m");
    return -1;
  }
  char *at = strchr (s, '@');
  if (at) {
    *at = '\0';
    snap_name = nbdkit_strdup_intern (at + 1);
  }
  char *slash = strchr (s, '/');
  char *name = s;
  if (slash) {
    *slash = '\0';
    pool_name = nbdkit_strdup_intern (s);
    name = slash + 1;
    char *slash2 = strchr (name, '/');
    if (slash2) {
      *slash2 = '\0';
      namespace_name = nbdkit_strdup_intern (name);
      name = slash2 + 1;
    }
  }
  image_name = nbdkit_strdup_intern (name);
  free (s);
  return 0;
}

static void drop_async (void);
static int completer_start (void);
static void completer_end (void);

static int
plugin_config_complete (void)
{
  if (!use_async)
    drop_async ();
  if (image_name == NULL || *image_name == '\0' || strchr (image_name, '/')) {
    nbdkit_error ("image=%s: expected IMAGE, POOL/IMAGE or "
                  "POOL/NAMESPACE/IMAGE, optionally followed by @SNAPSHOT",
                  image_arg ? image_arg : "");
    return -1;
  }
  if (pool_name == NULL || *pool_name == '\0')
    pool_name = "rbd";
  if (snap_name && *snap_name == '\0') {
    nbdkit_error ("image=%s: empty snapshot name after '@'", image_arg);
    return -1;
  }
  if (timeout_secs < 1 || timeout_secs > 86400) {
    nbdkit_error ("timeout=%" PRIi64 ": expected 1 to 86400 seconds",
                  timeout_secs);
    return -1;
  }
  if (io_timeout_secs < 0 || io_timeout_secs > 86400) {
    nbdkit_error ("io-timeout=%" PRIi64 ": expected 0 to 86400 seconds",
                  io_timeout_secs);
    return -1;
  }
  if (keyring_file && access (keyring_file, R_OK) == -1) {
    nbdkit_error ("keyring=%s: %m", keyring_file);
    return -1;
  }
  if (conf_file && access (conf_file, R_OK) == -1) {
    nbdkit_error ("conf=%s: %m", conf_file);
    return -1;
  }

  snprintf (where, sizeof where,
            "image %s%s%s/%s%s%s (%s%s%scluster %s, client.%s)", pool_name,
            namespace_name ? "/" : "", namespace_name ? namespace_name : "",
            image_name, snap_name ? "@" : "", snap_name ? snap_name : "",
            conf_file ? "conf=" : "", conf_file ? conf_file : "",
            conf_file ? ", " : "", cluster_name, user_id);
  return 0;
}

static void
plugin_dump_plugin (void)
{
  int major, minor, extra;

  rbd_version (&major, &minor, &extra);
  printf ("rbd_version=%d.%d.%d\n", major, minor, extra);
  rados_version (&major, &minor, &extra);
  printf ("rados_version=%d.%d.%d\n", major, minor, extra);
}

static int
set_option (const char *option, const char *value)
{
  int r = rados_conf_set (cluster, option, value);
  if (r < 0) {
    errno = -r;
    nbdkit_error ("%s: setting the Ceph option %s=%s: %m", where, option,
                  value);
    return -1;
  }
  return 0;
}

/* Connect to the cluster and open the image.  Run after the server
 * has forked (librados starts threads), before the first client.
 */
static int
plugin_after_fork (void)
{
  char user[256], secs[32];
  int r;

  snprintf (user, sizeof user, "client.%s", user_id);
  r = rados_create2 (&cluster, cluster_name, user, 0);
  if (r < 0) {
    errno = -r;
    nbdkit_error ("%s: creating the cluster handle: %m", where);
    return -1;
  }
  connected = true; /* from here on, rados_shutdown frees it */

  /* The configuration: the file (given or found), then CEPH_ARGS. */
  r = rados_conf_read_file (cluster, conf_file);
  if (r < 0 && conf_file) {
    errno = -r;
    nbdkit_error ("conf=%s: cannot read or parse the Ceph configuration: %m",
                  conf_file);
    return -1;
  }
  r = rados_conf_parse_env (cluster, NULL);
  if (r < 0) {
    errno = -r;
    nbdkit_error ("%s: parsing CEPH_ARGS: %m", where);
    return -1;
  }
  if (keyring_file && set_option ("keyring", keyring_file) == -1)
    return -1;
  /* Our own error messages say what failed; librados' own log lines on
   * stderr would only repeat them.
   */
  snprintf (secs, sizeof secs, "%" PRIi64, timeout_secs);
  if (set_option ("client_mount_timeout", secs) == -1
      || set_option ("rados_mon_op_timeout", secs) == -1
      || set_option ("log_to_stderr", "false") == -1
      || set_option ("err_to_stderr", "false") == -1)
    return -1;
  if (io_timeout_secs > 0) {
    snprintf (secs, sizeof secs, "%" PRIi64, io_timeout_secs);
    if (set_option ("rados_osd_op_timeout", secs) == -1)
      return -1;
  }

  r = rados_connect (cluster);
  if (r < 0) {
    errno = -r;
    if (r == -ETIMEDOUT)
      nbdkit_error ("%s: no answer from the cluster's monitors within "
                    "%" PRIi64 " s (timeout=): is the cluster up, are "
                    "mon_host and the conf right?",
                    where, timeout_secs);
    else if (r == -EACCES || r == -EPERM)
      nbdkit_error ("%s: the monitors refused client.%s: unknown user or "
                    "wrong key%s%s",
                    where, user_id, keyring_file ? " in keyring=" : "",
                    keyring_file ? keyring_file : "");
    else if (r == -EIO && keyring_file)
      nbdkit_error ("%s: keyring=%s: not a Ceph keyring, or no usable key "
                    "for client.%s in it",
                    where, keyring_file, user_id);
    else if (r == -ENOENT)
      nbdkit_error ("%s: cannot connect: no monitor address or no key for "
                    "client.%s (give conf= and keyring=): %m",
                    where, user_id);
    else
      nbdkit_error ("%s: cannot connect to the cluster: %m", where);
    return -1;
  }

  r = rados_ioctx_create (cluster, pool_name, &ioctx);
  if (r < 0) {
    errno = -r;
    if (r == -ENOENT)
      nbdkit_error ("%s: pool '%s' does not exist", where, pool_name);
    else
      nbdkit_error ("%s: opening pool '%s': %m", where, pool_name);
    return -1;
  }
  ioctx_open = true;
  if (namespace_name)
    rados_ioctx_set_namespace (ioctx, namespace_name);

  image_readonly = snap_name != NULL;
  if (image_readonly)
    r = rbd_open_read_only (ioctx, image_name, &image, snap_name);
  else {
    r = rbd_open (ioctx, image_name, &image, NULL);
    /* A user with read-only caps can still serve the image (-r). */
    if (r == -EPERM || r == -EACCES) {
      r = rbd_open_read_only (ioctx, image_name, &image, NULL);
      if (r == 0) {
        nbdkit_debug ("%s: no write permission, serving read-only", where);
        image_readonly = true;
      }
    }
  }
  if (r < 0) {
    errno = -r;
    if (r == -ENOENT && snap_name) {
      /* Say which of the two is missing. */
      rbd_image_t probe;
      if (rbd_open_read_only (ioctx, image_name, &probe, NULL) == 0) {
        rbd_close (probe);
        nbdkit_error ("%s: image '%s' has no snapshot '%s'", where, image_name,
                      snap_name);
        return -1;
      }
    }
    if (r == -ENOENT)
      nbdkit_error ("%s: image '%s' not found in pool '%s'%s%s", where,
                    image_name, pool_name, namespace_name ? ", namespace " : "",
                    namespace_name ? namespace_name : "");
    else
      nbdkit_error ("%s: opening the image: %m", where);
    return -1;
  }
  image_open = true;

  rbd_image_info_t info;
  r = rbd_stat (image, &info, sizeof info);
  if (r < 0) {
    errno = -r;
    nbdkit_error ("%s: rbd_stat: %m", where);
    return -1;
  }
  object_size = info.obj_size ? info.obj_size : 4 << 20;
  nbdkit_debug ("%s: size %" PRIu64 ", objects of %" PRIu64 " bytes", where,
                info.size, object_size);
  return completer_start ();
}

static void
plugin_cleanup (void)
{
  completer_end ();
  if (image_open) {
    rbd_flush (image);
    rbd_close (image);
    image_open = false;
  }
  if (ioctx_open) {
    rados_ioctx_destroy (ioctx);
    ioctx_open = false;
  }
  if (connected) {
    rados_shutdown (cluster);
    connected = false;
  }
}

static int
plugin_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_PARALLEL;
}

static void *
plugin_open (int readonly, const char *exportname, int is_tls)
{
  (void)readonly;
  (void)exportname;
  (void)is_tls;
  if (!image_open) {
    nbdkit_error ("%s: the image is not open", where);
    return NULL;
  }
  return NBDKIT_HANDLE_NOT_NEEDED;
}

static int64_t
plugin_get_size (void *handle)
{
  uint64_t size;
  int r;

  (void)handle;
  r = rbd_get_size (image, &size);
  if (r < 0) {
    errno = -r;
    nbdkit_error ("%s: getting the size: %m", where);
    return -1;
  }
  return (int64_t)size;
}

static int
plugin_can_write (void *handle)
{
  (void)handle;
  return !image_readonly;
}

static int
plugin_can_true (void *handle)
{
  (void)handle;
  return 1;
}

static int
plugin_can_zero (void *handle)
{
  (void)handle;
  return NBDKIT_ZERO_NATIVE;
}

static int
plugin_can_fua (void *handle)
{
  (void)handle;
  return NBDKIT_FUA_NATIVE;
}

static int
plugin_can_extents (void *handle)
{
  (void)handle;
  return NBDKIT_EXTENTS_NATIVE;
}

/* Report the failure ERR (a positive errno from librbd) of a request,
 * and return the errno for the client.  The NBD protocol has few error
 * codes, and the server answers EINVAL for most errnos it has no code
 * for, as if the request were wrong: a librbd failure outside the
 * protocol's codes is an I/O error here, blocklisting (ESHUTDOWN,
 * which a client would read as this server shutting down) included.
 */
static int
request_failed (const char *what, uint64_t count, uint64_t offset, int err)
{
  const char *why = "";
  char buf[128];

  if (err == ETIMEDOUT && io_timeout_secs > 0) {
    snprintf (buf, sizeof buf,
              " (no answer from the OSDs within io-timeout=%" PRIi64 " s)",
              io_timeout_secs);
    why = buf;
  } else if (err == ESHUTDOWN)
    why = " (the cluster has blocklisted this client)";
  errno = err;
  nbdkit_error ("%s: %s of %" PRIu64 " bytes at offset %" PRIu64 ": %m%s",
                where, what, count, offset, why);
  switch (err) {
    case EPERM:
    case EROFS:
    case EIO:
    case ENOMEM:
    case EINVAL:
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
    case EOVERFLOW:
    case ENOTSUP:
#if ENOTSUP != EOPNOTSUPP
    case EOPNOTSUPP:
#endif
      return err;
    default:
      return EIO;
  }
}

/* One request of a synchronous callback: aio_start makes its
 * completion, an rbd_aio_* call submits it, aio_finish waits for it.
 */
struct aio {
  rbd_completion_t c;
};

static int
aio_start (struct aio *a)
{
  int r = rbd_aio_create_completion (a, NULL, &a->c);
  if (r < 0) {
    errno = -r;
    nbdkit_error ("%s: rbd_aio_create_completion: %m", where);
    return -1;
  }
  return 0;
}

/* Wait for the request whose submission returned R (negative errno
 * if it was refused at once), release it, return its result or -1.
 */
static ssize_t
aio_finish (struct aio *a, int r, const char *what, uint64_t count,
            uint64_t offset)
{
  ssize_t n = r;

  if (r == 0) {
    rbd_aio_wait_for_complete (a->c);
    n = rbd_aio_get_return_value (a->c);
  }
  rbd_aio_release (a->c);
  if (n < 0) {
    nbdkit_set_error (request_failed (what, count, offset, (int)-n));
    return -1;
  }
  return n;
}

static int
do_flush (void)
{
  struct aio a;
  if (aio_start (&a) == -1)
    return -1;
  int r = rbd_aio_flush (image, a.c);
  return aio_finish (&a, r, "flush", 0, 0) == -1 ? -1 : 0;
}

static int
plugin_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
              uint32_t flags, struct nbdkit_read *rd)
{
  struct aio a;
  ssize_t n;

  (void)handle;
  (void)flags;
  (void)rd;
  if (aio_start (&a) == -1)
    return -1;
  n = aio_finish (&a, rbd_aio_read (image, offset, count, buf, a.c), "read",
                  count, offset);
  if (n == -1)
    return -1;
  /* A read that the image shrank under. */
  if ((uint64_t)n < count)
    memset ((char *)buf + n, 0, count - n);
  return 0;
}

static int
plugin_pwrite (void *handle, const void *buf, uint64_t count, uint64_t offset,
               uint32_t flags)
{
  struct aio a;

  (void)handle;
  if (aio_start (&a) == -1)
    return -1;
  if (aio_finish (&a, rbd_aio_write (image, offset, count, buf, a.c), "write",
                  count, offset)
      == -1)
    return -1;
  if (flags & NBDKIT_FLAG_FUA)
    return do_flush ();
  return 0;
}

static int
plugin_flush (void *handle, uint32_t flags)
{
  (void)handle;
  (void)flags;
  return do_flush ();
}

static int
plugin_trim (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  struct aio a;

  (void)handle;
  if (aio_start (&a) == -1)
    return -1;
  if (aio_finish (&a, rbd_aio_discard (image, offset, count, a.c), "trim",
                  count, offset)
      == -1)
    return -1;
  if (flags & NBDKIT_FLAG_FUA)
    return do_flush ();
  return 0;
}

static int
plugin_zero (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  struct aio a;
  int zero_flags = 0;

  (void)handle;
  /* Without may-trim the zeroes must stay allocated: librbd writes
   * them, which is no faster than the client writing them.
   */
  if (!(flags & NBDKIT_FLAG_MAY_TRIM)) {
    if (flags & NBDKIT_FLAG_FAST_ZERO) {
      nbdkit_set_error (ENOTSUP);
      return -1;
    }
    zero_flags = RBD_WRITE_ZEROES_FLAG_THICK_PROVISION;
  }
  if (aio_start (&a) == -1)
    return -1;
  if (aio_finish (
          &a, rbd_aio_write_zeroes (image, offset, count, a.c, zero_flags, 0),
          "zero", count, offset)
      == -1)
    return -1;
  if (flags & NBDKIT_FLAG_FUA)
    return do_flush ();
  return 0;
}

/* ---- asynchronous completion ----
 *
 * librbd calls a completion's callback on its own thread, one that
 * runs the callbacks of every request of the image in turn.
 * nbdkit_complete sends the reply there and then, and a client that
 * does not read its replies can hold that send for as long as it
 * likes: every other request of every connection would wait behind
 * it, and a connection thread blocked in librbd's submission throttle
 * would never be released.  So the callback only queues the request,
 * and one thread of ours (the completer) finishes it: it reads the
 * result, releases the librbd completion, sends the flush of a FUA
 * request, and completes.
 */
struct aop {
  struct aop *next;
  rbd_completion_t c;
  struct nbdkit_completion *h;
  const char *what;
  uint64_t count, offset;
  char *buf; /* a read: the part past a short read is zeroed */
  bool fua;  /* flush once this succeeds */
};

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static struct aop *done_head, **done_tail = &done_head;
static bool completer_stop, completer_running;
static pthread_t completer;

/* librbd's callback: hand the request to the completer. */
static void
aop_cb (rbd_completion_t c, void *arg)
{
  struct aop *a = arg;

  (void)c;
  pthread_mutex_lock (&done_lock);
  a->next = NULL;
  *done_tail = a;
  done_tail = &a->next;
  pthread_cond_signal (&done_cond);
  pthread_mutex_unlock (&done_lock);
}

/* Submit A by SUBMIT's result R (negative errno when refused at
 * once).  Returns 0, or a positive errno with A's completion
 * released.
 */
static int
aop_submitted (struct aop *a, int r)
{
  if (r < 0) {
    rbd_aio_release (a->c);
    return -r;
  }
  return 0;
}

static int
aop_flush (struct aop *a)
{
  int r = rbd_aio_create_completion (a, aop_cb, &a->c);
  if (r < 0)
    return -r;
  a->what = "flush";
  return aop_submitted (a, rbd_aio_flush (image, a->c));
}

static void
aop_end (struct aop *a, int err)
{
  if (err)
    err = request_failed (a->what, a->count, a->offset, err);
  nbdkit_complete (a->h, err);
  free (a);
}

/* One request librbd has finished. */
static void
aop_finish (struct aop *a)
{
  ssize_t n = rbd_aio_get_return_value (a->c);
  int err;

  rbd_aio_release (a->c);
  if (n < 0) {
    aop_end (a, (int)-n);
    return;
  }
  if (a->buf && (uint64_t)n < a->count)
    memset (a->buf + n, 0, a->count - n);
  if (a->fua) {
    a->fua = false;
    err = aop_flush (a);
    if (err)
      aop_end (a, err);
    return;
  }
  aop_end (a, 0);
}

static void *
completer_main (void *arg)
{
  (void)arg;
  pthread_mutex_lock (&done_lock);
  for (;;) {
    while (done_head == NULL && !completer_stop)
      pthread_cond_wait (&done_cond, &done_lock);
    if (done_head == NULL)
      break;
    struct aop *a = done_head;
    done_head = NULL;
    done_tail = &done_head;
    pthread_mutex_unlock (&done_lock);
    while (a) {
      struct aop *next = a->next;
      aop_finish (a);
      a = next;
    }
    pthread_mutex_lock (&done_lock);
  }
  pthread_mutex_unlock (&done_lock);
  return NULL;
}

static int
completer_start (void)
{
  int r = pthread_create (&completer, NULL, completer_main, NULL);
  if (r != 0) {
    errno = r;
    nbdkit_error ("%s: starting the completion thread: %m", where);
    return -1;
  }
  completer_running = true;
  return 0;
}

/* After the last connection: the server has had every request
 * completed by then, so the queue is empty.
 */
static void
completer_end (void)
{
  if (!completer_running)
    return;
  pthread_mutex_lock (&done_lock);
  completer_stop = true;
  pthread_cond_signal (&done_cond);
  pthread_mutex_unlock (&done_lock);
  pthread_join (completer, NULL);
  completer_running = false;
}

/* A new request, with its librbd completion, or NULL after
 * nbdkit_error (the request fails at once).
 */
static struct aop *
aop_new (struct nbdkit_completion *h, const char *what, uint64_t count,
         uint64_t offset, uint32_t flags)
{
  struct aop *a = calloc (1, sizeof *a);
  int r;

  if (a == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  r = rbd_aio_create_completion (a, aop_cb, &a->c);
  if (r < 0) {
    free (a);
    errno = -r;
    nbdkit_error ("%s: rbd_aio_create_completion: %m", where);
    return NULL;
  }
  a->h = h;
  a->what = what;
  a->count = count;
  a->offset = offset;
  a->fua = (flags & NBDKIT_FLAG_FUA) != 0;
  return a;
}

/* After submitting A: R < 0 means librbd refused it at once. */
static int
aop_issued (struct aop *a, int r)
{
  int err = aop_submitted (a, r);

  if (err) {
    nbdkit_set_error (request_failed (a->what, a->count, a->offset, err));
    free (a);
    return -1;
  }
  return 0;
}

static int
plugin_async_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
                    uint32_t flags, struct nbdkit_read *rd,
                    struct nbdkit_completion *h)
{
  (void)handle;
  (void)rd;
  (void)flags;
  struct aop *a = aop_new (h, "read", count, offset, 0);
  if (a == NULL)
    return -1;
  a->buf = buf;
  return aop_issued (a, rbd_aio_read (image, offset, count, buf, a->c));
}

static int
plugin_async_pwrite (void *handle, const void *buf, uint64_t count,
                     uint64_t offset, uint32_t flags,
                     struct nbdkit_completion *h)
{
  (void)handle;
  struct aop *a = aop_new (h, "write", count, offset, flags);
  if (a == NULL)
    return -1;
  return aop_issued (a, rbd_aio_write (image, offset, count, buf, a->c));
}

static int
plugin_async_flush (void *handle, uint32_t flags, struct nbdkit_completion *h)
{
  (void)handle;
  (void)flags;
  struct aop *a = aop_new (h, "flush", 0, 0, 0);
  if (a == NULL)
    return -1;
  return aop_issued (a, rbd_aio_flush (image, a->c));
}

static int
plugin_async_trim (void *handle, uint64_t count, uint64_t offset,
                   uint32_t flags, struct nbdkit_completion *h)
{
  (void)handle;
  struct aop *a = aop_new (h, "trim", count, offset, flags);
  if (a == NULL)
    return -1;
  return aop_issued (a, rbd_aio_discard (image, offset, count, a->c));
}

static int
plugin_async_zero (void *handle, uint64_t count, uint64_t offset,
                   uint32_t flags, struct nbdkit_completion *h)
{
  int zero_flags = 0;

  (void)handle;
  /* As plugin_zero: without may-trim the zeroes are written. */
  if (!(flags & NBDKIT_FLAG_MAY_TRIM)) {
    if (flags & NBDKIT_FLAG_FAST_ZERO) {
      nbdkit_set_error (ENOTSUP);
      return -1;
    }
    zero_flags = RBD_WRITE_ZEROES_FLAG_THICK_PROVISION;
  }
  struct aop *a = aop_new (h, "zero", count, offset, flags);
  if (a == NULL)
    return -1;
  return aop_issued (
      a, rbd_aio_write_zeroes (image, offset, count, a->c, zero_flags, 0));
}

/* rbd_diff_iterate2 reports the allocated ranges in ascending order;
 * the gaps between them are holes.
 */
struct extents_state {
  struct nbdkit_extents *extents;
  uint64_t pos; /* everything before pos is reported */
  int err;
};

static int
extent_cb (uint64_t offset, size_t length, int exists, void *arg)
{
  struct extents_state *st = arg;
  uint32_t type = exists ? 0 : NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;

  if (offset > st->pos
      && nbdkit_add_extent (st->extents, st->pos, offset - st->pos,
                            NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO)
             == -1) {
    st->err = errno ? errno : EIO;
    return -EIO;
  }
  if (nbdkit_add_extent (st->extents, offset, length, type) == -1) {
    st->err = errno ? errno : EIO;
    return -EIO;
  }
  st->pos = offset + length;
  return 0;
}

static int
plugin_extents (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
                struct nbdkit_extents *extents)
{
  struct extents_state st = { .extents = extents, .pos = offset };
  uint64_t limit, len;
  int r;

  (void)handle;
  /* Listing is one RADOS request per object: look at a bounded window,
   * one object for a client that wants a single extent.
   */
  limit = (flags & NBDKIT_FLAG_REQ_ONE) ? object_size
                                        : object_size * EXTENTS_MAX_OBJECTS;
  len = MIN (count, limit - offset % object_size);
  r = rbd_diff_iterate2 (image, NULL, offset, len, 1, 0, extent_cb, &st);
  if (r < 0) {
    if (st.err) {
      errno = st.err;
      nbdkit_error ("%s: listing the allocated extents of %" PRIu64
                    " bytes at offset %" PRIu64 ": %m",
                    where, len, offset);
    } else
      nbdkit_set_error (
          request_failed ("listing the allocated extents", len, offset, -r));
    return -1;
  }
  /* The rest of the window is a hole. */
  if (offset + len > st.pos
      && nbdkit_add_extent (extents, st.pos, offset + len - st.pos,
                            NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO)
             == -1)
    return -1;
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name = "rbd",
  .longname = "Ceph RBD plugin",
  .version = NBDKIT_VERSION,
  .description = "serve a Ceph RBD image through librbd",
  .params = rbd_params,
  .magic_config_key = "image",
  .config = plugin_config,
  .config_complete = plugin_config_complete,
  .dump_plugin = plugin_dump_plugin,
  .thread_model = plugin_thread_model,
  .after_fork = plugin_after_fork,
  .cleanup = plugin_cleanup,
  .open = plugin_open,
  .get_size = plugin_get_size,
  .can_write = plugin_can_write,
  .can_flush = plugin_can_true,
  .can_trim = plugin_can_true,
  .can_zero = plugin_can_zero,
  .can_fast_zero = plugin_can_true,
  .can_fua = plugin_can_fua,
  .can_multi_conn = plugin_can_true,
  .can_extents = plugin_can_extents,
  .pread = plugin_pread,
  .pwrite = plugin_pwrite,
  .flush = plugin_flush,
  .trim = plugin_trim,
  .zero = plugin_zero,
  .extents = plugin_extents,
  .pread_fills_buffer = 1,
  .async_pread = plugin_async_pread,
  .async_pwrite = plugin_async_pwrite,
  .async_flush = plugin_async_flush,
  .async_trim = plugin_async_trim,
  .async_zero = plugin_async_zero,
};

/* async=false: the server waits for each request on a thread (kept to
 * compare the two).
 */
static void
drop_async (void)
{
  plugin.async_pread = NULL;
  plugin.async_pwrite = NULL;
  plugin.async_flush = NULL;
  plugin.async_trim = NULL;
  plugin.async_zero = NULL;
}

NBDKIT_REGISTER_PLUGIN (plugin)
