#ifndef CSHIM_INFO_H
#define CSHIM_INFO_H

/* `-info`: a containerd.types.RuntimeInfo on stdout, describing the runtime the options on
 * stdin select. Never fails for lack of a `features` command: a document is synthesized from
 * the runtime's profile instead. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* Whether a runtime's `features` output is a document we pass on (a JSON object). */
bool info_features_valid (const char *text);
/* Builds the packed RuntimeInfo from the options bytes (may be empty). */
uint8_t *info_build (const uint8_t *options, size_t options_len, size_t *out_len);
int info_run (shim_error_t *err);

#endif
