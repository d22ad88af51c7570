#ifndef CSHIM_TASK_SERVICE_H
#define CSHIM_TASK_SERVICE_H

/* containerd's Task API (containerd.task.v2.Task and the wire-identical v3): one handler per
 * RPC: decode -> validate -> look up -> start the operation -> reply; events go out through
 * the publisher in contract order. */

#include <stddef.h>

struct shim;
struct task_service;
struct ttrpc_method;

struct task_service *task_service_new (struct shim *shim);
void task_service_free (struct task_service *svc);
/* The method table for ttrpc_server_new (both service names); its handler arg is svc. */
const struct ttrpc_method *task_service_methods (size_t *n);
size_t task_service_container_count (const struct task_service *svc);

#endif
