"""examples/admin-daemon.py run against a temporary state directory: the
GObject API is enough to list, create, configure and remove qubes."""
import os
import subprocess
import sys
import tempfile

srcdir = os.environ.get("QUBE_TEST_SRCDIR", ".")
example = os.path.join(srcdir, "examples", "admin-daemon.py")

with tempfile.TemporaryDirectory() as state:
    run = subprocess.run([sys.executable, example, state], capture_output=True,
                         text=True, check=False)
    sys.stderr.write(run.stderr)
    out = run.stdout.splitlines()
    print("\n".join(out))
    assert run.returncode == 0, f"example failed with {run.returncode}"
    assert "GLib-CRITICAL" not in run.stderr and "Warning" not in run.stderr, run.stderr
    assert "event: dom0 domain-add vm work" in out, out
    assert "event: work property-set:memory name memory newvalue 600 oldvalue 400" in out, out
    assert "default=False type=int 600" in out, out
    assert "qube: work AppVM Halted" in out, out
    assert "3 qubes listed" in out, out
    assert "event: dom0 domain-delete vm work" in out, out
    assert "work removed: ['dom0', 'fedora']" in out, out
print("ok")
