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
 * back is the call's stdout; the call ends (exit 0) when the service
 * closed the connection or both directions ended (or at either one's end,
 * as the configuration says).  The per-service configuration is Qubes'
 * subset of TOML (`key = value` lines, comments, booleans, decimal
 * integers, single-quoted strings); a file that does not parse fails the
 * call (125).  Plain C and libc only: the agent links statically.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data-io.h"
#include "qrexec-wire.h"
#include "rpc-service.h"

/* The call fails with exit status `code`, the reason on stderr. */
#define fail(code, ...) (agent_log (__VA_ARGS__), _exit (code))

/* The target of `path` when it is a link to /dev/tcp[/...] (malloc'ed),
 * else NULL. */
static char *
tcp_link_target (const char *path)
{
  char target[PATH_MAX];
  ssize_t len = readlink (path, target, sizeof target - 1);

  if (len <= 0)
    return NULL;
  target[len] = '\0';
  if (strcmp (target, "/dev/tcp") != 0 && strncmp (target, "/dev/tcp/", 9) != 0)
    return NULL;
  return strdup (target);
}

/* Whether `entry` is a service (or configuration) entry: 1, 0 when there
 * is none (a link to nothing, but one to /dev/tcp, counts as none, as in
 * Qubes), -1 with errno when it cannot be told. */
static int
entry_exists (const char *entry)
{
  struct stat st;
  char *tcp;
  int saved;

  if (lstat (entry, &st) < 0)
    return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
  if (!S_ISLNK (st.st_mode) || stat (entry, &st) == 0)
    return 1;
  saved = errno;
  tcp = tcp_link_target (entry);
  free (tcp);
  if (tcp != NULL)
    return 1;
  errno = saved;
  return saved == ENOENT ? 0 : -1;
}

/* The first of `names` that exists in a directory of `path` (names in
 * order, each through every directory): a malloc'ed path, or NULL with
 * errno (ENOENT: none). */
