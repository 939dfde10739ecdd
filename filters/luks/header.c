/* header.c: reads a LUKS1 or LUKS2 header and unlocks it: for each
 * key slot, the passphrase gives (PBKDF2 or Argon2) the key of the
 * slot's area, which decrypts to the anti-forensic stripes, which
 * merge into a candidate master key, accepted when its digest matches
 * the header's.
 *
 * LUKS1 (big-endian, 592 bytes): magic "LUKS\xba\xbe", version 1,
 * cipher name, mode and hash, payload offset (sectors), key bytes, the
 * master key digest (PBKDF2-SHA of the key, 20 bytes) with its salt
 * and iterations, the UUID, then 8 key slots of 48 bytes.
 *
 * LUKS2: a 4096-byte binary header (magic, version 2, header size,
 * sequence id, checksum algorithm and checksum) followed by a JSON
 * area describing keyslots, segments, digests and config; a second
 * copy follows the first.  The valid copy with the highest sequence
 * id is used.
 *
 * Unlocking is slow by design (seconds), so unlocked volumes are
 * remembered by the hash of their header: the next connection to the
 * same disk opens at once.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <json-c/json.h>

#include "luks.h"

#define LUKS_MAGIC "LUKS\xba\xbe"
#define LUKS1_HDR 592
#define LUKS1_SLOTS 8
#define LUKS1_ACTIVE 0x00AC71F3
#define LUKS2_BIN 4096
#define MAX_ARGON2_KIB (4 << 20) /* cryptsetup's limit: 4 GiB */

static uint32_t
be32 (const unsigned char *p)
{
  return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

static uint64_t
be64 (const unsigned char *p)
{
  return (uint64_t)be32 (p) << 32 | be32 (p + 4);
}

/* A NUL-terminated copy of a fixed-size header field. */
static void
field (char *dst, const unsigned char *src, size_t n)
{
  memcpy (dst, src, n);
  dst[n] = '\0';
}

static int
read_disk (nbdkit_next *next, uint64_t disk, void *buf, uint64_t len,
           uint64_t off, const char *what)
{
  int err;

  if (off > disk || len > disk - off) {
    nbdkit_error ("%s at offset %" PRIu64 " (%" PRIu64 " bytes) is "
                  "beyond the end of the disk (%" PRIu64 " bytes)",
                  what, off, len, disk);
    return -1;
  }
  if (nbdkit_next_pread (next, buf, len, off, 0, NULL, &err) == -1) {
    nbdkit_error ("reading %s at offset %" PRIu64 ": %s", what, off,
                  strerror (err));
    return -1;
  }
  return 0;
}

/* ---- the cache of unlocked volumes ---- */

#define CACHE_SIZE 8

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  unsigned char id[32];
  struct luks_volume v;
} cache[CACHE_SIZE];
static size_t cache_used, cache_next;

static void
cache_id (const void *hdr, size_t len, uint64_t disk, unsigned char *id)
{
  gnutls_hash_hd_t h;
  unsigned char d[8];

  for (int i = 0; i < 8; i++)
    d[i] = disk >> (8 * i);
  gnutls_hash_init (&h, GNUTLS_DIG_SHA256);
  gnutls_hash (h, d, sizeof d);
  gnutls_hash (h, hdr, len);
  gnutls_hash_deinit (h, id);
}

static bool
cache_find (const unsigned char *id, struct luks_volume *v)
{
  bool found = false;

  pthread_mutex_lock (&cache_lock);
  for (size_t i = 0; i < cache_used && !found; i++)
    if (memcmp (cache[i].id, id, 32) == 0) {
      *v = cache[i].v;
      found = true;
    }
  pthread_mutex_unlock (&cache_lock);
  return found;
}

static void
cache_add (const unsigned char *id, const struct luks_volume *v)
{
  pthread_mutex_lock (&cache_lock);
  memcpy (cache[cache_next].id, id, 32);
  cache[cache_next].v = *v;
  cache_next = (cache_next + 1) % CACHE_SIZE;
  if (cache_used < CACHE_SIZE)
    cache_used++;
  pthread_mutex_unlock (&cache_lock);
}

/* ---- key slots ---- */

