/* random.c: reproducible random data (see random.h). */

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include "random.h"

uint64_t
random_word (uint64_t seed, uint64_t k)
{
  uint64_t z = seed + (k + 1) * UINT64_C (0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * UINT64_C (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static uint8_t
byte_at (uint64_t seed, uint64_t base, uint64_t off)
{
  return random_word (seed, base + off / 8) >> (8 * (off % 8));
}

void
random_bytes (uint64_t seed, uint64_t base, uint8_t *p, uint64_t count,
              uint64_t offset)
{
  while (count > 0 && offset % 8) {
    *p++ = byte_at (seed, base, offset++);
    count--;
  }
  /* Whole words: one hash for eight bytes. */
  for (; count >= 8; count -= 8, offset += 8, p += 8) {
    uint64_t w = random_word (seed, base + offset / 8);
    for (int i = 0; i < 8; i++)
      p[i] = w >> (8 * i);
  }
  while (count > 0) {
    *p++ = byte_at (seed, base, offset++);
    count--;
  }
}

int
random_check_write (const void *buf, uint64_t count, uint64_t offset,
                    void (*fill) (uint8_t *p, uint64_t count, uint64_t offset),
                    const char *what)
{
  const uint8_t *p = buf;
  uint8_t want[65536];

  for (uint64_t done = 0; done < count;) {
    uint64_t n = count - done < sizeof want ? count - done : sizeof want;
    fill (want, n, offset + done);
    if (memcmp (want, p + done, n) != 0) {
      for (uint64_t i = 0; i < n; i++)
        if (want[i] != p[done + i]) {
          nbdkit_error ("write at offset %" PRIu64 ": byte 0x%02x differs "
                        "from %s 0x%02x",
                        offset + done + i, p[done + i], what, want[i]);
          break;
        }
      nbdkit_set_error (EIO);
      return -1;
    }
    done += n;
  }
  return 0;
}
