/* qube-names.c — the naming rules: qube names as Qubes OS has them, and
 * the narrower charset of feature keys, tags, pool and plugin names.
 *
 * Names end up in file names, policy files and messages, so anything
 * outside the allowed charset is refused here rather than escaped later.
 */
#include "config.h"

#include <string.h>

#include "qube-error.h"
#include "qube-manager.h"
#include "qube-vm-private.h"

#define QUBE_NAME_MAX 31
#define QUBE_KEY_MAX 255

/* Words Qubes gives another meaning (policy keywords, the Xen names of
 * the host) and so cannot be names of qubes a user creates. */
static const char *const reserved_names[] = {
  "none", "default", "dom0", "Domain-0",
};

static gboolean
is_name_char (char c)
{
  return g_ascii_isalnum (c) || c == '_' || c == '.' || c == '-';
}

char *
_qube_printable (const char *text)
{
  if (text == NULL)
    return g_strdup ("(null)");
  if (g_utf8_validate (text, -1, NULL))
    {
      gboolean plain = TRUE;
      for (const char *p = text; *p != '\0' && plain; p = g_utf8_next_char (p))
        plain = !g_unichar_iscntrl (g_utf8_get_char (p));
      if (plain)
        return g_strdup (text);
    }
  return g_strescape (text, NULL);
}

/* The first character outside the charset, for the message. */
static gboolean
check_charset (const char *what, const char *name, GError **error)
{
  for (const char *p = name; *p != '\0'; p++)
    if (!is_name_char (*p))
      {
        g_autofree char *shown = _qube_printable (name);
        char bad[2] = { *p, '\0' };
        g_autofree char *bad_shown = _qube_printable (bad);
        g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID_NAME,
                     "%s '%s' contains '%s': only letters, digits, '_', '.' and '-' "
                     "are allowed", what, shown, bad_shown);
        return FALSE;
      }
  return TRUE;
}

gboolean
_qube_name_form_is_valid (const char *name, GError **error)
{
  g_autofree char *shown = NULL;
  size_t len;

  if (name == NULL || *name == '\0')
    {
      g_set_error_literal (error, QUBE_ERROR, QUBE_ERROR_INVALID_NAME,
                           "a qube name must not be empty");
      return FALSE;
    }
  shown = _qube_printable (name);
  len = strlen (name);
  if (len > QUBE_NAME_MAX)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID_NAME,
                   "qube name '%s' is too long: %zu characters, at most %d are allowed",
                   shown, len, QUBE_NAME_MAX);
      return FALSE;
    }
  if (!g_ascii_isalpha (name[0]))
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID_NAME,
                   "qube name '%s' must start with a letter", shown);
      return FALSE;
    }
  return check_charset ("qube name", name, error);
}

/**
 * qube_name_is_valid:
 * @name: (nullable): a proposed qube name
 * @error: return location for a #GError, or %NULL
 *
 * Checks a name for a new qube against the Qubes rules: it starts with a
 * letter, holds only ASCII letters, digits, `_`, `.` and `-`, has at most
 * 31 characters, is none of the reserved words `none`, `default`, `dom0`,
 * `Domain-0`, and does not end in `-dm` (the name of a qube's device model).
 *
 * Returns: %TRUE when @name may be used; otherwise %FALSE with
 *   %QUBE_ERROR_INVALID_NAME saying which rule it breaks
 */
gboolean
qube_name_is_valid (const char *name, GError **error)
{
  g_autofree char *shown = NULL;

  if (!_qube_name_form_is_valid (name, error))
    return FALSE;
  shown = _qube_printable (name);
  for (gsize i = 0; i < G_N_ELEMENTS (reserved_names); i++)
    if (strcmp (name, reserved_names[i]) == 0)
      {
        g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID_NAME,
                     "qube name '%s' is reserved", shown);
        return FALSE;
      }
  if (g_str_has_suffix (name, "-dm"))
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID_NAME,
                   "qube name '%s' must not end in '-dm' (reserved for device models)",
                   shown);
      return FALSE;
    }
  return TRUE;
}

gboolean
_qube_key_is_valid (const char *what, const char *key, GError **error)
{
  size_t len;

  if (key == NULL || *key == '\0')
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID_NAME,
                   "a %s must not be empty", what);
      return FALSE;
    }
  len = strlen (key);
  if (len > QUBE_KEY_MAX)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID_NAME,
                   "%s is too long: %zu bytes, at most %d are allowed",
                   what, len, QUBE_KEY_MAX);
      return FALSE;
    }
  return check_charset (what, key, error);
}
