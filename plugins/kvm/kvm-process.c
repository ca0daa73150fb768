/* kvm-process.c — detached QEMU processes (see kvm-process.h). */
#include "config.h"

#include "kvm-process.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Only async-signal-safe calls between fork() and exec(): everything the
 * children need is prepared before forking. */
pid_t
kvm_process_spawn_detached (const char *const *argv, const char *log_path,
                            int pass_fd, GError **error)
{
  int pipefd[2];
  int null_fd, log_fd;
  int moved_fd = -1;
  pid_t child, grandchild = 0;
  int status;
  ssize_t n;

  null_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                   "cannot open /dev/null: %s", g_strerror (errno));
      return 0;
    }
  log_fd = open (log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (log_fd < 0)
    {
      int saved = errno;
      close (null_fd);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "cannot open %s: %s", log_path, g_strerror (saved));
      return 0;
    }
  /* Above the descriptors the child sets up, so that setting them up
   * cannot close it first. */
  if (pass_fd >= 0 && pass_fd <= KVM_PROCESS_PASSED_FD)
    {
      moved_fd = fcntl (pass_fd, F_DUPFD_CLOEXEC, KVM_PROCESS_PASSED_FD + 1);
      if (moved_fd < 0)
        {
          int saved = errno;
          close (null_fd);
          close (log_fd);
          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                       "cannot move a descriptor: %s", g_strerror (saved));
          return 0;
        }
      pass_fd = moved_fd;
    }
  if (pipe2 (pipefd, O_CLOEXEC) < 0)
    {
      int saved = errno;
      close (null_fd);
      close (log_fd);
      if (moved_fd >= 0)
        close (moved_fd);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "cannot make a pipe: %s", g_strerror (saved));
      return 0;
    }

  child = fork ();
  if (child < 0)
    {
      int saved = errno;
      close (null_fd);
      close (log_fd);
      close (pipefd[0]);
      close (pipefd[1]);
      if (moved_fd >= 0)
        close (moved_fd);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "cannot fork: %s", g_strerror (saved));
      return 0;
    }
  if (child == 0)
    {
      /* Intermediate child: new session, fork the real process, report its
       * pid and exit so that init adopts it. */
      pid_t pid;

      setsid ();
      pid = fork ();
      if (pid == 0)
        {
          sigset_t none;

          sigemptyset (&none);
          sigprocmask (SIG_SETMASK, &none, NULL);
          if (dup2 (null_fd, 0) < 0 || dup2 (log_fd, 1) < 0 || dup2 (log_fd, 2) < 0)
            _exit (127);
          /* dup2() leaves the copy inheritable. */
          if (pass_fd >= 0 && dup2 (pass_fd, KVM_PROCESS_PASSED_FD) < 0)
            _exit (127);
          execv (argv[0], (char *const *) argv);
          _exit (127);
        }
      if (write (pipefd[1], &pid, sizeof pid) != (ssize_t) sizeof pid)
        _exit (1);
      _exit (pid > 0 ? 0 : 1);
    }

  close (pipefd[1]);
  close (null_fd);
  close (log_fd);
  if (moved_fd >= 0)
    close (moved_fd);
  do
    n = read (pipefd[0], &grandchild, sizeof grandchild);
  while (n < 0 && errno == EINTR);
  close (pipefd[0]);
  while (waitpid (child, &status, 0) < 0 && errno == EINTR)
    ;
  if (n != (ssize_t) sizeof grandchild || grandchild <= 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "cannot start %s: fork failed", argv[0]);
      return 0;
    }
  return grandchild;
}

pid_t
kvm_process_read_pidfile (const char *pidfile)
{
  g_autofree char *text = NULL;
  char *end = NULL;
  gint64 pid;

  if (!g_file_get_contents (pidfile, &text, NULL, NULL))
    return 0;
  g_strstrip (text);
  pid = g_ascii_strtoll (text, &end, 10);
  if (end == text || *end != '\0' || pid <= 1 || pid > G_MAXINT32)
    return 0;
  return (pid_t) pid;
}

