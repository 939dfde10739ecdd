/* usergroup.c: -u USER and -g GROUP, the identity the server takes
 * once it has bound its sockets and written its pidfile.
 */

#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* A name, or a number that names no one. */
static bool
is_number (const char *s)
{
  return *s && strspn (s, "0123456789") == strlen (s);
}

int
change_user (struct server *s)
{
  if (s->opt.group) {
    struct group *g = getgrnam (s->opt.group);
    gid_t gid = g ? g->gr_gid : (gid_t)strtoul (s->opt.group, NULL, 10);
    if (!g && !is_number (s->opt.group)) {
      log_error (s, "-g %s: no such group", s->opt.group);
      return -1;
    }
    if (setgroups (1, &gid) == -1 || setgid (gid) == -1) {
      log_error (s, "-g %s: setgid: %m", s->opt.group);
      return -1;
    }
  }
  if (s->opt.user) {
    struct passwd *p = getpwnam (s->opt.user);
    uid_t uid = p ? p->pw_uid : (uid_t)strtoul (s->opt.user, NULL, 10);
    if (!p && !is_number (s->opt.user)) {
      log_error (s, "-u %s: no such user", s->opt.user);
      return -1;
    }
    if (setuid (uid) == -1) {
      log_error (s, "-u %s: setuid: %m", s->opt.user);
      return -1;
    }
  }
  return 0;
}
