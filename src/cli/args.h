#ifndef CSHIM_ARGS_H
#define CSHIM_ARGS_H

/* The shim's command line, in Go's flag syntax as containerd writes it. */

#include <stdbool.h>

#include "cli/manager.h"

/* -name value, --name value, -name=value; the one word without a dash is the action.
 * Strings in a point into argv. -1 on an unknown flag or a missing value. */
int args_parse (int argc, char **argv, struct shim_args *a, const char **action, bool *version,
                bool *info);

#endif
