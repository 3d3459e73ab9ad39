"""The command line: help, errors that say what to do, `jupyter ozkernels`, and the demo."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
from conftest import console_script


@pytest.mark.parametrize("sub", ["sync", "list", "add", "remove", "check", "demo"])
def test_every_subcommand_explains_itself(run_ozk, sub):
    out = run_ozk(sub, "--help").stdout
    assert out.startswith(f"usage: ozkernels {sub} ")
    assert "--json" in out
    if sub == "demo":
        assert "--keep" in out and "--prefix" not in out and "--system" not in out
        return
    assert "--prefix" in out and "--system" in out
    if sub == "sync":
        assert "--dry-run" in out and "--force" in out
    if sub == "add":
        assert "--module" in out


def test_top_level_help_and_no_subcommand(run_ozk):
    out = run_ozk("--help").stdout
    for sub in ("sync", "list", "add", "remove", "check", "demo"):
        assert sub in out
    assert out.startswith("usage: ozkernels {sync,list,add,remove,check,demo} [options]\n")
    proc = run_ozk(check=False)
    assert proc.returncode == 2 and "Subcommands" in proc.stderr


@pytest.mark.parametrize(("args", "first", "usage"), [
    (["lst"], "unknown command 'lst' (did you mean list?)", "usage: ozkernels {sync,"),
    (["sync", "--dryrun"], "unknown option --dryrun (did you mean --dry-run?)",
     "usage: ozkernels sync [--dry-run]"),
    (["list", "--wdie"], "unknown option --wdie (did you mean --wide?)",
     "usage: ozkernels list [--wide]"),
    (["remove", "--dry-run", "--json"], "missing NAME|PATH", "usage: ozkernels remove NAME|PATH"),
    (["list", "extra"], "unexpected argument 'extra'", "usage: ozkernels list"),
    (["add", "a", "b"], "unexpected argument 'b'", "usage: ozkernels add PATH"),
    (["demo", "--system"], "demo does not take --system", "usage: ozkernels demo"),
    (["demo", "--prefix=/x"], "demo does not take --prefix", "usage: ozkernels demo"),
])
def test_usage_mistakes_are_one_line_the_usage_and_exit_2(run_ozk, args, first, usage):
    proc = run_ozk(*args, check=False)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert lines[0].startswith(f"ozkernels: error: {first}") and lines[1].startswith(usage)
    assert len(lines) == 3 and "--help" in lines[2] and "Traceback" not in proc.stderr
    if "--json" in args:
        data = json.loads(proc.stdout)
        assert data["error"].startswith(first) and data["exit_code"] == 2
    else:
        assert proc.stdout == ""


def test_every_help_lists_what_the_command_prints(run_ozk):
    from ozkernels.sync import STATUS_HELP

    text = run_ozk("list", "--help").stdout
    assert all(f"  {status} " in text for status in STATUS_HELP)
    for sub, words in {"sync": ["added", "updated", "removed", "unchanged", "recorded"],
                       "add": ["recorded", "no kernel"], "remove": ["removed", "forgot"],
                       "check": ["pass", "FAIL"], "demo": ["demo passed", "demo FAILED"]}.items():
        text = run_ozk(sub, "--help").stdout.split("It prints:")[1].split("Options")[0]
        assert all(f"  {w} " in text for w in words), (sub, text)


def test_demo_stops_early_when_something_is_missing(run_ozk, site_env):
    env = {**site_env, "PATH": "/nonexistent"}  # no patchelf on PATH
    proc = run_ozk("demo", env=env, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "the demo needs patchelf: without it, it cannot show Lmod module Pythons" in \
        proc.stderr and proc.stderr.strip().endswith("install: sudo apt-get install -y patchelf")
    proc = run_ozk("demo", "--json", env=env, check=False)
    assert "sudo apt-get install -y patchelf" in json.loads(proc.stdout)["error"]


def test_errors_are_one_clear_line(run_ozk, site_env, site):
    proc = run_ozk("remove", "no-such-kernel", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("ozkernels: error: no kernel 'no-such-kernel'")
    registry = os.path.join(site_env["JUPYTER_DATA_DIR"], "ozkernels", "environments.json")
    os.makedirs(os.path.dirname(registry))
    with open(registry, "w") as f:
        f.write("{broken")
    # A damaged registry is one warning naming it; the sync goes on and the file stays.
    proc = run_ozk("sync", check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if registry in line] == [
        line for line in proc.stderr.splitlines() if "registry" in line or "records" in line]
    assert proc.stderr.count(registry) == 1 and "ignoring its records" in proc.stderr
    with open(registry) as f:
        assert f.read() == "{broken"
    # Written again (add records the env), the damaged file is moved aside, not lost.
    run_ozk("add", str(site.venvs["analysis"]))
    aside = [n for n in os.listdir(os.path.dirname(registry)) if ".damaged-" in n]
    assert len(aside) == 1
    with open(os.path.join(os.path.dirname(registry), aside[0])) as f:
        assert f.read() == "{broken"
    with open(registry) as f:
        assert json.load(f)["environments"]


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
    proc = subprocess.run([console_script("ozkernels"), "demo", "--keep"], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "venv-analysis" in proc.stdout and "conda-astro" in proc.stdout
    assert "FAIL" not in proc.stdout and proc.stdout.count("pass") >= 7
    assert not (home / ".local" / "share" / "jupyter").exists()
    last = proc.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"demo passed: (\d+) environments found, (\d+) kernels written, every "
                         r"kernel started and checked, in [\d.]+ s; site kept in (\S+)", last)
    assert match and int(match[1]) >= 10 and int(match[2]) >= 7, last
    root = match[3]
    try:
        # The printed settings, pasted into a shell, point ozkernels at the kept site.
        lines = proc.stdout.splitlines()
        export = next(line.strip() for line in lines if line.strip().startswith("export "))
        unset = next(line.strip() for line in lines if line.strip().startswith("unset "))
        listing = subprocess.run(["bash", "-c", f"{export}; {unset}; ozkernels list --json"],
                                 env=env, capture_output=True, text=True, timeout=120,
                                 check=True)
        envs = json.loads(listing.stdout)["environments"]
        written = sum(e["status"] == "up to date" for e in envs) + sum(
            k["status"] == "up to date" for e in envs for k in e["other_kernels"])
        assert written == int(match[2])
        assert json.loads(listing.stdout)["kernels_dir"].startswith(root)
    finally:
        shutil.rmtree(root)


def test_demo_on_environment_modules(tmp_path, envmodules_cmd, no_lmod):
    """`ozkernels demo --modules tmod`: the Tcl site, its kernels started, its settings kept."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_")}
    env.update(HOME=str(home), MODULES_CMD=envmodules_cmd)
    proc = subprocess.run([console_script("ozkernels"), "demo", "--modules", "tmod", "--keep"],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"module system: Environment Modules ({envmodules_cmd}" in proc.stdout
    assert "Python/3.11.7-GCCcore-13.2.0" in proc.stdout and "FAIL" not in proc.stdout
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("demo passed: "), last
    root = last.rsplit("site kept in ", 1)[1]
    try:
        lines = proc.stdout.splitlines()
        export = next(line.strip() for line in lines if line.strip().startswith("export "))
        listing = subprocess.run(["bash", "-c", f"{export}; ozkernels list --json"],
                                 env={k: v for k, v in env.items() if k != "MODULES_CMD"},
                                 capture_output=True, text=True, timeout=120, check=True)
        assert json.loads(listing.stdout)["module_system"]["name"] == "tmod"
    finally:
        shutil.rmtree(root)


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
