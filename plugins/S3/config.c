/* config.c: the S3 plugin's parameters.
 *
 * Credentials come, as with boto3 (which nbdkit's Python S3 plugin
 * uses), from the first of: access-key= and secret-key=, the
 * environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN), the credentials file (credentials-file=,
 * AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials) in the section
 * named by profile= or AWS_PROFILE (else "default").  Without any,
 * requests are sent unsigned.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

struct s3_config cfg;

static const char *endpoint, *access_key, *secret_key, *session_token;
static const char *region, *creds_file, *profile;
static int64_t size = -1, object_size = -1, connections = 16, timeout = 60;
static bool sslverify = true, async_io = true;
static char *owned[6]; /* strings read from the credentials file etc. */

const struct nbdkit_param config_params[] = {
  { "endpoint-url", NBDKIT_PARAM_STRING, 0, NULL,
    "S3 endpoint, e.g. http://127.0.0.1:7480 (default: AWS for region)", NULL,
    &endpoint },
  { "access-key", NBDKIT_PARAM_PASSWORD, 0, NULL,
    "access key id (or -, -FD, +FILE)", NULL, &access_key },
  { "secret-key", NBDKIT_PARAM_PASSWORD, 0, NULL,
    "secret access key (or -, -FD, +FILE)", NULL, &secret_key },
  { "session-token", NBDKIT_PARAM_PASSWORD, 0, NULL,
    "session token of temporary credentials (or -, -FD, +FILE)", NULL,
    &session_token },
  { "bucket", NBDKIT_PARAM_STRING, NBDKIT_PARAM_REQUIRED, NULL, "the bucket",
    NULL, &cfg.bucket },
  { "key", NBDKIT_PARAM_STRING, NBDKIT_PARAM_REQUIRED, NULL,
    "the object (without size=) or the prefix of the objects", NULL, &cfg.key },
  { "size", NBDKIT_PARAM_SIZE, 0, NULL,
    "disk size: a writable disk of objects KEY/%016x (with object-size=)", NULL,
    &size },
  { "object-size", NBDKIT_PARAM_SIZE, 0, NULL,
    "size of each object (with size=)", NULL, &object_size },
  { "region", NBDKIT_PARAM_STRING, 0, NULL,
    "region signed into requests (default: AWS_REGION or us-east-1)", NULL,
    &region },
  { "credentials-file", NBDKIT_PARAM_STRING, 0, NULL,
    "AWS credentials file (default: ~/.aws/credentials)", NULL, &creds_file },
  { "profile", NBDKIT_PARAM_STRING, 0, NULL,
    "section of the credentials file (default: AWS_PROFILE or default)", NULL,
    &profile },
  { "connections", NBDKIT_PARAM_INT, 0, "16",
    "HTTP connections used in parallel", NULL, &connections },
  { "timeout", NBDKIT_PARAM_INT, 0, "60",
    "seconds allowed for one HTTP request", NULL, &timeout },
  { "sslverify", NBDKIT_PARAM_BOOL, 0, "true",
    "verify the endpoint's TLS certificate", NULL, &sslverify },
  { "async", NBDKIT_PARAM_BOOL, 0, "true",
    "complete requests when their transfers finish, without a server "
    "thread waiting (false: a thread waits for each)",
    NULL, &async_io },
  { .name = NULL },
};

static char *
trim (char *s)
{
  char *e;

  while (isspace ((unsigned char)*s))
    s++;
  e = s + strlen (s);
  while (e > s && isspace ((unsigned char)e[-1]))
    *--e = '\0';
  return s;
}

/* Read the keys of section PROF of the INI file PATH. */
static int
read_credentials (const char *path, const char *prof, bool must_exist)
{
  FILE *fp = fopen (path, "r");
  char line[4096];
  bool in = false;

  if (fp == NULL) {
    if (!must_exist && errno == ENOENT)
      return 0;
    nbdkit_error ("S3: credentials-file %s: %m", path);
    return -1;
  }
  while (fgets (line, sizeof line, fp)) {
    char *s = trim (line), *eq, *k, *v;

    if (*s == '[') {
      char *e = strchr (s, ']');
      if (e)
        *e = '\0';
      s = trim (s + 1);
      /* ~/.aws/config writes "[profile NAME]"; accept both. */
      if (strncmp (s, "profile ", 8) == 0)
        s = trim (s + 8);
      in = strcmp (s, prof) == 0;
      continue;
    }
    if (!in || *s == '#' || *s == ';' || (eq = strchr (s, '=')) == NULL)
      continue;
    *eq = '\0';
    k = trim (s);
    v = trim (eq + 1);
    int slot = strcmp (k, "aws_access_key_id") == 0       ? 0
               : strcmp (k, "aws_secret_access_key") == 0 ? 1
               : strcmp (k, "aws_session_token") == 0     ? 2
                                                          : -1;
    if (slot >= 0) {
      free (owned[slot]);
      owned[slot] = strdup (v);
    }
  }
  fclose (fp);
  if (owned[0] && owned[1]) {
    access_key = owned[0];
    secret_key = owned[1];
    if (owned[2] && !session_token)
      session_token = owned[2];
  } else if (must_exist || owned[0] || owned[1]) {
    nbdkit_error ("S3: credentials-file %s: no aws_access_key_id and "
                  "aws_secret_access_key in section [%s]",
                  path, prof);
    return -1;
  }
  return 0;
}

