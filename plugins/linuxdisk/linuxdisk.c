/* linuxdisk.c: a read-only disk holding one GPT partition with an ext2,
 * ext3 or ext4 filesystem made from one or more directories.
 *
 * At startup (get_ready) the directories are copied in order into a
 * staging directory (when there are several: later ones win), a
 * temporary file gets a GPT from sfdisk, and mke2fs -d writes the
 * filesystem into the partition (-E offset=).  The file is unlinked at
 * once and served read-only to every client.
 */

#define _GNU_SOURCE
#define NBDKIT_API_VERSION 3
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nbdkit-plugin.h>

#include "fsdisk.h"

#define PART_START (1024 * 1024) /* the partition starts at 1 MiB */
#define GPT_TAIL (1024 * 1024)   /* room for the backup GPT at the end */
#define ALIGN (1024 * 1024)
#define MAX_TRIES 6

static char **dirs;
static size_t ndirs;
static const char *label;
static const char *type = "ext2";
static const char *size_str;
static int64_t size;    /* of the filesystem; 0: estimated */
static bool size_extra; /* size=+SIZE: free space on top */
static int fd = -1;
static int64_t disk_size;

static int
linuxdisk_config (const char *key, const char *value)
{
  if (strcmp (key, "dir") == 0) {
    char *d = nbdkit_absolute_path (value), **nd;
    struct stat st;
    if (d == NULL)
      return -1;
    if (stat (d, &st) == -1 || !S_ISDIR (st.st_mode)) {
      nbdkit_error ("linuxdisk: dir=%s: not a directory", value);
      free (d);
      return -1;
    }
    nd = realloc (dirs, (ndirs + 1) * sizeof *nd);
    if (nd == NULL) {
      nbdkit_error ("realloc: %m");
      free (d);
      return -1;
    }
    dirs = nd;
    dirs[ndirs++] = d;
    return 0;
  }
  if (strcmp (key, "label") == 0) {
    label = value;
    return 0;
  }
  if (strcmp (key, "type") == 0) {
    if (strcmp (value, "ext2") && strcmp (value, "ext3")
        && strcmp (value, "ext4")) {
      nbdkit_error ("linuxdisk: type=%s: must be ext2, ext3 or ext4", value);
      return -1;
    }
    type = value;
    return 0;
  }
  if (strcmp (key, "size") == 0) {
    size_str = value;
    size_extra = value[0] == '+';
    size = nbdkit_parse_size (value + size_extra);
    if (size == -1)
      return -1;
    if (!size_extra && size < 1024 * 1024) {
      nbdkit_error ("linuxdisk: size=%s: too small for a filesystem", value);
      return -1;
    }
    return 0;
  }
  nbdkit_error ("linuxdisk: unknown parameter %s=", key);
  return -1;
}

static int
linuxdisk_config_complete (void)
{
  if (ndirs == 0) {
    nbdkit_error ("linuxdisk: a directory must be given ([dir=]DIR)");
    return -1;
  }
  return 0;
}

static const char *
linuxdisk_config_help (void)
{
  return "[dir=]DIR      (required, repeatable) the files of the filesystem;\n"
         "               with several, later ones win\n"
         "label=LABEL    the filesystem label\n"
         "type=ext2|ext3|ext4   (default ext2)\n"
         "size=[+]SIZE   the filesystem's size, or +SIZE free space";
}

/* The bytes the files of the staging directory need, roughly. */
static uint64_t used;

static int
add_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  used += 4096; /* inode, directory entry */
  if (S_ISREG (st->st_mode) || S_ISLNK (st->st_mode) || S_ISDIR (st->st_mode))
    used += ((uint64_t)st->st_size + 4095) / 4096 * 4096;
  return 0;
}

static const char stage_script[] = "cp -a -- \"$src/.\" \"$staging/\"\n";

static const char disk_script[]
    = "set -e\n"
      "truncate -s \"$disksize\" \"$disk\"\n"
      "printf 'label: gpt\\nstart=%s, size=%s, "
      "type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\\n' \"$startsec\" "
      "\"$sectors\" | sfdisk -q \"$disk\" >/dev/null\n"
      "set -- -q -F -t \"$type\" -d \"$src\" -E offset=\"$offset\"\n"
      "if [ -n \"$label\" ]; then set -- \"$@\" -L \"$label\"; fi\n"
      "if [ \"$quiet\" = 1 ]; then\n"
      "  mke2fs \"$@\" \"$disk\" \"${fssize}k\" 2>/dev/null\n"
      "else\n"
      "  mke2fs \"$@\" \"$disk\" \"${fssize}k\"\n"
      "fi\n";

static const char rm_script[] = "rm -rf -- \"$staging\"\n";

static int
setvar (struct fsdisk_vars *v, const char *name, uint64_t n)
{
  char s[32];
  snprintf (s, sizeof s, "%" PRIu64, n);
  return fsdisk_vars_set (v, name, s);
}

