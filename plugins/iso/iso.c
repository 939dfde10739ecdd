/* iso.c: the iso plugin, a read-only ISO 9660 image of directories.
 *
 *   nbdkit iso [dir=]DIRECTORY [[dir=]DIRECTORY ...]
 *              [prog=xorriso|genisoimage|mkisofs] [params='-JrT ...']
 *
 * At startup the image is written to a temporary file (in $TMPDIR, or
 * /var/tmp) by running PROG through the shell: xorriso in its mkisofs
 * emulation (-as mkisofs), others as they are, with PARAMS added
 * unquoted, "-o FILE" and the directories (merged into one tree).  The
 * file is unlinked at once and served from its descriptor.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#define DEFAULT_PROG "xorriso"

static const char *prog = DEFAULT_PROG;
static const char *params = "";
static char **dirs;
static size_t ndirs;
static int fd = -1;
static uint64_t size;

static const struct nbdkit_param iso_params[]
    = { { .name = "dir",
          .type = NBDKIT_PARAM_DIRECTORY,
          .flags = NBDKIT_PARAM_REQUIRED | NBDKIT_PARAM_MULTIPLE,
          .doc = "a directory to put in the image (several are merged)" },
        { .name = "prog",
          .type = NBDKIT_PARAM_STRING,
          .dest = &prog,
          .doc = "the program making the image (default " DEFAULT_PROG ")" },
        { .name = "params",
          .type = NBDKIT_PARAM_STRING,
          .dest = &params,
          .doc = "more options for the program, as shell words" },
        { .name = NULL } };

static int
iso_config (const char *key, const char *value)
{
  if (strcmp (key, "dir") == 0) {
    char **d = realloc (dirs, (ndirs + 1) * sizeof *d);
    if (d == NULL) {
      nbdkit_error ("realloc: %m");
      return -1;
    }
    dirs = d;
    if ((dirs[ndirs] = strdup (value)) == NULL) {
      nbdkit_error ("strdup: %m");
      return -1;
    }
    ndirs++;
  }
  return 0;
}

/* Append S to the command in single quotes. */
static void
quote (FILE *f, const char *s)
{
  fputc ('\'', f);
  for (; *s; s++) {
    if (*s == '\'')
      fputs ("'\\''", f);
    else
      fputc (*s, f);
  }
  fputs ("' ", f);
}

static int
iso_config_complete (void)
{
  const char *tmpdir = getenv ("TMPDIR");
  char *tmpl = NULL, *cmd = NULL;
  size_t cmdlen = 0;
  FILE *f;
  struct stat st;
  int r;
  const char *base = strrchr (prog, '/') ? strrchr (prog, '/') + 1 : prog;

  if (tmpdir == NULL || *tmpdir == 0)
    tmpdir = "/var/tmp";
  if (asprintf (&tmpl, "%s/nbdkitisoXXXXXX", tmpdir) == -1) {
    nbdkit_error ("asprintf: %m");
    return -1;
  }
  fd = mkstemp (tmpl);
  if (fd == -1) {
    nbdkit_error ("mkstemp %s: %m", tmpl);
    free (tmpl);
    return -1;
  }

  f = open_memstream (&cmd, &cmdlen);
  if (f == NULL) {
    nbdkit_error ("open_memstream: %m");
    goto err;
  }
  quote (f, prog);
  if (strcmp (base, "xorriso") == 0)
    fputs ("-as mkisofs ", f);
  fputs ("-quiet ", f);
  fprintf (f, "%s ", params);
  fputs ("-o ", f);
  quote (f, tmpl);
  for (size_t i = 0; i < ndirs; i++)
    quote (f, dirs[i]);
  fputs (">&2", f);
  if (fclose (f) == EOF) {
    nbdkit_error ("open_memstream: %m");
    goto err;
  }
  nbdkit_debug ("iso: %s", cmd);
  r = system (cmd);
  if (r == -1) {
    nbdkit_error ("iso: running %s: %m", prog);
    goto err;
  }
  if (!WIFEXITED (r) || WEXITSTATUS (r) != 0) {
    nbdkit_error ("iso: %s failed (%s %d); the command was: %s", prog,
                  WIFEXITED (r) ? "exit status" : "signal",
                  WIFEXITED (r) ? WEXITSTATUS (r) : WTERMSIG (r), cmd);
    goto err;
  }
  if (fstat (fd, &st) == -1) {
    nbdkit_error ("fstat %s: %m", tmpl);
    goto err;
  }
  if (st.st_size == 0) {
    nbdkit_error ("iso: %s wrote nothing to %s", prog, tmpl);
    goto err;
  }
  size = st.st_size;
  unlink (tmpl);
  free (tmpl);
  free (cmd);
  return 0;

err:
  unlink (tmpl);
  free (tmpl);
  free (cmd);
  close (fd);
  fd = -1;
  return -1;
}

static void
iso_dump_plugin (void)
{
  printf ("iso_prog=%s\n", DEFAULT_PROG);
}

static void
iso_unload (void)
{
  for (size_t i = 0; i < ndirs; i++)
    free (dirs[i]);
  free (dirs);
  if (fd >= 0)
    close (fd);
}

static int
iso_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_PARALLEL;
}

static void *
iso_open (int readonly, const char *exportname, int is_tls)
{
  return &fd;
}

static int64_t
iso_get_size (void *handle)
{
  return size;
}

static int
iso_false (void *handle)
{
  return 0;
}

static int
iso_true (void *handle)
{
  return 1;
}

static int
iso_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
           uint32_t flags, struct nbdkit_read *rd)
{
  char *p = buf;

  while (count > 0) {
    ssize_t r = pread (fd, p, count, offset);
    if (r == -1 && errno == EINTR)
      continue;
    if (r <= 0) {
      if (r == 0)
        errno = EIO;
      nbdkit_error ("pread the image at %" PRIu64 ": %m", offset);
      return -1;
    }
    p += r;
    offset += r;
    count -= r;
  }
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name = "iso",
  .longname = "nbdkit iso plugin",
  .version = NBDKIT_VERSION,
  .description = "a read-only ISO 9660 image of directories",
  .params = iso_params,
  .magic_config_key = "dir",
  .config = iso_config,
  .config_complete = iso_config_complete,
  .dump_plugin = iso_dump_plugin,
  .unload = iso_unload,
  .thread_model = iso_thread_model,
  .open = iso_open,
  .get_size = iso_get_size,
  .can_write = iso_false,
  .can_multi_conn = iso_true,
  .pread = iso_pread,
};

NBDKIT_REGISTER_PLUGIN (plugin)
