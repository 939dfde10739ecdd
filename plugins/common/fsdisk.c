/* fsdisk.c: see fsdisk.h. */

#define _GNU_SOURCE
#define NBDKIT_API_VERSION 3
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nbdkit-plugin.h>

#include "fsdisk.h"

extern char **environ;

int
fsdisk_vars_set (struct fsdisk_vars *vars, const char *name, const char *value)
{
  size_t len = strlen (name);
  char *s, **nv;

  if (asprintf (&s, "%s=%s", name, value) == -1) {
    nbdkit_error ("asprintf: %m");
    return -1;
  }
  for (size_t i = 0; i < vars->n; i++)
    if (strncmp (vars->v[i], name, len) == 0 && vars->v[i][len] == '=') {
      free (vars->v[i]);
      vars->v[i] = s;
      return 0;
    }
  nv = realloc (vars->v, (vars->n + 1) * sizeof *nv);
  if (nv == NULL) {
    nbdkit_error ("realloc: %m");
    free (s);
    return -1;
  }
  vars->v = nv;
  vars->v[vars->n++] = s;
  return 0;
}

void
fsdisk_vars_free (struct fsdisk_vars *vars)
{
  for (size_t i = 0; i < vars->n; i++)
    free (vars->v[i]);
  free (vars->v);
  vars->v = NULL;
  vars->n = 0;
}

bool
fsdisk_var_name_ok (const char *name)
{
  if (name[0] == '\0' || (name[0] >= '0' && name[0] <= '9'))
    return false;
  for (const char *p = name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
          || (*p >= '0' && *p <= '9') || *p == '_'))
      return false;
  return true;
}

/* Does environment string E set a variable VARS sets (or PATH)? */
static bool
overridden (const char *e, const struct fsdisk_vars *vars)
{
  const char *eq = strchr (e, '=');
  size_t len = eq ? (size_t)(eq - e) : strlen (e);

  if (len == 4 && strncmp (e, "PATH", 4) == 0)
    return true;
  for (size_t i = 0; i < vars->n; i++)
    if (strncmp (vars->v[i], e, len) == 0 && vars->v[i][len] == '=')
      return true;
  return false;
}

int
fsdisk_run (const char *what, const char *script,
            const struct fsdisk_vars *vars)
{
  size_t n = 0, k = 0;
  char **envp, *path = NULL;
  const char *oldpath = getenv ("PATH");
  pid_t pid;
  int status, r = -1;

  for (char **e = environ; *e; e++)
    n++;
  envp = calloc (n + vars->n + 2, sizeof *envp);
  if (envp == NULL) {
    nbdkit_error ("calloc: %m");
    return -1;
  }
  if (asprintf (&path, "PATH=%s:/usr/sbin:/sbin",
                oldpath ? oldpath : "/usr/bin:/bin")
      == -1) {
    nbdkit_error ("asprintf: %m");
    free (envp);
    return -1;
  }
  for (char **e = environ; *e; e++)
    if (!overridden (*e, vars))
      envp[k++] = *e;
  for (size_t i = 0; i < vars->n; i++)
    envp[k++] = vars->v[i];
  envp[k++] = path;
  envp[k] = NULL;

  nbdkit_debug ("%s: running: %s", what, script);
  pid = fork ();
  if (pid == -1) {
    nbdkit_error ("%s: fork: %m", what);
    goto out;
  }
  if (pid == 0) {
    /* The script's output must not reach the server's stdout (which
     * may be --run's or a captive client's).
     */
    dup2 (2, 1);
    execle ("/bin/sh", "sh", "-c", script, (char *)NULL, envp);
    _exit (127);
  }
  while (waitpid (pid, &status, 0) == -1)
    if (errno != EINTR) {
      nbdkit_error ("%s: waitpid: %m", what);
      goto out;
    }
  if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
    r = 0;
  else if (WIFEXITED (status))
    nbdkit_error ("%s: the command failed with exit status %d", what,
                  WEXITSTATUS (status));
  else if (WIFSIGNALED (status))
    nbdkit_error ("%s: the command was killed by signal %d", what,
                  WTERMSIG (status));
  else
    nbdkit_error ("%s: the command failed", what);

out:
  free (path);
  free (envp);
  return r;
}

