/* floppy.c: the floppy plugin, a read-only FAT32 disk made from a
 * directory.
 *
 *   nbdkit floppy [dir=]DIRECTORY [label=LABEL] [size=SIZE]
 *
 * The disk has an MBR with one partition (type 0x0c) at 1M holding a
 * FAT32 filesystem.  At startup the directory tree is scanned, each
 * directory and file gets a contiguous run of clusters (directories
 * first), and the boot sector, FSInfo, the FAT and the directory
 * clusters are built in memory.  Reads of file clusters read the file
 * itself, opened for each request, so the files must not change while
 * served.  Long names are stored as VFAT long name entries next to a
 * generated 8.3 name.  Symlinks and special files are left out.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#define SECTOR 512
#define PART_START 2048 /* sectors: the partition at 1M */
#define SECTORS_PER_CLUSTER 8
#define CLUSTER (SECTOR * SECTORS_PER_CLUSTER)
#define RESERVED 32        /* sectors before the FATs */
#define MIN_CLUSTERS 65536 /* FAT32 needs at least 65525 */
#define MAX_CLUSTERS UINT32_C (0x0ffffff0)
#define MAX_DIR_ENTRIES 65536

struct node {
  char *name; /* in its directory, UTF-8 */
  char *path; /* on the host */
  bool is_dir;
  uint64_t size; /* file bytes, or directory bytes once laid out */
  time_t mtime;
  size_t parent; /* node index; the root is its own parent */
  size_t *children;
  size_t nchildren;
  uint16_t *lfn; /* UTF-16 long name, NULL if the 8.3 name is it */
  size_t lfn_len;
  uint8_t sfn[11];
  uint32_t cluster, nclusters;
  uint8_t *dirbuf; /* directories: the entries */
};

enum kind { R_FILE, R_DATA, R_ZERO };

struct region {
  uint64_t start, len;
  enum kind kind;
  const char *path;    /* R_FILE */
  const uint8_t *data; /* R_DATA */
};

static const char *dir;
static const char *label = "NBDKITFLOPY";
static int64_t size_param = -1;

static struct node *nodes;
static size_t nnodes;
static struct region *regions;
static size_t nregions;
static uint64_t total;
static uint8_t mbr[SECTOR], boot[SECTOR], fsinfo[SECTOR];
static uint8_t *fat;
static uint64_t fat_bytes;

static const struct nbdkit_param floppy_params[]
    = { { .name = "dir",
          .type = NBDKIT_PARAM_DIRECTORY,
          .flags = NBDKIT_PARAM_REQUIRED,
          .dest = &dir,
          .doc = "the directory whose files the filesystem holds" },
        { .name = "label",
          .type = NBDKIT_PARAM_STRING,
          .dest = &label,
          .doc = "volume label, up to 11 ASCII characters (NBDKITFLOPY)" },
        { .name = "size",
          .type = NBDKIT_PARAM_SIZE,
          .dest = &size_param,
          .doc = "disk size (default: just large enough)" },
        { .name = NULL } };

static void
put16 (uint8_t *p, uint16_t v)
{
  p[0] = v;
  p[1] = v >> 8;
}

static void
put32 (uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = v >> (8 * i);
}

static int
add_region (uint64_t start, uint64_t len, enum kind kind, const char *path,
            const uint8_t *data)
{
  if (start > total
      && add_region (total, start - total, R_ZERO, NULL, NULL) == -1)
    return -1;
  if (len == 0)
    return 0;
  struct region *r = realloc (regions, (nregions + 1) * sizeof *r);
  if (r == NULL) {
    nbdkit_error ("realloc: %m");
    return -1;
  }
  regions = r;
  regions[nregions++] = (struct region){
    .start = start, .len = len, .kind = kind, .path = path, .data = data
  };
  total = start + len;
  return 0;
}

static ssize_t
new_node (const char *name, const char *path, size_t parent)
{
  struct node *n = realloc (nodes, (nnodes + 1) * sizeof *n);
  if (n == NULL) {
    nbdkit_error ("realloc: %m");
    return -1;
  }
  nodes = n;
  nodes[nnodes] = (struct node){ .name = strdup (name),
                                 .path = strdup (path),
                                 .parent = parent };
  if (!nodes[nnodes].name || !nodes[nnodes].path) {
    nbdkit_error ("strdup: %m");
    return -1;
  }
  return nnodes++;
}

