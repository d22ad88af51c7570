#include "base/ev.h"

#include "base/util.h"

struct event *
xevent_new (struct event_base *base, evutil_socket_t fd, short what, event_callback_fn cb,
            void *arg)
{
  struct event *ev = event_new (base, fd, what, cb, arg);
  if (ev == NULL)
    xalloc_failed ();
  return ev;
}

struct event *
xevtimer_new (struct event_base *base, event_callback_fn cb, void *arg)
{
  return xevent_new (base, -1, 0, cb, arg);
}

struct event *
xevsignal_new (struct event_base *base, int signum, event_callback_fn cb, void *arg)
{
  return xevent_new (base, signum, EV_SIGNAL | EV_PERSIST, cb, arg);
}

struct evbuffer *
xevbuffer_new (void)
{
  struct evbuffer *b = evbuffer_new ();
  if (b == NULL)
    xalloc_failed ();
  return b;
}

void
event_freep (struct event **ev)
{
  if (*ev)
    event_free (*ev);
  *ev = NULL;
}
