#ifndef CSHIM_CONSOLE_H
#define CSHIM_CONSOLE_H

/* The runtime's --console-socket: a listening unix socket in a private temporary directory
 * ($XDG_RUNTIME_DIR, else $TMPDIR, else /tmp: <dir>/ptyXXXXXX/pty.sock). The runtime connects
 * once and sends the PTY master with SCM_RIGHTS (a file name rides along as ordinary data).
 * Everything happens in the loop; nothing here blocks. */

#include "base/error.h"

struct event_base;
struct console;

/* Called once, from the loop, never from inside console_new() or console_on_master().
 * On success master_fd >= 0 (O_NONBLOCK|O_CLOEXEC, a terminal) and err is NULL; on failure
 * master_fd is -1. The callback owns both master_fd and err. By the time it runs, the
 * sockets are closed and the socket file and its directory are removed. */
typedef void (*console_master_cb) (int master_fd, shim_error_t err, void *arg);

/* Creates the directory and the listening socket, and starts watching it. */
struct console *console_new (struct event_base *base, shim_error_t *err);
/* The path to pass as --console-socket. Valid until console_free(). */
const char *console_socket_path (const struct console *c);
/* Registers the one callback. A master that arrived before this call is delivered on a later
 * loop iteration. Calling it again replaces a callback that has not run yet. */
void console_on_master (struct console *c, console_master_cb cb, void *arg);
/* Closes what is still open (a master not yet handed to cb included), removes the socket file
 * and the directory. cb is never called afterwards. Fine from inside cb. NULL is a no-op. */
void console_free (struct console *c);

/* TIOCSWINSZ: ws_row = height, ws_col = width (each must fit in 16 bits). */
int console_resize (int master_fd, unsigned width, unsigned height, shim_error_t *err);

#endif
