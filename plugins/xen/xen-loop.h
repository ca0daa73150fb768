/* xen-loop.h — loop devices for the raw files the xen backend attaches. */
#pragma once

#include <gio/gio.h>

/* A loop device the plugin configured and still holds open.  It clears
 * itself when its last user closes it: once blkback has it open, closing
 * `fd` hands it over to blkback; before that, closing it undoes it. */
typedef struct
{
  int fd;
  char *path;   /* /dev/loopN */
} XenLoop;

/* Binds a loop device to the open file `backing` (opened read-only or
 * read-write as `readonly` says; `file` names it in errors and in the
 * device's info).  The device holds its own reference to the file: the
 * caller still closes `backing`. */
XenLoop *xen_loop_attach (int backing, const char *file, gboolean readonly, GError **error);
void xen_loop_free (XenLoop *loop);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (XenLoop, xen_loop_free)
