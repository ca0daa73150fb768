/* qube-cli.h — what every `qube` subcommand shares: its entry in the
 * command table, option parsing with the options common to all commands,
 * opening the state directory, and how failures are reported.
 *
 * A command never prints an error itself: it returns the exit status from
 * qube_cli_fail() or qube_cli_usage_error(), which print the single line.
 */
#pragma once

#include <glib.h>

#include "qube.h"

G_BEGIN_DECLS

/* Exit statuses of `qube`. */
#define QUBE_CLI_EXIT_OK 0
#define QUBE_CLI_EXIT_FAILED 1
#define QUBE_CLI_EXIT_USAGE 2

typedef struct _QubeCli QubeCli;
typedef struct _QubeCliCommand QubeCliCommand;

/* Runs one subcommand; argv[0] is the subcommand's name. Returns the exit
 * status. */
typedef int (*QubeCliRunFunc) (QubeCli *cli, int argc, char **argv);

struct _QubeCliCommand {
  const char *name;
  const char *params;   /* positional arguments, for the usage line */
  const char *summary;  /* one line, for `qube --help` */
  QubeCliRunFunc run;
};

struct _QubeCli {
  char *state_dir;                 /* --state-dir or QUBE_STATE_DIR, or NULL */
  const QubeCliCommand *command;   /* the command being run */
  QubeManager *manager;            /* opened on first use */
  gboolean json;                   /* --json, on listing commands */
};

/* The commands of each group (cmd-*.c), ending with a zeroed entry. */
extern const QubeCliCommand qube_cli_plugin_commands[];
extern const QubeCliCommand qube_cli_qube_commands[];
extern const QubeCliCommand qube_cli_prefs_commands[];
extern const QubeCliCommand qube_cli_feature_commands[];
extern const QubeCliCommand qube_cli_tag_commands[];

/* Parses the subcommand's options (`entries` may be NULL) together with the
 * common ones (--state-dir, and --json when `with_json`). On success
 * *args_out holds the positional arguments (never NULL) and their count is
 * checked against [min_args, max_args] (max_args < 0: no limit). On a
 * usage error prints it and returns FALSE with *status set. */
gboolean qube_cli_parse (QubeCli *cli, const GOptionEntry *entries,
                         gboolean with_json, int min_args, int max_args,
                         int argc, char **argv, char ***args_out,
                         int *status);

/* The state directory in effect: --state-dir, QUBE_STATE_DIR, or the
 * library's default. (transfer full) */
char *qube_cli_get_state_dir (QubeCli *cli);

/* The manager of the state directory, opened once. (transfer none) */
QubeManager *qube_cli_get_manager (QubeCli *cli, GError **error);

/* Looks up a qube by name. (transfer full) */
QubeVm *qube_cli_lookup_vm (QubeCli *cli, const char *name, GError **error);

/* Prints "qube: <message>" as one line and returns QUBE_CLI_EXIT_FAILED. */
int qube_cli_fail (GError *error);
int qube_cli_fail_printf (const char *format, ...) G_GNUC_PRINTF (1, 2);

/* Prints "qube: <command>: <message> (see 'qube <command> --help')" and
 * returns QUBE_CLI_EXIT_USAGE. */
int qube_cli_usage_error (QubeCli *cli, const char *format, ...) G_GNUC_PRINTF (2, 3);

G_END_DECLS
