"""Activation that fails says why: generated activate.d scripts and conda env vars (hypothesis).

The launcher runs for real on a conda-layout env whose interpreter reports what it was started
with (and hands the launcher's JSON reading to the real Python).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ozktest.generated import examples

from ozkernels.kernel_files import LAUNCHER_NAME, launcher_files

# -I -S -c CODE PREFIX is the launcher reading conda env vars: the real Python does that.
REPORTER = f"""#!/bin/bash
if [[ $1 == -I ]]; then exec {sys.executable} "$@"; fi
printf '%s\\0' "$CONDA_PREFIX" "$@" >"$OZK_PROBE_OUT"
env -0 >"$OZK_PROBE_OUT.env"
"""

# Pieces of an activate.d script: (shell text, outcome: "ok", "fail" or "exit").
_steps = st.sampled_from([
    ("echo to stdout", "ok"), ("printf 'no newline'", "ok"), ("echo err >&2", "ok"),
    ("export OZK_A=1", "ok"), ("true", "ok"), ("false; true", "ok"), ("printf '\\0\\1\\n'", "ok"),
    ("cat /dev/null", "ok"), ("[ -n \"$NOPE\" ] && export X=1 || :", "ok"),
    ("return 0", "stop-ok"), ("return 3", "fail"), ("false", "fail-if-last"),
    ("exit 0", "exit"), ("exit 7", "exit"), ("set -e; false", "exit"), ("(exit 4)", "fail-if-last"),
])
scripts = st.lists(st.lists(_steps, min_size=1, max_size=5), min_size=1, max_size=3)


def outcome(script: list[tuple[str, str]]) -> str:
    """What sourcing the script does: 'ok', 'fail' (non-zero status) or 'exit'."""
    for i, (_, what) in enumerate(script):
        last = i == len(script) - 1
        if what == "stop-ok":
            return "ok"
        if what in ("fail", "exit"):
            return what
        if what == "fail-if-last" and last:
            return "fail"
    return "ok"


def conda_env(prefix: Path) -> None:
    """A conda env's layout with the reporting interpreter."""
    (prefix / "conda-meta").mkdir(parents=True)
    (prefix / "conda-meta" / "history").write_text("==> 2024-01-01 <==\n")
    (prefix / "bin").mkdir()
    (prefix / "bin" / "python").write_text(REPORTER)
    (prefix / "bin" / "python").chmod(0o755)


def launch(base: Path, prefix: Path) -> tuple[subprocess.CompletedProcess[bytes], float]:
    """Run the real launcher the way kernel.json does; return the result and seconds taken."""
    kdir = base / "kernels" / "conda-x"
    kdir.mkdir(parents=True, exist_ok=True)
    launcher = kdir / LAUNCHER_NAME
    for name, data in launcher_files("conda").items():  # the launcher and its conda helper
        (kdir / name).write_bytes(data)
    launcher.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDA", "LMOD", "_ModuleT"))}
    env.update(OZK_PROBE_OUT=str(base / "out"), JUPYTER_DATA_DIR=str(base / "data"),
               XDG_CACHE_HOME=str(base / "cache"), HOME=str(base))
    env.pop("LOADEDMODULES", None)
    t0 = time.monotonic()
    proc = subprocess.run([str(launcher), "--kind", "conda", "--prefix", str(prefix),
                           "--python", str(prefix / "bin" / "python"), "--name", "x",
                           "--kernel", "conda-x", "--", "-f", "/tmp/cf.json"],
                          env=env, cwd=base, capture_output=True, timeout=60, check=False)
    return proc, time.monotonic() - t0


