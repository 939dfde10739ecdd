/* sparse.c: the memory plugin's sparse array, a radix tree of pages.
 *
 * A page number is split into NODE_SHIFT-bit digits, most significant
 * first; each digit picks a slot in one node of the tree.  The tree is
 * as tall as the array's size needs (a 1G disk has 2 levels, a 2^63
 * one 5), and holds only the nodes on the way to allocated pages: a
 * node whose last child goes is freed too.  Nodes are 8 KiB, pages
 * 32 KiB.
 *
 * Pages are reference counted so that readers may keep one after the
 * caller's lock is gone (a loan being sent to a client): the tree holds
 * one reference, each holder one more.  A writer never changes a page
 * someone holds; it copies it, puts the copy in the tree and drops the
 * tree's reference to the old one, which the last holder frees.  So a
 * writer never waits for a holder, and held bytes never change.
 */

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "sparse.h"

#define PAGE_SIZE SPARSE_PAGE_SIZE
#define PAGE_SHIFT SPARSE_PAGE_SHIFT
#define NODE_SHIFT 10
#define FANOUT (1u << NODE_SHIFT)
/* Enough levels for any 64-bit offset. */
#define MAX_HEIGHT ((64 - PAGE_SHIFT + NODE_SHIFT - 1) / NODE_SHIFT)

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

struct sparse_page {
  /* 1 for the tree while the page is in it, plus one per holder.  Only
   * changed by holders while the tree is stable (under the caller's
   * shared lock) or released at any time, so a writer (the caller's
   * exclusive lock) that sees 1 knows nobody else can see the page.
   */
  atomic_ulong refs;
  uint8_t data[PAGE_SIZE];
};

struct node {
  unsigned used;      /* non-NULL slots */
  void *slot[FANOUT]; /* nodes one level down, or pages at level 0 */
};

struct sparse {
  uint64_t size;
  unsigned height;   /* levels of nodes, >= 1; the root is level
                      * height-1, nodes holding pages level 0 */
  struct node *root; /* NULL while nothing is allocated */
  uint64_t pages;    /* allocated pages */
};

static inline unsigned
slot_index (uint64_t page, unsigned level)
{
  return (page >> (level * NODE_SHIFT)) & (FANOUT - 1);
}

/* Whether LEN bytes at P are all zero: a test of the first byte, then
 * memcmp of the buffer against itself shifted by one, which libc does
 * a word or a vector at a time.
 */
static bool
is_zero (const uint8_t *p, uint64_t len)
{
  return len == 0 || (p[0] == 0 && memcmp (p, p + 1, len - 1) == 0);
}

struct sparse *
sparse_new (uint64_t size)
{
  struct sparse *sa;
  uint64_t npages, bits;

  if (size > SPARSE_MAX_SIZE) {
    errno = EFBIG;
    return NULL;
  }
  sa = calloc (1, sizeof *sa);
  if (sa == NULL)
    return NULL;
  sa->size = size;
  npages = (size + PAGE_SIZE - 1) >> PAGE_SHIFT;
  bits = npages <= 1 ? 0 : 64 - __builtin_clzll (npages - 1);
  sa->height = bits == 0 ? 1 : (bits + NODE_SHIFT - 1) / NODE_SHIFT;
  return sa;
}

void
sparse_page_hold (struct sparse_page *pg)
{
  atomic_fetch_add_explicit (&pg->refs, 1, memory_order_relaxed);
}

void
sparse_page_release (struct sparse_page *pg)
{
  /* Release: a holder's reads of the page happen before the free or
   * before a writer that sees the count drop reuses the page.
   */
  if (atomic_fetch_sub_explicit (&pg->refs, 1, memory_order_acq_rel) == 1)
    free (pg);
}

static bool
page_is_held (struct sparse_page *pg)
{
  return atomic_load_explicit (&pg->refs, memory_order_acquire) > 1;
}

static struct sparse_page *
page_new (void)
{
  struct sparse_page *pg = calloc (1, sizeof *pg);

  if (pg)
    atomic_init (&pg->refs, 1);
  return pg;
}

static void
free_node (struct node *n, unsigned level)
{
  unsigned i;

  for (i = 0; i < FANOUT; i++) {
    if (n->slot[i] == NULL)
      continue;
    if (level == 0)
      sparse_page_release (n->slot[i]);
    else
      free_node (n->slot[i], level - 1);
  }
  free (n);
}

