/* qube-host.c — the services the core offers every plugin (QubeHost).
 *
 * Logging goes to GLib structured logging in the domain
 * "qube-plugin-<name>"; errors are kept per thread until the core reads
 * them; commands run through GSubprocess; configuration comes from the
 * plugin's group in <state_dir>/plugins.conf.  Nothing here calls back into
 * a plugin.
 */
#include "config.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <gio/gio.h>

#include "qube-plugin-private.h"

/* The table a plugin sees, followed by what only the core sees. */
typedef struct {
  QubeHost host;
  char *plugin_name;
  char *state_dir;
  char *runtime_dir;
  char *log_domain;
  /* key -> value of the plugin's group; values are handed out to the
   * plugin and live as long as the table. */
  GHashTable *config;
} QubeHostPriv;

/* The last error a plugin reported on this thread. */
typedef struct {
  const QubeHost *host;
  int code;
  char *message;
} QubeThreadError;

static void
thread_error_free (gpointer data)
{
  QubeThreadError *terr = data;

  g_free (terr->message);
  g_free (terr);
}

static GPrivate thread_error = G_PRIVATE_INIT (thread_error_free);

static QubeHostPriv *
host_priv (const QubeHost *host)
{
  return (QubeHostPriv *) host;
}

static GLogLevelFlags
log_level_to_glib (QubeLogLevel level)
{
  switch (level)
    {
    /* GLib's own error level aborts the process: a plugin's error must not. */
    case QUBE_LOG_ERROR:
    case QUBE_LOG_WARNING:
      return G_LOG_LEVEL_WARNING;
    case QUBE_LOG_MESSAGE:
      return G_LOG_LEVEL_MESSAGE;
    case QUBE_LOG_INFO:
      return G_LOG_LEVEL_INFO;
    case QUBE_LOG_DEBUG:
    default:
      return G_LOG_LEVEL_DEBUG;
    }
}

