"""Tests of kernel_files/launcher.sh: real kernels through jupyter_client, real Lmod, real venvs."""

import json
import os
import re
import shlex
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import shell_reply
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

from ozkernels.demosite import link_packages
from ozkernels.kernel_files import LAUNCHER_NAME, launcher_files, read

# What a kernel dir gets: the source with Lmod's standard places filled in.
LAUNCHER_TEXT = read(LAUNCHER_NAME).decode()
LMOD = "/usr/share/lmod/lmod/libexec/lmod"
HOSTILE = "we'ird $(touch PWNED) ;\"x `touch PWNED` é"

needs_lmod = [
    pytest.mark.lmod,
    pytest.mark.skipif(not os.access(LMOD, os.X_OK), reason="needs Debian's Lmod"),
]

PROBE = (
    "import json, os, sys; "
    "print(json.dumps({'prefix': sys.prefix, 'env': dict(os.environ), 'pid': os.getpid()}))"
)


def clean_env(**extra):
    """The test process's environment without module, venv, conda and Python path state."""
    drop = ("LMOD", "__LMOD", "_ModuleTable", "CONDA_", "_CE_", "MODULES_", "__MODULES_")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(drop)
        and k
        not in {"MODULEPATH", "LOADEDMODULES", "_LMFILES_", "MODULESHOME", "VIRTUAL_ENV",
                "VIRTUAL_ENV_PROMPT", "PYTHONPATH", "PYTHONHOME"}
    }
    env.update(extra)
    return env


def install_launcher(kernels_dir, kernel_name, launcher_text=None):
    """Write the launcher and its helpers into a kernel dir the way ozkernels does; return it."""
    kdir = kernels_dir / kernel_name
    kdir.mkdir(parents=True, exist_ok=True)
    for name, data in launcher_files("conda").items():
        (kdir / name).write_bytes(data)
        (kdir / name).chmod(0o755)
    dest = kdir / LAUNCHER_NAME
    if launcher_text is not None:
        dest.write_text(launcher_text)
    return dest


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A module-wide scratch dir."""
    return tmp_path_factory.mktemp("launcher")


@pytest.fixture(scope="module")
def lmod_tree(base):
    """A tiny Lmod tree: pytool/1.0 (PATH + a variable), libtool/1.0 (LD_LIBRARY_PATH), broken."""
    core = base / "modules" / "Core"
    tool_bin = base / "apps" / "pytool" / "bin"
    tool_lib = base / "apps" / "libtool" / "lib"
    for d in (tool_bin, tool_lib, *(core / m for m in ("pytool", "libtool", "broken", "warn"))):
        d.mkdir(parents=True)
    (core / "pytool" / "1.0.lua").write_text(
        f'prepend_path("PATH", "{tool_bin}")\nsetenv("PYTOOL_HOME", "{tool_bin.parent}")\n'
    )
    (core / "libtool" / "1.0.lua").write_text(f'prepend_path("LD_LIBRARY_PATH", "{tool_lib}")\n')
    (core / "broken" / "1.0.lua").write_text('LmodError("licence server down")\n')
    (core / "warn" / "1.0.lua").write_text('LmodWarning("deprecated")\nsetenv("WARNED", "1")\n')
    # A hierarchy: python/3.11.7 is only visible once gcccore/13.2.0 is loaded.
    compiler = base / "modules" / "Compiler" / "gcccore" / "13.2.0"
    (compiler / "python").mkdir(parents=True)
    (core / "gcccore").mkdir()
    (core / "gcccore" / "13.2.0.lua").write_text(f'prepend_path("MODULEPATH", "{compiler}")\n')
    (compiler / "python" / "3.11.7.lua").write_text('setenv("PYV", "3.11.7")\n')
    return {"core": str(core), "bin": str(tool_bin), "lib": str(tool_lib)}


def make_venv(path):
    """A real venv on the test interpreter's base, with the test interpreter's packages linked in.

    From inside a venv, --system-site-packages would show the base interpreter's packages, not
    the ones under test (ipykernel may be only in the venv).
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True,
                   timeout=60)
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    link_packages(path / "lib" / version / "site-packages")
    return path


