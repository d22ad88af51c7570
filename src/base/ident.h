#ifndef CSHIM_IDENT_H
#define CSHIM_IDENT_H

/* Container and exec ids, checked as containerd checks its identifiers: the shim turns them
 * into file names and runtime arguments, so anything else is refused before it gets there. */

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

#define IDENT_MAX 76

/* 1 to IDENT_MAX bytes: runs of [A-Za-z0-9] joined by single '.', '_' or '-'. */
bool ident_valid (const char *s, size_t len);
/* 0 if valid, else < 0 with InvalidArgument; what names the id ("container id", "exec id"). */
int ident_check (const char *what, const char *s, size_t len, shim_error_t *err);

#endif