static int
make_disk (void)
{
  struct fsdisk_vars v = { 0 };
  char *staging = NULL, *disk = NULL;
  const char *src;
  uint64_t fssize;
  int r = -1, tries;

  if (ndirs > 1) {
    if (asprintf (&staging, "%s/linuxdiskXXXXXX", fsdisk_tmpdir ()) == -1) {
      nbdkit_error ("asprintf: %m");
      return -1;
    }
    if (mkdtemp (staging) == NULL) {
      nbdkit_error ("linuxdisk: mkdtemp: %s: %m", staging);
      free (staging);
      return -1;
    }
    if (fsdisk_vars_set (&v, "staging", staging) == -1)
      goto out;
    for (size_t i = 0; i < ndirs; i++) {
      if (fsdisk_vars_set (&v, "src", dirs[i]) == -1)
        goto out;
      if (fsdisk_run ("linuxdisk: copying the directories", stage_script, &v)
          == -1) {
        nbdkit_error ("linuxdisk: %s could not be merged into the others",
                      dirs[i]);
        goto out;
      }
    }
    src = staging;
  } else
    src = dirs[0];

  used = 0;
  if (nftw (src, add_entry, 64, FTW_PHYS) == -1) {
    nbdkit_error ("linuxdisk: %s: %m", src);
    goto out;
  }
  if (size > 0 && !size_extra)
    fssize = size;
  else {
    /* Metadata: about a tenth, plus room for a journal. */
    fssize = used + used / 10 + 2 * 1024 * 1024;
    if (strcmp (type, "ext2") != 0)
      fssize += 8 * 1024 * 1024;
    if (size_extra)
      fssize += size;
  }
  fssize = (fssize + 4095) / 4096 * 4096;

  if (asprintf (&disk, "%s/linuxdiskXXXXXX", fsdisk_tmpdir ()) == -1) {
    nbdkit_error ("asprintf: %m");
    disk = NULL;
    goto out;
  }
  fd = mkostemp (disk, O_CLOEXEC);
  if (fd == -1) {
    nbdkit_error ("linuxdisk: mkostemp: %s: %m", disk);
    goto out;
  }
  if (fsdisk_vars_set (&v, "src", src) == -1
      || fsdisk_vars_set (&v, "disk", disk) == -1
      || fsdisk_vars_set (&v, "type", type) == -1
      || fsdisk_vars_set (&v, "label", label ? label : "") == -1
      || setvar (&v, "offset", PART_START) == -1
      || setvar (&v, "startsec", PART_START / 512) == -1)
    goto out;
  /* An estimated size that turns out too small is doubled. */
  for (tries = 1;; tries++) {
    bool last = size > 0 && !size_extra ? true : tries == MAX_TRIES;
    uint64_t part = (fssize + ALIGN - 1) / ALIGN * ALIGN;
    disk_size = PART_START + part + GPT_TAIL;
    if (setvar (&v, "disksize", disk_size) == -1
        || setvar (&v, "sectors", part / 512) == -1
        || setvar (&v, "fssize", fssize / 1024) == -1
        || fsdisk_vars_set (&v, "quiet", last ? "0" : "1") == -1)
      goto out;
    if (ftruncate (fd, 0) == -1) {
      nbdkit_error ("linuxdisk: ftruncate: %m");
      goto out;
    }
    if (fsdisk_run ("linuxdisk: making the filesystem", disk_script, &v) == 0)
      break;
    if (last) {
      if (size > 0 && !size_extra)
        nbdkit_error ("linuxdisk: mke2fs failed: is size=%s big enough for"
                      " the files?",
                      size_str);
      goto out;
    }
    nbdkit_debug ("linuxdisk: %" PRIu64 " bytes were too few, doubling",
                  fssize);
    fssize *= 2;
  }
  nbdkit_debug ("linuxdisk: a %s filesystem of %" PRIu64 " bytes, disk %" PRId64
                " bytes",
                type, fssize, disk_size);
  r = 0;

out:
  if (r == -1 && fd >= 0) {
    close (fd);
    fd = -1;
  }
  if (disk)
    unlink (disk);
  if (staging) {
    struct fsdisk_vars rv = { 0 };
    if (fsdisk_vars_set (&rv, "staging", staging) == 0)
      fsdisk_run ("linuxdisk: removing the staging directory", rm_script, &rv);
    fsdisk_vars_free (&rv);
  }
  free (staging);
  free (disk);
  fsdisk_vars_free (&v);
  return r;
}

static int
linuxdisk_get_ready (int thread_model)
{
  return make_disk ();
}

static void
linuxdisk_unload (void)
{
  for (size_t i = 0; i < ndirs; i++)
    free (dirs[i]);
  free (dirs);
  if (fd >= 0)
    close (fd);
}

static void *
linuxdisk_open (int readonly, const char *exportname, int is_tls)
{
  return NBDKIT_HANDLE_NOT_NEEDED;
}

static int64_t
linuxdisk_get_size (void *handle)
{
  return disk_size;
}

static int
linuxdisk_can_write (void *handle)
{
  return 0;
}

static int
linuxdisk_can_multi_conn (void *handle)
{
  return 1;
}

static int
linuxdisk_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
                 uint32_t flags, struct nbdkit_read *rd)
{
  return fsdisk_pread (fd, buf, count, offset);
}

static struct nbdkit_plugin plugin = {
  .name = "linuxdisk",
  .longname = "nbdkit Linux filesystem from a directory plugin",
  .description = "an ext2/3/4 filesystem made from directories",
  .magic_config_key = "dir",
  .config = linuxdisk_config,
  .config_complete = linuxdisk_config_complete,
  .config_help = linuxdisk_config_help,
  .get_ready = linuxdisk_get_ready,
  .unload = linuxdisk_unload,
  .open = linuxdisk_open,
  .get_size = linuxdisk_get_size,
  .can_write = linuxdisk_can_write,
  .can_multi_conn = linuxdisk_can_multi_conn,
  .pread = linuxdisk_pread,
  .pread_fills_buffer = 1,
};

NBDKIT_REGISTER_PLUGIN (plugin)
