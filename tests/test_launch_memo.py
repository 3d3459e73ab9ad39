"""The launcher's memo of the module step: replayed only when nothing it depends on changed.

Real Lmod, the real launcher run directly; an "interpreter" that prints its environment; Lmod
is called through a wrapper that counts its runs, so a test sees when Lmod did not run at all.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ozktest.generated import dir_names, examples

from ozkernels import launchmemo
from ozkernels.kernel_files import launcher_files, read
from ozkernels.specs import LAUNCHER_NAME
from ozkernels.store import KernelStore

LMOD = "/usr/share/lmod/lmod/libexec/lmod"

pytestmark = [
    pytest.mark.lmod,
    pytest.mark.skipif(not os.access(LMOD, os.X_OK), reason="needs Debian's Lmod"),
]


def lua(value: str) -> str:
    """A Lua string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Site:
    """A module tree, a kernel dir with the launcher, a counting Lmod and a server env."""

    def __init__(self, root: Path):
        self.root = root
        self.core = root / "mods" / "Core"
        self.early = root / "mods" / "Early"  # first on MODULEPATH, empty until a test shadows
        self.compiler = root / "mods" / "Compiler" / "gcccore" / "13.2.0"
        self.home = root / "home"
        self.cache = root / "cache"
        self.log = root / "log" / "lmod-runs"
        for d in (self.core, self.early, self.compiler, self.home, self.log.parent):
            d.mkdir(parents=True)
        self.module("pytool/1.0", 'prepend_path("PATH", "/opt/pytool/bin")\n'
                    'setenv("PYTOOL_HOME", "/opt/pytool")\n')
        self.module("srv/1.0", 'prepend_path("LD_LIBRARY_PATH", "/opt/srv/lib")\n'
                    'setenv("SRV_HOME", "/opt/srv")\n')
        self.module("gcccore/13.2.0", f'prepend_path("MODULEPATH", {lua(str(self.compiler))})\n')
        self.module("python/3.11.7", 'setenv("PYV", "3.11.7")\n', self.compiler)
        self.module("other/1.0", 'setenv("OTHER_HOME", "/opt/other")\n')
        self.module("warn/1.0", 'LmodWarning("deprecated")\nsetenv("WARNED", "1")\n')
        self.module("fn/1.0", 'set_shell_function("ozkfn", "echo hi", "echo hi")\n')
        wrapper = root / "lmodbin" / "lmod"
        wrapper.parent.mkdir()
        wrapper.write_text(f'#!/bin/sh\necho run >> "{self.log}"\nexec {LMOD} "$@"\n')
        wrapper.chmod(0o755)
        self.lmod = str(wrapper)
        self.kdir = root / "kernels" / "venv-memo"
        self.kdir.mkdir(parents=True)
        self.launcher = self.kdir / LAUNCHER_NAME
        for name, data in launcher_files("conda").items():  # the launcher and its conda helper
            (self.kdir / name).write_bytes(data)
        self.launcher.chmod(0o755)
        prefix = root / "env"
        (prefix / "bin").mkdir(parents=True)
        self.python = prefix / "bin" / "python"
        self.python.write_text("#!/bin/sh\nenv -0\n")
        self.python.chmod(0o755)
        self.prefix = prefix
        self.modulepath = f"{self.early}:{self.core}"

    def module(self, name: str, body: str, tree: Path | None = None) -> Path:
        """Write a Lua modulefile."""
        path = (tree or self.core) / f"{name}.lua"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
        return path

    def server(self, *modules: str, **extra: str) -> dict[str, str]:
        """A server's environment: modules loaded by Lmod's own output, no `module` function."""
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8",
               "MODULEPATH": self.modulepath, "XDG_CACHE_HOME": str(self.cache),
               "LMOD_CMD": self.lmod}
        env.update(extra)
        if modules:
            out = subprocess.run(["bash", "-c", 'eval "$("$0" bash load "$@")" && env -0',
                                  LMOD, *modules], env=env, capture_output=True, check=True,
                                 timeout=60).stdout.decode()
            env = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
            env.pop("_", None)
            assert env["LOADEDMODULES"] == ":".join(modules)
        return env

    def runs(self) -> int:
        """How often Lmod has run so far."""
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0

    def launch(self, env: dict[str, str], modules: tuple[str, ...],
               launcher: Path | None = None, system: tuple[str, ...] = ()
               ) -> tuple[int, dict[str, str], str, int]:
        """Run the launcher; return its exit code, the kernel's env, stderr and Lmod runs."""
        before = self.runs()
        args = [str(launcher or self.launcher), "--kind", "venv", "--prefix", str(self.prefix),
                "--python", str(self.python), "--modulepath", str(self.core),
                "--kernel", "venv-memo", *system]
        for m in modules:
            args += ["--module", m]
        cp = subprocess.run([*args, "--", "-f", "c.json"], env=env, cwd=self.root,
                            capture_output=True, timeout=60, check=False)
        kenv = dict(item.split("=", 1) for item in cp.stdout.decode().split("\0") if "=" in item)
        kenv.pop("_", None)
        return cp.returncode, kenv, cp.stderr.decode(), self.runs() - before

    def memos(self) -> list[Path]:
        """The memo files written so far."""
        d = self.cache / "ozkernels" / "launch"
        return sorted(p for p in d.iterdir() if "@" in p.name) if d.is_dir() else []


