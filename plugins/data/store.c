/* store.c: a sparse byte store as a sorted array of allocated runs.
 *
 * Writes inside one run are a memcpy; appending right after a run
 * grows it (doubling its buffer), which is how the data language
 * builds long byte lists; anything else punches the range out and
 * inserts a new run, merged with neighbours it touches.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

size_t
store_find (const struct store *s, uint64_t off)
{
  size_t lo = 0, hi = s->n;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->runs[mid].off + s->runs[mid].len <= off)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static int
reserve (struct run *r, uint64_t len)
{
  if (len <= r->cap)
    return 0;
  uint64_t c = r->cap ? r->cap : 64;
  while (c < len)
    c *= 2;
  uint8_t *d = realloc (r->data, c);
  if (d == NULL)
    return -1;
  r->data = d;
  r->cap = c;
  return 0;
}

static int
insert_at (struct store *s, size_t i, struct run r)
{
  if (s->n == s->cap) {
    size_t c = s->cap ? s->cap * 2 : 16;
    struct run *nr = realloc (s->runs, c * sizeof *nr);
    if (nr == NULL)
      return -1;
    s->runs = nr;
    s->cap = c;
  }
  memmove (&s->runs[i + 1], &s->runs[i], (s->n - i) * sizeof r);
  s->runs[i] = r;
  s->n++;
  return 0;
}

static void
remove_at (struct store *s, size_t i)
{
  free (s->runs[i].data);
  memmove (&s->runs[i], &s->runs[i + 1], (s->n - i - 1) * sizeof s->runs[0]);
  s->n--;
}

int
store_zero (struct store *s, uint64_t off, uint64_t len)
{
  const uint64_t end = off + len;
  size_t i = store_find (s, off);

  if (len == 0)
    return 0;
  while (i < s->n && s->runs[i].off < end) {
    struct run *r = &s->runs[i];
    uint64_t rend = r->off + r->len;
    if (r->off < off && rend > end) {
      /* The hole is inside the run: split off the tail. */
      struct run tail = { .off = end, .len = rend - end };
      if (reserve (&tail, tail.len) == -1)
        return -1;
      memcpy (tail.data, r->data + (end - r->off), tail.len);
      r->len = off - r->off;
      return insert_at (s, i + 1, tail) == -1 ? (free (tail.data), -1) : 0;
    }
    if (r->off < off) {
      r->len = off - r->off;
      i++;
    } else if (rend > end) {
      memmove (r->data, r->data + (end - r->off), rend - end);
      r->len = rend - end;
      r->off = end;
      i++;
    } else
      remove_at (s, i);
  }
  return 0;
}

int
store_write (struct store *s, uint64_t off, const void *p, uint64_t len)
{
  size_t i;
  struct run *r;

  if (len == 0)
    return 0;
  i = store_find (s, off);
  /* Inside one run. */
  if (i < s->n && s->runs[i].off <= off
      && off + len <= s->runs[i].off + s->runs[i].len) {
    memcpy (s->runs[i].data + (off - s->runs[i].off), p, len);
    return 0;
  }
  if (store_zero (s, off, len) == -1)
    return -1;
  i = store_find (s, off);
  /* Right after the previous run: grow it. */
  if (i > 0 && s->runs[i - 1].off + s->runs[i - 1].len == off) {
    r = &s->runs[i - 1];
    if (reserve (r, r->len + len) == -1)
      return -1;
    memcpy (r->data + r->len, p, len);
    r->len += len;
  } else {
    struct run nr = { .off = off };
    if (reserve (&nr, len) == -1)
      return -1;
    memcpy (nr.data, p, len);
    nr.len = len;
    if (insert_at (s, i, nr) == -1) {
      free (nr.data);
      return -1;
    }
    r = &s->runs[i];
    i++;
  }
  /* Touching the next run: take it in. */
  if (i < s->n && s->runs[i].off == r->off + r->len) {
    struct run *next = &s->runs[i];
    if (reserve (r, r->len + next->len) == -1)
      return 0; /* still correct, only not merged */
    memcpy (r->data + r->len, next->data, next->len);
    r->len += next->len;
    remove_at (s, i);
  }
  return 0;
}

int
store_paste (struct store *dst, uint64_t at, const struct store *src,
             uint64_t from, uint64_t to)
{
  for (size_t i = store_find (src, from); i < src->n; i++) {
    const struct run *r = &src->runs[i];
    uint64_t a = r->off > from ? r->off : from;
    uint64_t b = r->off + r->len < to ? r->off + r->len : to;
    if (a >= to)
      break;
    if (a < b
        && store_write (dst, at + (a - from), r->data + (a - r->off), b - a)
               == -1)
      return -1;
  }
  return 0;
}

void
store_read (const struct store *s, uint64_t off, uint64_t len, void *buf)
{
  uint8_t *p = buf;
  const uint64_t end = off + len;

  memset (buf, 0, len);
  for (size_t i = store_find (s, off); i < s->n; i++) {
    const struct run *r = &s->runs[i];
    uint64_t a = r->off > off ? r->off : off;
    uint64_t b = r->off + r->len < end ? r->off + r->len : end;
    if (a >= end)
      break;
    memcpy (p + (a - off), r->data + (a - r->off), b - a);
  }
}

uint64_t
store_allocated (const struct store *s)
{
  uint64_t t = 0;
  for (size_t i = 0; i < s->n; i++)
    t += s->runs[i].len;
  return t;
}

void
store_free (struct store *s)
{
  for (size_t i = 0; i < s->n; i++)
    free (s->runs[i].data);
  free (s->runs);
  s->runs = NULL;
  s->n = s->cap = 0;
}