@pytest.fixture(scope="module")
def venv_dir(base):
    """A shared plain venv."""
    return make_venv(base / "venvs" / "analysis")


@pytest.fixture(scope="module")
def conda_dir(base):
    """A directory with conda's on-disk layout (hostile name), python running ours."""
    prefix = base / "envs" / ("c" + HOSTILE)
    (prefix / "conda-meta").mkdir(parents=True)
    (prefix / "conda-meta" / "history").write_text("==> 2024-01-01 00:00:00 <==\n")
    state = {"env_vars": {"FROM_STATE": "s", "SHARED": "state", "gone": "***unset***"}}
    (prefix / "conda-meta" / "state").write_text(json.dumps(state))
    (prefix / "etc" / "conda" / "env_vars.d").mkdir(parents=True)
    pkg_vars = {"SHARED": "pkg", "FROM_PKG": "it's \"q\" $(touch PWNED) `touch PWNED`",
                "BAD-NAME": "x"}
    (prefix / "etc" / "conda" / "env_vars.d" / "x.json").write_text(json.dumps(pkg_vars))
    act = prefix / "etc" / "conda" / "activate.d"
    act.mkdir(parents=True)
    # Written like real package scripts: unset variables, a failing command, bash syntax.
    (act / "b.sh").write_text('export ORDER="$ORDER b"\n')
    (act / "a.sh").write_text(
        'export ORDER="a"\nexport SEEN_PREFIX="$CONDA_PREFIX"\nexport ARGC=$#\n'
        'export UNSET_OK="${SOMETHING_UNDEFINED}ok"\nfalse\n[[ -n $CONDA_PREFIX ]] && true\n'
    )
    (prefix / "bin").mkdir()
    # A wrapper, not a symlink: a symlink to a venv's python starts the venv's base interpreter,
    # without the packages under test.
    wrapper = f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n'
    (prefix / "bin" / "python").write_text(wrapper)
    (prefix / "bin" / "python").chmod(0o755)
    return prefix


@pytest.fixture
def kernels_dir(tmp_path):
    """A private kernels dir."""
    d = tmp_path / "kernels"
    d.mkdir()
    return d


def launcher_argv(launcher, kind, prefix, python, *opts):
    """The argv ozkernels writes into kernel.json."""
    return [str(launcher), "--kind", kind, "--prefix", str(prefix), "--python", str(python),
            *opts, "--", "-f", "{connection_file}"]


@contextmanager
def kernel(kernels_dir, name, argv, env, cwd):
    """Start a kernel from a kernel.json, yield (manager, client); shut down and check cleanup."""
    (kernels_dir / name).mkdir(exist_ok=True)
    spec = {"argv": argv, "display_name": name, "language": "python"}
    (kernels_dir / name / "kernel.json").write_text(json.dumps(spec))
    km = KernelManager(
        kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)])
    )
    km.start_kernel(env=env, cwd=str(cwd))
    proc = km.provisioner.process
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield km, kc
    finally:
        kc.stop_channels()
        t0 = time.monotonic()
        km.shutdown_kernel(now=False)
        took = time.monotonic() - t0
    # A graceful shutdown: the kernel itself exited (no kill after the wait time).
    assert proc.poll() == 0, proc.returncode
    assert took < 2.5, took
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)


def probe(km, kc):
    """Run PROBE in the kernel and return its JSON; check the launcher exec'ed the kernel."""
    out = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    reply = kc.execute_interactive(PROBE, timeout=30, output_hook=hook)
    assert reply["content"]["status"] == "ok", reply["content"]
    info = json.loads("".join(out))
    assert info["pid"] == km.provisioner.process.pid
    return info


