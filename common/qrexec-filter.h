/* qrexec-filter.h — output from another qube made safe for a terminal,
 * as Qubes' qrexec clients do it: every byte but printable ASCII, tab,
 * newline, carriage return, backspace and bell becomes '_', so that a
 * qube cannot send escape sequences to the terminal that shows its
 * output.  Plain C: the guest agent and the host use it. */
#pragma once

#include <stddef.h>

static inline void
qrexec_filter_unsafe (char *buf, size_t len)
{
  for (size_t i = 0; i < len; i++)
    {
      unsigned char c = (unsigned char) buf[i];

      if ((c < 0x20 || c > 0x7e) && c != '\t' && c != '\n' && c != '\r' && c != '\b' && c != '\a')
        buf[i] = '_';
    }
}
