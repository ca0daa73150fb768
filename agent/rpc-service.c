/* rpc-service.c — running a qrexec service ("QUBESRPC ...") in the process
 * that is the call's process side, as Qubes' agent runs one.
 *
 * The service is the first entry lstat() finds among SERVICE+ARG (with an
 * empty argument when the call gave none) then SERVICE, in each directory
 * of the service path in turn; what it is decides how it runs:
 *  - a symbolic link to /dev/tcp/[HOST[/PORT]]: a TCP connection to a
 *    numeric address, the missing parts taken from the argument;
 *  - an AF_UNIX stream socket (links followed): a connection to it;
 *  - an executable file: executed, with the argument as $1 and the
 *    environment Qubes gives a service;
 *  - anything else, or a lookup that failed otherwise than ENOENT: 125.
 * Not found: 127.  A connection gets the service descriptor (what follows
 * "QUBESRPC ", with its NUL) first, then the call's stdin; what it sends
 * back is the call's stdout; its end is the end of the call (exit 0).
 * Plain C and libc only: the agent links statically.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qrexec-wire.h"
#include "rpc-service.h"

static void __attribute__ ((noreturn, format (printf, 2, 3)))
fail (int code, const char *fmt, ...)
{
  va_list ap;

  fputs ("qube-agent: ", stderr);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
  _exit (code);
}

/* The first of `names` that lstat() finds in a directory of `path`
 * (names in order, each through every directory): a malloc'ed path, or
 * NULL with errno (ENOENT: none). */
static char *
find_entry (const char *path, const char *const *names, size_t n_names)
{
  for (size_t i = 0; i < n_names; i++)
    {
      const char *dir = path;

      if (names[i] == NULL)
        continue;
      while (*dir != '\0')
        {
          size_t len = strcspn (dir, ":");
          char entry[PATH_MAX];
          struct stat st;

          if (len > 0 && snprintf (entry, sizeof entry, "%.*s/%s", (int) len, dir, names[i])
                           < (int) sizeof entry)
            {
              if (lstat (entry, &st) == 0)
                return strdup (entry);
              if (errno != ENOENT && errno != ENOTDIR)
                return NULL;
            }
          dir += len;
          if (*dir == ':')
            dir++;
        }
    }
  errno = ENOENT;
  return NULL;
}

static int
write_all (int fd, const char *buf, size_t len)
{
  while (len > 0)
    {
      ssize_t n = write (fd, buf, len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return -1;
      buf += n;
      len -= (size_t) n;
    }
  return 0;
}

/* Copies `from` to `to` until EOF or an error. */
static void
copy (int from, int to)
{
  char buf[65536];

  for (;;)
    {
      ssize_t n = read (from, buf, sizeof buf);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0 || write_all (to, buf, (size_t) n) < 0)
        return;
    }
}

/* The call's stdin and stdout joined to connection `s`, after the
 * descriptor: a child takes stdin to it (then shuts its writing half),
 * this process what it sends back to stdout; the connection's end is the
 * call's. */
static void __attribute__ ((noreturn))
serve_connection (int s, const char *descriptor)
{
  pid_t pid;

  signal (SIGPIPE, SIG_IGN);
  if (write_all (s, descriptor, strlen (descriptor) + 1) < 0)
    fail (QREXEC_EXIT_FAILED, "cannot send the service descriptor: %s", strerror (errno));
  pid = fork ();
  if (pid < 0)
    fail (QREXEC_EXIT_FAILED, "cannot fork: %s", strerror (errno));
  if (pid == 0)
    {
      copy (0, s);
      shutdown (s, SHUT_WR);
      _exit (0);
    }
  close (0);
  copy (s, 1);
  kill (pid, SIGKILL);
  waitpid (pid, NULL, 0);
  _exit (0);
}

/* Nothing is executed for a connection: what the process inherited with
 * close-on-exec (its own stdin pipe's writing end among them) is closed
 * here, or the call's input would never end. */
static void
close_inherited (void)
{
  if (close_range (3, ~0U, 0) < 0)
    for (int fd = 3; fd < 1024; fd++)
      close (fd);
}