@pytest.fixture
def site(tmp_path):
    """A fresh site per test."""
    return Site(tmp_path)


CASES = {
    "load": ((), ("pytool/1.0",)),
    "purge-and-load-hierarchy": (("srv/1.0",), ("gcccore/13.2.0", "python/3.11.7")),
    "purge-only": (("srv/1.0",), ()),
    "warning": (("srv/1.0",), ("warn/1.0",)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_replay_equals_the_real_step(site, case):
    server_modules, modules = CASES[case]
    env = site.server(*server_modules)
    rc, real, real_err, runs = site.launch({**env, "OZKERNELS_LAUNCH_CACHE": "0"}, modules)
    assert rc == 0, real_err
    del real["OZKERNELS_LAUNCH_CACHE"]
    assert runs == (1 if server_modules else 0) + (1 if modules else 0)
    assert not site.memos()
    rc, first, first_err, runs = site.launch(env, modules)
    assert rc == 0 and runs >= 1 and first_err == real_err
    # One memo per module step that ran: the purge (server modules) and the load.
    assert len(site.memos()) == (1 if server_modules else 0) + (1 if modules else 0)
    for _ in range(2):
        rc, replayed, err, runs = site.launch(env, modules)
        assert (rc, runs) == (0, 0), err
        assert replayed == first == real
        assert err == real_err
    assert real["LOADEDMODULES"] == ":".join(modules) if modules else "LOADEDMODULES" not in real
    assert "SRV_HOME" not in real and "/opt/srv/lib" not in real.get("LD_LIBRARY_PATH", "")
    if case == "warning":
        assert "deprecated" in real_err


def shadow(site, env):
    """A new pytool/1.0 in a MODULEPATH dir searched before the one loaded."""
    site.module("pytool/1.0", 'setenv("PYTOOL_HOME", "/opt/shadow")\n', site.early)
    return env, "/opt/shadow", 2  # a MODULEPATH dir changed: Lmod walks them in both steps


def edit(site, env):
    """The loaded modulefile changed."""
    site.module("pytool/1.0", 'setenv("PYTOOL_HOME", "/opt/edited")\n')
    return env, "/opt/edited", 1


def user_rc(site, env):
    """The user added a ~/.modulerc.lua."""
    (site.home / ".modulerc.lua").write_text("")
    return env, "/opt/pytool", 2


def new_launcher(site, env):
    """ozkernels rewrote the launcher (a sync after an upgrade)."""
    site.launcher.write_bytes(read(LAUNCHER_NAME))
    return env, "/opt/pytool", 2


def server_modulepath(site, env):
    """The server now runs with another MODULEPATH."""
    extra = site.root / "mods" / "Extra"
    extra.mkdir()
    return {**env, "MODULEPATH": f"{env['MODULEPATH']}:{extra}"}, "/opt/pytool", 2


def server_module(site, env):
    """The server now has other modules loaded."""
    return site.server("srv/1.0", "other/1.0"), "/opt/pytool", 1


def lmod_setting(site, env):
    """An Lmod setting the server did not have when the memo was written."""
    return {**env, "LMOD_EXACT_MATCH": "yes"}, "/opt/pytool", 2


def other_host(site, env):
    """Another login node of the same site (shared home, another host name)."""
    return {**env, "HOSTNAME": "other-node"}, "/opt/pytool", 2


CHANGES = [shadow, edit, user_rc, new_launcher, server_modulepath, server_module, lmod_setting,
           other_host]


@pytest.mark.parametrize("change", CHANGES, ids=[c.__name__ for c in CHANGES])
def test_a_change_runs_the_module_system_again(site, change):
    env = site.server("srv/1.0")
    for _ in range(2):
        rc, kenv, err, runs = site.launch(env, ("pytool/1.0",))
        assert rc == 0, err
    assert runs == 0
    env, home, lmod_runs = change(site, env)
    # File times tick per jiffy: a start in the same tick as the change records no memo.
    time.sleep(0.05)
    rc, kenv, err, runs = site.launch(env, ("pytool/1.0",))
    assert rc == 0, err
    # A change to the kernel's modules or to the server's modules reruns only that step.
    assert runs == lmod_runs, f"{change.__name__}: {runs} Lmod runs"
    assert kenv["PYTOOL_HOME"] == home
    assert "SRV_HOME" not in kenv and "OTHER_HOME" not in kenv
    real = site.launch({**env, "OZKERNELS_LAUNCH_CACHE": "0"}, ("pytool/1.0",))[1]
    assert kenv == {k: v for k, v in real.items() if k != "OZKERNELS_LAUNCH_CACHE"}
    rc, again, err, runs = site.launch(env, ("pytool/1.0",))
    assert (rc, runs, again) == (0, 0, kenv), err


def test_a_removed_module_fails_as_without_memo(site):
    env = site.server("srv/1.0")
    for _ in range(2):
        assert site.launch(env, ("pytool/1.0",))[0] == 0
    (site.core / "pytool" / "1.0.lua").unlink()
    rc, _, err, runs = site.launch(env, ("pytool/1.0",))
    assert rc == 1 and runs >= 1
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert re.search(r"^ozkernels: kernel 'venv-memo': module load pytool/1\.0 failed: .*"
                     r"run 'ozkernels sync'", lines[0]), lines[0]


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "code", "other-kernel"])
def test_a_damaged_memo_is_ignored(site, damage):
    env = site.server("srv/1.0")
    rc, real, _, _ = site.launch(env, ("pytool/1.0",))
    for memo in site.memos():
        text = memo.read_text()
        stamp = memo.stat().st_mtime_ns
        memo.write_text({"truncated": text[: len(text) // 2], "empty": "",
                         "garbage": "\0\0\0" + "9999999\0" * 20 + "end\0",
                         "code": f"touch {site.root}/PWNED\n$(touch {site.root}/PWNED)\0end\0",
                         "other-kernel": text.replace(str(site.launcher), "/elsewhere/k")}[damage])
        os.utime(memo, ns=(stamp, stamp))
    rc, kenv, err, runs = site.launch(env, ("pytool/1.0",))
    assert (rc, err) == (0, "")
    assert runs == 2 and kenv == real
    assert not (site.root / "PWNED").exists()  # a memo is data, never run


def test_shell_functions_are_never_memoized(site):
    env = site.server()
    for _ in range(2):
        rc, _, err, runs = site.launch(env, ("fn/1.0",))
        assert (rc, runs) == (0, 1), err
    assert not site.memos()


def test_memo_off(site):
    env = {**site.server("srv/1.0"), "OZKERNELS_LAUNCH_CACHE": "0"}
    for _ in range(2):
        assert site.launch(env, ("pytool/1.0",))[3] == 2
    assert not (site.cache / "ozkernels").exists()


def test_unwritable_cache_still_starts(site):
    env = site.server("srv/1.0", XDG_CACHE_HOME="relative/dir")
    rc, kenv, err, runs = site.launch(env, ("pytool/1.0",))
    assert (rc, err, runs) == (0, "", 2)
    assert kenv["LOADEDMODULES"] == "pytool/1.0"
    shutil.rmtree(site.root / "relative", ignore_errors=True)


def test_conda_env_vars_are_read_again_only_when_their_files_change(site):
    prefix = site.root / "conda-env"
    (prefix / "conda-meta").mkdir(parents=True)
    (prefix / "conda-meta" / "history").write_text("==> 2024-01-01 00:00:00 <==\n")
    state = prefix / "conda-meta" / "state"
    state.write_text(json.dumps({"env_vars": {"FROM_STATE": "s1", "gone": "***unset***"}}))
    vars_d = prefix / "etc" / "conda" / "env_vars.d"
    vars_d.mkdir(parents=True)
    (vars_d / "a.json").write_text(json.dumps({"FROM_PKG": "it's $(touch PWNED)"}))
    log = site.root / "log" / "python-runs"
    python = prefix / "bin" / "python"
    python.parent.mkdir()
    python.write_text('#!/bin/sh\nif [ "$1 $2" = "-m ipykernel_launcher" ]; then exec env -0; fi\n'
                      f'echo run >> "{log}"\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)

    def start():
        before = len(log.read_text().splitlines()) if log.exists() else 0
        cp = subprocess.run([str(site.launcher), "--kind", "conda", "--prefix", str(prefix),
                             "--python", str(python), "--name", "c", "--", "-f", "c.json"],
                            env={**site.server(), "GONE": "x"}, cwd=site.root,
                            capture_output=True, timeout=60, check=False)
        assert cp.returncode == 0, cp.stderr
        kenv = dict(x.split("=", 1) for x in cp.stdout.decode().split("\0") if "=" in x)
        return kenv, len(log.read_text().splitlines()) - before

    first, runs = start()
    assert runs == 1
    assert (first["FROM_STATE"], first["FROM_PKG"]) == ("s1", "it's $(touch PWNED)")
    assert "GONE" not in first
    again, runs = start()
    assert (runs, again) == (0, first)
    for change, var, value in (
            (lambda: state.write_text(json.dumps({"env_vars": {"FROM_STATE": "s2"}})),
             "FROM_STATE", "s2"),
            (lambda: (vars_d / "b.json").write_text(json.dumps({"NEW": "n"})), "NEW", "n"),
            (lambda: state.unlink(), "FROM_STATE", None)):
        change()
        time.sleep(0.05)
        kenv, runs = start()
        assert runs == 1 and kenv.get(var) == value
        assert start() == (kenv, 0)
    assert not list(site.root.rglob("PWNED"))


def test_what_a_lua_modulefile_reads_is_part_of_the_key(site):
    # One memo per node would otherwise give every later Slurm job the first job's scratch dir.
    site.module("scratch/1.0", 'setenv("SCRATCH", pathJoin("/tmp", os.getenv("SLURM_JOB_ID") '
                'or "none"))\nsetenv("PART", os.getenv \'SLURM_JOB_PARTITION\' or "none")\n')
    env = site.server("srv/1.0")

    def start(**extra):
        rc, kenv, err, runs = site.launch({**env, **extra}, ("scratch/1.0",))
        assert rc == 0, err
        return kenv["SCRATCH"], kenv["PART"], runs

    assert start(SLURM_JOB_ID="11") == ("/tmp/11", "none", 2)
    assert start(SLURM_JOB_ID="11") == ("/tmp/11", "none", 0)
    # Only the load step reads it: the purge is still replayed.
    assert start(SLURM_JOB_ID="12") == ("/tmp/12", "none", 1)
    assert start(SLURM_JOB_ID="12", SLURM_JOB_PARTITION="gpu") == ("/tmp/12", "gpu", 1)
    assert start() == ("/tmp/none", "none", 1)
    assert start() == ("/tmp/none", "none", 0)


class TclSite:
    """Environment Modules (modulecmd.tcl counted by the same log) and a Tcl module tree."""

    def __init__(self, site: Site, modulecmd: str):
        self.site = site
        self.tree = site.root / "tclmods"
        wrapper = site.root / "tmodbin" / "modulecmd.tcl"
        wrapper.parent.mkdir()
        wrapper.write_text(f'#!/bin/sh\necho run >> "{site.log}"\n'
                           f'exec tclsh8.6 {modulecmd} "$@"\n')
        wrapper.chmod(0o755)
        self.args = ("--module-system", "tmod", "--module-cmd", str(wrapper))
        self.env = {"PATH": "/usr/bin:/bin", "HOME": str(site.home), "LANG": "C.UTF-8",
                    "MODULEPATH": str(self.tree), "XDG_CACHE_HOME": str(site.cache)}

    def module(self, name: str, body: str) -> None:
        """Write a Tcl modulefile."""
        path = self.tree / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#%Module\n" + body)

    def launch(self, module: str, **extra: str) -> tuple[dict[str, str], int]:
        """Start with the module; the kernel's env and the module system's runs."""
        rc, kenv, err, runs = self.site.launch({**self.env, **extra}, (module,),
                                               system=self.args)
        assert rc == 0, err
        return kenv, runs


@pytest.fixture
def tcl(site, envmodules_cmd):
    """The site with Environment Modules 5.2 instead of Lmod."""
    return TclSite(site, envmodules_cmd)


def test_what_a_tcl_modulefile_reads_is_part_of_the_key(tcl):
    tcl.module("scratch/1.0", 'if {[info exists ::env(SLURM_JOB_ID)]} {\n'
               '    setenv SCRATCH /tmp/$env(SLURM_JOB_ID)\n'
               '} else {\n    setenv SCRATCH /tmp/none\n}\n'
               'setenv PART [getenv SLURM_JOB_PARTITION none]\n'
               'setenv OWNER ${::env(USER)}\n')

    def start(**extra):
        kenv, runs = tcl.launch("scratch/1.0", USER="u1", **extra)
        return kenv["SCRATCH"], kenv["PART"], runs

    assert start(SLURM_JOB_ID="11") == ("/tmp/11", "none", 1)
    assert start(SLURM_JOB_ID="11") == ("/tmp/11", "none", 0)
    assert start(SLURM_JOB_ID="12") == ("/tmp/12", "none", 1)
    assert start(SLURM_JOB_ID="12", SLURM_JOB_PARTITION="gpu") == ("/tmp/12", "gpu", 1)
    assert start() == ("/tmp/none", "none", 1)
    assert start() == ("/tmp/none", "none", 0)


@pytest.mark.parametrize("body", [
    'set v SLURM_JOB_ID\nif {[info exists env($v)]} { setenv SCRATCH /tmp/$env($v) }\n',
    'foreach {k v} [array get env SLURM_JOB_*] { setenv SCRATCH /tmp/$v }\n',
    'setenv SCRATCH /tmp/[exec sh -c {echo ${SLURM_JOB_ID:-none}}]\n',
], ids=["computed-name", "array-get", "exec"])
def test_a_tcl_read_that_cannot_be_keyed_writes_no_memo(tcl, body):
    tcl.module("scratch/1.0", body)
    for job in ("11", "11", "12"):
        kenv, runs = tcl.launch("scratch/1.0", SLURM_JOB_ID=job)
        assert (kenv["SCRATCH"], runs) == (f"/tmp/{job}", 1)
    assert not tcl.site.memos()


@pytest.mark.parametrize("body", [
    'local v = "SLURM_" .. "JOB_ID"\nsetenv("SCRATCH", "/tmp/" .. (os.getenv(v) or "none"))\n',
    'local get = os.getenv\nsetenv("SCRATCH", "/tmp/" .. (get("SLURM_JOB_ID") or "none"))\n',
    'setenv("SCRATCH", "/tmp/" .. capture("echo ${SLURM_JOB_ID:-none}"):gsub("%s+$", ""))\n',
], ids=["computed-name", "helper", "capture"])
def test_a_lua_read_that_cannot_be_keyed_writes_no_memo(site, body):
    site.module("scratch/1.0", body)
    env = site.server()
    for job in ("11", "11", "12"):
        rc, kenv, err, runs = site.launch({**env, "SLURM_JOB_ID": job}, ("scratch/1.0",))
        assert (rc, kenv["SCRATCH"], runs) == (0, f"/tmp/{job}", 1), err
    assert not site.memos()


def test_what_lmods_site_package_reads_is_part_of_the_key(site):
    pkg = site.root / "lmod-site"
    pkg.mkdir()
    hooks = pkg / "SitePackage.lua"
    hooks.write_text('local flag = os.getenv("SITE_FLAG")\n')
    env = site.server("srv/1.0", LMOD_PACKAGE_PATH=str(pkg))
    starts = [site.launch({**env, **extra}, ("pytool/1.0",))
              for extra in ({}, {}, {"SITE_FLAG": "1"}, {"SITE_FLAG": "1"})]
    assert [(rc, runs) for rc, _, _, runs in starts] == [(0, 2), (0, 0), (0, 2), (0, 0)]
    # Hooks that read a variable by a computed name: the steps run at every start.
    time.sleep(0.05)
    hooks.write_text('local v = "SITE_FLAG"\nlocal flag = os.getenv(v)\n')
    for _ in range(2):
        rc, _, err, runs = site.launch(env, ("pytool/1.0",))
        assert (rc, runs) == (0, 2), err


HOSTILE = {
    "percent": "k%25%2Fx%",
    "shell": "k $(touch PWNED) 'q' \"d\" `b` ; & *",
    "at-sign": "k@node1.load",
    "long": "k" * 190,
    "long-utf8": "δ" * 120,
}


@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
@pytest.mark.parametrize("name", list(HOSTILE))
def test_python_names_the_memos_the_launcher_writes(site, name, locale):
    kdir = site.root / "kernels" / "%2F odd" / HOSTILE[name]
    kdir.mkdir(parents=True)
    launcher = kdir / LAUNCHER_NAME
    shutil.copy2(site.launcher, launcher)
    env = {**site.server(), "HOSTNAME": "node1", "LC_ALL": locale}
    assert site.launch(env, ("pytool/1.0",))[0] == 0  # the site's own kernel: kept below
    rc, _, err, _ = site.launch(env, ("pytool/1.0",), launcher=launcher)
    assert rc == 0, err
    mine = [p for p in site.memos()
            if os.fsencode(p.name).rpartition(b"@")[0] == launchmemo.memo_id(str(kdir))]
    assert [p.name.rpartition("@")[2] for p in mine] == ["node1.load"]
    assert launchmemo.forget([str(kdir)], env) == [p.name for p in mine]
    assert len(site.memos()) == 1 and site.launch(env, ("pytool/1.0",))[3] == 0
    assert not (site.root / "PWNED").exists()


def test_removing_a_kernel_removes_its_memos(site, monkeypatch):
    store = KernelStore(str(site.root / "kernels"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(site.cache))
    env = site.server("srv/1.0")
    launchers = {}
    for name in ("venv-a", "venv-b"):
        spec = {"argv": [str(site.root / "kernels" / name / LAUNCHER_NAME), "--", "-f", "{c}"],
                "display_name": name, "language": "python",
                "metadata": {"ozkernels": {"prefix": str(site.prefix)}}}
        launchers[name] = Path(store.write(name, spec, launcher_files())) / LAUNCHER_NAME
        for host in ("node1", "node2"):  # a Slurm kernel's memos on two nodes
            rc, _, err, _ = site.launch({**env, "HOSTNAME": host}, ("pytool/1.0",),
                                        launcher=launchers[name])
            assert rc == 0, err
    assert len(site.memos()) == 8
    store.remove("venv-a")
    left = site.memos()
    assert len(left) == 4 and all("venv-b@" in p.name for p in left)
    assert site.launch({**env, "HOSTNAME": "node1"}, ("pytool/1.0",),
                       launcher=launchers["venv-b"])[3] == 0


def test_stale_memos_are_pruned_at_most_daily(site):
    env = site.server()
    cache = site.cache / "ozkernels" / "launch"
    cache.mkdir(parents=True)
    day = 86400
    now = time.time()

    def put(name, age_days, kind="file"):
        path = cache / name
        if kind == "dir":
            path.mkdir()
        elif kind == "link":
            (site.root / "target").write_text("")
            path.symlink_to(site.root / "target")
        else:
            path.write_text("x")
        os.utime(path, (now - age_days * day, now - age_days * day), follow_symlinks=False)
        return path

    stale = [put(n, 40) for n in ("%2Fgone%2Fk@node7.load", "%2Fgone%2Fk@node7.purge",
                                   "%2Fgone@n.vars", "%2Fgone@n.123.t0", "%2Fgone@n.123.tmp",
                                   "%2Fgone@n.77.err", "200-tail@n.load")]
    kept = [put("%2Fnew@n.load", 1), put("notes.txt", 40), put("x@n.load.bak", 40),
            put("x@n.loadx", 40), put("x@n.load", 40, "dir"), put("y@n.load", 40, "link"),
            put(".hidden@n.load.1.t0x", 40)]
    assert all(launchmemo.is_memo_name(p.name.encode()) for p in stale)
    # The Python side agrees on the names (the dir and the link are kept for what they are).
    assert not any(launchmemo.is_memo_name(p.name.encode()) for p in kept[1:4] + kept[6:])

    def miss(**extra):
        for p in site.memos():
            if "venv-memo@" in p.name:
                p.unlink()
        rc, _, err, runs = site.launch({**env, **extra}, ("pytool/1.0",))
        assert (rc, runs) == (0, 1), err

    # A memo applied (a hit) never prunes.
    miss(OZKERNELS_LAUNCH_CACHE_DAYS="0")
    assert site.launch(env, ("pytool/1.0",))[3] == 0
    assert all(p.exists() or p.is_symlink() for p in stale + kept)
    miss()
    assert not any(p.exists() for p in stale)
    assert all(p.exists() or p.is_symlink() for p in kept)
    # Once a day: the next miss leaves what turned stale since.
    again = put("%2Fgone2@n.load", 40)
    miss()
    assert again.exists()
    (cache / ".prune-stamp").write_text(f"{int(now) - day - 60}\n")
    young = put("%2Fgone3@n.load", 3)
    miss(OZKERNELS_LAUNCH_CACHE_DAYS="5")
    assert not again.exists() and young.exists()
    (cache / ".prune-stamp").write_text("garbage\n")
    miss(OZKERNELS_LAUNCH_CACHE_DAYS="2")
    assert not young.exists() and kept[0].exists()


@pytest.fixture
def conda_site(site):
    """A conda-layout env with env vars to read, and an interpreter that stands in for ipykernel."""
    prefix = site.root / "conda-gen"
    (prefix / "conda-meta").mkdir(parents=True)
    (prefix / "conda-meta" / "state").write_text(json.dumps({"env_vars": {"X": "1"}}))
    python = prefix / "bin" / "python"
    python.parent.mkdir()
    python.write_text('#!/bin/sh\nif [ "$1 $2" = "-m ipykernel_launcher" ]; then exit 0; fi\n'
                      f'exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    return site, prefix, python


@settings(max_examples=examples(12))
@given(name=dir_names, pad=st.integers(0, 160))
def test_generated_kernel_dirs_get_the_memo_names_python_expects(conda_site, name, pad):
    site, prefix, python = conda_site
    name = "%2F" + name + "x" * pad  # our own escape in it; long enough, at times, to be cut
    while len(os.fsencode(name)) > 255:
        name = name[:-1]
    kdir = Path(tempfile.mkdtemp(dir=site.root / "kernels")) / name
    kdir.mkdir()
    for filename, data in launcher_files("conda").items():
        (kdir / filename).write_bytes(data)
    (kdir / LAUNCHER_NAME).chmod(0o755)
    env = {**site.server(), "HOSTNAME": "node1"}
    cp = subprocess.run([str(kdir / LAUNCHER_NAME), "--kind", "conda", "--prefix", str(prefix),
                         "--python", str(python), "--", "-f", "c.json"],
                        env=env, cwd=site.root, capture_output=True, timeout=60, check=False)
    assert cp.returncode == 0, cp.stderr
    expected = launchmemo.memo_id(str(kdir)) + b"@node1.vars"
    assert expected in {os.fsencode(p.name) for p in site.memos()}
    assert launchmemo.forget([str(kdir)], env) == [os.fsdecode(expected)]


def test_a_byte_that_is_not_utf8_hides_no_read(site):
    # In a UTF-8 locale a regex stops at such a byte: the reads after it must still be seen.
    path = site.module("scratch/1.0", "")
    path.write_bytes(b'setenv("B", os.getenv("SLURM_JOB_PARTITION") or "none")\n'
                     b'local junk = "\xff\xfe"\nlocal v = "SLURM_JOB_ID"\n'
                     b'setenv("SCRATCH", "/tmp/" .. (os.getenv(v) or "none"))\n')
    env = {**site.server(), "LC_ALL": "C.UTF-8"}
    for job in ("11", "12"):
        rc, kenv, err, runs = site.launch({**env, "SLURM_JOB_ID": job}, ("scratch/1.0",))
        assert (rc, kenv["SCRATCH"], runs) == (0, f"/tmp/{job}", 1), err
    assert not site.memos()