/* Decrypts the STRIPES * KEY_LEN bytes of a slot's area at AREA with
 * the slot key SKEY (cipher CIPHER-MODE) and merges them into MK.
 */
static int
open_area (nbdkit_next *next, uint64_t disk, const char *what,
           const char *cipher, const char *mode, const unsigned char *skey,
           size_t skey_len, uint64_t area, unsigned stripes,
           gnutls_digest_algorithm_t af_hash, size_t key_len, unsigned char *mk)
{
  struct luks_cipher c;
  size_t len = key_len * stripes, alen = (len + 511) / 512 * 512;
  unsigned char *buf;
  int r = -1, e;

  if (stripes == 0 || len / stripes != key_len || len > 64 << 20) {
    nbdkit_error ("%s: invalid number of stripes %u", what, stripes);
    return -1;
  }
  if (luks_cipher_init (&c, what, cipher, mode, skey, skey_len) == -1)
    return -1;
  buf = malloc (alen);
  if (buf == NULL) {
    nbdkit_error ("%s: malloc: %m", what);
    goto out;
  }
  if (read_disk (next, disk, buf, alen, area, what) == -1)
    goto out;
  if ((e = luks_cipher_run (&c, false, buf, alen, 0, 512)) != 0) {
    nbdkit_error ("%s: decrypting the key material: %s", what, strerror (e));
    goto out;
  }
  if (luks_af_merge (af_hash, buf, key_len, stripes, mk) == -1) {
    nbdkit_error ("%s: anti-forensic merge failed", what);
    goto out;
  }
  r = 0;
out:
  if (buf) {
    gnutls_memset (buf, 0, alen);
    free (buf);
  }
  luks_cipher_wipe (&c);
  return r;
}

/* "0, 1, 3" */
static void
tried_add (char *tried, size_t size, const char *slot)
{
  size_t n = strlen (tried);
  snprintf (tried + n, size - n, "%s%s", n ? ", " : "", slot);
}

/* ---- LUKS1 ---- */

static int
unlock_luks1 (nbdkit_next *next, uint64_t disk, const unsigned char *h,
              const unsigned char *pass, size_t pass_len, struct luks_volume *v)
{
  char cipher[33], mode[33], hashname[33], what[32], tried[64] = "";
  uint32_t key_bytes = be32 (h + 108), digest_iter = be32 (h + 164);
  uint64_t payload = (uint64_t)be32 (h + 104) * 512;
  gnutls_digest_algorithm_t hash;
  unsigned char skey[LUKS_MAX_KEY], mk[LUKS_MAX_KEY], digest[20];
  int found = -1;

  field (cipher, h + 8, 32);
  field (mode, h + 40, 32);
  field (hashname, h + 72, 32);
  hash = luks_hash (hashname);
  if (hash == GNUTLS_DIG_UNKNOWN) {
    nbdkit_error ("LUKS1 hash %s is not supported", hashname);
    return -1;
  }
  if (key_bytes == 0 || key_bytes > LUKS_MAX_KEY) {
    nbdkit_error ("LUKS1 key size %" PRIu32 " bytes is not supported",
                  key_bytes);
    return -1;
  }
  if (payload < LUKS1_HDR || payload > disk) {
    nbdkit_error ("LUKS1 payload offset %" PRIu64 " is outside the disk "
                  "(%" PRIu64 " bytes)",
                  payload, disk);
    return -1;
  }

  for (int i = 0; i < LUKS1_SLOTS && found == -1; i++) {
    const unsigned char *ks = h + 208 + 48 * i;

    if (be32 (ks) != LUKS1_ACTIVE)
      continue;
    snprintf (what, sizeof what, "key slot %d", i);
    tried_add (tried, sizeof tried, what + 9);
    if (luks_pbkdf2 (hash, pass, pass_len, ks + 8, 32, be32 (ks + 4), skey,
                     key_bytes)
            == -1
        || open_area (next, disk, what, cipher, mode, skey, key_bytes,
                      (uint64_t)be32 (ks + 40) * 512, be32 (ks + 44), hash,
                      key_bytes, mk)
               == -1
        || luks_pbkdf2 (hash, mk, key_bytes, h + 132, 32, digest_iter, digest,
                        sizeof digest)
               == -1) {
      gnutls_memset (skey, 0, sizeof skey);
      return -1;
    }
    if (memcmp (digest, h + 112, sizeof digest) == 0)
      found = i;
    else
      nbdkit_debug ("the passphrase does not open LUKS1 key slot %d", i);
  }
  gnutls_memset (skey, 0, sizeof skey);
  if (found == -1) {
    if (tried[0] == '\0')
      nbdkit_error ("the LUKS1 header has no active key slot");
    else
      nbdkit_error ("the passphrase opens none of the LUKS1 key slots "
                    "(tried %s)",
                    tried);
    gnutls_memset (mk, 0, sizeof mk);
    errno = EACCES;
    return -1;
  }
  nbdkit_debug ("LUKS1 key slot %d opened: %s-%s, %" PRIu32
                "-bit key, payload at %" PRIu64,
                found, cipher, mode, key_bytes * 8, payload);
  v->version = 1;
  v->payload_offset = payload;
  v->payload_size = (disk - payload) / 512 * 512;
  v->sector_size = 512;
  v->iv_tweak = 0;
  v->allow_discards = false;
  if (luks_cipher_init (&v->cipher, "payload", cipher, mode, mk, key_bytes)
      == -1) {
    gnutls_memset (mk, 0, sizeof mk);
    return -1;
  }
  gnutls_memset (mk, 0, sizeof mk);
  return 0;
}

