#ifndef CSHIM_EV_H
#define CSHIM_EV_H

/* libevent objects, allocated the way memory is (util.h's x* functions): libevent fails to
 * create an event or a buffer only when it has no memory, and the shim treats that as it treats
 * malloc failing, so no caller carries an error path that cannot be tested. */

#include <event2/buffer.h>
#include <event2/event.h>

struct event *xevent_new (struct event_base *base, evutil_socket_t fd, short what,
                          event_callback_fn cb, void *arg);
/* A one-shot timer (event_add with a timeout arms it). */
struct event *xevtimer_new (struct event_base *base, event_callback_fn cb, void *arg);
/* A persistent signal event. */
struct event *xevsignal_new (struct event_base *base, int signum, event_callback_fn cb, void *arg);
struct evbuffer *xevbuffer_new (void);
/* Frees *ev if set and clears it. */
void event_freep (struct event **ev);

#endif
