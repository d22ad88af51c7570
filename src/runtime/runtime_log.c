#include "runtime/runtime_log.h"

#include <inttypes.h>
#include <string.h>

#include "base/util.h"
#include "runtime/runtime.h"

/* $1 offset, $2 log. The size is read once: bytes appended after it are not waited for. */
static const char tail_script[]
    = "[ -f \"$2\" ] || exit 0; size=$(stat -c %s -- \"$2\") || exit 0; off=$1; "
      "[ \"$size\" -ge \"$off\" ] || off=0; "
      "if [ $((size - off)) -gt $3 ]; then echo cut; off=$((size - $3)); else echo whole; fi; "
      "tail -c +$((off + 1)) -- \"$2\" | head -c $((size - off))";

char **
runtime_log_tail_argv (const char *log_path, off_t offset)
{
  char **argv = NULL;
  strv_push (&argv, "sh");
  strv_push (&argv, "-c");
  strv_push (&argv, tail_script);
  strv_push (&argv, "sh");
  strv_pushf (&argv, "%" PRIdMAX, (intmax_t) offset);
  strv_push (&argv, log_path);
  strv_pushf (&argv, "%d", RUNTIME_LOG_TAIL_MAX);
  return argv;
}

char *
runtime_log_tail_error (const char *out, size_t len)
{
  const char *nl = memchr (out, '\n', len);
  if (nl == NULL)
    return NULL;
  bool cut = (size_t) (nl - out) == 3 && memcmp (out, "cut", 3) == 0;
  const char *p = nl + 1, *end = out + len;
  /* The tail's first line may have started before it: skip up to the first newline rather
   * than parse a piece of a line, which can be a JSON object of its own. (A line that starts
   * right after the tail's first byte is whole: that byte is then its newline.) */
  if (cut)
    {
      const char *first = memchr (p, '\n', (size_t) (end - p));
      p = first ? first + 1 : end;
    }
  return runtime_log_last_error (p, (size_t) (end - p));
}