def test_venv_activation_clears_leaks(venv_dir, kernels_dir, tmp_path):
    leaked = "/leak/venv/bin:/leak/conda/bin:/leak/conda1/bin"
    env = clean_env(
        PATH=f"{leaked}:{os.environ['PATH']}",
        VIRTUAL_ENV="/leak/venv",
        VIRTUAL_ENV_PROMPT="(leak) ",
        CONDA_PREFIX="/leak/conda",
        CONDA_PREFIX_1="/leak/conda1",
        CONDA_SHLVL="2",
        CONDA_DEFAULT_ENV="leak",
        _CE_CONDA="conda",
        PYTHONPATH="/leak/pythonpath",
        PYTHONHOME="/leak/home",  # would stop any Python from starting if it leaked
    )
    launcher = install_launcher(kernels_dir, "venv-analysis")
    argv = launcher_argv(launcher, "venv", venv_dir, venv_dir / "bin" / "python",
                         "--name", "analysis", "--kernel", "venv-analysis")
    with kernel(kernels_dir, "venv-analysis", argv, env, tmp_path) as (km, kc):
        info = probe(km, kc)
    kenv = info["env"]
    assert info["prefix"] == str(venv_dir)
    assert kenv["VIRTUAL_ENV"] == str(venv_dir)
    path = kenv["PATH"].split(":")
    assert path[0] == str(venv_dir / "bin")
    assert not set(leaked.split(":")) & set(path)
    assert not [k for k in kenv if k.startswith(("CONDA_", "_CE_"))]
    for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV_PROMPT"):
        assert var not in kenv


