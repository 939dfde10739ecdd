/* apiversion.c: the API version a file gets when it does not define
 * NBDKIT_API_VERSION, checked when the tests are built: 1 for plugins,
 * as with nbdkit (abi/nbdkit-common.h), and 3 for filters, the only
 * filter API (abi/nbdkit-filter.h).  Compiled twice: as a plugin, and
 * with APIVERSION_FILTER.
 */

#ifdef APIVERSION_FILTER
#include <nbdkit-filter.h>
_Static_assert(NBDKIT_API_VERSION == 3,
               "a filter without NBDKIT_API_VERSION gets API 3");
#else
#include <nbdkit-plugin.h>
_Static_assert(NBDKIT_API_VERSION == 1,
               "a plugin without NBDKIT_API_VERSION gets API 1");
#endif

/* Something to compile besides the assertions. */
int apiversion_checked (void);
int
apiversion_checked (void)
{
  return NBDKIT_API_VERSION;
}