static void host_log (const QubeHost *host, QubeLogLevel level,
                      const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static void
host_log (const QubeHost *host, QubeLogLevel level, const char *fmt, ...)
{
  QubeHostPriv *priv = host_priv (host);
  g_autofree char *message = NULL;
  va_list args;

  if (fmt == NULL)
    return;

  va_start (args, fmt);
  message = g_strdup_vprintf (fmt, args);
  va_end (args);

  const GLogField fields[] = {
    { "GLIB_DOMAIN", priv->log_domain, -1 },
    { "MESSAGE", message, -1 },
    { "QUBE_PLUGIN", priv->plugin_name, -1 },
  };
  g_log_structured_array (log_level_to_glib (level), fields,
                          G_N_ELEMENTS (fields));
}

static void host_set_error (const QubeHost *host, QubeAbiError code,
                            const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static void
host_set_error (const QubeHost *host, QubeAbiError code, const char *fmt, ...)
{
  QubeThreadError *terr = g_new0 (QubeThreadError, 1);
  va_list args;

  terr->host = host;
  terr->code = code;
  if (fmt != NULL)
    {
      va_start (args, fmt);
      terr->message = g_strdup_vprintf (fmt, args);
      va_end (args);
    }
  /* Replacing the old value frees it. */
  g_private_replace (&thread_error, terr);
}

/* Reports a failure of a host service the way a plugin would. */
static int
host_fail (const QubeHost *host, QubeAbiError code, const char *message)
{
  host_set_error (host, code, "%s", message);
  return code;
}

/* Copies `bytes` into malloc() memory with a NUL after it, because the
 * plugin releases it with free(). */
static char *
bytes_to_malloc (GBytes *bytes, size_t *len_out)
{
  gsize len = 0;
  const char *data = bytes != NULL ? g_bytes_get_data (bytes, &len) : NULL;
  char *copy = malloc (len + 1);

  if (copy == NULL)
    return NULL;
  if (len > 0)
    memcpy (copy, data, len);
  copy[len] = '\0';
  *len_out = len;
  return copy;
}

static int
host_run (const QubeHost *host, const char *const *argv, const void *input,
          size_t input_len, QubeRunResult *result)
{
  g_autoptr(GSubprocess) proc = NULL;
  g_autoptr(GBytes) stdin_bytes = NULL;
  g_autoptr(GBytes) stdout_bytes = NULL;
  g_autoptr(GBytes) stderr_bytes = NULL;
  g_autoptr(GError) local_error = NULL;
  g_autofree char *cmdline = NULL;
  int status;

  if (result == NULL || argv == NULL || argv[0] == NULL || argv[0][0] == '\0')
    return host_fail (host, QUBE_ABI_E_INVALID,
                      "cannot run a command: no command or no result given");
  memset (result, 0, sizeof *result);

  cmdline = g_strjoinv (" ", (char **) argv);
  g_debug ("plugin '%s' runs: %s", host->plugin_name, cmdline);

  proc = g_subprocess_newv (argv,
                            G_SUBPROCESS_FLAGS_STDIN_PIPE |
                            G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                            G_SUBPROCESS_FLAGS_STDERR_PIPE,
                            &local_error);
  if (proc == NULL)
    {
      g_autofree char *message = g_strdup_printf ("cannot run '%s': %s",
                                                  argv[0],
                                                  local_error->message);
      return host_fail (host,
                        g_error_matches (local_error, G_SPAWN_ERROR,
                                         G_SPAWN_ERROR_NOENT)
                          ? QUBE_ABI_E_NOT_FOUND : QUBE_ABI_E_FAILED,
                        message);
    }

  /* No input still means a pipe, closed at once: the command sees EOF
   * rather than reading the caller's standard input. */
  stdin_bytes = g_bytes_new (input_len > 0 ? input : NULL,
                             input != NULL ? input_len : 0);

  if (!g_subprocess_communicate (proc, stdin_bytes, NULL,
                                 &stdout_bytes, &stderr_bytes, &local_error))
    {
      g_autofree char *message = g_strdup_printf ("cannot talk to '%s': %s",
                                                  cmdline,
                                                  local_error->message);
      /* Do not leave the child behind. */
      g_subprocess_force_exit (proc);
      g_subprocess_wait (proc, NULL, NULL);
      return host_fail (host, QUBE_ABI_E_IO, message);
    }

  if (g_subprocess_get_if_exited (proc))
    status = g_subprocess_get_exit_status (proc);
  else if (g_subprocess_get_if_signaled (proc))
    status = 128 + g_subprocess_get_term_sig (proc);
  else
    status = 255;

  result->exit_status = status;
  result->out = bytes_to_malloc (stdout_bytes, &result->out_len);
  result->err = bytes_to_malloc (stderr_bytes, &result->err_len);
  if (result->out == NULL || result->err == NULL)
    {
      free (result->out);
      free (result->err);
      memset (result, 0, sizeof *result);
      return host_fail (host, QUBE_ABI_E_NO_MEMORY,
                        "cannot keep the output of a command: out of memory");
    }
  return QUBE_ABI_OK;
}

static const char *
host_config_get (const QubeHost *host, const char *key)
{
  QubeHostPriv *priv = host_priv (host);

  if (key == NULL)
    return NULL;
  return g_hash_table_lookup (priv->config, key);
}

QubeHost *
_qube_host_new (const char *plugin_name,
                const char *state_dir,
                const char *runtime_dir,
                GKeyFile *config)
{
  QubeHostPriv *priv = g_new0 (QubeHostPriv, 1);

  priv->plugin_name = g_strdup (plugin_name);
  priv->state_dir = g_strdup (state_dir);
  priv->runtime_dir = g_strdup (runtime_dir);
  priv->log_domain = g_strconcat ("qube-plugin-", plugin_name, NULL);
  priv->config = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  if (config != NULL && g_key_file_has_group (config, plugin_name))
    {
      g_auto(GStrv) keys = g_key_file_get_keys (config, plugin_name, NULL, NULL);

      for (gsize i = 0; keys != NULL && keys[i] != NULL; i++)
        {
          char *value = g_key_file_get_string (config, plugin_name, keys[i], NULL);

          if (value != NULL)
            g_hash_table_replace (priv->config, g_strdup (keys[i]), value);
        }
    }

  priv->host.size = sizeof (QubeHost);
  priv->host.abi_minor = QUBE_ABI_MINOR;
  priv->host.log = host_log;
  priv->host.set_error = host_set_error;
  priv->host.run = host_run;
  priv->host.config_get = host_config_get;
  priv->host.state_dir = priv->state_dir;
  priv->host.runtime_dir = priv->runtime_dir;
  priv->host.plugin_name = priv->plugin_name;
  priv->host.core_data = NULL;

  return &priv->host;
}

void
_qube_host_free (QubeHost *host)
{
  QubeHostPriv *priv;

  if (host == NULL)
    return;
  priv = host_priv (host);
  g_free (priv->plugin_name);
  g_free (priv->state_dir);
  g_free (priv->runtime_dir);
  g_free (priv->log_domain);
  g_hash_table_unref (priv->config);
  g_free (priv);
}

gboolean
_qube_host_take_thread_error (const QubeHost *host,
                              int *code,
                              char **message)
{
  QubeThreadError *terr = g_private_get (&thread_error);
  gboolean found = FALSE;

  if (terr != NULL && (host == NULL || terr->host == host))
    {
      *code = terr->code;
      *message = g_steal_pointer (&terr->message);
      found = TRUE;
    }
  g_private_replace (&thread_error, NULL);
  return found;
}