/* UTF-8 to UTF-16; -1 if not valid UTF-8. */
static ssize_t
to_utf16 (const char *s, uint16_t *out, size_t max)
{
  const unsigned char *p = (const unsigned char *)s;
  size_t n = 0;

  while (*p) {
    uint32_t c;
    int more;
    if (*p < 0x80) {
      c = *p;
      more = 0;
    } else if ((*p & 0xe0) == 0xc0) {
      c = *p & 0x1f;
      more = 1;
    } else if ((*p & 0xf0) == 0xe0) {
      c = *p & 0x0f;
      more = 2;
    } else if ((*p & 0xf8) == 0xf0) {
      c = *p & 0x07;
      more = 3;
    } else
      return -1;
    p++;
    for (int i = 0; i < more; i++, p++) {
      if ((*p & 0xc0) != 0x80)
        return -1;
      c = (c << 6) | (*p & 0x3f);
    }
    if (c >= 0x10000) {
      if (n + 2 > max)
        return -1;
      c -= 0x10000;
      out[n++] = 0xd800 | (c >> 10);
      out[n++] = 0xdc00 | (c & 0x3ff);
    } else {
      if (n + 1 > max)
        return -1;
      out[n++] = c;
    }
  }
  return n;
}

static bool
sfn_char_ok (unsigned char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
         || (c >= 0x80 ? false : strchr ("$%'-_@~`!(){}^#&", c) != NULL && c);
}

/* The 8.3 name for N, unique among the siblings before it; a long
 * name is kept unless the name is a valid upper case 8.3 name.
 */
static int
make_names (size_t idx, const size_t *siblings, size_t nsiblings,
            bool exact_only)
{
  struct node *n = &nodes[idx];
  const char *name = n->name;
  const char *dot = strrchr (name, '.');
  size_t blen = dot && dot != name ? (size_t)(dot - name) : strlen (name);
  const char *ext = dot && dot != name ? dot + 1 : "";
  bool exact = blen >= 1 && blen <= 8 && strlen (ext) <= 3
               && (!dot || dot == name || strlen (ext) > 0);
  char base[9] = "", e[4] = "";
  size_t bl = 0, el = 0;

  for (size_t i = 0; i < blen; i++) {
    unsigned char c = name[i];
    if (!sfn_char_ok (c))
      exact = false;
    if (c == ' ' || c == '.')
      continue;
    if (bl < 8)
      base[bl++] = (c >= 'a' && c <= 'z') ? c - 32 : sfn_char_ok (c) ? c : '_';
  }
  for (size_t i = 0; ext[i]; i++) {
    unsigned char c = ext[i];
    if (!sfn_char_ok (c))
      exact = false;
    if (c == ' ' || c == '.')
      continue;
    if (el < 3)
      e[el++] = (c >= 'a' && c <= 'z') ? c - 32 : sfn_char_ok (c) ? c : '_';
  }
  if (bl == 0)
    base[bl++] = '_';
  /* Exact 8.3 names are given out first, so made-up ones avoid them. */
  if (exact_only != exact || n->sfn[0] != 0)
    return 0;

  for (unsigned tail = exact ? 0 : 1; tail < 1000000; tail++) {
    memset (n->sfn, ' ', 11);
    if (tail == 0)
      memcpy (n->sfn, base, bl);
    else {
      char t[10];
      int tl = snprintf (t, sizeof t, "~%u", tail);
      size_t keep = bl + tl > 8 ? (size_t)(8 - tl) : bl;
      memcpy (n->sfn, base, keep);
      memcpy (n->sfn + keep, t, tl);
    }
    memcpy (n->sfn + 8, e, el);
    bool clash = false;
    for (size_t k = 0; k < nsiblings && !clash; k++)
      clash = siblings[k] != idx
              && memcmp (nodes[siblings[k]].sfn, n->sfn, 11) == 0;
    if (!clash) {
      if (tail == 0)
        return 0;
      break;
    }
  }

  /* A long name entry. */
  uint16_t buf[256];
  ssize_t len = to_utf16 (name, buf, 255);
  if (len < 0) {
    nbdkit_error ("%s: not valid UTF-8, or longer than 255 characters",
                  n->path);
    return -1;
  }
  for (ssize_t i = 0; i < len; i++)
    if (buf[i] < 0x20 || (buf[i] < 0x80 && strchr ("\\/:*?\"<>|", buf[i]))) {
      nbdkit_error ("%s: the name has a character FAT cannot hold", n->path);
      return -1;
    }
  n->lfn = malloc (len * sizeof *n->lfn);
  if (n->lfn == NULL) {
    nbdkit_error ("malloc: %m");
    return -1;
  }
  memcpy (n->lfn, buf, len * sizeof *n->lfn);
  n->lfn_len = len;
  return 0;
}

