/* rpc-service.h — running a qrexec service as Qubes' agent runs one
 * (rpc-service.c). */
#pragma once

#include <stdbool.h>

/* A service found, with the settings of Qubes' per-service configuration
 * (the first of CONFIG_DIR/SERVICE+ARG, CONFIG_DIR/SERVICE there is). */
typedef struct {
  const char *line;          /* what follows "QUBESRPC " */
  char *full, *service;      /* SERVICE+ARG as called, SERVICE */
  const char *arg;           /* ARG ("" when none) */
  char *source, *target_type, *target;
  char *path;                /* the entry found */
  char *tcp_link;            /* its target when it is a link to /dev/tcp[/...] */
  bool is_socket;            /* else: it is a socket (links followed) */
  bool is_executable;        /* else: a regular file (whether it may be run is
                                asked as the user who runs it) */
  char *force_user;          /* force-user, or NULL */
  bool skip_descriptor;      /* skip-service-descriptor */
  bool exit_on_service_eof, exit_on_client_eof;
} AgentService;

/* Finds the service `line` names ("service+arg source [name|keyword
 * target]") in the directories of `service_path` (':'-separated) and
 * reads its configuration from `config_dir`; on failure exits (125, or
 * 127 for a service not found) with a line on stderr. */
void agent_service_find (AgentService *svc, const char *line, const char *service_path,
                         const char *config_dir);

/* A service that is a socket or a link to /dev/tcp: serves the
 * connection to it in this process, as the agent's user (Qubes connects
 * before any user switch; force-user is for executables), and never
 * returns.  Returns for any other service. */
void agent_service_serve_connection (const AgentService *svc);

/* Executes the service found (after the user switch); never returns. */
void agent_service_exec (const AgentService *svc) __attribute__ ((noreturn));
