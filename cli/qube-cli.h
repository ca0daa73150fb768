/* qube-cli.h — what every `qube` subcommand shares: its entry in the
 * command table, option parsing with the options common to all commands,
 * opening the state directory, and how failures are reported.
 *
 * A command never prints an error itself: it returns the exit status from
 * cli_fail() or cli_usage_error(), which print the single line.
 */
#pragma once

#include <glib.h>

#include "qube.h"

G_BEGIN_DECLS

/* Exit statuses of `qube`. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAILED 1
#define CLI_EXIT_USAGE 2

typedef struct _Cli Cli;
typedef struct _CliCommand CliCommand;

/* Runs one subcommand; argv[0] is the subcommand's name. Returns the exit
 * status. */
typedef int (*CliRunFunc) (Cli *cli, int argc, char **argv);

struct _CliCommand {
  const char *name;
  const char *params;   /* positional arguments, for the usage line */
  const char *summary;  /* one line, for `qube --help` */
  CliRunFunc run;
};

struct _Cli {
  char *state_dir;                 /* --state-dir, or NULL */
  const CliCommand *command;   /* the command being run */
  QubeManager *manager;            /* opened on first use */
  gboolean json;                   /* --json, on listing commands */
  gboolean embedded;               /* --embedded: never talk to qubed */
  QubeAdmin *admin;                /* the Admin API in-process, when embedded */
  char *qubed_socket;              /* qubed's socket, when talking to it */
};

/* The commands of each group (cmd-*.c), ending with a zeroed entry. */
extern const CliCommand cli_plugin_commands[];
extern const CliCommand cli_qube_commands[];
extern const CliCommand cli_prefs_commands[];
extern const CliCommand cli_feature_commands[];
extern const CliCommand cli_tag_commands[];
extern const CliCommand cli_pool_commands[];
extern const CliCommand cli_volume_commands[];

/* Runs a command that has subcommands (`qube pool add ...`): argv[0] is
 * the group, argv[1] the subcommand, looked up in `subs` (a zeroed entry
 * ends it; each name is "GROUP SUB").  `qube GROUP --help` lists them. */
int cli_run_group (Cli *cli, const CliCommand *subs, int argc, char **argv);
extern const CliCommand cli_run_commands[];
extern const CliCommand cli_policy_commands[];
extern const CliCommand cli_power_commands[];
extern const CliCommand cli_template_commands[];

/* Parses the subcommand's options (`entries` may be NULL) together with the
 * common ones (--state-dir, and --json when `with_json`). On success
 * *args_out holds the positional arguments (never NULL) and their count is
 * checked against [min_args, max_args] (max_args < 0: no limit). On a
 * usage error prints it and returns FALSE with *status set. */
gboolean cli_parse (Cli *cli, const GOptionEntry *entries,
                         gboolean with_json, int min_args, int max_args,
                         int argc, char **argv, char ***args_out,
                         int *status);

/* The state directory in effect: --state-dir, QUBE_STATE_DIR, or the
 * library's default. (transfer full) */
char *cli_get_state_dir (Cli *cli);

/* The manager of the state directory, opened once. (transfer none) */
QubeManager *cli_get_manager (Cli *cli, GError **error);
/* The qube NAME in the in-process store (for what the Admin API does not
 * carry: volume import and export). */
QubeVm *cli_lookup_vm (Cli *cli, const char *name, GError **error);

/* One Admin API call as the admin qube (dom0 for the host itself), answered
 * by qubed when its socket exists (`$QUBED_SOCKET`, else qubed's default;
 * not with --embedded or an explicit state directory), else by the same
 * Admin API in-process.  Both send the same request bytes and read the same
 * reply, so a command prints the same either way.  Returns the reply's
 * content, or NULL with the exception's message in `error` (its code from
 * the exception's type: QUBE_ERROR_NOT_FOUND for a missing qube, property,
 * feature or tag, ...).  (transfer full) */
char *cli_admin_call (Cli *cli, const char *method, const char *arg,
                      const char *dest, const char *payload, GError **error);

/* Undoes the escaping in admin.vm.property.GetAll's lines: a backslash
 * and n is a newline, two backslashes one.  (transfer full) */
char *cli_unescape_line (const char *text);

/* The same, for replies that are one item per line. (transfer full) */
char **cli_admin_call_lines (Cli *cli, const char *method, const char *arg,
                             const char *dest, GError **error);

/* The same, for an Info reply (`key=value` lines): a table of key to
 * value (the first line of a key counts), and the lines themselves in
 * *lines_out when that is not NULL.  (transfer full) */
GHashTable *cli_admin_call_info (Cli *cli, const char *method, const char *arg,
                                 const char *dest, char ***lines_out, GError **error);
/* A value of such a table: "True" (FALSE when absent), a number (0 when
 * absent), a string (NULL when absent or empty). */
gboolean cli_info_bool (GHashTable *info, const char *key);
guint64 cli_info_uint (GHashTable *info, const char *key);
const char *cli_info_string (GHashTable *info, const char *key);

/* Releases what the calls opened. */
void cli_admin_close (Cli *cli);

/* Prints "qube: <message>" as one line and returns CLI_EXIT_FAILED. */
int cli_fail (GError *error);
int cli_fail_printf (const char *format, ...) G_GNUC_PRINTF (1, 2);

/* Prints "qube: <command>: <message> (see 'qube <command> --help')" and
 * returns CLI_EXIT_USAGE. */
int cli_usage_error (Cli *cli, const char *format, ...) G_GNUC_PRINTF (2, 3);

G_END_DECLS