static int
compare_names (const void *a, const void *b)
{
  return strcmp (nodes[*(const size_t *)a].name,
                 nodes[*(const size_t *)b].name);
}

/* Read directory node IDX and, recursively, its subdirectories. */
static int
scan (size_t idx, int depth)
{
  DIR *d;
  struct dirent *de;

  if (depth > 64) {
    nbdkit_error ("%s: directories nested too deep", nodes[idx].path);
    return -1;
  }
  d = opendir (nodes[idx].path);
  if (d == NULL) {
    nbdkit_error ("opendir %s: %m", nodes[idx].path);
    return -1;
  }
  while ((de = readdir (d)) != NULL) {
    struct stat st;
    char *path;
    if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
      continue;
    if (asprintf (&path, "%s/%s", nodes[idx].path, de->d_name) == -1) {
      nbdkit_error ("asprintf: %m");
      closedir (d);
      return -1;
    }
    if (lstat (path, &st) == -1) {
      nbdkit_error ("lstat %s: %m", path);
      free (path);
      closedir (d);
      return -1;
    }
    if (!S_ISREG (st.st_mode) && !S_ISDIR (st.st_mode)) {
      nbdkit_debug ("floppy: %s: not a file or directory, left out", path);
      free (path);
      continue;
    }
    if (S_ISREG (st.st_mode) && st.st_size > UINT32_MAX) {
      nbdkit_error ("%s: larger than the 4G a FAT file can hold", path);
      free (path);
      closedir (d);
      return -1;
    }
    ssize_t c = new_node (de->d_name, path, idx);
    free (path);
    if (c == -1) {
      closedir (d);
      return -1;
    }
    nodes[c].is_dir = S_ISDIR (st.st_mode);
    nodes[c].size = S_ISREG (st.st_mode) ? st.st_size : 0;
    nodes[c].mtime = st.st_mtime;
    size_t *ch = realloc (nodes[idx].children,
                          (nodes[idx].nchildren + 1) * sizeof *ch);
    if (ch == NULL) {
      nbdkit_error ("realloc: %m");
      closedir (d);
      return -1;
    }
    nodes[idx].children = ch;
    ch[nodes[idx].nchildren++] = c;
  }
  closedir (d);

  /* Sorted, for the same disk every time. */
  qsort (nodes[idx].children, nodes[idx].nchildren, sizeof (size_t),
         compare_names);
  uint64_t entries = idx == 0 ? 1 : 2; /* label, or "." and ".." */
  for (int pass = 0; pass < 2; pass++)
    for (size_t k = 0; k < nodes[idx].nchildren; k++)
      if (make_names (nodes[idx].children[k], nodes[idx].children,
                      nodes[idx].nchildren, pass == 0)
          == -1)
        return -1;
  for (size_t k = 0; k < nodes[idx].nchildren; k++)
    entries += 1 + (nodes[nodes[idx].children[k]].lfn_len + 12) / 13;
  entries++; /* an end marker is not needed, but keep room for one */
  if (entries > MAX_DIR_ENTRIES) {
    nbdkit_error ("%s: too many files for a FAT directory", nodes[idx].path);
    return -1;
  }
  nodes[idx].size = (entries * 32 + CLUSTER - 1) / CLUSTER * CLUSTER;
  for (size_t k = 0; k < nodes[idx].nchildren; k++) {
    size_t c = nodes[idx].children[k];
    if (nodes[c].is_dir && scan (c, depth + 1) == -1)
      return -1;
  }
  return 0;
}

static void
fat_time (time_t t, uint16_t *date, uint16_t *tm)
{
  struct tm r;
  if (localtime_r (&t, &r) == NULL || r.tm_year < 80 || r.tm_year > 207) {
    *date = (0 << 9) | (1 << 5) | 1; /* 1980-01-01 */
    *tm = 0;
    return;
  }
  *date = ((r.tm_year - 80) << 9) | ((r.tm_mon + 1) << 5) | r.tm_mday;
  *tm = (r.tm_hour << 11) | (r.tm_min << 5) | (r.tm_sec / 2);
}

