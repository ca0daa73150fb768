/* fuzz-qrexec.c — libFuzzer harness for the qrexec message parser
 * (core/qrexec-protocol.c): arbitrary bytes from an arbitrary side, cut
 * into arbitrary chunks, must give valid messages or a clean error, never
 * a crash, a leak or undefined behaviour.
 *
 * Input: byte 0 picks the side (bits 0-1), whether a valid HELLO comes
 * first so the fuzzer reaches the later states quickly (bit 2) and its
 * version (bit 3: 2, else 3); byte 1 is the chunk size seed; the rest is
 * the stream.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "qrexec-protocol.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Every character of `s` is a letter, a digit, one of "_-." or one of
 * `extra`. */
static int
made_of (const char *s, const char *extra)
{
  for (; *s != '\0'; s++)
    if (!g_ascii_isalnum (*s) && strchr ("_-.", *s) == NULL && strchr (extra, *s) == NULL)
      return 0;
  return 1;
}

static void
check_message (const QubeQrexecMessage *msg)
{
  /* What the parser hands out must keep its promises: a request to act on
   * names a service and holds only allowed characters; one to refuse says
   * why. */
  if (msg->refusal != NULL && msg->type != MSG_TRIGGER_SERVICE && msg->type != MSG_TRIGGER_SERVICE3)
    __builtin_trap ();
  if (msg->refusal == NULL && msg->service_name != NULL &&
      (msg->service_name[0] == '\0' || msg->service_name[0] == '+' || msg->service_name[0] == '.' ||
       !made_of (msg->service_name, "+") || !made_of (msg->target_domain, "@:") ||
       !made_of (msg->ident, " ")))
    __builtin_trap ();
  if (msg->service_name != NULL && strlen (msg->service_name) >= MAX_SERVICE_NAME_LEN)
    __builtin_trap ();
  if (msg->target_domain != NULL && strlen (msg->target_domain) >= 64)
    __builtin_trap ();
  if (msg->ident != NULL && strlen (msg->ident) >= 32)
    __builtin_trap ();
  if (msg->data != NULL && g_bytes_get_size (msg->data) > MAX_DATA_CHUNK_V3)
    __builtin_trap ();
  if ((msg->type == MSG_EXEC_CMDLINE || msg->type == MSG_JUST_EXEC) &&
      (msg->user == NULL || msg->command == NULL || msg->user[0] == '\0'))
    __builtin_trap ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr(QubeQrexecParser) parser = NULL;
  size_t chunk, offset = 2;

  if (size < 2)
    return 0;
  parser = _qube_qrexec_parser_new ((QubeQrexecSource) (data[0] & 3), "fuzz");
  if (data[0] & 4)
    {
      g_autoptr(GByteArray) hello = g_byte_array_new ();

      _qube_qrexec_append_hello (hello, data[0] & 8 ? 2 : 3);
      _qube_qrexec_parser_feed (parser, hello->data, hello->len);
    }
  chunk = (size_t) data[1] % 64 + 1;

  for (;;)
    {
      size_t n = MIN (chunk, size - offset);
      gboolean broken = FALSE;

      _qube_qrexec_parser_feed (parser, data + offset, n);
      offset += n;
      for (;;)
        {
          g_autoptr(QubeQrexecMessage) msg = NULL;
          g_autoptr(GError) error = NULL;

          if (!_qube_qrexec_parser_next (parser, &msg, &error))
            {
              if (error == NULL || error->message[0] == '\0')
                __builtin_trap ();
              broken = TRUE;
              break;
            }
          if (msg == NULL)
            break;
          check_message (msg);
        }
      if (broken || offset == size)
        break;
      /* Vary the chunking along the stream too. */
      chunk = chunk * 7 % 4099 + 1;
    }
  return 0;
}
