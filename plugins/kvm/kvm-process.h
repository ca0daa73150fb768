/* kvm-process.h — QEMU processes that outlive the process starting them.
 *
 * A qube's QEMU is started detached (its own session, reparented to init),
 * so that the `qube` command that started it may exit.  Later commands find
 * it again through the pid file in the qube's runtime directory and check
 * that the pid still belongs to that QEMU before signalling it.
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

/* The descriptor number kvm_process_spawn_detached() gives `pass_fd` in
 * the new process. */
#define KVM_PROCESS_PASSED_FD 3

/* Starts argv (argv[0] an absolute path) detached, with standard input from
 * /dev/null and standard output and error appended to `log_path`, and
 * `pass_fd` (unless -1) as descriptor KVM_PROCESS_PASSED_FD; nothing else
 * of ours is inherited (our descriptors are close-on-exec).  Returns the
 * new process's pid, or 0 with an error. */
pid_t kvm_process_spawn_detached (const char *const *argv,
                                  const char *log_path,
                                  int pass_fd,
                                  GError **error);

/* The pid in `pidfile`, or 0 when there is none or it is not a pid. */
pid_t kvm_process_read_pidfile (const char *pidfile);

/* TRUE when `pid` exists and is not a zombie. */
gboolean kvm_process_alive (pid_t pid);

/* TRUE when `pid` is alive (not a zombie) and its command line contains
 * `marker` (a path only this QEMU was given), so a recycled pid is never
 * taken for the qube's QEMU. */
gboolean kvm_process_is_ours (pid_t pid, const char *marker);

/* Waits up to `timeout_ms` for kvm_process_is_ours() to become FALSE. */
gboolean kvm_process_wait_gone (pid_t pid, const char *marker, guint timeout_ms);

/* Anonymous resident memory of `pid` outside its mapping of exactly
 * `guest_ram_kib` (the guest's RAM), in KiB; 0 when unknown. */
guint64 kvm_process_overhead_kib (pid_t pid, guint64 guest_ram_kib);

/* CPU time `pid` used so far, in nanoseconds; 0 when unknown. */
guint64 kvm_process_cpu_time_ns (pid_t pid);

/* The last `n_lines` lines of the text file at `path`, or NULL. */
char *kvm_tail_lines (const char *path, guint n_lines);

G_END_DECLS