/* ---- LUKS2 ---- */

static json_object *
get (json_object *o, const char *key)
{
  json_object *r;

  if (o == NULL || !json_object_object_get_ex (o, key, &r))
    return NULL;
  return r;
}

static const char *
get_str (json_object *o, const char *key)
{
  json_object *r = get (o, key);
  return r && json_object_is_type (r, json_type_string)
             ? json_object_get_string (r)
             : NULL;
}

/* A number, given as a JSON integer or (sizes, offsets) a string of
 * digits.  -1 if missing or invalid.
 */
static int
get_u64 (json_object *o, const char *key, uint64_t *out)
{
  json_object *r = get (o, key);
  const char *s;
  char *end;

  if (r && json_object_is_type (r, json_type_int)) {
    int64_t n = json_object_get_int64 (r);
    if (n < 0)
      return -1;
    *out = n;
    return 0;
  }
  if (r == NULL || !json_object_is_type (r, json_type_string))
    return -1;
  s = json_object_get_string (r);
  if (*s < '0' || *s > '9')
    return -1;
  errno = 0;
  *out = strtoull (s, &end, 10);
  return errno || *end ? -1 : 0;
}

static bool
array_has (json_object *a, const char *s)
{
  if (a == NULL || !json_object_is_type (a, json_type_array))
    return false;
  for (size_t i = 0; i < json_object_array_length (a); i++) {
    json_object *e = json_object_array_get_idx (a, i);
    if (json_object_is_type (e, json_type_string)
        && strcmp (json_object_get_string (e), s) == 0)
      return true;
  }
  return false;
}

/* Decodes base64 TEXT into OUT (at most MAX bytes).  -1 if invalid. */
static ssize_t
base64 (const char *text, unsigned char *out, size_t max)
{
  static const char tab[]
      = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  uint32_t acc = 0;
  int bits = 0;
  size_t n = 0;

  if (text == NULL)
    return -1;
  for (; *text && *text != '='; text++) {
    const char *p = strchr (tab, *text);
    if (p == NULL)
      return -1;
    acc = acc << 6 | (uint32_t)(p - tab);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (n == max)
        return -1;
      out[n++] = acc >> bits;
    }
  }
  return n;
}

/* The binary header at OFF, if valid: its sequence id and JSON text
 * (the caller frees) and the hash identifying it.
 */
