/* ondemand.c: a filesystem per export name, made on first use and kept
 * in dir= between connections and server restarts.
 *
 * Export NAME is the file DIR/NAME ("" is "default").  NAME:SIZE asks
 * for a new filesystem of SIZE bytes (at most max-size=).  A new
 * filesystem is made in a private directory under DIR (names starting
 * with '.' are never exports) and renamed into place without replacing
 * one another client made meanwhile.  Each file is locked (flock)
 * while a client uses it.
 */

#define _GNU_SOURCE
#define NBDKIT_API_VERSION 3
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nbdkit-plugin.h>

#include "fsdisk.h"

static char *dir;
static int64_t size = -1;
static int64_t max_size = INT64_C (16) << 30;
static const char *max_size_str = "16G";
static const char *command;
static bool wait_lock;
static struct fsdisk_vars vars;

static int
ondemand_config (const char *key, const char *value)
{
  if (strcmp (key, "dir") == 0) {
    struct stat st;
    free (dir);
    dir = nbdkit_absolute_path (value);
    if (dir == NULL)
      return -1;
    if (stat (dir, &st) == -1 || !S_ISDIR (st.st_mode)) {
      nbdkit_error ("ondemand: dir=%s: not a directory", value);
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "size") == 0) {
    size = nbdkit_parse_size (value);
    return size == -1 ? -1 : 0;
  }
  if (strcmp (key, "max-size") == 0) {
    max_size = nbdkit_parse_size (value);
    max_size_str = value;
    return max_size == -1 ? -1 : 0;
  }
  if (strcmp (key, "command") == 0) {
    command = value;
    return 0;
  }
  if (strcmp (key, "wait") == 0) {
    int r = nbdkit_parse_bool (value);
    if (r == -1)
      return -1;
    wait_lock = r;
    return 0;
  }
  if (strcmp (key, "disk") == 0) {
    nbdkit_error ("ondemand: disk= cannot be set: $disk is the file the"
                  " command makes");
    return -1;
  }
  if (!fsdisk_var_name_ok (key)) {
    nbdkit_error ("ondemand: %s=: not a shell variable name", key);
    return -1;
  }
  return fsdisk_vars_set (&vars, key, value);
}

