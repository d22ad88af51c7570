#include "cli/args.h"

#include <string.h>

#include "base/util.h"

int
args_parse (int argc, char **argv, struct shim_args *a, const char **action, bool *version,
            bool *info)
{
  struct
  {
    const char *name;
    const char **dst;
  } strs[] = {
    { "namespace", &a->namespace },           { "id", &a->id },         { "address", &a->address },
    { "publish-binary", &a->publish_binary }, { "bundle", &a->bundle }, { "socket", &a->socket },
  };
  for (int i = 1; i < argc; i++)
    {
      const char *arg = argv[i];
      if (arg[0] != '-')
        {
          *action = arg;
          continue;
        }
      arg += arg[1] == '-' ? 2 : 1;
      const char *eq = strchr (arg, '=');
      size_t len = eq ? (size_t) (eq - arg) : strlen (arg);
      bool matched = false;
      for (size_t k = 0; k < ARRAY_SIZE (strs) && !matched; k++)
        if (strlen (strs[k].name) == len && strncmp (strs[k].name, arg, len) == 0)
          {
            if (!eq && i + 1 >= argc)
              return -1;
            *strs[k].dst = eq ? eq + 1 : argv[++i];
            matched = true;
          }
      if (matched)
        continue;
      if (strncmp (arg, "debug", len) == 0 && len == 5)
        a->debug = !eq || strcmp (eq + 1, "false") != 0;
      else if ((len == 1 && arg[0] == 'v') || (len == 7 && strncmp (arg, "version", 7) == 0))
        *version = true;
      else if (len == 4 && strncmp (arg, "info", 4) == 0)
        *info = true;
      else
        return -1;
    }
  return 0;
}