static int
find_credentials (void)
{
  const char *home = getenv ("HOME");
  const char *prof = profile ? profile : getenv ("AWS_PROFILE");
  bool must = creds_file != NULL || profile != NULL;
  int r;

  if (access_key && secret_key)
    return 0;
  if (access_key || secret_key) {
    nbdkit_error ("S3: access-key= and secret-key= go together");
    return -1;
  }
  if (!creds_file && !profile && getenv ("AWS_ACCESS_KEY_ID")
      && getenv ("AWS_SECRET_ACCESS_KEY")) {
    access_key = getenv ("AWS_ACCESS_KEY_ID");
    secret_key = getenv ("AWS_SECRET_ACCESS_KEY");
    if (!session_token)
      session_token = getenv ("AWS_SESSION_TOKEN");
    return 0;
  }
  if (creds_file)
    return read_credentials (creds_file, prof ? prof : "default", true);
  if (getenv ("AWS_SHARED_CREDENTIALS_FILE"))
    return read_credentials (getenv ("AWS_SHARED_CREDENTIALS_FILE"),
                             prof ? prof : "default", must);
  if (home == NULL)
    return 0;
  if (asprintf (&owned[3], "%s/.aws/credentials", home) == -1) {
    owned[3] = NULL;
    return -1;
  }
  r = read_credentials (owned[3], prof ? prof : "default", must);
  return r;
}

int
config_complete (void)
{
  if ((size >= 0) != (object_size >= 0)) {
    nbdkit_error ("S3: size= and object-size= must be given together");
    return -1;
  }
  cfg.single = size < 0;
  if (!cfg.single) {
    if (object_size == 0 || size % object_size != 0) {
      nbdkit_error ("S3: size= (%" PRIi64 ") must be a multiple of "
                    "object-size= (%" PRIi64 "), which must not be 0",
                    size, object_size);
      return -1;
    }
    if (object_size > 1024 * 1024 * 1024) {
      nbdkit_error ("S3: object-size= (%" PRIi64 ") is larger than 1G",
                    object_size);
      return -1;
    }
    cfg.size = size;
    cfg.object_size = object_size;
  }
  if (cfg.key[0] == '\0') {
    nbdkit_error ("S3: key= must not be empty");
    return -1;
  }
  if (connections < 1 || connections > 1024) {
    nbdkit_error ("S3: connections= must be 1 to 1024, not %" PRIi64,
                  connections);
    return -1;
  }
  if (timeout < 1) {
    nbdkit_error ("S3: timeout= must be at least 1 second");
    return -1;
  }
  if (find_credentials () == -1)
    return -1;

  if (!region)
    region = getenv ("AWS_REGION");
  if (!region)
    region = getenv ("AWS_DEFAULT_REGION");
  if (!region)
    region = "us-east-1";
  if (!endpoint)
    endpoint = getenv ("AWS_ENDPOINT_URL");
  if (endpoint) {
    size_t n = strlen (endpoint);
    while (n > 0 && endpoint[n - 1] == '/')
      n--;
    owned[4] = strndup (endpoint, n);
  } else if (asprintf (&owned[4], "https://s3.%s.amazonaws.com", region) == -1)
    owned[4] = NULL;
  if (owned[4] == NULL) {
    nbdkit_error ("S3: out of memory");
    return -1;
  }
  if (strncmp (owned[4], "http://", 7) != 0
      && strncmp (owned[4], "https://", 8) != 0) {
    nbdkit_error ("S3: endpoint-url=%s: expected http://HOST[:PORT] or "
                  "https://...",
                  owned[4]);
    return -1;
  }
  cfg.endpoint = owned[4];

  cfg.xfer.access_key = access_key;
  cfg.xfer.secret_key = secret_key;
  cfg.xfer.session_token = session_token;
  cfg.xfer.region = region;
  cfg.xfer.connections = connections;
  cfg.xfer.connect_timeout = timeout < 30 ? timeout : 30;
  cfg.xfer.timeout = timeout;
  cfg.xfer.sslverify = sslverify;
  cfg.async = async_io;
  if (!access_key)
    nbdkit_debug ("S3: no credentials: requests are not signed");
  return 0;
}

const char *
config_help (void)
{
  return "Without size=, KEY is one object, served read-only.  With size=\n"
         "and object-size=, the disk is the objects KEY/%016x.\n"
         "Credentials: access-key=/secret-key=, else AWS_ACCESS_KEY_ID/\n"
         "AWS_SECRET_ACCESS_KEY, else ~/.aws/credentials [AWS_PROFILE].";
}

void
config_free (void)
{
  for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) {
    free (owned[i]);
    owned[i] = NULL;
  }
}
