#ifndef CSHIM_STATS_INTERNAL_H
#define CSHIM_STATS_INTERNAL_H

/* Shared by stats.c (the entry point), the cgroup file readers in stats_files.c and the
 * collectors in stats_v1.c and stats_v2.c. */

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/util.h"

struct cgroup;

/* Appends item to a protobuf-c repeated field (pointer array + count). */
#define PUSH(arr, n, item)                                                                         \
  do                                                                                               \
    {                                                                                              \
      (arr) = xrealloc ((arr), ((n) + 1) * sizeof *(arr));                                         \
      (arr)[(n)++] = (item);                                                                       \
    }                                                                                              \
  while (0)

/* A key (or file name) and where its uint64 goes inside a message. */
struct key_field
{
  const char *key;
  size_t offset;
};

/* Every message is built on the heap with the default allocator, so the whole tree is freed
 * by protobuf_c_message_free_unpacked (cleanup_pbmsg). */
void *stats_msg_new (const ProtobufCMessageDescriptor *desc);
void *stats_field_at (void *msg, size_t offset);
/* Decimal number, trailing blanks allowed. A negative value (v1 accounting can briefly go
 * below zero) reads as 0, as containerd/cgroups does. */
bool stats_parse_num (const char *s, uint64_t *v);
const struct key_field *stats_find_key (const struct key_field *table, size_t n, const char *key);
/* "<key> <number>" lines into msg through table; returns how many lines landed. Unknown keys
 * are skipped: kernels keep adding them. */
size_t stats_parse_keyed (const char *text, const struct key_field *table, size_t n, void *msg);

/* NULL when the file cannot be read: an absent controller file is normal. */
char *stats_read_text (int dirfd, const char *name);
/* Single-value file; "max" (no limit) reads as max_value. */
bool stats_read_u64 (int dirfd, const char *name, uint64_t max_value, uint64_t *out);
/* stats_parse_keyed on a file; 0 when it cannot be read. */
size_t stats_read_keyed (int dirfd, const char *name, const struct key_field *table, size_t n,
                         void *msg);
/* Each readable file of table into msg; returns how many were read. */
size_t stats_read_files (int dirfd, const struct key_field *table, size_t n, uint64_t max_value,
                         void *msg);
/* The <size> of every "hugetlb.<size><suffix>" in the directory, smallest first. Sizes with a
 * further dot ("2MB.rsvd") are the reservation counters, not usage. NULL when there is none. */
char **stats_list_page_sizes (int dirfd, const char *suffix);

/* stats_v1.c: io.containerd.cgroups.v1.Metrics from each controller's directory. NotFound
 * when none of them exists. */
ProtobufCMessage *stats_collect_v1 (const struct cgroup *cg, shim_error_t *err);

/* stats_v2.c: io.containerd.cgroups.v2.Metrics from the unified directory. NotFound when it
 * does not exist. */
ProtobufCMessage *stats_collect_v2 (const struct cgroup *cg, shim_error_t *err);

#endif
