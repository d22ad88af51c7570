#ifndef CSHIM_METHODS_H
#define CSHIM_METHODS_H

/* A ttrpc method table built from a generated service descriptor, so method names and input
 * types cannot drift from the protos: shared by the Task and Sandbox services. */

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#include "wire/ttrpc_server.h"

struct method_handler
{
  const char *method;
  ttrpc_handler_fn fn;
};

/* Appends to table (count entries used, max in all) one entry per method of sd under the
 * name service, with its handler from handlers; a method without one gets fallback, or is left
 * out when fallback is NULL. Returns the new count. */
size_t methods_build (const ProtobufCServiceDescriptor *sd, const char *service,
                      const struct method_handler *handlers, size_t n_handlers,
                      ttrpc_handler_fn fallback, struct ttrpc_method *table, size_t count,
                      size_t max);

#endif