/* The state letter of /proc/PID/stat, or 0. */
static char
process_state (pid_t pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree char *text = NULL;
  const char *p;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return 0;
  /* The command name may hold spaces and parentheses: the state follows
   * the last ')'. */
  p = strrchr (text, ')');
  if (p == NULL || p[1] != ' ' || p[2] == '\0')
    return 0;
  return p[2];
}

gboolean
kvm_process_alive (pid_t pid)
{
  char state;

  if (pid <= 1)
    return FALSE;
  state = process_state (pid);
  return state != 0 && state != 'Z' && state != 'X';
}

gboolean
kvm_process_is_ours (pid_t pid, const char *marker)
{
  g_autofree char *path = NULL;
  g_autofree char *cmdline = NULL;
  gsize len;

  if (!kvm_process_alive (pid))
    return FALSE;
  path = g_strdup_printf ("/proc/%d/cmdline", (int) pid);
  if (!g_file_get_contents (path, &cmdline, &len, NULL))
    return FALSE;
  /* Arguments are NUL-separated: look at each one. */
  for (gsize off = 0; off < len; off += strlen (cmdline + off) + 1)
    if (strstr (cmdline + off, marker) != NULL)
      return TRUE;
  return FALSE;
}

gboolean
kvm_process_wait_gone (pid_t pid, const char *marker, guint timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  while (kvm_process_is_ours (pid, marker))
    {
      if (g_get_monotonic_time () >= deadline)
        return FALSE;
      g_usleep (10 * 1000);
    }
  return TRUE;
}

guint64
kvm_process_overhead_kib (pid_t pid, guint64 guest_ram_kib)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/smaps", (int) pid);
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;
  guint64 total = 0, guest = 0, size = 0;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return 0;
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      guint64 value;

      if (sscanf (lines[i], "Size: %" G_GUINT64_FORMAT " kB", &value) == 1)
        size = value;
      else if (sscanf (lines[i], "Anonymous: %" G_GUINT64_FORMAT " kB", &value) == 1)
        {
          /* Only anonymous memory counts: file pages (the kernel image QEMU
           * keeps mapped, its own binary) are page cache, shared between
           * qubes and reclaimable.  Guest RAM is one anonymous block of
           * exactly its size. */
          total += value;
          if (size == guest_ram_kib && guest == 0)
            guest = value;
        }
    }
  return total > guest ? total - guest : 0;
}

guint64
kvm_process_cpu_time_ns (pid_t pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree char *text = NULL;
  unsigned long long utime = 0, stime = 0;
  const char *p;
  long ticks = sysconf (_SC_CLK_TCK);

  if (ticks <= 0 || !g_file_get_contents (path, &text, NULL, NULL))
    return 0;
  p = strrchr (text, ')');
  if (p == NULL)
    return 0;
  /* Fields after the name: state(3) ... utime(14) stime(15). */
  if (sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
              &utime, &stime) != 2)
    return 0;
  return (guint64) (utime + stime) * (G_GUINT64_CONSTANT (1000000000) / (guint64) ticks);
}

char *
kvm_tail_lines (const char *path, guint n_lines)
{
  g_autofree char *text = NULL;
  gsize len;
  gsize start;
  guint seen = 0;

  if (!g_file_get_contents (path, &text, &len, NULL) || len == 0)
    return NULL;
  while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
    len--;
  start = len;
  while (start > 0)
    {
      if (text[start - 1] == '\n' && ++seen == n_lines)
        break;
      start--;
    }
  /* The console is guest output: keep it printable. */
  g_autofree char *tail = g_strndup (text + start, len - start);
  for (char *c = tail; *c != '\0'; c++)
    if ((guchar) *c < 0x20 && *c != '\n')
      *c = ' ';
  return g_utf8_make_valid (tail, -1);
}
