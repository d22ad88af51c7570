/* The shim's command line as containerd writes it: NUL-separated arguments. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  cleanup_free char *text = xmalloc (size + 1);
  memcpy (text, data, size);
  text[size] = '\0';
  cleanup_free char **argv = xcalloc (size + 3, sizeof *argv);
  int argc = 0;
  argv[argc++] = "containerd-shim-cshim-v2";
  for (size_t off = 0; off <= size; off += strlen (text + off) + 1)
    argv[argc++] = text + off;
  struct shim_args a = { 0 };
  const char *action = NULL;
  bool version = false, info = false;
  (void) args_parse (argc, argv, &a, &action, &version, &info);
  return 0;
}