static int
read_luks2_header (nbdkit_next *next, uint64_t disk, uint64_t off,
                   uint64_t *seqid, char **json, unsigned char *id)
{
  unsigned char bin[LUKS2_BIN], csum[64], *area;
  char alg[33];
  uint64_t size;
  gnutls_digest_algorithm_t hash;
  gnutls_hash_hd_t h;
  size_t hlen;

  if (off + LUKS2_BIN > disk
      || read_disk (next, disk, bin, LUKS2_BIN, off, "LUKS2 header") == -1)
    return -1;
  if (memcmp (bin, off ? "SKUL\xba\xbe" : LUKS_MAGIC, 6) != 0 || bin[6] != 0
      || bin[7] != 2 || be64 (bin + 256) != off)
    return -1;
  size = be64 (bin + 8);
  if (size < 2 * LUKS2_BIN || size > 4 << 20 || size % LUKS2_BIN
      || off + size > disk) {
    nbdkit_debug ("LUKS2 header at %" PRIu64 ": invalid size %" PRIu64, off,
                  size);
    return -1;
  }
  field (alg, bin + 72, 32);
  hash = luks_hash (alg);
  if (hash == GNUTLS_DIG_UNKNOWN) {
    nbdkit_debug ("LUKS2 header at %" PRIu64 ": unknown checksum %s", off, alg);
    return -1;
  }
  area = malloc (size - LUKS2_BIN + 1);
  if (area == NULL)
    return -1;
  if (read_disk (next, disk, area, size - LUKS2_BIN, off + LUKS2_BIN,
                 "LUKS2 JSON area")
      == -1) {
    free (area);
    return -1;
  }
  area[size - LUKS2_BIN] = '\0';

  /* The checksum covers the binary header, its checksum field zeroed,
   * and the JSON area.
   */
  hlen = gnutls_hash_get_len (hash);
  memcpy (csum, bin + 448, 64);
  memset (bin + 448, 0, 64);
  gnutls_hash_init (&h, hash);
  gnutls_hash (h, bin, LUKS2_BIN);
  gnutls_hash (h, area, size - LUKS2_BIN);
  gnutls_hash_deinit (h, bin + 448);
  if (memcmp (bin + 448, csum, hlen) != 0) {
    nbdkit_debug ("LUKS2 header at %" PRIu64 ": bad checksum", off);
    free (area);
    return -1;
  }
  memcpy (bin + 448, csum, 64);
  cache_id (bin, LUKS2_BIN, disk, id);
  {
    unsigned char id2[32];
    gnutls_hash_hd_t h2;
    gnutls_hash_init (&h2, GNUTLS_DIG_SHA256);
    gnutls_hash (h2, id, 32);
    gnutls_hash (h2, area, size - LUKS2_BIN);
    gnutls_hash_deinit (h2, id2);
    memcpy (id, id2, 32);
  }
  *seqid = be64 (bin + 16);
  *json = (char *)area;
  return 0;
}

/* Derives the key of a LUKS2 key slot's area from the passphrase. */
static int
luks2_kdf (json_object *kdf, const char *what, const unsigned char *pass,
           size_t pass_len, unsigned char *out, size_t out_len)
{
  const char *type = get_str (kdf, "type");
  unsigned char salt[256];
  ssize_t salt_len = base64 (get_str (kdf, "salt"), salt, sizeof salt);
  uint64_t a, b, c;

  if (type == NULL || salt_len < 0) {
    nbdkit_error ("%s: invalid kdf", what);
    return -1;
  }
  if (strcmp (type, "pbkdf2") == 0) {
    const char *hn = get_str (kdf, "hash");
    gnutls_digest_algorithm_t hash = hn ? luks_hash (hn) : GNUTLS_DIG_UNKNOWN;
    if (hash == GNUTLS_DIG_UNKNOWN || get_u64 (kdf, "iterations", &a) == -1
        || a == 0 || a > UINT32_MAX) {
      nbdkit_error ("%s: invalid or unsupported pbkdf2 (hash %s)", what,
                    hn ? hn : "missing");
      return -1;
    }
    return luks_pbkdf2 (hash, pass, pass_len, salt, salt_len, a, out, out_len);
  }
  if (strcmp (type, "argon2i") == 0 || strcmp (type, "argon2id") == 0) {
    if (get_u64 (kdf, "time", &a) == -1 || get_u64 (kdf, "memory", &b) == -1
        || get_u64 (kdf, "cpus", &c) == -1 || a == 0 || a > UINT32_MAX
        || b > MAX_ARGON2_KIB || c == 0 || c > 64) {
      nbdkit_error ("%s: invalid %s parameters", what, type);
      return -1;
    }
    return luks_argon2 (strcmp (type, "argon2id") == 0, pass, pass_len, salt,
                        salt_len, a, b, c, out, out_len);
  }
  nbdkit_error ("%s: kdf %s is not supported", what, type);
  return -1;
}