@settings(max_examples=examples(40))
@given(bodies=scripts)
def test_activate_scripts_that_fail_say_which_and_output_never_reaches_stdout(
    tmp_path_factory: pytest.TempPathFactory, bodies: list[list[tuple[str, str]]]
) -> None:
    base = tmp_path_factory.mktemp("activate")
    prefix = base / "env"
    conda_env(prefix)
    adir = prefix / "etc" / "conda" / "activate.d"
    adir.mkdir(parents=True)
    names = [f"{i:02d}-pkg.sh" for i in range(len(bodies))]
    for name, body in zip(names, bodies):
        (adir / name).write_text("\n".join(text for text, _ in body) + "\n")
    proc, seconds = launch(base, prefix)
    assert seconds < 20
    # Nothing a script prints reaches the kernel's stdout.
    assert proc.stdout == b""
    results = [outcome(body) for body in bodies]
    failed = next(((n, r) for n, r in zip(names, results) if r != "ok"), None)
    lines = proc.stderr.decode(errors="replace").splitlines()
    if failed is None:
        assert proc.returncode == 0, lines
        seen = (base / "out").read_bytes().split(b"\0")
        assert os.fsdecode(seen[0]) == str(prefix)
        assert seen[1:3] == [b"-m", b"ipykernel_launcher"]
        return
    name, result = failed
    assert proc.returncode != 0 and not (base / "out").exists()
    # The last line is ours (after whatever the script printed without a newline).
    last = lines[-1]
    assert "ozkernels: kernel 'conda-x': activate.d script " in last, lines
    assert str(adir / name) in last
    want = "exited the launcher" if result == "exit" else "failed (exit status"
    assert want in last and "fix or remove it" in last
    assert sum("ozkernels:" in line for line in lines) == 1, lines


_json_junk = st.one_of(
    st.binary(max_size=60),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                 lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c,
                                                                      max_size=3),
                 max_leaves=6).map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=examples(25))
@given(state=st.none() | _json_junk, env_vars_d=st.lists(_json_junk, max_size=2),
       good=st.dictionaries(st.from_regex(r"OZK_[A-Z]{1,6}", fullmatch=True),
                            st.text(st.characters(blacklist_characters="\0",
                                                  blacklist_categories=("Cs",)), max_size=12),
                            max_size=3))
def test_damaged_conda_env_vars_are_skipped_with_a_warning_and_good_ones_applied(
    tmp_path_factory: pytest.TempPathFactory, state, env_vars_d, good
) -> None:
    base = tmp_path_factory.mktemp("envvars")
    prefix = base / "env"
    conda_env(prefix)
    vdir = prefix / "etc" / "conda" / "env_vars.d"
    vdir.mkdir(parents=True)
    (vdir / "00-good.json").write_text(json.dumps(good))
    for i, junk in enumerate(env_vars_d, 1):
        (vdir / f"{i:02d}-junk.json").write_bytes(junk)
    if state is not None:
        (prefix / "conda-meta" / "state").write_bytes(state)
    proc, _ = launch(base, prefix)
    lines = proc.stderr.decode(errors="replace").splitlines()
    assert proc.returncode == 0, lines
    assert all(re.match(r"ozkernels: (kernel 'conda-x': )?warning: ", line) for line in lines), \
        lines
    env = dict(kv.split("=", 1) for kv in (base / "out.env").read_bytes().decode(
        errors="surrogateescape").split("\0") if "=" in kv)
    # A later file (or conda-meta/state) may set a good name again; absent that, it is applied.
    later = b"".join(env_vars_d) + (state or b"")
    for name, value in good.items():
        if name.encode() not in later:
            assert env.get(name) == value, (name, lines)


def test_env_vars_reader_that_fails_names_its_exit_status(tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    conda_env(prefix)
    (prefix / "bin" / "python").write_text("#!/bin/bash\nexit 3\n")
    (prefix / "conda-meta" / "state").write_text('{"env_vars": {"A": "1"}}')
    proc, seconds = launch(tmp_path, prefix)
    err = proc.stderr.decode()
    assert proc.returncode != 0 and seconds < 20
    assert err.count("\n") == 1 and "could not read the conda env vars" in err
    assert "(exit status 3)" in err