static char *
find_entry (const char *path, const char *const *names, size_t n_names)
{
  for (size_t i = 0; i < n_names; i++)
    for (const char *dir = path; names[i] != NULL && *dir != '\0'; dir += *dir == ':')
      {
        size_t len = strcspn (dir, ":");
        char entry[PATH_MAX];
        int found;

        if (len == 0)
          continue;
        if (snprintf (entry, sizeof entry, "%.*s/%s", (int) len, dir, names[i]) >= (int) sizeof entry)
          {
            errno = ENAMETOOLONG;
            return NULL;
          }
        dir += len;
        found = entry_exists (entry);
        if (found != 0)
          return found > 0 ? strdup (entry) : NULL;
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
 * descriptor (unless skipped): a child takes stdin to it (then shuts its
 * writing half), this process what it sends back to stdout.  The call
 * ends when the service closed the connection (the child's writes fail)
 * or both directions ended, or at the end of one direction when the
 * configuration says so. */
static void __attribute__ ((noreturn))
serve_connection (int s, const AgentService *svc)
{
  int done[2];
  int service_open = 1, caller_open = 1;
  pid_t pid;

  signal (SIGPIPE, SIG_IGN);
  if (!svc->skip_descriptor && write_all (s, svc->line, strlen (svc->line) + 1) < 0)
    fail (QREXEC_EXIT_FAILED, "cannot send the service descriptor: %s", strerror (errno));
  if (pipe2 (done, O_CLOEXEC) < 0)
    fail (QREXEC_EXIT_FAILED, "cannot make a pipe: %s", strerror (errno));
  pid = fork ();
  if (pid < 0)
    fail (QREXEC_EXIT_FAILED, "cannot fork: %s", strerror (errno));
  if (pid == 0)
    {
      /* `done` closes with this process: the caller's input is over, or
       * the service takes no more.  Nothing of the call's output stays
       * open here, and this process does not outlive the other. */
      close (done[0]);
      close (1);
      prctl (PR_SET_PDEATHSIG, SIGKILL);
      if (getppid () == 1)
        _exit (0);
      copy (0, s);
      shutdown (s, SHUT_WR);
      _exit (0);
    }
  close (done[1]);
  close (0);
  while (service_open || caller_open)
    {
      /* Once its output is over, the service is still watched for the
       * connection's end (POLLHUP). */
      struct pollfd pfd[2] = { { .fd = s, .events = service_open ? POLLIN : 0 },
                               { .fd = caller_open ? done[0] : -1, .events = POLLIN } };

      if (poll (pfd, 2, -1) < 0)
        {
          if (errno == EINTR)
            continue;
          break;
        }
      if (pfd[1].revents != 0)
        {
          caller_open = 0;
          if (svc->exit_on_client_eof)
            break;
        }
      if (!service_open && (pfd[0].revents & (POLLHUP | POLLERR)) != 0)
        break;
      if (service_open && pfd[0].revents != 0)
        {
          char buf[65536];
          ssize_t n = read (s, buf, sizeof buf);

          if (n < 0 && errno == EINTR)
            continue;
          if (n > 0 && write_all (1, buf, (size_t) n) == 0)
            continue;
          /* The service's output is over. */
          service_open = 0;
          close (1);
          if (svc->exit_on_service_eof || n < 0)
            break;
        }
    }
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
run_socket_service (const char *path, const AgentService *svc)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int s;

  close_inherited ();
  s = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    fail (QREXEC_EXIT_FAILED, "cannot make a socket for service '%s': %s", path, strerror (errno));
  if (strlen (path) < sizeof sun.sun_path)
    strcpy (sun.sun_path, path);
  else
    {
      /* sun_path holds 107 bytes: a longer path is reached from its
       * directory (this process runs nothing else, so its working
       * directory is its own). */
      const char *slash = strrchr (path, '/');
      char *dir;

      if (slash == NULL || slash == path || strlen (slash + 1) >= sizeof sun.sun_path)
        fail (QREXEC_EXIT_FAILED, "service socket path '%s' is too long", path);
      dir = strndup (path, (size_t) (slash - path));
      if (dir == NULL || chdir (dir) < 0)
        fail (QREXEC_EXIT_FAILED, "cannot enter the directory of service socket '%s': %s", path,
              strerror (errno));
      free (dir);
      strcpy (sun.sun_path, slash + 1);
    }
  if (connect (s, (struct sockaddr *) &sun, sizeof sun) < 0)
    fail (QREXEC_EXIT_FAILED, "cannot connect to service socket '%s': %s", path, strerror (errno));
  serve_connection (s, svc);
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
run_tcp_service (const char *link, const char *arg, const AgentService *svc)
{
  char host[256], port_text[16];
  const char *rest = link + strlen ("/dev/tcp");
  struct sockaddr_storage addr;
  socklen_t addr_len;
  char *scope;
  int port, s;

  memset (&addr, 0, sizeof addr);
  if (strcmp (rest, "/") == 0)
    fail (QREXEC_EXIT_FAILED, "service link '%s': /dev/tcp/ names no host", link);
  if (*rest == '\0')
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
          if (*arg != '\0')
            fail (QREXEC_EXIT_FAILED, "service link '%s' names its port: no argument is taken ('%s')",
                  link, arg);
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
  serve_connection (s, svc);
}

/* A value of the configuration: 1 true, 0 false, 2 or more an integer
 * (the value plus 2), -1 a single-quoted string (copied to *text), -2
 * none Qubes' parser takes. */
static long long
config_value (const char *v, char **text)
{
  const char *end;
  long long result;

  if (strncmp (v, "true", 4) == 0)
    result = 1, end = v + 4;
  else if (strncmp (v, "false", 5) == 0)
    result = 0, end = v + 5;
  else if (v[0] == '0')
    result = 2, end = v + 1;
  else if (v[0] >= '1' && v[0] <= '9')
    {
      char *e;

      errno = 0;
      result = strtoll (v, &e, 10);
      if (errno != 0 || result > LLONG_MAX - 2)
        return -2;
      result += 2;
      end = e;
    }
  else if (v[0] == '\'' && !(v[1] == '\'' && v[2] == '\''))
    {
      /* A literal string; triple-quoted ones are not taken. */
      const char *close = strchr (v + 1, '\'');

      if (close == NULL)
        return -2;
      *text = strndup (v + 1, (size_t) (close - v - 1));
      result = -1;
      end = close + 1;
    }
  else
    return -2;
  while (*end == ' ' || *end == '\t')
    end++;
  if (*end != '\0' && *end != '#')
    {
      if (result == -1)
        free (*text);
      return -2;
    }
  return result;
}

/* Reads the service's configuration file `path` into `svc`: 0, or -1
 * (the reason on stderr) when it does not parse. */
static int
read_config (AgentService *svc, const char *path)
{
  static const char *const keys[] = { "wait-for-session", "force-user", "skip-service-descriptor",
                                      "exit-on-service-eof", "exit-on-client-eof" };
  FILE *f = fopen (path, "re");
  char *line = NULL;
  size_t size = 0, lineno = 0;
  ssize_t len;
  unsigned seen = 0;
  int result = 0;

  if (f == NULL)
    {
      fprintf (stderr, "qube-agent: cannot read %s: %s\n", path, strerror (errno));
      return -1;
    }
  while (result == 0 && (len = getline (&line, &size, f)) >= 0)
    {
      char *key_end, *value, *text = NULL;
      long long v;
      size_t k;

      lineno++;
      if ((size_t) len != strlen (line))
        {
          fprintf (stderr, "qube-agent: %s:%zu: a NUL byte\n", path, lineno);
          result = -1;
          break;
        }
      while (len > 0 && strchr ("\n\r \t", line[len - 1]) != NULL)
        line[--len] = '\0';
      if (line[0] == '\0' || line[0] == '#')
        continue;
      if (!((line[0] >= 'a' && line[0] <= 'z') || (line[0] >= 'A' && line[0] <= 'Z')))
        {
          fprintf (stderr, "qube-agent: %s:%zu: not a 'key = value' line\n", path, lineno);
          result = -1;
          break;
        }
      key_end = line + strspn (line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789._-");
      value = key_end + strspn (key_end, " \t");
      if (*value != '=')
        {
          fprintf (stderr, "qube-agent: %s:%zu: no '=' after the key\n", path, lineno);
          result = -1;
          break;
        }
      value++;
      value += strspn (value, " \t");
      *key_end = '\0';
      v = config_value (value, &text);
      if (v == -2)
        {
          fprintf (stderr, "qube-agent: %s:%zu: '%s' is not a value\n", path, lineno, value);
          result = -1;
          break;
        }
      for (k = 0; k < sizeof keys / sizeof keys[0] && strcmp (line, keys[k]) != 0; k++)
        ;
      if (k == sizeof keys / sizeof keys[0])
        {
          /* As Qubes' agent does: a key it does not know is passed over. */
          fprintf (stderr, "qube-agent: %s:%zu: unknown key '%s' passed over\n", path, lineno, line);
          free (text);
          continue;
        }
      if (seen & (1u << k))
        {
          fprintf (stderr, "qube-agent: %s:%zu: '%s' given twice\n", path, lineno, line);
          result = -1;
        }
      /* force-user takes a string, the others a boolean (wait-for-session
       * 0 or 1 too, as it always did). */
      else if (k == 1 ? v != -1 : !(v == 0 || v == 1 || (k == 0 && (v == 2 || v == 3))))
        {
          fprintf (stderr, "qube-agent: %s:%zu: '%s' cannot be %s\n", path, lineno, line, value);
          result = -1;
        }
      else if (k == 1)
        {
          svc->force_user = text;
          text = NULL;
        }
      else if (k == 2)
        svc->skip_descriptor = v == 1;
      else if (k == 3)
        svc->exit_on_service_eof = v == 1;
      else if (k == 4)
        svc->exit_on_client_eof = v == 1;
      /* wait-for-session: a qube of this agent has no graphical session
       * to wait for; the service runs at once. */
      seen |= 1u << k;
      free (text);
    }
  free (line);
  fclose (f);
  return result;
}

void
agent_service_find (AgentService *svc, const char *line, const char *service_path,
                    const char *config_dir)
{
  /* "service+arg source [name|keyword target]" */
  char *copy = strdup (line);
  char *save = NULL;
  char *names[2], *plus, *config;
  struct stat st;

  memset (svc, 0, sizeof *svc);
  svc->line = line;
  svc->full = strtok_r (copy, " ", &save);
  svc->source = strtok_r (NULL, " ", &save);
  svc->target_type = strtok_r (NULL, " ", &save);
  svc->target = strtok_r (NULL, " ", &save);
  svc->arg = "";
  if (svc->full == NULL || svc->source == NULL)
    fail (QREXEC_EXIT_FAILED, "malformed service request '%s'", line);
  svc->service = strdup (svc->full);
  plus = strchr (svc->service, '+');
  if (plus != NULL)
    {
      *plus = '\0';
      svc->arg = plus + 1;
    }
  if (*svc->service == '\0' || strchr (svc->full, '/') != NULL ||
      strcmp (svc->service, ".") == 0 || strcmp (svc->service, "..") == 0)
    fail (QREXEC_EXIT_NOT_FOUND, "invalid service name '%s'", svc->full);
  if (strlen (svc->service) > NAME_MAX)
    fail (QREXEC_EXIT_NOT_FOUND, "service name '%.32s...' is too long", svc->service);
  /* SERVICE+ARG, with the empty argument when none was given (as Qubes'
   * dom0 always gives one to a qube), unless too long for a file name. */
  if (asprintf (&names[0], "%s+%s", svc->service, svc->arg) < 0)
    fail (QREXEC_EXIT_FAILED, "out of memory");
  if (strlen (names[0]) > NAME_MAX)
    names[0] = NULL;
  names[1] = svc->service;
  /* Its configuration first, as Qubes reads it: found the same way, in
   * one directory. */
  config = find_entry (config_dir, (const char *const *) names, 2);
  if (config == NULL && errno != ENOENT)
    fail (QREXEC_EXIT_FAILED, "cannot look for the configuration of '%s' in %s: %s", svc->full,
          config_dir, strerror (errno));
  if (config != NULL && read_config (svc, config) < 0)
    fail (QREXEC_EXIT_FAILED, "the configuration of service '%s' (%s) is invalid", svc->full,
          config);
  free (config);
  svc->path = find_entry (service_path, (const char *const *) names, 2);
  if (svc->path == NULL && errno == ENOENT)
    fail (QREXEC_EXIT_NOT_FOUND, "service '%s' not found in %s", svc->full, service_path);
  if (svc->path == NULL)
    fail (QREXEC_EXIT_FAILED, "cannot look for service '%s': %s", svc->full, strerror (errno));
  /* What it is, once. */
  svc->tcp_link = tcp_link_target (svc->path);
  if (svc->tcp_link == NULL && stat (svc->path, &st) == 0)
    {
      svc->is_socket = S_ISSOCK (st.st_mode);
      svc->is_executable = S_ISREG (st.st_mode);
    }
}

void
agent_service_serve_connection (const AgentService *svc)
{
  if (svc->tcp_link != NULL)
    run_tcp_service (svc->tcp_link, svc->arg, svc);
  if (svc->is_socket)
    run_socket_service (svc->path, svc);
}

void
agent_service_exec (const AgentService *svc)
{
  const char *path = svc->path, *arg = svc->arg;

  if (!svc->is_executable || access (path, X_OK) < 0)
    fail (QREXEC_EXIT_FAILED, "service '%s' is neither an executable file nor a socket", path);

  setenv ("QREXEC_REMOTE_DOMAIN", svc->source, 1);
  setenv ("QREXEC_SERVICE_FULL_NAME", svc->full, 1);
  if (*arg != '\0')
    setenv ("QREXEC_SERVICE_ARGUMENT", arg, 1);
  else
    unsetenv ("QREXEC_SERVICE_ARGUMENT");
  /* The target the caller asked for comes only with a line that names
   * it; Qubes' dom0 names it to a service in dom0 alone, and a service
   * in a qube gets the type empty. */
  unsetenv ("QREXEC_REQUESTED_TARGET");
  unsetenv ("QREXEC_REQUESTED_TARGET_KEYWORD");
  if (svc->target_type != NULL && svc->target != NULL)
    {
      int keyword = strcmp (svc->target_type, "keyword") == 0;

      setenv ("QREXEC_REQUESTED_TARGET_TYPE", svc->target_type, 1);
      setenv (keyword ? "QREXEC_REQUESTED_TARGET_KEYWORD" : "QREXEC_REQUESTED_TARGET",
              svc->target, 1);
    }
  else
    setenv ("QREXEC_REQUESTED_TARGET_TYPE", "", 1);
  if (*arg != '\0')
    execl (path, path, arg, (char *) NULL);
  else
    execl (path, path, (char *) NULL);
  fail (QREXEC_EXIT_FAILED, "cannot run service '%s': %s", path, strerror (errno));
}