static void __attribute__ ((noreturn))
run_socket_service (const char *path, const char *descriptor)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int s;

  close_inherited ();
  s = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (strlen (path) >= sizeof sun.sun_path)
    fail (QREXEC_EXIT_FAILED, "service socket path '%s' is too long", path);
  strcpy (sun.sun_path, path);
  if (s < 0 || connect (s, (struct sockaddr *) &sun, sizeof sun) < 0)
    fail (QREXEC_EXIT_FAILED, "cannot connect to service socket '%s': %s", path, strerror (errno));
  serve_connection (s, descriptor);
}

/* `len` bytes of `src` as a string in dst[size]; too long fails the call. */
static void
take_text (char *dst, size_t size, const char *src, size_t len, const char *link)
{
  if (len >= size)
    fail (QREXEC_EXIT_FAILED, "service link '%s': a host or port too long", link);
  memcpy (dst, src, len);
  dst[len] = '\0';
}

/* A port as Qubes takes it: decimal, no leading zero, 1 to 65535. */
static int
parse_port (const char *text)
{
  char *end;
  long v;

  if (text[0] < '1' || text[0] > '9')
    return -1;
  errno = 0;
  v = strtol (text, &end, 10);
  return errno != 0 || *end != '\0' || v > 65535 ? -1 : (int) v;
}

/* A service that is a link to /dev/tcp[/HOST[/PORT]]: what the link does
 * not say comes from the argument ("PORT" after HOST, "HOST+PORT" after
 * /dev/tcp, a ':' of the host written '+'). */
static void __attribute__ ((noreturn))
run_tcp_service (const char *link, const char *arg, const char *descriptor)
{
  char host[256], port_text[16];
  const char *rest = link + strlen ("/dev/tcp");
  struct sockaddr_storage addr;
  socklen_t addr_len;
  char *scope;
  int port, s;

  memset (&addr, 0, sizeof addr);
  if (*rest == '\0' || strcmp (rest, "/") == 0)
    {
      const char *plus = strrchr (arg, '+');

      if (plus == NULL)
        fail (QREXEC_EXIT_FAILED, "service link '%s': the argument '%s' is not HOST+PORT", link, arg);
      take_text (host, sizeof host, arg, (size_t) (plus - arg), link);
      for (char *p = host; *p != '\0'; p++)
        if (*p == '+')
          *p = ':';
      take_text (port_text, sizeof port_text, plus + 1, strlen (plus + 1), link);
    }
  else
    {
      const char *slash = strchr (rest + 1, '/');

      if (slash == NULL)
        {
          take_text (host, sizeof host, rest + 1, strlen (rest + 1), link);
          take_text (port_text, sizeof port_text, arg, strlen (arg), link);
        }
      else
        {
          take_text (host, sizeof host, rest + 1, (size_t) (slash - rest - 1), link);
          take_text (port_text, sizeof port_text, slash + 1, strlen (slash + 1), link);
        }
    }
  port = parse_port (port_text);
  if (port < 0)
    fail (QREXEC_EXIT_FAILED, "service link '%s': '%s' is not a port", link, port_text);
  scope = strchr (host, '%');
  if (scope != NULL)
    *scope++ = '\0';
  if (strchr (host, ':') == NULL && scope == NULL)
    {
      struct sockaddr_in *in = (struct sockaddr_in *) &addr;

      in->sin_family = AF_INET;
      in->sin_port = htons ((uint16_t) port);
      if (inet_pton (AF_INET, host, &in->sin_addr) != 1)
        fail (QREXEC_EXIT_FAILED, "service link '%s': '%s' is not an IP address", link, host);
      addr_len = sizeof *in;
    }
  else
    {
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &addr;

      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons ((uint16_t) port);
      if (inet_pton (AF_INET6, host, &in6->sin6_addr) != 1)
        fail (QREXEC_EXIT_FAILED, "service link '%s': '%s' is not an IPv6 address", link, host);
      if (scope != NULL)
        {
          char *end;
          unsigned long id = strtoul (scope, &end, 10);

          in6->sin6_scope_id = *scope != '\0' && *end == '\0' ? (uint32_t) id : if_nametoindex (scope);
          if (in6->sin6_scope_id == 0)
            fail (QREXEC_EXIT_FAILED, "service link '%s': no interface '%s'", link, scope);
        }
      addr_len = sizeof *in6;
    }
  close_inherited ();
  s = socket (addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0 || connect (s, (struct sockaddr *) &addr, addr_len) < 0)
    fail (QREXEC_EXIT_FAILED, "cannot connect to %s port %d: %s", host, port, strerror (errno));
  serve_connection (s, descriptor);
}

