#ifndef CSHIM_BUILDINFO_H
#define CSHIM_BUILDINFO_H

/* Which containerd runs `start`, from the Go build info of its executable (the
 * `-publish-binary` argument, which containerd sets to itself). containerd 1.7 and 2.x pass
 * shims the same argv and environment, yet only 2.x accepts a version 3 start reply; the
 * module path tells them apart: github.com/containerd/containerd/v2 since 2.0. Reading is
 * bounded (section headers, then one small section) and fails safe: anything unreadable or
 * unexpected is BUILDINFO_UNKNOWN. */

#include <stddef.h>

#include "base/error.h"

enum buildinfo_containerd
{
  BUILDINFO_UNKNOWN = 0,
  BUILDINFO_CONTAINERD_1 = 1,
  BUILDINFO_CONTAINERD_2 = 2,
};

/* The module info text ("path\t...\nmod\t...\n...") of the Go executable at path, from its
 * .go.buildinfo ELF section (Go 1.18+ inline format). NULL with err set when there is none. */
char *buildinfo_read (const char *path, size_t *len, shim_error_t *err);

/* Classifies module info text: the main package, main module or a dependency under
 * github.com/containerd/containerd/v2 is 2.x; containerd's 1.x module is 1.x. */
enum buildinfo_containerd buildinfo_classify (const char *info, size_t len);

/* buildinfo_read + buildinfo_classify; never fails. */
enum buildinfo_containerd buildinfo_containerd_of (const char *path);

#endif