static void
dir_entry (uint8_t *e, const uint8_t name[11], uint8_t attr, uint32_t cluster,
           uint32_t size, time_t mtime)
{
  uint16_t d, t;
  fat_time (mtime, &d, &t);
  memcpy (e, name, 11);
  e[11] = attr;
  put16 (e + 14, t);
  put16 (e + 16, d);
  put16 (e + 18, d);
  put16 (e + 20, cluster >> 16);
  put16 (e + 22, t);
  put16 (e + 24, d);
  put16 (e + 26, cluster & 0xffff);
  put32 (e + 28, size);
}

static uint8_t
sfn_checksum (const uint8_t sfn[11])
{
  uint8_t s = 0;
  for (int i = 0; i < 11; i++)
    s = ((s & 1) << 7) + (s >> 1) + sfn[i];
  return s;
}

static int
build_dir (size_t idx, const uint8_t label11[11])
{
  struct node *n = &nodes[idx];
  uint8_t *e;

  n->dirbuf = calloc (1, n->size);
  if (n->dirbuf == NULL) {
    nbdkit_error ("calloc: %m");
    return -1;
  }
  e = n->dirbuf;
  if (idx == 0) {
    dir_entry (e, label11, 0x08, 0, 0, n->mtime);
    e += 32;
  } else {
    uint8_t dot[11], dotdot[11];
    memset (dot, ' ', 11);
    memset (dotdot, ' ', 11);
    dot[0] = dotdot[0] = dotdot[1] = '.';
    dir_entry (e, dot, 0x10, n->cluster, 0, n->mtime);
    dir_entry (e + 32, dotdot, 0x10,
               n->parent == 0 ? 0 : nodes[n->parent].cluster, 0,
               nodes[n->parent].mtime);
    e += 64;
  }
  for (size_t k = 0; k < n->nchildren; k++) {
    struct node *c = &nodes[n->children[k]];
    if (c->lfn) {
      size_t parts = (c->lfn_len + 12) / 13;
      uint8_t sum = sfn_checksum (c->sfn);
      static const int off[13]
          = { 1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30 };
      for (size_t p = parts; p >= 1; p--) {
        e[0] = p | (p == parts ? 0x40 : 0);
        e[11] = 0x0f;
        e[13] = sum;
        for (size_t j = 0; j < 13; j++) {
          size_t ci = (p - 1) * 13 + j;
          uint16_t ch = ci < c->lfn_len    ? c->lfn[ci]
                        : ci == c->lfn_len ? 0
                                           : 0xffff;
          put16 (e + off[j], ch);
        }
        e += 32;
      }
    }
    dir_entry (e, c->sfn, c->is_dir ? 0x10 : 0x20, c->cluster,
               c->is_dir ? 0 : c->size, c->mtime);
    e += 32;
  }
  return 0;
}

