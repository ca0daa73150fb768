# qrexec