/* Splits "aes-xts-plain64" into "aes" and "xts-plain64". */
static int
split_spec (const char *spec, char *cipher, char *mode, const char *what)
{
  const char *dash = spec ? strchr (spec, '-') : NULL;

  if (dash == NULL || dash - spec > 31 || strlen (dash + 1) > 63) {
    nbdkit_error ("%s: invalid encryption %s", what, spec ? spec : "(missing)");
    return -1;
  }
  memcpy (cipher, spec, dash - spec);
  cipher[dash - spec] = '\0';
  strcpy (mode, dash + 1);
  return 0;
}

/* Tries key slot SLOT (of the digest DG): 1 if it opens with the
 * passphrase (MK, MK_LEN filled), 0 if not, -1 on error.
 */
static int
try_luks2_slot (nbdkit_next *next, uint64_t disk, json_object *slot,
                json_object *dg, const char *what, const unsigned char *pass,
                size_t pass_len, unsigned char *mk, size_t *mk_len)
{
  json_object *af = get (slot, "af"), *area = get (slot, "area");
  const char *af_type = get_str (af, "type"), *af_hn = get_str (af, "hash");
  const char *dg_hn = get_str (dg, "hash");
  char cipher[32], mode[64];
  uint64_t key_size, area_key, stripes, area_off, iter;
  unsigned char skey[LUKS_MAX_KEY], want[64], got[64], salt[256];
  ssize_t want_len, salt_len;
  gnutls_digest_algorithm_t af_hash, dg_hash;
  int r;

  if (get_u64 (slot, "key_size", &key_size) == -1 || key_size == 0
      || key_size > LUKS_MAX_KEY || af_type == NULL
      || strcmp (af_type, "luks1") != 0 || af_hn == NULL
      || (af_hash = luks_hash (af_hn)) == GNUTLS_DIG_UNKNOWN
      || get_u64 (af, "stripes", &stripes) == -1 || stripes > UINT32_MAX
      || get_u64 (area, "offset", &area_off) == -1
      || get_u64 (area, "key_size", &area_key) == -1 || area_key == 0
      || area_key > LUKS_MAX_KEY
      || split_spec (get_str (area, "encryption"), cipher, mode, what) == -1) {
    nbdkit_error ("%s: invalid or unsupported key slot", what);
    return -1;
  }
  if (dg_hn == NULL || (dg_hash = luks_hash (dg_hn)) == GNUTLS_DIG_UNKNOWN
      || get_u64 (dg, "iterations", &iter) == -1 || iter > UINT32_MAX
      || (want_len = base64 (get_str (dg, "digest"), want, sizeof want)) <= 0
      || (salt_len = base64 (get_str (dg, "salt"), salt, sizeof salt)) < 0) {
    nbdkit_error ("%s: invalid or unsupported digest", what);
    return -1;
  }
  if (luks2_kdf (get (slot, "kdf"), what, pass, pass_len, skey, area_key) == -1)
    return -1;
  r = open_area (next, disk, what, cipher, mode, skey, area_key, area_off,
                 stripes, af_hash, key_size, mk);
  gnutls_memset (skey, 0, sizeof skey);
  if (r == -1
      || luks_pbkdf2 (dg_hash, mk, key_size, salt, salt_len, iter, got,
                      want_len)
             == -1)
    return -1;
  *mk_len = key_size;
  return memcmp (got, want, want_len) == 0;
}

static int
unlock_luks2_json (nbdkit_next *next, uint64_t disk, json_object *root,
                   const unsigned char *pass, size_t pass_len,
                   struct luks_volume *v)
{
  json_object *segs = get (root, "segments"), *digests = get (root, "digests");
  json_object *slots = get (root, "keyslots"), *config = get (root, "config");
  json_object *seg = NULL, *dg = NULL, *ks, *req;
  const char *seg_id = NULL, *type, *size_s;
  char cipher[32], mode[64], what[48], tried[160] = "";
  uint64_t off, size, sector, tweak = 0;
  unsigned char mk[LUKS_MAX_KEY];
  size_t mk_len = 0;
  int found = -1;