static int
floppy_config_complete (void)
{
  uint8_t label11[11];
  size_t ll = strlen (label);

  if (ll == 0 || ll > 11) {
    nbdkit_error ("label=%s: must be 1 to 11 characters", label);
    return -1;
  }
  memset (label11, ' ', 11);
  for (size_t i = 0; i < ll; i++) {
    unsigned char c = label[i];
    if (c < 0x20 || c >= 0x7f || strchr ("\"*+,./:;<=>?[\\]|", c)) {
      nbdkit_error ("label=%s: only ASCII letters, digits and some "
                    "punctuation may be used",
                    label);
      return -1;
    }
    label11[i] = (c >= 'a' && c <= 'z') ? c - 32 : c;
  }

  struct stat st;
  if (stat (dir, &st) == -1) {
    nbdkit_error ("dir=%s: %m", dir);
    return -1;
  }
  if (new_node ("", dir, 0) == -1)
    return -1;
  nodes[0].is_dir = true;
  nodes[0].mtime = st.st_mtime;
  if (scan (0, 0) == -1)
    return -1;

  /* Clusters: directories, then files, from cluster 2. */
  uint64_t next = 2;
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < nnodes; i++) {
      struct node *n = &nodes[i];
      if (n->is_dir != (pass == 0) || n->size == 0)
        continue;
      n->cluster = next;
      n->nclusters = (n->size + CLUSTER - 1) / CLUSTER;
      next += n->nclusters;
      if (next > MAX_CLUSTERS) {
        nbdkit_error ("dir=%s: the files are too large for FAT32", dir);
        return -1;
      }
    }
  uint64_t used = next - 2, nclusters, fat_sectors;

  if (size_param >= 0) {
    /* Fit the partition in size - 1M: solve for the cluster count. */
    uint64_t avail = size_param / SECTOR;
    if (avail < PART_START + RESERVED) {
      nbdkit_error ("size=%" PRId64 ": too small", size_param);
      return -1;
    }
    avail -= PART_START + RESERVED;
    nclusters = avail / SECTORS_PER_CLUSTER;
    for (int k = 0; k < 4; k++) {
      fat_sectors = ((nclusters + 2) * 4 + SECTOR - 1) / SECTOR;
      nclusters = avail > 2 * fat_sectors
                      ? (avail - 2 * fat_sectors) / SECTORS_PER_CLUSTER
                      : 0;
    }
    if (nclusters > MAX_CLUSTERS)
      nclusters = MAX_CLUSTERS;
    if (nclusters < used || nclusters < MIN_CLUSTERS) {
      nbdkit_error ("size=%" PRId64 ": too small for the files and a FAT32 "
                    "filesystem (needs at least %" PRIu64 " clusters of %d)",
                    size_param, used > MIN_CLUSTERS ? used : MIN_CLUSTERS,
                    CLUSTER);
      return -1;
    }
  } else
    nclusters = used > MIN_CLUSTERS ? used : MIN_CLUSTERS;
  fat_sectors = ((nclusters + 2) * 4 + SECTOR - 1) / SECTOR;
  fat_bytes = fat_sectors * SECTOR;
  uint64_t part_sectors
      = RESERVED + 2 * fat_sectors + nclusters * SECTORS_PER_CLUSTER;

  /* The FAT: each run a chain. */
  fat = calloc (1, fat_bytes);
  if (fat == NULL) {
    nbdkit_error ("calloc: %m");
    return -1;
  }
  put32 (fat, 0x0ffffff8);
  put32 (fat + 4, 0x0fffffff);
  for (size_t i = 0; i < nnodes; i++) {
    struct node *n = &nodes[i];
    for (uint32_t k = 0; k < n->nclusters; k++)
      put32 (fat + 4 * (n->cluster + k),
             k + 1 == n->nclusters ? 0x0fffffff : n->cluster + k + 1);
  }
  for (size_t i = 0; i < nnodes; i++)
    if (nodes[i].is_dir && build_dir (i, label11) == -1)
      return -1;

  /* MBR, one partition. */
  uint8_t *e = mbr + 446;
  e[1] = 0xfe;
  e[2] = 0xff;
  e[3] = 0xff;
  e[4] = 0x0c;
  e[5] = 0xfe;
  e[6] = 0xff;
  e[7] = 0xff;
  put32 (e + 8, PART_START);
  put32 (e + 12, part_sectors);
  put32 (mbr + 0x1b8, 0x4e42444b);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;

  /* Boot sector. */
  memcpy (boot,
          "\xeb\x58\x90"
          "NBDKIT  ",
          11);
  put16 (boot + 11, SECTOR);
  boot[13] = SECTORS_PER_CLUSTER;
  put16 (boot + 14, RESERVED);
  boot[16] = 2;
  boot[21] = 0xf8;
  put16 (boot + 24, 63);
  put16 (boot + 26, 255);
  put32 (boot + 28, PART_START);
  put32 (boot + 32, part_sectors);
  put32 (boot + 36, fat_sectors);
  put32 (boot + 44, 2);
  put16 (boot + 48, 1);
  put16 (boot + 50, 6);
  boot[64] = 0x80;
  boot[66] = 0x29;
  put32 (boot + 67, 0x12345678);
  memcpy (boot + 71, label11, 11);
  memcpy (boot + 82, "FAT32   ", 8);
  boot[510] = 0x55;
  boot[511] = 0xaa;

  put32 (fsinfo, 0x41615252);
  put32 (fsinfo + 484, 0x61417272);
  put32 (fsinfo + 488, nclusters - used);
  put32 (fsinfo + 492, next <= nclusters + 1 ? next : 0xffffffff);
  put32 (fsinfo + 508, 0xaa550000);

  /* The regions, in disk order. */
  uint64_t p = PART_START * SECTOR;
  uint64_t data = p + (RESERVED + 2 * fat_sectors) * (uint64_t)SECTOR;
  if (add_region (0, SECTOR, R_DATA, NULL, mbr) == -1
      || add_region (p, SECTOR, R_DATA, NULL, boot) == -1
      || add_region (p + SECTOR, SECTOR, R_DATA, NULL, fsinfo) == -1
      || add_region (p + 6 * SECTOR, SECTOR, R_DATA, NULL, boot) == -1
      || add_region (p + 7 * SECTOR, SECTOR, R_DATA, NULL, fsinfo) == -1
      || add_region (p + RESERVED * SECTOR, fat_bytes, R_DATA, NULL, fat) == -1
      || add_region (p + RESERVED * SECTOR + fat_bytes, fat_bytes, R_DATA, NULL,
                     fat)
             == -1)
    return -1;
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < nnodes; i++) {
      struct node *n = &nodes[i];
      if (n->is_dir != (pass == 0) || n->nclusters == 0)
        continue;
      if (add_region (data + (uint64_t)(n->cluster - 2) * CLUSTER, n->size,
                      n->is_dir ? R_DATA : R_FILE, n->path, n->dirbuf)
          == -1)
        return -1;
    }
  if (add_region (p + part_sectors * SECTOR, 0, R_ZERO, NULL, NULL) == -1)
    return -1;
  if (size_param >= 0 && (uint64_t)size_param > total
      && add_region (size_param, 0, R_ZERO, NULL, NULL) == -1)
    return -1;
  return 0;
}

