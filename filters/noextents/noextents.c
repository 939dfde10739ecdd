/* noextents.c: hide the plugin's allocation map.
 *
 * base:allocation stays offered (as with nbdkit), but every block
 * status request is answered "all data, not zero" by the server, and
 * the layers below never see an extents call.
 */

#include <nbdkit-filter.h>

static int
noextents_can_extents (nbdkit_next *next, void *handle)
{
  return NBDKIT_EXTENTS_EMULATE;
}

static struct nbdkit_filter filter = {
  .name = "noextents",
  .longname = "nbdkit noextents filter",
  .description = "report the whole disk as allocated data",
  .can_extents = noextents_can_extents,
};

NBDKIT_REGISTER_FILTER (filter)
