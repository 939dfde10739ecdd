/* fsdisk.h: what the plugins that make filesystems (tmpdisk, linuxdisk,
 * ondemand) share: running a shell script with variables in its
 * environment, the default mkfs script, and serving a disk file.
 */
#ifndef NBDKIT_PLUGIN_COMMON_FSDISK_H
#define NBDKIT_PLUGIN_COMMON_FSDISK_H

#include <stdbool.h>
#include <stdint.h>

/* Shell variables for a script: NAME=VALUE pairs. */
struct fsdisk_vars {
  char **v; /* "NAME=VALUE" strings */
  size_t n;
};

/* Set NAME to VALUE (a later call for the same NAME wins).  -1 (error
 * reported) if out of memory.
 */
extern int fsdisk_vars_set (struct fsdisk_vars *vars, const char *name,
                            const char *value);
extern void fsdisk_vars_free (struct fsdisk_vars *vars);

/* Is NAME a shell variable name (letters, digits, '_', not a digit
 * first)?
 */
extern bool fsdisk_var_name_ok (const char *name);

/* Run SCRIPT with /bin/sh -c, its environment the server's plus VARS
 * and /usr/sbin:/sbin at the end of PATH (where mkfs lives).  Its
 * stdout goes to stderr.  WHAT names it in errors.  0 if it exits 0,
 * else -1 (error reported with the exit status).
 */
extern int fsdisk_run (const char *what, const char *script,
                       const struct fsdisk_vars *vars);

/* The default script: makes $disk, $size bytes, a $type filesystem
 * labelled $label if set.
 */
extern const char fsdisk_mkfs_script[];

/* The directory for temporary files: $TMPDIR, else /var/tmp. */
extern const char *fsdisk_tmpdir (void);

/* Requests on a disk file descriptor.  -1 with errno set and the
 * error reported.
 */
extern int fsdisk_pread (int fd, void *buf, uint64_t count, uint64_t offset);
extern int fsdisk_pwrite (int fd, const void *buf, uint64_t count,
                          uint64_t offset);
extern int fsdisk_trim (int fd, uint64_t count, uint64_t offset);
extern int fsdisk_flush (int fd);

/* A connection's disk (the handle of tmpdisk and ondemand), and the
 * data-path callbacks on it that both plugins share.
 */
struct nbdkit_read;
struct fsdisk_handle {
  int fd;
};
extern int64_t fsdisk_get_size_cb (void *handle);
extern int fsdisk_can_trim_cb (void *handle);
extern int fsdisk_pread_cb (void *handle, void *buf, uint64_t count,
                            uint64_t offset, uint32_t flags,
                            struct nbdkit_read *rd);
extern int fsdisk_pwrite_cb (void *handle, const void *buf, uint64_t count,
                             uint64_t offset, uint32_t flags);
extern int fsdisk_trim_cb (void *handle, uint64_t count, uint64_t offset,
                           uint32_t flags);
extern int fsdisk_flush_cb (void *handle, uint32_t flags);

#endif
