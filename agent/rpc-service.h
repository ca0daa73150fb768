/* rpc-service.h — running a qrexec service as Qubes' agent runs one
 * (rpc-service.c). */
#pragma once

/* Runs the service `line` names ("service+arg source [name|keyword
 * target]", what follows "QUBESRPC ") from the directories of
 * `service_path` (':'-separated), in this process: executes it, or
 * serves the connection to it; never returns (failures exit 125, a
 * service not found 127, with a line on stderr). */
void agent_run_service (const char *line, const char *service_path) __attribute__ ((noreturn));
