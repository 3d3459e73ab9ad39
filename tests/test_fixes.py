"""Every printed fix is a command that works for the user who reads it on a cluster."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import console_script, make_venv

from ozkernels import fixes
from ozkernels.demosite import GCC_VERSION, PY_MODULE_VERSION
from ozkernels.sync import BROKEN, NEEDS_SYNC, NO_IPYKERNEL, NO_KERNEL, UP_TO_DATE

GCC, PY, BARE = f"gcccore/{GCC_VERSION}", f"python/{PY_MODULE_VERSION}", \
    f"python/{PY_MODULE_VERSION}-bare"
LMOD_INIT = "/usr/share/lmod/lmod/init/bash"


@pytest.mark.parametrize(("fix", "expected"), [
    (fixes.module_ipykernel("/apps/py/bin/python3", (GCC, BARE), BARE, site=False),
     f"module load {GCC} {BARE} && python -m venv --system-site-packages "
     f"~/venvs/python-{PY_MODULE_VERSION}-bare && ~/venvs/python-{PY_MODULE_VERSION}-bare/bin/"
     "python -m pip install ipykernel && ozkernels sync"),
    (fixes.module_ipykernel("/apps/py/bin/python3", (GCC, BARE), BARE, site=True),
     f"module load {GCC} {BARE} && /apps/py/bin/python3 -m pip install ipykernel"),
    (fixes.module_ipykernel("/p/bin/python3", ("py thon/1",), "py thon/1", site=False),
     "module load 'py thon/1' && python -m venv --system-site-packages ~/venvs/py-thon-1 && "
     "~/venvs/py-thon-1/bin/python -m pip install ipykernel && ozkernels sync"),
    (fixes.venv_ipykernel("/v/bin/python", (GCC, PY), pip=True, uv=False),
     f"module load {GCC} {PY} && /v/bin/python -m pip install ipykernel"),
    (fixes.venv_ipykernel("/v x/bin/python", (), pip=False, uv=False),
     "'/v x/bin/python' -m ensurepip && '/v x/bin/python' -m pip install ipykernel"),
    (fixes.venv_ipykernel("/v/bin/python", (), pip=False, uv=True),
     "uv pip install --python /v/bin/python ipykernel"),
    (fixes.conda_ipykernel("/c/envs/a", "conda/latest", python=True),
     "module load conda/latest && conda install -y -p /c/envs/a ipykernel"),
    (fixes.conda_ipykernel("/c/envs/a", "", python=False),
     "conda install -y -p /c/envs/a python ipykernel"),
    (fixes.recreate_venv("/v", (GCC, PY), system_site=True),
     f"module load {GCC} {PY} && python -m venv --upgrade --system-site-packages /v"),
    (fixes.recreate_venv("/v", (), system_site=False), "python3 -m venv --upgrade /v"),
    (fixes.recreate_venv("/v/", (PY,), system_site=False, dangling=True),
     f"find /v/bin -maxdepth 1 -name 'python*' -xtype l -delete && module load {PY} && "
     "python -m venv --upgrade /v/"),
    (fixes.readable("/v/pyvenv.cfg"), "chmod u+r /v/pyvenv.cfg"),
    (fixes.sync(), "ozkernels sync"),
    (fixes.sync(["--system", "--prefix", "/apps/j"]), "ozkernels sync --system --prefix /apps/j"),
    (fixes.module_kernels(), "ozkernels sync --Syncer.module_kernels=True"),
    (fixes.add("/v", ["a/1", "b/2"]), "ozkernels add /v --module a/1 --module b/2"),
    (fixes.remove("/v w"), "ozkernels remove '/v w'"),
])
def test_fix_texts(fix, expected):
    assert fix == expected


def run_fix(fix: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a printed fix in bash with the `module` function, as a user's login shell has it."""
    env = {**env, "PATH": os.path.dirname(console_script("ozkernels")) + ":" + env["PATH"]}
    return subprocess.run(["bash", "-c", f"source {LMOD_INIT} && {fix}"], env=env,
                          capture_output=True, text=True, timeout=240, check=False)


def listing(run_ozk, env) -> dict[str, dict]:
    """`ozkernels list --json` rows by name."""
    data = json.loads(run_ozk("list", "--json", env=env).stdout)
    return {e["name"]: e for e in data["environments"]}


@pytest.mark.lmod
def test_each_status_prints_a_fix_that_works(own_site, run_ozk, tmp_path):
    env = own_site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"))
    gone = own_site.home / "venvs" / "gone"
    make_venv(own_site, gone)
    # Its module Python was removed: the venv points at an interpreter that no longer exists.
    for exe in (gone / "bin").glob("python*"):
        exe.unlink()
    (gone / "bin" / "python").symlink_to("/gone/Python/3.11.1/bin/python3.11")
    cfg = (gone / "pyvenv.cfg").read_text().splitlines()
    (gone / "pyvenv.cfg").write_text("\n".join(
        "home = /gone/Python/3.11.1/bin" if line.startswith("home") else line for line in cfg))
    rows = listing(run_ozk, env)
    venvs = own_site.home / "venvs"
    expected = {
        "analysis": (NEEDS_SYNC, "ozkernels sync"),
        "python/3.11.7": (NO_KERNEL, "ozkernels sync --Syncer.module_kernels=True"),
        BARE: (NO_IPYKERNEL, fixes.module_ipykernel("", (GCC, BARE), BARE, site=False)),
        "noipk": (NO_IPYKERNEL, fixes.venv_ipykernel(
            str(venvs / "noipk" / "bin" / "python"), (GCC, BARE), pip=False, uv=False)),
        "broken": (BROKEN, fixes.recreate_venv(str(venvs / "broken"), (GCC, PY),
                                               system_site=False)),
        "gone": (BROKEN, fixes.recreate_venv(str(gone), (GCC, PY), system_site=True,
                                             dangling=True)),
        "no-kernel": (NO_IPYKERNEL, fixes.conda_ipykernel(
            rows["no-kernel"]["prefix"], "", python=True)),
    }
    for name, (status, fix) in expected.items():
        assert (rows[name]["status"], rows[name]["fix"]) == (status, fix), name
    run_ozk("sync", env=env)
    assert listing(run_ozk, env)["analysis"]["fix"] == ""
    assert listing(run_ozk, env)["analysis"]["status"] == UP_TO_DATE

    # Run them (no package index here: pip proves it runs with --version instead of installing).
    for name in ("noipk", BARE):
        fix = rows[name]["fix"].replace("pip install ipykernel", "pip --version")
        proc = run_fix(fix, env)
        assert proc.returncode == 0, (fix, proc.stdout, proc.stderr)
        assert "pip " in proc.stdout
    assert (own_site.home / "venvs" / "python-3.11.7-bare" / "pyvenv.cfg").is_file()
    for name in ("broken", "gone"):
        proc = run_fix(rows[name]["fix"], env)
        assert proc.returncode == 0, (rows[name]["fix"], proc.stdout, proc.stderr)
    after = listing(run_ozk, env)
    assert after["broken"]["status"] != BROKEN and after["gone"]["status"] == NEEDS_SYNC
    assert after["gone"]["modules"] == [GCC, PY]
