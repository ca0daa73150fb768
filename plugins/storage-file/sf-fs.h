/* sf-fs.h — filesystem primitives of the storage-file pool driver.
 *
 * Everything here works relative to directory file descriptors opened with
 * O_NOFOLLOW, so that a symlink placed inside a pool can never redirect a
 * write outside it, and every change that must survive a crash is fsync()ed
 * together with its directory.  Errors are GErrors in SF_ERROR whose codes
 * are QubeAbiError values, ready to hand back through the ABI.
 */
#pragma once

#include <dirent.h>
#include <glib.h>
#include <stdint.h>

#include "abi/qube-plugin.h"

G_BEGIN_DECLS

#define SF_ERROR (sf_error_quark ())
GQuark sf_error_quark (void);

/* A QubeAbiError for errno (ENOSPC -> NO_SPACE, ENOENT -> NOT_FOUND, ...). */
QubeAbiError sf_error_from_errno (int errsv);

/* True when `name` may be one part of a vid: [A-Za-z0-9_.-]+, not starting
 * with '.', at most 64 bytes. */
gboolean sf_name_is_valid (const char *name);
/* Splits "<qube>/<volume>" after checking both parts. */
gboolean sf_vid_split (const char *vid, char **qube, char **volume,
                       GError **error);

/* openat(O_DIRECTORY|O_NOFOLLOW); with `create`, mkdirat() it first when
 * missing.  Returns -1 with errno set (no GError: callers word the error). */
int sf_open_dir (int parent_fd, const char *name, gboolean create);
/* A DIR stream over the directory open as `dir_fd`, with its own position
 * (a dup()ed fd would share and disturb it).  NULL with errno set. */
DIR *sf_opendir (int dir_fd);
gboolean sf_fsync_dir (int dir_fd, const char *what, GError **error);
/* Flushes a file's data to disk. */
gboolean sf_fsync_file (int dir_fd, const char *name, GError **error);

/* Writes `name` atomically: name.part, fsync, rename, fsync dir. */
gboolean sf_write_atomic (int dir_fd, const char *name, const char *data,
                          gsize len, GError **error);
/* renameat within one or two directories, then fsync the target dir. */
gboolean sf_rename (int from_dir, const char *from, int to_dir,
                    const char *to, GError **error);
/* Removes a file if present (never follows a symlink); ignores ENOENT. */
void sf_unlink (int dir_fd, const char *name);
/* Removes `name` and what is below it, without following symlinks. */
void sf_remove_tree (int dir_fd, const char *name);

/* An empty sparse file of `size` bytes. */
gboolean sf_create_sparse (int dir_fd, const char *name, guint64 size,
                           GError **error);
/* Grows a file to at least `size` bytes (sparse); never shrinks. */
gboolean sf_grow (int dir_fd, const char *name, guint64 size, GError **error);
/* FICLONE reflink of a whole file into a new file `dst`.  Fails with
 * NOT_SUPPORTED when the filesystem cannot share extents. */
gboolean sf_reflink (int src_dir, const char *src, int dst_dir,
                     const char *dst, GError **error);
/* Copies only the data extents of `src` into a new file `dst` (holes stay
 * holes).  On any error, ENOSPC included, `dst` is removed. */
gboolean sf_copy_sparse (int src_dir, const char *src, int dst_dir,
                         const char *dst, GError **error);

/* Apparent size and allocated bytes of a file (0, 0 when missing). */
void sf_file_sizes (int dir_fd, const char *name, guint64 *size,
                    guint64 *allocated);
/* Free bytes for an unprivileged writer, and the filesystem capacity. */
gboolean sf_fs_space (int dir_fd, guint64 *free_bytes, guint64 *capacity,
                      guint64 *used, GError **error);

/* A path that names `name` in the directory open as `dir_fd` for a child
 * process (through /proc/<pid>/fd): the child reaches exactly the directory
 * we opened, whatever symlinks appear in the pool meanwhile. */
char *sf_fd_path (int dir_fd, const char *name);

/* "2048 MiB" for a person (rounded up when `up`). */
char *sf_format_mib (guint64 bytes, gboolean up);

/* Test hook: when QUBE_STORAGE_FILE_FAULT names `step`, the process kills
 * itself with SIGKILL there (to prove crash safety at that point). */
void sf_fault_point (const char *step);

G_END_DECLS