def server_env(lmod_tree, module):
    """A server environment with a module loaded, exactly as Lmod's `module` function does it."""
    out = subprocess.run(
        ["bash", "-c", 'eval "$("$0" bash load "$1")" && env -0', LMOD, module],
        env=clean_env(MODULEPATH=lmod_tree["core"]),
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.decode()
    env = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    assert env["LOADEDMODULES"] == module
    assert lmod_tree["lib"] in env["LD_LIBRARY_PATH"].split(":")
    return env


@pytest.mark.lmod
@pytest.mark.skipif(not os.access(LMOD, os.X_OK), reason="needs Debian's Lmod")
@pytest.mark.parametrize("server_module", [None, "libtool/1.0"], ids=["fresh", "purge"])
def test_module_load(server_module, lmod_tree, venv_dir, kernels_dir, tmp_path):
    env = server_env(lmod_tree, server_module) if server_module else clean_env()
    launcher = install_launcher(kernels_dir, "venv-mod")
    argv = launcher_argv(launcher, "venv", venv_dir, venv_dir / "bin" / "python",
                         "--module", "pytool/1.0", "--lmod-cmd", LMOD,
                         "--modulepath", lmod_tree["core"], "--kernel", "venv-mod")
    with kernel(kernels_dir, "venv-mod", argv, env, tmp_path) as (km, kc):
        kenv = probe(km, kc)["env"]
    assert kenv["LOADEDMODULES"] == "pytool/1.0"
    assert kenv["PYTOOL_HOME"] == str(Path(lmod_tree["bin"]).parent)
    assert kenv["PATH"].split(":")[:2] == [str(venv_dir / "bin"), lmod_tree["bin"]]
    assert lmod_tree["lib"] not in kenv.get("LD_LIBRARY_PATH", "").split(":")


def test_conda_activation(conda_dir, kernels_dir, tmp_path):
    launcher = install_launcher(kernels_dir, "conda-x")
    name = "n" + HOSTILE
    argv = launcher_argv(launcher, "conda", conda_dir, conda_dir / "bin" / "python",
                         "--name", name, "--kernel", "conda-x")
    env = clean_env(gone="from the server", CONDA_PREFIX="/leak/conda")
    with kernel(kernels_dir, "conda-x", argv, env, tmp_path) as (km, kc):
        kenv = probe(km, kc)["env"]
    assert kenv["CONDA_PREFIX"] == str(conda_dir)
    assert kenv["CONDA_DEFAULT_ENV"] == name
    assert kenv["CONDA_SHLVL"] == "1"
    assert kenv["CONDA_PROMPT_MODIFIER"] == f"({name}) "
    assert kenv["PATH"].split(":")[0] == str(conda_dir / "bin")
    # env_vars.d, then conda-meta/state (which wins); ***unset*** removes; bad names skipped.
    assert kenv["FROM_STATE"] == "s"
    assert kenv["FROM_PKG"] == "it's \"q\" $(touch PWNED) `touch PWNED`"
    assert kenv["SHARED"] == "state"
    assert "GONE" not in kenv and "gone" in kenv
    assert "BAD-NAME" not in kenv
    # activate.d scripts: sorted, after the variables, without the kernel's argv, no set -eu.
    assert kenv["ORDER"] == "a b"
    assert kenv["SEEN_PREFIX"] == str(conda_dir)
    assert kenv["ARGC"] == "0"
    assert kenv["UNSET_OK"] == "ok"
    assert not list(tmp_path.parent.rglob("PWNED"))


def test_hostile_prefix(base, kernels_dir, tmp_path):
    prefix = make_venv(base / HOSTILE)
    launcher = install_launcher(kernels_dir, "venv-hostile")
    argv = launcher_argv(launcher, "venv", prefix, prefix / "bin" / "python",
                         "--name", HOSTILE, "--kernel", HOSTILE)
    with kernel(kernels_dir, "venv-hostile", argv, clean_env(), tmp_path) as (km, kc):
        info = probe(km, kc)
    assert info["env"]["VIRTUAL_ENV"] == str(prefix)
    assert info["prefix"] == str(prefix)
    assert not list(base.rglob("PWNED")) and not list(tmp_path.rglob("PWNED"))
    assert not (Path.cwd() / "PWNED").exists() and not (Path.home() / "PWNED").exists()


def test_interrupt(venv_dir, kernels_dir, tmp_path):
    launcher = install_launcher(kernels_dir, "venv-int")
    argv = launcher_argv(launcher, "venv", venv_dir, venv_dir / "bin" / "python")
    with kernel(kernels_dir, "venv-int", argv, clean_env(), tmp_path) as (km, kc):
        msg_id = kc.execute("import time; time.sleep(30)")
        while True:  # interrupt only once the code runs
            msg = kc.get_iopub_msg(timeout=30)
            if (msg["parent_header"].get("msg_id") == msg_id
                    and msg["msg_type"] == "execute_input"):
                break
        time.sleep(0.2)
        t0 = time.monotonic()
        km.interrupt_kernel()
        reply = shell_reply(kc, msg_id, timeout=10)
        assert time.monotonic() - t0 < 5
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert probe(km, kc)["pid"] == km.provisioner.process.pid  # still alive, same process


# ------------------------------------------------------------------ run directly


@pytest.fixture
def fake_python(tmp_path):
    """An 'interpreter' that records that it was started and prints its environment."""
    py = tmp_path / "fakepy" / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.write_text('#!/bin/sh\ntouch "$0.started"\necho "ARGS:$*"\nenv\n')
    py.chmod(0o755)
    return py


def run_launcher(launcher, args, env, cwd, timeout=5):
    """Run the launcher directly; return (CompletedProcess, seconds)."""
    t0 = time.monotonic()
    cp = subprocess.run([str(launcher), *args], env=env, cwd=cwd, capture_output=True,
                        text=True, timeout=timeout)
    return cp, time.monotonic() - t0


ERRORS = {
    "unknown-module": (
        ["--module", "nope/1.0"],
        r"module load nope/1\.0 failed: .*unknown.*\"nope/1\.0\""
        r".*run 'ozkernels sync', or 'ozkernels add .* --module NEW'",
    ),
    "hostile-module": (["--module", "nope/$(touch PWNED);`touch PWNED`"], r"unknown"),
    "module-error": (["--module", "pytool/1.0", "--module", "broken/1.0"],
                     r"module load pytool/1\.0 broken/1\.0 failed: licence server down;"),
    "no-lmod": (["--module", "pytool/1.0"], r"Lmod not found.*set LMOD_CMD"),
    "prefix-gone": (["--prefix", "/nonexistent/env"],
                    r"'/nonexistent/env' no longer exists; run 'ozkernels sync' to remove"),
    "python-missing": (["--python", "/nonexistent/python"], r"interpreter '/nonexistent/python'"),
    "unknown-option": (["--bogus", "x"], r"unknown option '--bogus'; usage: "),
    "bad-kind": (["--kind", "pixi"], r"--kind must be venv, conda or module"),
    "missing-value": (["--module"], r"option --module needs a value"),
}


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=needs_lmod if "module" in c else ()) for c in ERRORS]
)
def test_errors(case, lmod_tree, kernels_dir, fake_python, tmp_path):
    extra, pattern = ERRORS[case]
    text = None
    if case == "no-lmod":  # pretend this host has no Lmod in any standard location
        text = re.sub(r"(?m)^_ozk_lmod_std=\(.*\)$", "_ozk_lmod_std=(/nonexistent/lmod)",
                      LAUNCHER_TEXT)
        assert "/nonexistent/lmod" in text
    launcher = install_launcher(kernels_dir, "errk", text)
    args = ["--kind", "venv", "--prefix", str(fake_python.parent.parent),
            "--python", str(fake_python), "--kernel", "errk"]
    if case.endswith("module") or case == "module-error":
        args += ["--lmod-cmd", LMOD, "--modulepath", lmod_tree["core"]]
    # Options given twice: the last one wins, as the launcher parses in order.
    args += extra
    if case != "missing-value":
        args += ["--", "-f", "x.json"]
    cp, took = run_launcher(launcher, args, clean_env(), tmp_path)
    assert cp.returncode != 0
    assert took < 5
    lines = cp.stderr.splitlines()
    assert len(lines) == 1, cp.stderr
    assert lines[0].startswith("ozkernels: kernel 'errk': "), lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    assert not (fake_python.parent / "python.started").exists()
    assert not list(tmp_path.rglob("PWNED"))


