/* virtio-link.h — the guest process that owns the vchan virtio-serial port
 * (virtio-link.c) and the local protocol that transport-virtio.c speaks to
 * it.  Plain C and libc only.
 */
#pragma once

#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#define VLINK_REQUEST_SIZE 16
#define VLINK_REPLY_SIZE 128
enum { VLINK_OP_LISTEN = 1, VLINK_OP_CONNECT = 2 };

/* The abstract socket address of the link for port `name`; 0 when the
 * name is too long. */
socklen_t vlink_address (const char *name, struct sockaddr_un *sun);
/* The /dev path of the virtio-serial port named `name` (or `name` itself
 * when it is a path): 0, or -1 when there is none. */
int vlink_find_port (const char *name, char *path, size_t pathlen);
/* Opens the port and starts the link process for it (detached); 0 also
 * when another process started it first, -1 with err set. */
int vlink_start (const char *name, char *err, size_t errlen);
/* The socket the link of port `name` serves its local processes on
 * (listening), or -1 with errno set (EADDRINUSE: a link serves it). */
int vlink_listen (const char *name);
/* The link's life: the multiplexer on `port_fd` (the opened port), the
 * local processes on `listen_fd`; `trace`: tell the channels' lives on
 * stderr.  Never returns. */
void vlink_serve (const char *name, int port_fd, int listen_fd, int trace)
  __attribute__ ((noreturn));