void
sparse_free (struct sparse *sa)
{
  if (sa == NULL)
    return;
  if (sa->root)
    free_node (sa->root, sa->height - 1);
  free (sa);
}

uint64_t
sparse_pages (const struct sparse *sa)
{
  return sa->pages;
}

/* The slot of page PAGE, or NULL if its leaf node is not allocated. */
static struct sparse_page **
lookup_slot (const struct sparse *sa, uint64_t page)
{
  struct node *n = sa->root;
  unsigned level = sa->height - 1;

  while (n) {
    void **p = &n->slot[slot_index (page, level)];
    if (level == 0)
      return (struct sparse_page **)p;
    n = *p;
    level--;
  }
  return NULL;
}

/* The page PAGE, or NULL if it is not allocated. */
static struct sparse_page *
lookup (const struct sparse *sa, uint64_t page)
{
  struct sparse_page **slot = lookup_slot (sa, page);
  return slot ? *slot : NULL;
}

/* Page PAGE (allocated), ready to be changed: a copy replaces it in the
 * tree if anyone holds it.  NULL with errno ENOMEM if the copy cannot
 * be made.
 */
static struct sparse_page *
writable (struct sparse *sa, uint64_t page)
{
  struct sparse_page **slot = lookup_slot (sa, page);
  struct sparse_page *old = *slot, *pg;

  if (!page_is_held (old))
    return old;
  pg = malloc (sizeof *pg);
  if (pg == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  atomic_init (&pg->refs, 1);
  memcpy (pg->data, old->data, PAGE_SIZE);
  *slot = pg;
  sparse_page_release (old);
  return pg;
}

/* Free page PAGE if allocated, then every node on its path left
 * without children.  Also used to undo a half-built path.
 */
static void
page_free (struct sparse *sa, uint64_t page)
{
  struct node *path[MAX_HEIGHT]; /* path[i] is at level height-1-i */
  unsigned depth = 0;
  struct node *n = sa->root;

  while (n) {
    path[depth++] = n;
    if (depth == sa->height)
      break;
    n = n->slot[slot_index (page, sa->height - depth)];
  }

  if (depth == sa->height) {
    void **slot = &path[depth - 1]->slot[slot_index (page, 0)];
    if (*slot) {
      sparse_page_release (*slot);
      *slot = NULL;
      path[depth - 1]->used--;
      sa->pages--;
    }
  }

  while (depth > 0 && path[depth - 1]->used == 0) {
    free (path[depth - 1]);
    depth--;
    if (depth == 0)
      sa->root = NULL;
    else {
      path[depth - 1]->slot[slot_index (page, sa->height - depth)] = NULL;
      path[depth - 1]->used--;
    }
  }
}

/* The page PAGE, allocated (zeroed) with its path if needed; NULL with
 * errno ENOMEM on failure.
 */
static struct sparse_page *
page_alloc (struct sparse *sa, uint64_t page)
{
  struct node *n;
  unsigned level = sa->height - 1;

  if (sa->root == NULL) {
    sa->root = calloc (1, sizeof (struct node));
    if (sa->root == NULL)
      return NULL;
  }
  n = sa->root;
  for (;;) {
    void **slot = &n->slot[slot_index (page, level)];
    if (*slot == NULL) {
      *slot
          = level == 0 ? (void *)page_new () : calloc (1, sizeof (struct node));
      if (*slot == NULL) {
        page_free (sa, page);
        errno = ENOMEM;
        return NULL;
      }
      n->used++;
      if (level == 0)
        sa->pages++;
    }
    if (level == 0)
      return *slot;
    n = *slot;
    level--;
  }
}

/* The first allocated page in [FROM, LIMIT) of the subtree N at LEVEL,
 * whose first page is BASE (FROM >= BASE).  Empty subtrees are skipped
 * whole, so this costs at most a node scan per level.
 */
static struct sparse_page *
find_in (const struct node *n, unsigned level, uint64_t base, uint64_t from,
         uint64_t limit, uint64_t *found)
{
  unsigned shift = level * NODE_SHIFT;
  unsigned s;

  for (s = (from - base) >> shift; s < FANOUT; s++) {
    uint64_t child_base = base + ((uint64_t)s << shift);
    void *c = n->slot[s];

    if (child_base >= limit)
      break;
    if (c == NULL)
      continue;
    if (level == 0) {
      *found = child_base;
      return c;
    }
    c = find_in (c, level - 1, child_base, MAX (from, child_base), limit,
                 found);
    if (c)
      return c;
  }
  return NULL;
}

/* The first allocated page in [FROM, LIMIT), or NULL. */
static struct sparse_page *
find_next (const struct sparse *sa, uint64_t from, uint64_t limit,
           uint64_t *found)
{
  if (sa->root == NULL || from >= limit)
    return NULL;
  return find_in (sa->root, sa->height - 1, 0, from, limit, found);
}

int
sparse_read (const struct sparse *sa, uint64_t count, uint64_t offset,
             sparse_read_fn fn, void *opaque)
{
  const uint64_t end = offset + count;

  while (offset < end) {
    const uint64_t page = offset >> PAGE_SHIFT;
    const uint64_t in = offset & (PAGE_SIZE - 1);
    const uint64_t last = (end - 1) >> PAGE_SHIFT;
    struct sparse_page *p = lookup (sa, page);
    uint64_t len, next;
    int r;

    if (p) {
      len = MIN (PAGE_SIZE - in, end - offset);
      r = fn (opaque, offset, len, p->data + in, p);
    } else {
      /* A run of zeroes up to the next allocated page. */
      if (find_next (sa, page + 1, last + 1, &next))
        len = (next << PAGE_SHIFT) - offset;
      else
        len = end - offset;
      r = fn (opaque, offset, len, NULL, NULL);
    }
    if (r)
      return r;
    offset += len;
  }
  return 0;
}

int
sparse_write (struct sparse *sa, const void *buf, uint64_t count,
              uint64_t offset)
{
  const uint8_t *src = buf;
  const uint64_t end = offset + count;

  while (offset < end) {
    const uint64_t page = offset >> PAGE_SHIFT;
    const uint64_t in = offset & (PAGE_SIZE - 1);
    const uint64_t len = MIN (PAGE_SIZE - in, end - offset);
    struct sparse_page *p = lookup (sa, page);
    const bool zero = is_zero (src, len);

    if (p == NULL && !zero) {
      p = page_alloc (sa, page);
      if (p == NULL)
        return -1;
    } else if (p && (p = writable (sa, page)) == NULL)
      return -1;
    if (p) {
      memcpy (p->data + in, src, len);
      if (zero && is_zero (p->data, PAGE_SIZE))
        page_free (sa, page);
    }
    src += len;
    offset += len;
  }
  return 0;
}

int
sparse_zero (struct sparse *sa, uint64_t count, uint64_t offset)
{
  const uint64_t end = offset + count;

  if (count == 0)
    return 0;
  /* Visit only the allocated pages the range touches. */
  while (offset < end) {
    const uint64_t last = (end - 1) >> PAGE_SHIFT;
    uint64_t page, start, from, to;
    struct sparse_page *p
        = find_next (sa, offset >> PAGE_SHIFT, last + 1, &page);

    if (p == NULL)
      break;
    start = page << PAGE_SHIFT;
    from = MAX (offset, start);
    to = MIN (end, start + PAGE_SIZE);
    if (from == start && to == start + PAGE_SIZE)
      page_free (sa, page);
    else {
      if ((p = writable (sa, page)) == NULL)
        return -1;
      memset (p->data + (from - start), 0, to - from);
      if (is_zero (p->data, PAGE_SIZE))
        page_free (sa, page);
    }
    offset = start + PAGE_SIZE;
  }
  return 0;
}

int
sparse_extents (const struct sparse *sa, uint64_t count, uint64_t offset,
                sparse_extent_fn fn, void *opaque)
{
  const uint64_t end = offset + count;

  while (offset < end) {
    const uint64_t page = offset >> PAGE_SHIFT;
    const uint64_t last = (end - 1) >> PAGE_SHIFT;
    uint64_t run_end, next;
    bool allocated = lookup (sa, page) != NULL;
    int r;

    if (allocated) {
      next = page + 1;
      while (next <= last && lookup (sa, next))
        next++;
      run_end = MIN (end, next << PAGE_SHIFT);
    } else if (find_next (sa, page + 1, last + 1, &next))
      run_end = next << PAGE_SHIFT;
    else
      run_end = end;

    r = fn (opaque, offset, run_end - offset, allocated);
    if (r)
      return r;
    offset = run_end;
  }
  return 0;
}
