"""No debris: a sync killed at any instant, or hitting ENOSPC/EROFS/EACCES, loses nothing.

Faults are real: strace injects the error (or SIGKILL) into the Nth write, rename, mkdir, chmod
or unlink the sync makes; hypothesis picks which. Every spec still parses, no kernel is lost,
Jupyter never lists a temporary dir, and the next sync removes whatever was left.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jupyter_client.kernelspec import KernelSpecManager
from ozktest.generated import examples

STRACE = shutil.which("strace")
SYSCALLS = {
    "write": "write,pwrite64,writev",
    "rename": "rename,renameat,renameat2",
    "mkdir": "mkdir,mkdirat",
    "chmod": "chmod,fchmod,fchmodat",
    "unlink": "unlink,unlinkat,rmdir",
}
ACTIONS = ["error=ENOSPC", "error=EROFS", "error=EACCES", "signal=SIGKILL"]
FOREIGN = {"argv": ["/bin/true", "{connection_file}"], "display_name": "theirs", "language": "x"}


def fake_venv(prefix: Path) -> None:
    """A venv's layout with ipykernel in it (its kernel is written, never started here)."""
    sp = prefix / "lib" / "python3.11" / "site-packages"
    sp.mkdir(parents=True)
    (sp / "ipykernel_launcher.py").write_text("")
    (prefix / "bin").mkdir()
    (prefix / "bin" / "python").symlink_to(sys.executable)
    (prefix / "pyvenv.cfg").write_text(f"home = {Path(sys.executable).parent}\nversion = 3.11\n")


def ozk(env: dict[str, str], *args: str, fault: tuple[str, int, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    """`ozkernels sync --json` (under strace's fault injection when given one)."""
    cmd = [sys.executable, "-m", "ozkernels", "sync", "--json", *args]
    if fault:
        calls, when, action = fault
        cmd = [str(STRACE), "-f", "-qq", "-o", "/dev/null", "-e", f"trace={calls}",
               "-e", f"inject={calls}:{action}:when={when}", *cmd]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def baseline(site, base: Path) -> dict[str, str]:
    """A data dir synced once: the site's kernels, one for a venv about to go, a foreign one."""
    fake_venv(base / "extra" / "gone")
    (base / "config").mkdir()
    data = base / "data"
    (data / "kernels" / "theirs").mkdir(parents=True)
    (data / "kernels" / "theirs" / "kernel.json").write_text(json.dumps(FOREIGN))
    env = site.environ(JUPYTER_DATA_DIR=str(data), JUPYTER_CONFIG_DIR=str(base / "config"),
                       PYTHONDONTWRITEBYTECODE="1")
    configure(base, {})
    proc = ozk(env)
    assert proc.returncode == 0, proc.stderr
    return env


def configure(base: Path, extra: dict) -> None:
    """The config file: the site's venv roots and base/extra, plus extra settings."""
    roots = ["~/venvs", "~/.venvs", str(base / "extra")]
    (base / "config" / "jupyter_ozkernels_config.json").write_text(json.dumps(
        {"VenvSource": {"roots": roots}, **extra}))


def kernel_dirs(kdir: Path) -> dict[str, dict]:
    """Every kernel dir's parsed kernel.json (an unparsable one fails the test)."""
    found = {}
    for d in kdir.iterdir():
        if d.name.startswith("."):
            continue
        found[d.name] = json.loads((d / "kernel.json").read_text())
    return found


@pytest.mark.skipif(STRACE is None, reason="needs strace (tests/run.sh installs it)")
@settings(max_examples=examples(8))
@given(calls=st.sampled_from(sorted(SYSCALLS)), when=st.integers(1, 40),
       action=st.sampled_from(ACTIONS))
def test_a_sync_killed_or_failing_anywhere_loses_nothing_and_leaves_no_debris(
    site, tmp_path_factory: pytest.TempPathFactory, calls: str, when: int, action: str
) -> None:
    base = tmp_path_factory.mktemp("debris")
    env = baseline(site, base)
    data, extra = base / "data", base / "extra"
    # What the faulted sync has to do: update every kernel (new display names), add one,
    # remove one.
    configure(base, {"Syncer": {"display_name_template": "{name} {version} ({kind})"}})
    shutil.rmtree(extra / "gone")
    fake_venv(extra / "new")
    kdir = data / "kernels"
    before = kernel_dirs(kdir)
    gone = {n for n, s in before.items()
            if s.get("metadata", {}).get("ozkernels", {}).get("prefix") == str(extra / "gone")}
    assert len(gone) == 1

    faulted = ozk(env, fault=(SYSCALLS[calls], when, action))
    if faulted.returncode not in (0, -9, 137) and "signal" not in action:
        assert "Traceback" not in faulted.stderr, faulted.stderr
        assert faulted.stderr.startswith("ozkernels: error: "), faulted.stderr
    # Whatever instant it stopped at: every spec parses, none is lost, Jupyter lists no
    # temporary dir, the foreign spec is as it was.
    after = kernel_dirs(kdir)
    assert set(before) - gone <= set(after), faulted.stderr
    assert after["theirs"] == FOREIGN
    listed = KernelSpecManager(kernel_dirs=[str(kdir)]).find_kernel_specs()
    assert not [n for n in listed if n.startswith(".")], listed

    clean = ozk(env)
    assert clean.returncode == 0, clean.stderr
    debris = [str(p.relative_to(kdir)) for p in kdir.rglob("*")
              if p.name.startswith((".ozk-", ".ozkernels-staging", "file-", "new-", "rm-"))]
    assert debris == []
    for d in (data / "ozkernels", Path(env["XDG_CACHE_HOME"]) / "ozkernels"
              if "XDG_CACHE_HOME" in env else data / "none"):
        if d.is_dir():
            assert not [p.name for p in d.iterdir() if p.name.endswith(".tmp")]
    final = kernel_dirs(kdir)
    assert set(final) == (set(before) - gone) | {"venv-new"}
    assert all(s["display_name"].endswith(")") and "(" in s["display_name"]
               for n, s in final.items() if n != "theirs")
    again = ozk(env)
    assert json.loads(again.stdout)["actions"] == [], again.stdout
