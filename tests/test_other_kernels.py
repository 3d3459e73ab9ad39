"""Kernels an environment ships besides Python (IRkernel, bash_kernel): found, wrapped, synced,
started through jupyter_client and checked from inside, with no process left behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from ozkernels.demosite import GCC_VERSION, IRKERNEL_SPEC_DIRS, build_site, find_irkernel
from ozkernels.kernel_files import source_path
from ozkernels.specs import LAUNCHER_NAME

MODULES = [f"gcccore/{GCC_VERSION}", "python/3.11.7"]
NEEDS = "the other-kernel tests need R and IRkernel: apt-get install r-base-core r-cran-irkernel"


def kernels_dir(env) -> Path:
    return Path(env["JUPYTER_DATA_DIR"]) / "kernels"


def spec_of(env, name: str) -> dict:
    return json.loads((kernels_dir(env) / name / "kernel.json").read_text())


def sync(run_ozk, *args, env=None) -> dict:
    return json.loads(run_ozk("sync", "--json", *args, env=env).stdout)


def rows(run_ozk, *args, env=None) -> dict[str, dict]:
    data = json.loads(run_ozk("list", "--json", *args, env=env).stdout)
    return {e["name"]: e for e in data["environments"]}


@pytest.fixture
def kernels_site(tmp_path):
    """A private site with the R-only conda env and the bash_kernel venv, for tests that change
    them."""
    site = build_site(tmp_path / "site", lmod=True, hostile=False, other_kernels=True)
    assert "rstats" in site.conda_envs, NEEDS
    assert (site.venvs["tools"] / "share/jupyter/kernels/bash/kernel.json").is_file(), \
        "bash_kernel must be installed (setup.cfg's test extra)"
    return site


def process_tree(pid: int) -> set[int]:
    """pid and every descendant, from /proc."""
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        found.add(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return found


def run_inside(kdir: Path, name: str, code: str, env: dict[str, str]) -> tuple[str, int]:
    """Start a kernel through jupyter_client, run code, shut it down gracefully; assert that no
    process of it is left. Returns (stdout text, kernel pid)."""
    km = KernelManager(kernel_name=name,
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kdir)]))
    km.start_kernel(env=env)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=90)
        out: list[str] = []
        reply = kc.execute_interactive(code, timeout=60, output_hook=lambda m: out.append(
            m["content"].get("text", "")) if m["msg_type"] == "stream" else None)
        assert reply["content"]["status"] == "ok", reply["content"]
        pid = km.provisioner.process.pid
        tree = process_tree(pid)
    finally:
        kc.stop_channels()
        t0 = time.perf_counter()
        km.shutdown_kernel(now=False)
        took = time.perf_counter() - t0
    # A kernel killed after the shutdown timeout would also end: the timing tells them apart.
    assert took < 8, f"graceful shutdown took {took:.1f} s (force-killed?)"
    deadline = time.monotonic() + 5
    while (alive := {p for p in tree if os.path.exists(f"/proc/{p}")}) and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive, f"processes left after shutdown: {alive}"
    return "".join(out), pid


def leaky(site) -> dict[str, str]:
    """The server's environment with what must not reach a kernel."""
    env = site.environ()
    env.update(PYTHONPATH="/leak/pythonpath", VIRTUAL_ENV="/leak/venv",
               CONDA_PREFIX="/leak/conda", CONDA_DEFAULT_ENV="leak",
               PATH="/leak/venv/bin:" + env["PATH"])
    return env


def test_discovery_reads_each_envs_kernelspecs(run_ozk, site):
    assert "rstats" in site.conda_envs, NEEDS
    found = rows(run_ozk)
    rstats, tools = found["rstats"], found["tools"]
    # An R-only conda env is valid, has no Python, and is not listed as a problem.
    assert rstats["python"] == "" and rstats["status"] == "no python kernel"
    [ir] = rstats["kernelspecs"]
    assert (ir["name"], ir["language"], ir["language_version"]) == ("ir", "R", "4.2")
    assert ir["argv"][0] == "R" and not ir["problem"]
    [bash] = tools["kernelspecs"]
    assert (bash["name"], bash["language"], bash["language_version"]) == ("bash", "bash", "")
    # Nothing else ships a kernelspec; the module Python's own ipykernel is not one.
    assert [n for n, e in found.items() if e["kernelspecs"]] == ["tools", "rstats"]
    text = run_ozk("list").stdout
    assert "no python kernel" not in text and "conda-rstats-ir" in text
    assert "conda:rstats" not in text  # no problem line for it