static void
floppy_unload (void)
{
  for (size_t i = 0; i < nnodes; i++) {
    free (nodes[i].name);
    free (nodes[i].path);
    free (nodes[i].children);
    free (nodes[i].lfn);
    free (nodes[i].dirbuf);
  }
  free (nodes);
  free (regions);
  free (fat);
}

static int
floppy_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_PARALLEL;
}

static void *
floppy_open (int readonly, const char *exportname, int is_tls)
{
  return &nodes;
}

static int64_t
floppy_get_size (void *handle)
{
  return total;
}

static int
floppy_false (void *handle)
{
  return 0;
}

static int
floppy_true (void *handle)
{
  return 1;
}

static size_t
find (uint64_t offset)
{
  size_t lo = 0, hi = nregions;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (regions[mid].start + regions[mid].len <= offset)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static int
read_file (const char *path, uint8_t *buf, uint64_t n, uint64_t in)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    nbdkit_error ("open %s: %m", path);
    return -1;
  }
  for (uint64_t done = 0; done < n;) {
    ssize_t k = pread (fd, buf + done, n - done, in + done);
    if (k == -1 && errno == EINTR)
      continue;
    if (k <= 0) {
      if (k == 0) {
        /* The file shrank: the rest reads as zeroes. */
        memset (buf + done, 0, n - done);
        break;
      }
      nbdkit_error ("pread %s at %" PRIu64 ": %m", path, in + done);
      close (fd);
      return -1;
    }
    done += k;
  }
  close (fd);
  return 0;
}

static int
floppy_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
              uint32_t flags, struct nbdkit_read *rd)
{
  uint8_t *b = buf;

  for (size_t i = find (offset); count > 0 && i < nregions; i++) {
    struct region *r = &regions[i];
    uint64_t in = offset - r->start;
    uint64_t n = r->len - in < count ? r->len - in : count;
    switch (r->kind) {
      case R_ZERO:
        memset (b, 0, n);
        break;
      case R_DATA:
        memcpy (b, r->data + in, n);
        break;
      case R_FILE:
        if (read_file (r->path, b, n, in) == -1)
          return -1;
        break;
    }
    b += n;
    offset += n;
    count -= n;
  }
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name = "floppy",
  .longname = "nbdkit floppy plugin",
  .version = NBDKIT_VERSION,
  .description = "a read-only FAT32 disk made from a directory",
  .params = floppy_params,
  .magic_config_key = "dir",
  .config_complete = floppy_config_complete,
  .unload = floppy_unload,
  .thread_model = floppy_thread_model,
  .open = floppy_open,
  .get_size = floppy_get_size,
  .can_write = floppy_false,
  .can_multi_conn = floppy_true,
  .pread = floppy_pread,
  .pread_fills_buffer = 1,
};

NBDKIT_REGISTER_PLUGIN (plugin)
