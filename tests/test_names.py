"""Any directory name gives one valid, stable kernel that starts in the right env (hypothesis).

jupyter_client replaces {placeholders} in every argv word; shells, Lmod and our own encoding
each see the name on the way. Names are generated, not listed.
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
from conftest import make_venv
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from ozktest.generated import dir_names, examples
from traitlets.config import Config

from ozkernels.manager import KernelsManager
from ozkernels.specs import argv_value

KERNEL_NAME = re.compile(r"^[a-z0-9._-]+$")
# Stands in for the env's interpreter: reports what the launcher exec'd it with (NUL-separated).
REPORTER = '#!/bin/bash\nprintf "%s\\0" "$VIRTUAL_ENV" "$@" >"$OZK_PROBE_OUT"\n'
PROBE = "import json, sys; print(json.dumps({'prefix': sys.prefix}))"


def venv_layout(prefix: Path) -> None:
    """A venv's files as `python -m venv` lays them out, with a reporting interpreter."""
    (prefix / "bin").mkdir(parents=True)
    site_packages = prefix / "lib" / "python3.11" / "site-packages"
    site_packages.mkdir(parents=True)
    (site_packages / "ipykernel_launcher.py").write_text("")
    (prefix / "pyvenv.cfg").write_text(
        f"home = {Path(sys.executable).parent}\ninclude-system-site-packages = false\n"
        "version = 3.11.7\n")
    python = prefix / "bin" / "python"
    python.write_text(REPORTER)
    python.chmod(0o755)


def manager(root: Path, data: Path) -> KernelsManager:
    """A manager that finds venvs under root only and writes kernels below data."""
    config = Config({
        "Discovery": {"sources": ["venvs"], "registry_path": str(data / "registry.json"),
                      "lmod_cmd": str(data / "no-lmod")},
        "VenvSource": {"roots": [str(root)], "max_depth": 1},
        "KernelsManager": {"prefix": str(data)},
    })
    return KernelsManager(config=config)


def owned(kdir: Path) -> dict[str, str]:
    """Kernel name -> env prefix of every spec ozkernels wrote in kdir."""
    found = {}
    for d in kdir.iterdir():
        if not d.name.startswith("."):
            found[d.name] = json.loads((d / "kernel.json").read_text())["metadata"][
                "ozkernels"]["prefix"]
    return found


def test_argv_values_have_no_placeholder_left():
    for value in ("{prefix}", "%7B", "a{b}c%", "{{x}}", "%{connection_file}%"):
        encoded = argv_value(value)
        assert not re.search(r"\{[A-Za-z0-9_]+\}", encoded)
        assert encoded.replace("%7B", "{").replace("%25", "%") == value


@settings(max_examples=examples(40))
@given(names=st.lists(dir_names, min_size=1, max_size=4, unique=True))
def test_any_name_gives_one_stable_kernel_whose_launcher_gets_the_path_intact(
    names: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.mktemp("names")
    root, data = base / "venvs", base / "data"
    prefixes = [root / n for n in names]
    for prefix in prefixes:
        venv_layout(prefix)
    _, done = manager(root, data).sync()
    kdir = data / "share" / "jupyter" / "kernels"
    kernels = owned(kdir)
    # Exactly one valid kernel per env, none shared.
    assert sorted(kernels.values()) == sorted(str(p) for p in prefixes)
    assert all(KERNEL_NAME.match(k) for k in kernels), kernels
    assert len({k.lower() for k in kernels}) == len(kernels)
    # Stable: the next sync changes nothing and keeps every name.
    again, changed = manager(root, data).sync()
    assert changed == [] and owned(kdir) == kernels
    ksm = KernelSpecManager(kernel_dirs=[str(kdir)])
    for name, prefix in kernels.items():
        km = KernelManager(kernel_name=name, kernel_spec_manager=ksm)
        out = base / f"{name}.out"
        # What jupyter_client does before it starts a kernel: {placeholders} filled in with
        # the launch arguments (cwd, env, kernel_id, ...), the connection file written.
        cmd, kw = km.pre_start_kernel(cwd=str(base), env={**os.environ,
                                                          "OZK_PROBE_OUT": str(out)})
        try:
            proc = subprocess.run(cmd, env=kw["env"], cwd=kw.get("cwd"), capture_output=True,
                                  timeout=30, check=False)
            assert proc.returncode == 0, proc.stderr.decode(errors="replace")
            seen = [os.fsdecode(w) for w in out.read_bytes().split(b"\0")[:-1]]
            assert seen == [prefix, "-m", "ipykernel_launcher", "-f", km.connection_file]
        finally:
            km.cleanup_resources()
    assert not list(base.rglob("PWNED")) and not Path("PWNED").exists()


@pytest.mark.lmod
@settings(max_examples=examples(10))
@given(name=dir_names)
def test_real_venvs_with_any_name_get_a_kernel_that_starts_in_them(
    name: str, site, site_env, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.mktemp("real-names")
    prefix = base / "venvs" / name
    prefix.parent.mkdir()
    try:
        make_venv(site, prefix)
    except subprocess.CalledProcessError:
        reject()  # a name `python -m venv` refuses (e.g. one with ':')
    (base / "cfg.json").write_text(json.dumps({"VenvSource": {"roots": [str(prefix.parent)]}}))
    env = {**site_env, "JUPYTER_DATA_DIR": str(base / "data")}
    cmd = [sys.executable, "-m", "ozkernels", "sync", "--json", "--config", str(base / "cfg.json")]
    first = json.loads(subprocess.run(cmd, env=env, capture_output=True, check=True,
                                      timeout=120).stdout)
    mine = [a for a in first["actions"] if a["prefix"] == str(prefix)]
    assert [a["action"] for a in mine] == ["add"], first
    kernel = mine[0]["kernel"]
    assert KERNEL_NAME.match(kernel)
    second = json.loads(subprocess.run(cmd, env=env, capture_output=True, check=True,
                                       timeout=120).stdout)
    assert second["actions"] == []
    ksm = KernelSpecManager(kernel_dirs=[str(base / "data" / "kernels")])
    km = KernelManager(kernel_name=kernel, kernel_spec_manager=ksm)
    km.start_kernel(cwd=str(base), env=env)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        out: list[str] = []
        reply = kc.execute_interactive(PROBE, timeout=60, output_hook=lambda m: out.append(
            m["content"].get("text", "")) if m["msg_type"] == "stream" else None)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()
        t0 = time.monotonic()
        km.shutdown_kernel(now=False)
        assert time.monotonic() - t0 < 10
    assert json.loads("".join(out))["prefix"] == str(prefix)
    assert not list(base.rglob("PWNED"))