static int
ondemand_config_complete (void)
{
  if (dir == NULL) {
    nbdkit_error ("ondemand: dir= must be given");
    return -1;
  }
  if (size == -1) {
    nbdkit_error ("ondemand: the size must be given (size=SIZE)");
    return -1;
  }
  if (command == NULL) {
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
ondemand_unload (void)
{
  free (dir);
  fsdisk_vars_free (&vars);
}

static const char *
ondemand_config_help (void)
{
  return "dir=DIR        (required) where the filesystems are kept\n"
         "[size=]SIZE    (required) the size of a new filesystem\n"
         "max-size=SIZE  the largest NAME:SIZE a client may ask for"
         " (default 16G)\n"
         "type=FS        the filesystem type (mkfs -t), default ext4\n"
         "label=LABEL    the filesystem label\n"
         "command=SH     a script making \"$disk\" instead of mkfs\n"
         "wait=true      wait for a filesystem in use instead of failing\n"
         "VAR=VALUE      any other key: a shell variable of the script";
}

static int
ondemand_list_exports (int readonly, int is_tls, struct nbdkit_exports *exports)
{
  DIR *d = opendir (dir);
  struct dirent *e;
  int r = 0;

  if (d == NULL) {
    nbdkit_error ("ondemand: %s: %m", dir);
    return -1;
  }
  while ((e = readdir (d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN)
      continue;
    /* The file "default" is the default export "". */
    if (nbdkit_add_export (
            exports, strcmp (e->d_name, "default") == 0 ? "" : e->d_name, NULL)
        == -1) {
      r = -1;
      break;
    }
  }
  closedir (d);
  return r;
}

/* Is NAME a safe file name for an export?  The message says why not. */
static bool
name_ok (const char *exportname, const char *name, size_t len)
{
  const char *why = NULL;

  if (len == 0)
    why = "the name is empty";
  else if (len > NAME_MAX)
    why = "the name is too long";
  else if (name[0] == '-')
    why = "the name starts with '-'";
  else
    for (size_t i = 0; i < len; i++) {
      unsigned char c = name[i];
      if (c < 0x20 || c == 0x7f || c == '.' || c == '/' || c == '\\'
          || c == ':') {
        why = "the name contains '.', '/', '\\', ':' or a control"
              " character";
        break;
      }
    }
  if (why) {
    nbdkit_error ("ondemand: export name '%s' refused: %s", exportname, why);
    return false;
  }
  return true;
}

/* Make DIR/NAME with the script, unless it appeared meanwhile. */
static int
create (const char *exportname, const char *name, int64_t want)
{
  struct fsdisk_vars v = { 0 };
  char *tmp = NULL, *disk = NULL, *final = NULL, s[32];
  int r = -1;

  if (asprintf (&tmp, "%s/.ondemandXXXXXX", dir) == -1) {
    nbdkit_error ("asprintf: %m");
    return -1;
  }
  if (mkdtemp (tmp) == NULL) {
    nbdkit_error ("ondemand: mkdtemp: %s: %m", tmp);
    free (tmp);
    return -1;
  }
  if (asprintf (&disk, "%s/%s", tmp, name) == -1
      || asprintf (&final, "%s/%s", dir, name) == -1) {
    nbdkit_error ("asprintf: %m");
    goto out;
  }
  for (size_t i = 0; i < vars.n; i++) {
    char *eq = strchr (vars.v[i], '=');
    *eq = '\0';
    int k = fsdisk_vars_set (&v, vars.v[i], eq + 1);
    *eq = '=';
    if (k == -1)
      goto out;
  }
  snprintf (s, sizeof s, "%" PRId64, want);
  if (fsdisk_vars_set (&v, "size", s) == -1
      || fsdisk_vars_set (&v, "disk", disk) == -1)
    goto out;
  nbdkit_debug ("ondemand: making export %s: %" PRId64 " bytes", name, want);
  if (fsdisk_run ("ondemand", command ? command : fsdisk_mkfs_script, &v)
      == -1) {
    nbdkit_error ("ondemand: export '%s': the filesystem could not be made",
                  exportname);
    goto out;
  }
  if (access (disk, F_OK) == -1) {
    nbdkit_error ("ondemand: export '%s': the command did not make $disk",
                  exportname);
    goto out;
  }
  if (renameat2 (AT_FDCWD, disk, AT_FDCWD, final, RENAME_NOREPLACE) == -1) {
    if (errno == EEXIST) /* another client made it first: use theirs */
      nbdkit_debug ("ondemand: export %s appeared meanwhile", name);
    else if (errno == EINVAL || errno == ENOSYS) {
      if (link (disk, final) == -1 && errno != EEXIST) {
        nbdkit_error ("ondemand: link %s: %m", final);
        goto out;
      }
    } else {
      nbdkit_error ("ondemand: rename to %s: %m", final);
      goto out;
    }
  }
  r = 0;

out:
  if (disk)
    unlink (disk);
  if (rmdir (tmp) == -1 && errno != ENOENT) {
    /* The command left other files there. */
    struct fsdisk_vars rv = { 0 };
    if (fsdisk_vars_set (&rv, "tmp", tmp) == 0)
      fsdisk_run ("ondemand: removing a temporary directory",
                  "rm -rf -- \"$tmp\"", &rv);
    fsdisk_vars_free (&rv);
  }
  free (tmp);
  free (disk);
  free (final);
  fsdisk_vars_free (&v);
  return r;
}

static void *
ondemand_open (int readonly, const char *exportname, int is_tls)
{
  const char *colon = strchr (exportname, ':');
  size_t len = colon ? (size_t)(colon - exportname) : strlen (exportname);
  char name[NAME_MAX + 1], *path = NULL;
  int64_t want = size;
  struct fsdisk_handle *h = NULL;
  int fd = -1;

  if (exportname[0] == '\0') {
    strcpy (name, "default");
    len = 7;
  } else {
    if (!name_ok (exportname, exportname, len))
      return NULL;
    memcpy (name, exportname, len);
    name[len] = '\0';
  }
  if (colon) {
    want = nbdkit_parse_size (colon + 1);
    if (want == -1) {
      nbdkit_error ("ondemand: export name '%s': '%s' is not a size",
                    exportname, colon + 1);
      return NULL;
    }
    if (want == 0) {
      nbdkit_error ("ondemand: export name '%s': the size must not be 0",
                    exportname);
      return NULL;
    }
    if (want > max_size) {
      nbdkit_error ("ondemand: export name '%s': %s is more than the largest"
                    " size allowed, max-size=%s",
                    exportname, colon + 1, max_size_str);
      return NULL;
    }
  }
  if (asprintf (&path, "%s/%s", dir, name) == -1) {
    nbdkit_error ("asprintf: %m");
    return NULL;
  }

  fd = open (path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd == -1 && errno == ENOENT) {
    if (create (exportname, name, want) == -1)
      goto out;
    fd = open (path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  }
  if (fd == -1) {
    nbdkit_error ("ondemand: export '%s': %s: %m", exportname, path);
    goto out;
  }
  if (flock (fd, LOCK_EX | (wait_lock ? 0 : LOCK_NB)) == -1) {
    if (errno == EWOULDBLOCK)
      nbdkit_error ("ondemand: export '%s': filesystem is locked by another"
                    " client",
                    name);
    else
      nbdkit_error ("ondemand: export '%s': flock: %m", name);
    close (fd);
    goto out;
  }
  if (colon) {
    struct stat st;
    if (fstat (fd, &st) == 0 && st.st_size != want)
      nbdkit_debug ("ondemand: export %s exists with %" PRId64 " bytes:"
                    " the size asked for (%" PRId64 ") applies only to a new"
                    " one",
                    name, (int64_t)st.st_size, want);
  }
  h = malloc (sizeof *h);
  if (h == NULL) {
    nbdkit_error ("malloc: %m");
    close (fd);
    goto out;
  }
  h->fd = fd;

out:
  free (path);
  return h;
}

static void
ondemand_close (void *handle)
{
  struct fsdisk_handle *h = handle;
  close (h->fd); /* releases the lock */
  free (h);
}

static struct nbdkit_plugin plugin = {
  .name = "ondemand",
  .longname = "nbdkit ondemand filesystem plugin",
  .description = "filesystems made per export name and kept",
  .magic_config_key = "size",
  .config = ondemand_config,
  .config_complete = ondemand_config_complete,
  .config_help = ondemand_config_help,
  .unload = ondemand_unload,
  .list_exports = ondemand_list_exports,
  .open = ondemand_open,
  .close = ondemand_close,
  .get_size = fsdisk_get_size_cb,
  .can_trim = fsdisk_can_trim_cb,
  .pread = fsdisk_pread_cb,
  .pread_fills_buffer = 1,
  .pwrite = fsdisk_pwrite_cb,
  .trim = fsdisk_trim_cb,
  .flush = fsdisk_flush_cb,
};

NBDKIT_REGISTER_PLUGIN (plugin)
