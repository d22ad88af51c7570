#include "base/ident.h"

#include <ctype.h>

static bool
is_alnum (char c)
{
  return isascii ((unsigned char) c) && isalnum ((unsigned char) c);
}

bool
ident_valid (const char *s, size_t len)
{
  if (len == 0 || len > IDENT_MAX)
    return false;
  /* A separator needs an alphanumeric on both sides. */
  bool after_alnum = false;
  for (size_t i = 0; i < len; i++)
    {
      if (is_alnum (s[i]))
        after_alnum = true;
      else if ((s[i] == '.' || s[i] == '_' || s[i] == '-') && after_alnum)
        after_alnum = false;
      else
        return false;
    }
  return after_alnum;
}

int
ident_check (const char *what, const char *s, size_t len, shim_error_t *err)
{
  if (ident_valid (s, len))
    return 0;
  /* The id itself is not echoed: it may hold control characters. */
  return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT,
                          "invalid %s (%zu bytes): must be 1 to %d characters, [A-Za-z0-9] "
                          "runs joined by single '.', '_' or '-'",
                          what, len, IDENT_MAX);
}