  if (segs == NULL || digests == NULL || slots == NULL) {
    nbdkit_error ("LUKS2 JSON lacks keyslots, segments or digests");
    return -1;
  }
  req = get (get (config, "requirements"), "mandatory");
  if (req && json_object_is_type (req, json_type_array)
      && json_object_array_length (req) > 0) {
    nbdkit_error ("LUKS2 header has mandatory requirements (%s): not "
                  "supported",
                  json_object_to_json_string (req));
    return -1;
  }
  if (json_object_object_length (segs) != 1) {
    nbdkit_error ("LUKS2 header has %d segments (reencryption in "
                  "progress?): only one is supported",
                  json_object_object_length (segs));
    return -1;
  }
  json_object_object_foreach (segs, sk, sv)
  {
    seg_id = sk;
    seg = sv;
  }
  type = get_str (seg, "type");
  size_s = get_str (seg, "size");
  if (type == NULL || strcmp (type, "crypt") != 0
      || get_u64 (seg, "offset", &off) == -1 || size_s == NULL
      || (strcmp (size_s, "dynamic") != 0 && get_u64 (seg, "size", &size) == -1)
      || get_u64 (seg, "sector_size", &sector) == -1
      || (get (seg, "iv_tweak") && get_u64 (seg, "iv_tweak", &tweak) == -1)
      || split_spec (get_str (seg, "encryption"), cipher, mode, "segment")
             == -1) {
    nbdkit_error ("LUKS2 segment %s is invalid or unsupported",
                  seg_id ? seg_id : "?");
    return -1;
  }
  if (get (seg, "integrity")) {
    nbdkit_error ("LUKS2 segment %s has integrity protection (dm-integrity): "
                  "not supported",
                  seg_id);
    return -1;
  }
  if (sector < 512 || sector > 4096 || (sector & (sector - 1))) {
    nbdkit_error ("LUKS2 sector size %" PRIu64 " is invalid", sector);
    return -1;
  }
  if (off > disk) {
    nbdkit_error ("LUKS2 segment offset %" PRIu64 " is beyond the end "
                  "of the disk (%" PRIu64 " bytes)",
                  off, disk);
    return -1;
  }
  if (strcmp (size_s, "dynamic") == 0)
    size = (disk - off) / sector * sector;
  else if (size > disk - off || size % sector) {
    nbdkit_error ("LUKS2 segment of %" PRIu64 " bytes at %" PRIu64
                  " does not fit the disk (%" PRIu64 " bytes)",
                  size, off, disk);
    return -1;
  }

  json_object_object_foreach (digests, dk, dv)
  {
    const char *t = get_str (dv, "type");
    if (t && strcmp (t, "pbkdf2") == 0
        && array_has (get (dv, "segments"), seg_id))
      dg = dv;
    (void)dk;
  }
  if (dg == NULL) {
    nbdkit_error ("LUKS2 header has no pbkdf2 digest for segment %s", seg_id);
    return -1;
  }
  ks = get (dg, "keyslots");
  for (size_t i = 0; ks && json_object_is_type (ks, json_type_array)
                     && i < json_object_array_length (ks) && found == -1;
       i++) {
    json_object *e = json_object_array_get_idx (ks, i), *slot, *prio;
    const char *sid = json_object_get_string (e), *st;
    int r;

    slot = get (slots, sid);
    st = get_str (slot, "type");
    prio = get (slot, "priority");
    if (st == NULL || strcmp (st, "luks2") != 0
        || (prio && json_object_get_int (prio) == 0))
      continue;
    snprintf (what, sizeof what, "key slot %s", sid);
    tried_add (tried, sizeof tried, sid);
    r = try_luks2_slot (next, disk, slot, dg, what, pass, pass_len, mk,
                        &mk_len);
    if (r == -1) {
      gnutls_memset (mk, 0, sizeof mk);
      return -1;
    }
    if (r == 1)
      found = atoi (sid);
    else
      nbdkit_debug ("the passphrase does not open LUKS2 %s", what);
  }
  if (found == -1) {
    gnutls_memset (mk, 0, sizeof mk);
    if (tried[0] == '\0')
      nbdkit_error ("the LUKS2 header has no usable key slot");
    else
      nbdkit_error ("the passphrase opens none of the LUKS2 key slots "
                    "(tried %s)",
                    tried);
    errno = EACCES;
    return -1;
  }
  nbdkit_debug ("LUKS2 key slot %d opened: %s-%s, %zu-bit key, "
                "sector size %" PRIu64 ", payload at %" PRIu64,
                found, cipher, mode, mk_len * 8, sector, off);
  v->version = 2;
  v->payload_offset = off;
  v->payload_size = size;
  v->sector_size = sector;
  v->iv_tweak = tweak;
  v->allow_discards = array_has (get (config, "flags"), "allow-discards");
  if (luks_cipher_init (&v->cipher, "segment", cipher, mode, mk, mk_len)
      == -1) {
    gnutls_memset (mk, 0, sizeof mk);
    return -1;
  }
  gnutls_memset (mk, 0, sizeof mk);
  return 0;
}

