/* qubed-fixture.h — starting a qubed from the build tree and talking to
 * it, for tests/qubed and bench/admin. */
#pragma once

#include <gio/gio.h>

/* A connected unix stream socket, or -1 when nobody listens at `path`. */
int qubed_fixture_connect (const char *path);

/* Sends all of `data` (no SIGPIPE); FALSE with errno set on failure. */
gboolean qubed_fixture_write_all (int fd, const void *data, gsize len);

/* Everything `fd` reads until end of file (or an error). */
GByteArray *qubed_fixture_read_all (int fd);

/* Runs `qubed` on a state directory, a policy directory and the two
 * sockets, with stderr to `log` (NULL: discarded) and the extra options;
 * returns once the qrexec socket (made last) answers. */
GSubprocess *qubed_fixture_spawn (const char *qubed, const char *state_dir,
                                  const char *policy_dir, const char *socket,
                                  const char *qrexec_socket, const char *log,
                                  const char *notify_socket,
                                  const char *const *extra, GError **error);

/* Removes a temporary directory and everything in it. */
void qubed_fixture_remove_tree (const char *path);