def test_sync_writes_a_kernel_per_wrapped_spec(run_ozk, site, tmp_path):
    assert "rstats" in site.conda_envs, NEEDS
    env = site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"))
    out = sync(run_ozk, env=env)
    added = {a["kernel"]: a for a in out["actions"]}
    assert added["conda-rstats-ir"]["wraps"] == "ir" and added["venv-tools"]["wraps"] == ""
    rstats = os.path.realpath(site.conda_envs["rstats"])
    ir_dir = Path(rstats) / "share/jupyter/kernels/ir"
    ir = spec_of(env, "conda-rstats-ir")
    launcher = str(kernels_dir(env) / "conda-rstats-ir" / LAUNCHER_NAME)
    assert ir["argv"][0] == launcher and os.access(launcher, os.X_OK)
    # The wrapped argv follows --exec verbatim, R relative: the activated PATH finds it.
    assert ir["argv"][ir["argv"].index("--exec") + 1:] == [
        "--", "R", "--slave", "-e", "IRkernel::main()", "--args", "{connection_file}"]
    assert "--python" not in ir["argv"]
    assert ir["display_name"] == "R 4.2 (conda: rstats)"
    assert ir["language"] == "R" and ir["interrupt_mode"] == "signal"
    meta = ir["metadata"]["ozkernels"]
    assert (meta["kind"], meta["prefix"], meta["wraps"]) == ("conda", rstats, "ir")
    assert meta["wrapped_dir"] == str(ir_dir)
    for logo in ("logo-64x64.png", "logo-svg.svg", "kernel.js"):
        copied = kernels_dir(env) / "conda-rstats-ir" / logo
        assert copied.read_bytes() == (ir_dir / logo).read_bytes()
        assert not os.access(copied, os.X_OK) and logo in meta["files"]
    bash = spec_of(env, "venv-tools-bash")
    wrapped = json.loads((site.venvs["tools"] / "share/jupyter/kernels/bash/kernel.json")
                         .read_text())
    assert bash["display_name"] == "Bash (venv: tools)"
    assert bash["env"] == wrapped["env"] == {"PS1": "$"}
    # Only KernelSpec's fields: jupyter_client warns about others in every client.
    assert wrapped["codemirror_mode"] == "shell" and "codemirror_mode" not in bash
    argv = bash["argv"]
    assert argv[argv.index("--exec"):argv.index("--")] == ["--exec", "--keep-env", "PS1"]
    assert argv[argv.index("--") + 1:] == wrapped["argv"]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--module"] == MODULES
    assert (kernels_dir(env) / "venv-tools-bash" / "logo-svg.svg").is_file()
    # The Python kernel of the same venv is the usual one, and jupyter_client lists them all.
    assert spec_of(env, "venv-tools")["language"] == "python"
    specs = KernelSpecManager(kernel_dirs=[str(kernels_dir(env))]).get_all_specs()
    assert specs["conda-rstats-ir"]["spec"]["language"] == "R"
    assert specs["venv-tools-bash"]["spec"]["env"] == {"PS1": "$"}
    # A second sync changes nothing.
    again = sync(run_ozk, env=env)
    assert again["actions"] == [] and again["unchanged"] == len(added)