static int
unlock_luks2 (nbdkit_next *next, uint64_t disk, const unsigned char *pass,
              size_t pass_len, struct luks_volume *v)
{
  static const uint64_t offs[]
      = { 0,       0x4000,  0x8000,   0x10000,  0x20000,
          0x40000, 0x80000, 0x100000, 0x200000, 0x400000 };
  char *json = NULL, *best = NULL;
  uint64_t seqid, best_seq = 0;
  unsigned char id[32], best_id[32];
  json_object *root;
  struct json_tokener *tok;
  int r;

  for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
    if (read_luks2_header (next, disk, offs[i], &seqid, &json, id) == -1)
      continue;
    if (best == NULL || seqid > best_seq) {
      free (best);
      best = json;
      best_seq = seqid;
      memcpy (best_id, id, 32);
    } else
      free (json);
    if (i > 0)
      break; /* the secondary header is the first found after 0 */
  }
  if (best == NULL) {
    nbdkit_error ("no valid LUKS2 header (bad checksums?)");
    return -1;
  }
  if (cache_find (best_id, v)) {
    free (best);
    nbdkit_debug ("LUKS2 volume already unlocked");
    return 0;
  }
  tok = json_tokener_new ();
  root = tok ? json_tokener_parse_ex (tok, best, strlen (best)) : NULL;
  if (tok)
    json_tokener_free (tok);
  free (best);
  if (root == NULL || !json_object_is_type (root, json_type_object)) {
    nbdkit_error ("the LUKS2 JSON area is not valid JSON");
    json_object_put (root);
    return -1;
  }
  r = unlock_luks2_json (next, disk, root, pass, pass_len, v);
  json_object_put (root);
  if (r == 0)
    cache_add (best_id, v);
  return r;
}

int
luks_unlock (nbdkit_next *next, const unsigned char *pass, size_t pass_len,
             struct luks_volume *v)
{
  int64_t disk = nbdkit_next_get_size (next);
  unsigned char h[LUKS1_HDR], id[32];
  unsigned version;

  if (disk == -1)
    return -1;
  if (disk < LUKS1_HDR) {
    nbdkit_error ("the disk (%" PRId64 " bytes) is too small to be "
                  "LUKS",
                  disk);
    return -1;
  }
  if (read_disk (next, disk, h, sizeof h, 0, "LUKS header") == -1)
    return -1;
  if (memcmp (h, LUKS_MAGIC, 6) != 0) {
    nbdkit_error ("the disk is not LUKS (no LUKS magic at offset 0)");
    return -1;
  }
  version = h[6] << 8 | h[7];
  if (version == 2)
    return unlock_luks2 (next, disk, pass, pass_len, v);
  if (version != 1) {
    nbdkit_error ("LUKS version %u is not supported", version);
    return -1;
  }
  cache_id (h, sizeof h, disk, id);
  if (cache_find (id, v)) {
    nbdkit_debug ("LUKS1 volume already unlocked");
    return 0;
  }
  if (unlock_luks1 (next, disk, h, pass, pass_len, v) == -1)
    return -1;
  cache_add (id, v);
  return 0;
}
