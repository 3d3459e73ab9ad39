"""The command line: help, errors that say what to do, `jupyter ozkernels`, and the demo."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import console_script


@pytest.mark.parametrize("sub", ["sync", "list", "add", "remove", "check", "demo"])
def test_every_subcommand_explains_itself(run_ozk, sub):
    out = run_ozk(sub, "--help").stdout
    assert "--json" in out and "--prefix" in out and "--system" in out
    if sub == "sync":
        assert "--dry-run" in out and "--force" in out
    if sub == "add":
        assert "--module" in out


def test_top_level_help_and_no_subcommand(run_ozk):
    out = run_ozk("--help").stdout
    for sub in ("sync", "list", "add", "remove", "check", "demo"):
        assert sub in out
    proc = run_ozk(check=False)
    assert proc.returncode == 2 and "Subcommands" in proc.stderr


def test_errors_are_one_clear_line(run_ozk, site_env):
    proc = run_ozk("remove", "no-such-kernel", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("ozkernels: error: no kernel 'no-such-kernel'")
    registry = os.path.join(site_env["JUPYTER_DATA_DIR"], "ozkernels", "environments.json")
    os.makedirs(os.path.dirname(registry))
    with open(registry, "w") as f:
        f.write("{broken")
    proc = run_ozk("sync", check=False)
    assert proc.returncode == 1 and "move it aside" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_jupyter_subcommand(site_env):
    # `jupyter ozkernels` finds jupyter-ozkernels next to itself, not on PATH.
    console_script("jupyter-ozkernels")
    env = {**site_env, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([console_script("jupyter"), "ozkernels", "list", "--json"], env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(proc.stdout)["environments"]


def test_demo_runs_end_to_end_without_touching_real_kernels(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_")}
    env["HOME"] = str(home)
    proc = subprocess.run([console_script("ozkernels"), "demo"], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "venv-analysis" in proc.stdout and "conda-astro" in proc.stdout
    assert "FAIL" not in proc.stdout and proc.stdout.count("pass") >= 7
    assert not (home / ".local" / "share" / "jupyter").exists()


@pytest.mark.parametrize(("args", "expected"), [
    (["--KernelsManager.target=sytem"], "bad configuration: The 'target' trait"),
    (["--Discovery.sources=['venvs', 'nosuch']"], "unknown discovery source 'nosuch'"),
])
def test_a_config_typo_is_one_clear_line_not_a_default(run_ozk, site_env, args, expected):
    proc = run_ozk("sync", *args, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(f"ozkernels: error: {expected}"), proc.stderr
    assert not os.path.exists(os.path.join(site_env["JUPYTER_DATA_DIR"], "kernels"))


def test_subcommands_are_an_explicit_table():
    from ozkernels.app import SUBCOMMANDS, OzkernelsApp

    assert list(SUBCOMMANDS) == ["sync", "list", "add", "remove", "check", "demo"]
    assert {n: a for n, (a, _) in OzkernelsApp.subcommands.items()} == {
        n: a for n, (a, _) in SUBCOMMANDS.items()}