def test_sync_rules_for_wrapped_specs(run_ozk, kernels_site, tmp_path):
    env = kernels_site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"))
    sync(run_ozk, env=env)
    kdir = kernels_dir(env)
    tools = kernels_site.venvs["tools"]
    bash_dir = tools / "share/jupyter/kernels/bash"
    ir_dir = Path(os.path.realpath(kernels_site.conda_envs["rstats"])) / "share/jupyter/kernels/ir"
    # A spec the user wrote next to ours is never touched.
    mine = kdir / "my-own"
    mine.mkdir()
    (mine / "kernel.json").write_text('{"argv": ["x"], "display_name": "mine", "language": "x"}')
    before = {p: p.stat().st_mtime_ns for p in kdir.rglob("*")}
    # The env's own ipykernel spec and a copy of an ozkernels kernel are not wrapped again.
    py3 = tools / "share/jupyter/kernels/python3"
    py3.mkdir()
    (py3 / "kernel.json").write_text(json.dumps({
        "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python"}))
    shutil.copytree(kdir / "venv-tools", tools / "share/jupyter/kernels/copied")
    assert sync(run_ozk, env=env)["actions"] == []
    # A changed kernelspec rewrites its kernel only (a new logo comes along).
    wrapped = json.loads((bash_dir / "kernel.json").read_text())
    wrapped["env"]["BASH_KERNEL_X"] = "1"
    (bash_dir / "kernel.json").write_text(json.dumps(wrapped))
    (bash_dir / "logo-32x32.png").write_bytes(b"\x89PNG fake")
    out = sync(run_ozk, env=env)
    assert [(a["action"], a["kernel"]) for a in out["actions"]] == [("update", "venv-tools-bash")]
    assert spec_of(env, "venv-tools-bash")["env"]["BASH_KERNEL_X"] == "1"
    assert (kdir / "venv-tools-bash" / "logo-32x32.png").read_bytes() == b"\x89PNG fake"
    after = {p: p.stat().st_mtime_ns for p in kdir.rglob("*")}
    bash_kernel = kdir / "venv-tools-bash"
    assert {p for p in before if after.get(p) != before[p]} <= {bash_kernel,
                                                               *bash_kernel.iterdir()}
    # A broken kernelspec keeps its kernel and says why; an uninstalled one loses it.
    (ir_dir / "kernel.json").write_text("{not json")
    listed = rows(run_ozk, env=env)["rstats"]["other_kernels"]
    assert [(k["kernel"], k["status"]) for k in listed] == [("conda-rstats-ir", "broken")]
    assert "not valid JSON" in listed[0]["detail"]
    assert sync(run_ozk, env=env)["actions"] == []
    assert "kernelspec ir: broken" in run_ozk("list", env=env).stdout
    shutil.rmtree(ir_dir)
    shutil.rmtree(bash_dir)
    out = sync(run_ozk, env=env)
    assert sorted((a["action"], a["kernel"]) for a in out["actions"]) == [
        ("remove", "conda-rstats-ir"), ("remove", "venv-tools-bash")]
    assert "no longer in" in out["actions"][0]["reason"]
    left = {d.name for d in kdir.iterdir() if not d.name.startswith(".")}
    assert "venv-tools" in left and "my-own" in left
    assert not left & {"conda-rstats-ir", "venv-tools-bash"}
    assert (mine / "kernel.json").stat().st_mtime_ns == before[mine / "kernel.json"]
    # Names are stable: the same kernelspec reinstalled gets its name back.
    shutil.copytree(next(Path(d) for d in IRKERNEL_SPEC_DIRS if Path(d).is_dir()), ir_dir)
    out = sync(run_ozk, "--Syncer.wrapped_display_template={display_name} on {name}", env=env)
    assert [(a["action"], a["kernel"]) for a in out["actions"]] == [("add", "conda-rstats-ir")]
    assert spec_of(env, "conda-rstats-ir")["display_name"] == "R on rstats"


def test_r_kernel_runs_activated(run_ozk, site, site_env):
    assert "rstats" in site.conda_envs, NEEDS
    run_ozk("sync")
    prefix = os.path.realpath(site.conda_envs["rstats"])
    code = ('cat(Sys.getenv(c("CONDA_PREFIX", "CONDA_DEFAULT_ENV", "GDAL_DATA", "PYTHONPATH", '
            '"VIRTUAL_ENV")), strsplit(Sys.getenv("PATH"), ":")[[1]][1], R.version$major, '
            'sep = "\\n")')
    env = {**leaky(site), "JUPYTER_DATA_DIR": site_env["JUPYTER_DATA_DIR"]}
    text, _ = run_inside(kernels_dir(site_env), "conda-rstats-ir", code, env)
    conda, name, gdal, pythonpath, venv, path0, major = text.split("\n")[:7]
    assert (conda, name, path0) == (prefix, "rstats", f"{prefix}/bin")
    assert gdal == f"{prefix}/share/gdal"  # from the env's etc/conda/activate.d
    assert pythonpath == "" and venv == "" and major == "4"


def test_bash_kernel_runs_in_venv_with_modules(run_ozk, site, site_env):
    run_ozk("sync")
    prefix = str(site.venvs["tools"])
    code = 'echo "$VIRTUAL_ENV|$LOADEDMODULES|${PYTHONPATH-unset}|${PATH%%:*}|$((6 * 7))"'
    env = {**leaky(site), "JUPYTER_DATA_DIR": site_env["JUPYTER_DATA_DIR"]}
    text, _ = run_inside(kernels_dir(site_env), "venv-tools-bash", code, env)
    venv, loaded, pythonpath, path0, value = text.strip().split("|")
    assert venv == prefix and loaded.split(":") == MODULES
    assert pythonpath == "unset" and path0 == f"{prefix}/bin" and value == "42"


def test_launcher_reports_a_missing_kernel_command(run_ozk, kernels_site, tmp_path):
    env = kernels_site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"))
    spec = kernels_site.venvs["tools"] / "share/jupyter/kernels/gone"
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": ["no-such-kernel-cmd", "-f", "{connection_file}"], "display_name": "Gone",
        "language": "gone"}))
    run_ozk("sync", env=env)
    t0 = time.monotonic()
    proc = run_ozk("check", "--json", "venv-tools-gone", env=env, check=False, timeout=120)
    assert proc.returncode == 1 and time.monotonic() - t0 < 30
    [result] = json.loads(proc.stdout)["results"]
    assert not result["ok"]
    assert "kernel command 'no-such-kernel-cmd' is not on the activated PATH" in result["error"]
    assert "ozkernels sync" in result["error"]