def test_error_names_kernel_from_dir(kernels_dir, tmp_path):
    launcher = install_launcher(kernels_dir, "venv-dirname")
    cp, _ = run_launcher(launcher, ["--kind", "venv", "--prefix", "/nonexistent", "--python",
                                    "/x", "--", "-f", "c.json"], clean_env(), tmp_path)
    assert cp.stderr.startswith("ozkernels: kernel 'venv-dirname': ")


DIRECT = {
    # An Lmod warning (Lmod 8.6: exit 1 and a trailing "false") does not stop the kernel.
    "warning": (["warn/1.0"], None, ["LOADEDMODULES=warn/1.0", "WARNED=1"], "deprecated"),
    # Hierarchy: the parent is loaded first in the same Lmod call.
    "hierarchy": (["gcccore/13.2.0", "python/3.11.7"], None,
                  ["LOADEDMODULES=gcccore/13.2.0:python/3.11.7", "PYV=3.11.7"], ""),
    # The server's modules go even when the kernel needs none.
    "purge-only": ([], "libtool/1.0", [], ""),
}


@pytest.mark.lmod
@pytest.mark.skipif(not os.access(LMOD, os.X_OK), reason="needs Debian's Lmod")
@pytest.mark.parametrize("case", list(DIRECT))
def test_modules_direct(case, lmod_tree, kernels_dir, fake_python, tmp_path):
    modules, server_module, expected, stderr = DIRECT[case]
    env = server_env(lmod_tree, server_module) if server_module else clean_env()
    env["LMOD_CMD"] = LMOD
    launcher = install_launcher(kernels_dir, "direct")
    args = ["--kind", "module", "--prefix", str(fake_python.parent.parent),
            "--python", str(fake_python), "--modulepath", lmod_tree["core"]]
    for m in modules:
        args += ["--module", m]
    cp, _ = run_launcher(launcher, [*args, "--", "-f", "c.json"], env, tmp_path)
    assert cp.returncode == 0, cp.stderr
    assert stderr in cp.stderr
    out = cp.stdout.splitlines()
    assert out[0] == "ARGS:-m ipykernel_launcher -f c.json"
    assert set(expected) <= set(out)
    if not modules:
        assert not [line for line in out if line.startswith("LOADEDMODULES=")]
        assert f"LD_LIBRARY_PATH={lmod_tree['lib']}" not in out



