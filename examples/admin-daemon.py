#!/usr/bin/python3
"""A tiny admin daemon in Python, on libqube through GObject introspection.

It uses Qube-1.0 only: the same Admin API module qubed serves (Qube.Admin),
the qubes themselves (Qube.Manager, Qube.Vm), the Admin API's events, and
qrexec to run a command in a qube (Qube.qrexec_run).

Run: admin-daemon.py STATE_DIR [TEMPLATE]
Without TEMPLATE it makes a template of its own and configures qubes;
with the name of a built template (`qube template build`) it also starts
a qube on it, runs a command there and stops it.
"""
import sys
import tempfile

import gi

gi.require_version("Qube", "1.0")
from gi.repository import GLib, Qube  # noqa: E402


def admin_call(admin, method, dest="dom0", arg=None, payload=None):
    """One Admin API call as the admin qube; the reply's content as text."""
    data = GLib.Bytes.new(payload.encode()) if payload is not None else None
    reply = admin.call("dom0", method, arg, dest, data)
    content, exc_type, message = Qube.Admin.reply_get_content(reply)
    if content is None:
        raise RuntimeError(f"{method} on {dest}: {exc_type}: {message}")
    return content.get_data().decode()


def run_in(manager, qube, command):
    """Runs a command in a running qube; its exit code and output."""
    with tempfile.TemporaryFile() as out:
        ok, exit_code = Qube.qrexec_run(manager, qube, None, command,
                                        Qube.QrexecRunFlags.NO_STDIN, -1,
                                        out.fileno(), -1)
        out.seek(0)
        return exit_code if ok else None, out.read().decode()


def main():
    state_dir = sys.argv[1]
    template = sys.argv[2] if len(sys.argv) > 2 else None
    manager = Qube.Manager.new(state_dir)
    admin = Qube.Admin.new(manager, None)
    admin.connect("event", lambda _a, subject, event, kwargs:
                  print(f"event: {subject or 'dom0'} {event} {' '.join(kwargs)}"))

    for vm in manager.list_vms():
        print(f"qube: {vm.get_name()} {vm.get_klass()} {vm.get_state()}")
    if template is None:
        template = "fedora"
        admin_call(admin, "admin.vm.Create.TemplateVM", payload="name=fedora label=black")
    admin_call(admin, "admin.vm.Create.AppVM", arg=template, payload="name=work label=blue")
    admin_call(admin, "admin.vm.property.Set", "work", "memory", "600")
    print(admin_call(admin, "admin.vm.property.Get", "work", "memory"))

    for vm in manager.list_vms():
        print(f"qube: {vm.get_name()} {vm.get_klass()} {vm.get_state()}")
    print(admin_call(admin, "admin.vm.List").rstrip("\n").count("\n") + 1, "qubes listed")

    if len(sys.argv) > 2:
        # The qube boots; the reply comes once its qrexec agent answered.
        admin_call(admin, "admin.vm.Start", "work")
        work = manager.lookup("work")
        print(f"work is {work.get_state()} ({work.get_accel()})")
        exit_code, output = run_in(manager, "work", "echo hello from $(hostname)")
        print(f"run: exit {exit_code}: {output.strip()}")
        admin_call(admin, "admin.vm.Shutdown", "work", "wait")
        print(f"work is {work.get_state()}")

    admin_call(admin, "admin.vm.Remove", "work")
    print("work removed:", [vm.get_name() for vm in manager.list_vms()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