/* mkfs wants a force flag on a regular file for some types, and names
 * the label option differently for FAT.
 */
const char fsdisk_mkfs_script[]
    = "set -e\n"
      "truncate -s \"$size\" \"$disk\"\n"
      "force=; lopt=-L\n"
      "case \"$type\" in\n"
      "  ext2|ext3|ext4) force=-F ;;\n"
      "  xfs|btrfs) force=-f ;;\n"
      "  ntfs) force='-F -Q' ;;\n"
      "  vfat|fat|msdos) lopt=-n ;;\n"
      "esac\n"
      "if [ -n \"$label\" ]; then\n"
      "  mkfs -t \"$type\" $force $lopt \"$label\" \"$disk\"\n"
      "else\n"
      "  mkfs -t \"$type\" $force \"$disk\"\n"
      "fi\n";

const char *
fsdisk_tmpdir (void)
{
  const char *d = getenv ("TMPDIR");
  return d && *d ? d : "/var/tmp";
}

int
fsdisk_pread (int fd, void *buf, uint64_t count, uint64_t offset)
{
  char *p = buf;

  while (count > 0) {
    ssize_t r = pread (fd, p, count, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      nbdkit_error ("pread at offset %" PRIu64 ": %m", offset);
      return -1;
    }
    if (r == 0) { /* the file shrank under us: zeroes */
      memset (p, 0, count);
      return 0;
    }
    p += r;
    count -= r;
    offset += r;
  }
  return 0;
}

int
fsdisk_pwrite (int fd, const void *buf, uint64_t count, uint64_t offset)
{
  const char *p = buf;

  while (count > 0) {
    ssize_t r = pwrite (fd, p, count, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      nbdkit_error ("pwrite at offset %" PRIu64 ": %m", offset);
      return -1;
    }
    p += r;
    count -= r;
    offset += r;
  }
  return 0;
}

int
fsdisk_trim (int fd, uint64_t count, uint64_t offset)
{
  if (fallocate (fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, count)
      == -1) {
    if (errno == EOPNOTSUPP || errno == ENOSYS)
      return 0; /* trim is advisory */
    nbdkit_error ("fallocate: punch hole at offset %" PRIu64 ": %m", offset);
    return -1;
  }
  return 0;
}

int
fsdisk_flush (int fd)
{
  if (fdatasync (fd) == -1) {
    nbdkit_error ("fdatasync: %m");
    return -1;
  }
  return 0;
}

int64_t
fsdisk_get_size_cb (void *handle)
{
  struct fsdisk_handle *h = handle;
  struct stat st;

  if (fstat (h->fd, &st) == -1) {
    nbdkit_error ("fstat: %m");
    return -1;
  }
  return st.st_size;
}

int
fsdisk_can_trim_cb (void *handle)
{
  return 1;
}

int
fsdisk_pread_cb (void *handle, void *buf, uint64_t count, uint64_t offset,
                 uint32_t flags, struct nbdkit_read *rd)
{
  struct fsdisk_handle *h = handle;
  return fsdisk_pread (h->fd, buf, count, offset);
}

int
fsdisk_pwrite_cb (void *handle, const void *buf, uint64_t count,
                  uint64_t offset, uint32_t flags)
{
  struct fsdisk_handle *h = handle;
  if (fsdisk_pwrite (h->fd, buf, count, offset) == -1)
    return -1;
  if (flags & NBDKIT_FLAG_FUA)
    return fsdisk_flush (h->fd);
  return 0;
}

int
fsdisk_trim_cb (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  struct fsdisk_handle *h = handle;
  return fsdisk_trim (h->fd, count, offset);
}

int
fsdisk_flush_cb (void *handle, uint32_t flags)
{
  struct fsdisk_handle *h = handle;
  return fsdisk_flush (h->fd);
}