# ------------------------------------------------------------------ Environment Modules (Tcl)


@pytest.fixture(scope="module")
def tcl_tree(base):
    """A tiny Tcl tree: the same modules as lmod_tree, and a broken libtcl for quarantine."""
    core = base / "modules-tcl" / "Core"
    tool_bin, tool_lib = base / "apps" / "tcl-pytool" / "bin", base / "apps" / "tcl-libtool" / "lib"
    compiler = base / "modules-tcl" / "Compiler" / "GCCcore" / "13.2.0"
    for d in (tool_bin, tool_lib, compiler / "Python",
              *(core / m for m in ("pytool", "libtool", "broken", "GCCcore"))):
        d.mkdir(parents=True)
    head = "#%Module\n"
    (core / "pytool" / "1.0").write_text(
        f'{head}prepend-path PATH "{tool_bin}"\nsetenv PYTOOL_HOME "{tool_bin.parent}"\n')
    (core / "libtool" / "1.0").write_text(f'{head}prepend-path LD_LIBRARY_PATH "{tool_lib}"\n')
    (core / "broken" / "1.0").write_text(f'{head}error "licence server down"\n')
    (core / "GCCcore" / "13.2.0").write_text(f'{head}module use "{compiler}"\n')
    (compiler / "Python" / "3.11.7").write_text(
        f"{head}setenv PYV 3.11.7\nsetenv SEEN_LDLP [expr {{[info exists env(LD_LIBRARY_PATH)]"
        " ? $env(LD_LIBRARY_PATH) : {}}]\n")
    # A library dir that breaks any program linked against libtcl (tclsh included).
    bad = base / "apps" / "bad-tcl" / "lib"
    bad.mkdir(parents=True)
    (bad / "libtcl8.6.so").write_text("not a library\n")
    return {"core": str(core), "bin": str(tool_bin), "lib": str(tool_lib), "bad": str(bad)}


def tcl_server_env(envmodules_cmd, tcl_tree, module):
    """A server environment with a module loaded as Environment Modules' `module` does it."""
    out = subprocess.run(
        ["bash", "-c", 'eval "$("$0" bash load "$1")" && env -0', envmodules_cmd, module],
        env=clean_env(MODULEPATH=tcl_tree["core"]), capture_output=True, check=True, timeout=30,
    ).stdout.decode()
    env = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    assert env["LOADEDMODULES"] == module and env["_LMFILES_"]
    return env


TMOD_ERRORS = {
    "unknown-module": (["--module", "nope/1.0"],
                       r"module load nope/1\.0 failed: Unable to locate a modulefile for "
                       r"'nope/1\.0'; .*run 'ozkernels sync', or 'ozkernels add .* --module NEW'"),
    "hostile-module": (["--module", "nope/$(touch PWNED);`touch PWNED`"], r"Unable to locate"),
    "module-error": (["--module", "pytool/1.0", "--module", "broken/1.0"],
                     r"module load pytool/1\.0 broken/1\.0 failed: broken/1\.0: "
                     r"licence server down; "),
    "no-tmod": (["--module", "pytool/1.0"],
                r"Environment Modules not found.*set MODULES_CMD to its modulecmd\.tcl"),
    "bad-system": (["--module-system", "spack"], r"--module-system must be lmod or tmod"),
}