def test_site_kernels_for_an_r_module(run_ozk, kernels_site, tmp_path):
    """An R module with IRkernel installed site-wide gets a site kernel that loads the module."""
    irkernel = find_irkernel()
    assert irkernel, NEEDS
    r, spec_dir = irkernel
    prefix = kernels_site.root / "apps" / "software" / "R" / "4.2.2-foss-2022a"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "R").symlink_to(r)
    shutil.copytree(spec_dir, prefix / "share/jupyter/kernels/ir")
    core = kernels_site.root / "modules" / "Core" / "r"
    core.mkdir(parents=True)
    (core / "4.2.2.lua").write_text(f'whatis("R 4.2.2")\nprepend_path("PATH", "{prefix}/bin")\n'
                                    f'setenv("EBROOTR", "{prefix}")\n')
    site_dir = tmp_path / "site-kernels"
    env = kernels_site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"),
                               XDG_CACHE_HOME=str(tmp_path / "cache"),
                               JUPYTER_PATH=str(site_dir / "share" / "jupyter"))
    patterns = "--ModuleSource.kernelspec_patterns=['r/*']"
    # Not configured: no R module; configured, a user sync still leaves modules to the site.
    assert "r/4.2.2" not in rows(run_ozk, env=env)
    assert rows(run_ozk, patterns, env=env)["r/4.2.2"]["other_kernels"][0]["status"] == \
        "no kernel"
    out = sync(run_ozk, "--system", "--prefix", str(site_dir), patterns, env=env)
    assert ("add", "site-module-r-4.2.2-ir") in [(a["action"], a["kernel"])
                                                 for a in out["actions"]]
    kdir = site_dir / "share" / "jupyter" / "kernels"
    spec = json.loads((kdir / "site-module-r-4.2.2-ir" / "kernel.json").read_text())
    assert spec["display_name"] == "R 4.2 (module: r/4.2.2)"
    argv = spec["argv"]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--module"] == ["r/4.2.2"]
    assert spec["metadata"]["ozkernels"]["site"] is True
    for f in (kdir / "site-module-r-4.2.2-ir").iterdir():
        assert f.stat().st_mode & 0o022 == 0  # site files are never group/other-writable
    # The user's sync sees the site kernel and writes no duplicate.
    listed = rows(run_ozk, patterns, env=env)["r/4.2.2"]["other_kernels"][0]
    assert (listed["kernel"], listed["status"]) == ("site-module-r-4.2.2-ir", "site kernel")
    proc = run_ozk("check", "--json", "--system", "--prefix", str(site_dir),
                   "site-module-r-4.2.2-ir", env=env, timeout=180)
    [result] = json.loads(proc.stdout)["results"]
    assert result["ok"] and result["language"] == "R", result
    assert result["probe"]["loaded"] == "r/4.2.2" and result["probe"]["value"] == "42"


@settings(max_examples=25, deadline=None)
@given(words=st.lists(st.text(st.characters(blacklist_categories=("Cs",),
                                            blacklist_characters="\x00"), max_size=12),
                      max_size=5),
       value=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                     max_size=20))
def test_launcher_execs_the_wrapped_argv_verbatim(tmp_path_factory, words, value):
    """Any words after --exec reach the command unchanged, and a kept variable wins."""
    prefix = tmp_path_factory.mktemp("venv")
    (prefix / "pyvenv.cfg").write_text("home = /usr/bin\n")
    cmd = [source_path(LAUNCHER_NAME), "--kind", "venv", "--prefix", str(prefix), "--name", "v",
           "--kernel", "k", "--exec", "--keep-env", "OZK_KEPT", "--",
           "bash", "-c", 'printf "%s\\0" "$OZK_KEPT" "$VIRTUAL_ENV" "$@"', "x", *words]
    env = {"PATH": os.environ["PATH"], "OZK_KEPT": value, "VIRTUAL_ENV": "/leak"}
    out = subprocess.run(["bash", "-p", *cmd], env=env, capture_output=True, timeout=30, check=True)
    got = out.stdout.decode("utf-8", "surrogateescape").split("\0")[:-1]
    assert got == [value, str(prefix), *words]


def test_remove_of_a_wrapped_kernel_explains_and_remove_of_the_env_takes_all(
        run_ozk, site, tmp_path):
    env = site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"))
    sync(run_ozk, env=env)
    proc = run_ozk("remove", "venv-tools-bash", env=env, check=False)
    assert proc.returncode == 1 and "uninstall that kernelspec" in proc.stderr, proc.stderr
    assert (kernels_dir(env) / "venv-tools-bash").is_dir()
    out = json.loads(run_ozk("remove", str(site.venvs["tools"]), "--json",
                             env=env).stdout)
    assert (out["removed"], out["also_removed"]) == ("venv-tools", ["venv-tools-bash"])
    assert sync(run_ozk, env=env)["actions"] == []
    assert not (kernels_dir(env) / "venv-tools-bash").exists()
