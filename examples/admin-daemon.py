#!/usr/bin/python3
"""A tiny admin daemon in Python, on libqube through GObject introspection.

It uses Qube-1.0 only: the same Admin API module qubed serves (Qube.Admin),
the qubes themselves (Qube.Manager, Qube.Vm), and the Admin API's events.
Run: admin-daemon.py STATE_DIR
"""
import sys

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


def main():
    state_dir = sys.argv[1]
    manager = Qube.Manager.new(state_dir)
    admin = Qube.Admin.new(manager, None)
    admin.connect("event", lambda _a, subject, event, kwargs:
                  print(f"event: {subject or 'dom0'} {event} {' '.join(kwargs)}"))

    admin_call(admin, "admin.vm.Create.TemplateVM", payload="name=fedora label=black")
    admin_call(admin, "admin.vm.Create.AppVM", arg="fedora", payload="name=work label=blue")
    admin_call(admin, "admin.vm.property.Set", "work", "memory", "600")
    print(admin_call(admin, "admin.vm.property.Get", "work", "memory"))

    for vm in manager.list_vms():
        print(f"qube: {vm.get_name()} {vm.get_klass()} {vm.get_state()}")
    print(admin_call(admin, "admin.vm.List").rstrip("\n").count("\n") + 1, "qubes listed")

    admin_call(admin, "admin.vm.Remove", "work")
    print("work removed:", [vm.get_name() for vm in manager.list_vms()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