@pytest.mark.parametrize("case", list(TMOD_ERRORS))
def test_tmod_errors(case, tcl_tree, envmodules_cmd, no_lmod, kernels_dir, fake_python,
                     tmp_path):
    extra, pattern = TMOD_ERRORS[case]
    text = None
    cmd = envmodules_cmd
    if case == "no-tmod":  # a host without Environment Modules anywhere, and a stale record
        text = re.sub(r"(?m)^_ozk_tmod_std=\(.*\)$", "_ozk_tmod_std=(/nonexistent/m.tcl)",
                      LAUNCHER_TEXT)
        assert "/nonexistent/m.tcl" in text
        cmd = str(tmp_path / "gone" / "modulecmd.tcl")
    launcher = install_launcher(kernels_dir, "errk", text)
    args = ["--kind", "venv", "--prefix", str(fake_python.parent.parent),
            "--python", str(fake_python), "--kernel", "errk", "--module-system", "tmod",
            "--module-cmd", cmd, "--modulepath", tcl_tree["core"], *extra, "--", "-f", "x.json"]
    cp, took = run_launcher(launcher, args, clean_env(), tmp_path)
    assert cp.returncode != 0
    assert took < 5
    lines = cp.stderr.splitlines()
    assert len(lines) == 1, cp.stderr
    assert lines[0].startswith("ozkernels: kernel 'errk': "), lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    assert not (fake_python.parent / "python.started").exists()
    assert not list(tmp_path.rglob("PWNED"))


TMOD_DIRECT = {
    # Hierarchy: the parent is loaded first in the same call and makes the child visible.
    "hierarchy": (["GCCcore/13.2.0", "Python/3.11.7"], None, {},
                  ["LOADEDMODULES=GCCcore/13.2.0:Python/3.11.7", "PYV=3.11.7"]),
    # The server's modules go even when the kernel needs none.
    "purge-only": ([], "libtool/1.0", {}, []),
    # modulecmd.tcl runs with the quarantined LD_LIBRARY_PATH emptied (tclsh would not start
    # with the broken libtcl first); modulefiles and the kernel see the real value.
    "quarantine": (["GCCcore/13.2.0", "Python/3.11.7"], None, {
        "MODULES_RUN_QUARANTINE": "LD_LIBRARY_PATH", "LD_LIBRARY_PATH": "{bad}"},
        ["SEEN_LDLP={bad}", "LD_LIBRARY_PATH={bad}"]),
}


@pytest.mark.parametrize("case", list(TMOD_DIRECT))
def test_tmod_modules_direct(case, tcl_tree, envmodules_cmd, no_lmod, kernels_dir, fake_python,
                             tmp_path):
    modules, server_module, extra, expected = TMOD_DIRECT[case]
    env = tcl_server_env(envmodules_cmd, tcl_tree, server_module) if server_module else \
        clean_env()
    env.update({k: v.format(**tcl_tree) for k, v in extra.items()})
    launcher = install_launcher(kernels_dir, "direct")
    # No MODULES_CMD and no `module` function: the launcher runs the recorded modulecmd.tcl.
    env.pop("MODULES_CMD", None)
    args = ["--kind", "module", "--prefix", str(fake_python.parent.parent),
            "--python", str(fake_python), "--module-system", "tmod", "--module-cmd",
            envmodules_cmd, "--modulepath", tcl_tree["core"]]
    for m in modules:
        args += ["--module", m]
    cp, _ = run_launcher(launcher, [*args, "--", "-f", "c.json"], env, tmp_path)
    assert cp.returncode == 0, cp.stderr
    out = cp.stdout.splitlines()
    assert out[0] == "ARGS:-m ipykernel_launcher -f c.json"
    assert {e.format(**tcl_tree) for e in expected} <= set(out), out
    if not modules:
        assert not [line for line in out if line.startswith(("LOADEDMODULES=", "_LMFILES_="))]
        assert f"LD_LIBRARY_PATH={tcl_tree['lib']}" not in out
    if case == "quarantine":
        del env["MODULES_RUN_QUARANTINE"]  # the control: without it modulecmd.tcl cannot run
        cp, _ = run_launcher(launcher, [*args, "--", "-f", "c.json"], env, tmp_path)
        assert cp.returncode == 1 and "libtcl8.6.so" in cp.stderr, cp.stderr
        assert len(cp.stderr.splitlines()) == 1, cp.stderr