void
agent_run_service (const char *line, const char *service_path)
{
  /* "service+arg source [name|keyword target]" */
  char *copy = strdup (line);
  char *save = NULL;
  char *full = strtok_r (copy, " ", &save);
  char *source = strtok_r (NULL, " ", &save);
  char *target_type = strtok_r (NULL, " ", &save);
  char *target = strtok_r (NULL, " ", &save);
  char *names[2], *plus, *service, *path, link[PATH_MAX];
  const char *arg = "";
  struct stat st;
  ssize_t link_len;

  if (full == NULL || source == NULL)
    fail (QREXEC_EXIT_FAILED, "malformed service request '%s'", line);
  service = strdup (full);
  plus = strchr (service, '+');
  if (plus != NULL)
    {
      *plus = '\0';
      arg = plus + 1;
    }
  if (*service == '\0' || strchr (full, '/') != NULL || strcmp (service, ".") == 0 ||
      strcmp (service, "..") == 0)
    fail (QREXEC_EXIT_NOT_FOUND, "invalid service name '%s'", full);
  if (strlen (service) > NAME_MAX)
    fail (QREXEC_EXIT_NOT_FOUND, "service name '%.32s...' is too long", service);
  /* SERVICE+ARG, with the empty argument when none was given (as Qubes'
   * dom0 always gives one to a qube), unless too long for a file name. */
  if (asprintf (&names[0], "%s+%s", service, arg) < 0)
    fail (QREXEC_EXIT_FAILED, "out of memory");
  if (strlen (names[0]) > NAME_MAX)
    names[0] = NULL;
  names[1] = service;
  path = find_entry (service_path, (const char *const *) names, 2);
  if (path == NULL && errno == ENOENT)
    fail (QREXEC_EXIT_NOT_FOUND, "service '%s' not found in %s", full, service_path);
  if (path == NULL)
    fail (QREXEC_EXIT_FAILED, "cannot look for service '%s': %s", full, strerror (errno));

  link_len = readlink (path, link, sizeof link - 1);
  if (link_len > 0)
    {
      link[link_len] = '\0';
      if (strcmp (link, "/dev/tcp") == 0 || strncmp (link, "/dev/tcp/", 9) == 0)
        run_tcp_service (link, arg, line);
    }
  if (stat (path, &st) == 0 && S_ISSOCK (st.st_mode))
    run_socket_service (path, line);
  if (stat (path, &st) < 0 || !S_ISREG (st.st_mode) || access (path, X_OK) < 0)
    fail (QREXEC_EXIT_FAILED, "service '%s' is neither an executable file nor a socket", path);

  setenv ("QREXEC_REMOTE_DOMAIN", source, 1);
  setenv ("QREXEC_SERVICE_FULL_NAME", full, 1);
  if (*arg != '\0')
    setenv ("QREXEC_SERVICE_ARGUMENT", arg, 1);
  else
    unsetenv ("QREXEC_SERVICE_ARGUMENT");
  /* The target the caller asked for comes only with a line that names
   * it; Qubes' dom0 names it to a service in dom0 alone, and a service
   * in a qube gets the type empty. */
  unsetenv ("QREXEC_REQUESTED_TARGET");
  unsetenv ("QREXEC_REQUESTED_TARGET_KEYWORD");
  if (target_type != NULL && target != NULL)
    {
      int keyword = strcmp (target_type, "keyword") == 0;

      setenv ("QREXEC_REQUESTED_TARGET_TYPE", target_type, 1);
      setenv (keyword ? "QREXEC_REQUESTED_TARGET_KEYWORD" : "QREXEC_REQUESTED_TARGET", target, 1);
    }
  else
    setenv ("QREXEC_REQUESTED_TARGET_TYPE", "", 1);
  if (*arg != '\0')
    execl (path, path, arg, (char *) NULL);
  else
    execl (path, path, (char *) NULL);
  fail (QREXEC_EXIT_FAILED, "cannot run service '%s': %s", path, strerror (errno));
}
