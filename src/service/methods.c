#include "service/methods.h"

#include <string.h>

static ttrpc_handler_fn
find (const struct method_handler *handlers, size_t n, const char *method)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp (handlers[i].method, method) == 0)
      return handlers[i].fn;
  return NULL;
}

size_t
methods_build (const ProtobufCServiceDescriptor *sd, const char *service,
               const struct method_handler *handlers, size_t n_handlers, ttrpc_handler_fn fallback,
               struct ttrpc_method *table, size_t count, size_t max)
{
  for (unsigned m = 0; m < sd->n_methods && count < max; m++)
    {
      ttrpc_handler_fn fn = find (handlers, n_handlers, sd->methods[m].name);
      if (fn == NULL)
        fn = fallback;
      if (fn)
        table[count++]
            = (struct ttrpc_method){ service, sd->methods[m].name, sd->methods[m].input, fn };
    }
  return count;
}
