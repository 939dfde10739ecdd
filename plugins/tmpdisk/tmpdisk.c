/* tmpdisk.c: a fresh temporary filesystem for each connection.
 *
 * At open a directory is made in $TMPDIR (or /var/tmp) and a shell
 * script (command=, or mkfs of type= with label=) makes "$disk" in it;
 * the file is opened and unlinked at once, so it disappears with the
 * connection even if the server dies.  Every other key=value becomes a
 * shell variable of the script.
 */

#define _GNU_SOURCE
#define NBDKIT_API_VERSION 3
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nbdkit-plugin.h>

#include "fsdisk.h"

static int64_t size = -1;
static const char *command;
static struct fsdisk_vars vars;

static int
tmpdisk_config (const char *key, const char *value)
{
  if (strcmp (key, "size") == 0) {
    size = nbdkit_parse_size (value);
    if (size == -1)
      return -1;
    return 0;
  }
  if (strcmp (key, "command") == 0) {
    command = value;
    return 0;
  }
  if (strcmp (key, "disk") == 0) {
    nbdkit_error ("tmpdisk: disk= cannot be set: $disk is the file the"
                  " command makes");
    return -1;
  }
  if (!fsdisk_var_name_ok (key)) {
    nbdkit_error ("tmpdisk: %s=: not a shell variable name", key);
    return -1;
  }
  return fsdisk_vars_set (&vars, key, value);
}

static int
tmpdisk_config_complete (void)
{
  char s[32];

  if (size == -1) {
    nbdkit_error ("tmpdisk: the size must be given (size=SIZE)");
    return -1;
  }
  snprintf (s, sizeof s, "%" PRId64, size);
  if (fsdisk_vars_set (&vars, "size", s) == -1)
    return -1;
  if (command == NULL) {
    /* The defaults of the mkfs script. */
    bool has_type = false, has_label = false;
    for (size_t i = 0; i < vars.n; i++) {
      has_type |= strncmp (vars.v[i], "type=", 5) == 0;
      has_label |= strncmp (vars.v[i], "label=", 6) == 0;
    }
    if (!has_type && fsdisk_vars_set (&vars, "type", "ext4") == -1)
      return -1;
    if (!has_label && fsdisk_vars_set (&vars, "label", "") == -1)
      return -1;
  }
  return 0;
}

static void
tmpdisk_unload (void)
{
  fsdisk_vars_free (&vars);
}

static const char *
tmpdisk_config_help (void)
{
  return "[size=]SIZE   (required) the size of the disk\n"
         "type=FS       the filesystem type (mkfs -t), default ext4\n"
         "label=LABEL   the filesystem label\n"
         "command=SH    a script making \"$disk\" instead of mkfs\n"
         "VAR=VALUE     any other key: a shell variable of the script";
}

static void *
tmpdisk_open (int readonly, const char *exportname, int is_tls)
{
  struct fsdisk_handle *h = NULL;
  struct fsdisk_vars v = { 0 };
  char *dir = NULL, *disk = NULL;
  int fd = -1;

  if (asprintf (&dir, "%s/tmpdiskXXXXXX", fsdisk_tmpdir ()) == -1) {
    nbdkit_error ("asprintf: %m");
    return NULL;
  }
  if (mkdtemp (dir) == NULL) {
    nbdkit_error ("tmpdisk: mkdtemp: %s: %m", dir);
    free (dir);
    return NULL;
  }
  if (asprintf (&disk, "%s/disk", dir) == -1) {
    nbdkit_error ("asprintf: %m");
    disk = NULL;
    goto out;
  }
  for (size_t i = 0; i < vars.n; i++) {
    char *eq = strchr (vars.v[i], '=');
    *eq = '\0';
    int r = fsdisk_vars_set (&v, vars.v[i], eq + 1);
    *eq = '=';
    if (r == -1)
      goto out;
  }
  if (fsdisk_vars_set (&v, "disk", disk) == -1)
    goto out;
  if (fsdisk_run ("tmpdisk", command ? command : fsdisk_mkfs_script, &v) == -1)
    goto out;
  fd = open (disk, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd == -1) {
    nbdkit_error ("tmpdisk: the command did not make the disk %s: %m", disk);
    goto out;
  }
  h = malloc (sizeof *h);
  if (h == NULL) {
    nbdkit_error ("malloc: %m");
    close (fd);
    goto out;
  }
  h->fd = fd;

out:
  /* Whatever happened, nothing is left on disk but the open file. */
  if (disk)
    unlink (disk);
  rmdir (dir);
  free (disk);
  free (dir);
  fsdisk_vars_free (&v);
  return h;
}

static void
tmpdisk_close (void *handle)
{
  struct fsdisk_handle *h = handle;
  close (h->fd);
  free (h);
}

static int
tmpdisk_can_multi_conn (void *handle)
{
  return 1; /* each connection has its own disk */
}

static struct nbdkit_plugin plugin = {
  .name = "tmpdisk",
  .longname = "nbdkit temporary filesystem plugin",
  .description = "a fresh temporary filesystem for each client",
  .magic_config_key = "size",
  .config = tmpdisk_config,
  .config_complete = tmpdisk_config_complete,
  .config_help = tmpdisk_config_help,
  .unload = tmpdisk_unload,
  .open = tmpdisk_open,
  .close = tmpdisk_close,
  .get_size = fsdisk_get_size_cb,
  .can_multi_conn = tmpdisk_can_multi_conn,
  .can_trim = fsdisk_can_trim_cb,
  .pread = fsdisk_pread_cb,
  .pread_fills_buffer = 1,
  .pwrite = fsdisk_pwrite_cb,
  .trim = fsdisk_trim_cb,
  .flush = fsdisk_flush_cb,
};

NBDKIT_REGISTER_PLUGIN (plugin)
