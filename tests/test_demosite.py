"""The test site is what it claims to be, proved with real processes."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from ozkernels.demosite import CONDA_NEVER, Site, apply_lmod_python, build_site

PY = "python/3.11.7"
BARE = "python/3.11.7-bare"
GCC = "gcccore/13.2.0"
PROBE = "import sys, ipykernel, importlib.metadata as m; print(m.version('ipykernel'), sys.prefix)"


def run(cmd: list[str | Path], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run cmd without raising, output captured."""
    return subprocess.run(
        [str(c) for c in cmd], env=dict(env), capture_output=True, text=True, timeout=60
    )


def module_python(site: Site, name: str) -> Path:
    """The interpreter inside a module's install prefix."""
    return site.modules[name] / "bin" / "python3.11"


def test_module_python_needs_its_module(site: Site) -> None:
    python = module_python(site, PY)
    alone = run([python, "-c", "pass"], site.environ())
    assert alone.returncode != 0
    assert "libpython" in alone.stderr and "cannot open shared object file" in alone.stderr

    env = site.module_environ(GCC, PY)
    assert env["LOADEDMODULES"] == f"{GCC}:{PY}"
    loaded = run(["python3", "-c", "import sys; print(sys.executable)"], env)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == str(site.modules[PY] / "bin" / "python3")


def test_venv_on_module_python_needs_the_module(site: Site) -> None:
    venv = site.venvs["analysis"]
    cfg = (venv / "pyvenv.cfg").read_text()
    assert f"home = {site.modules[PY] / 'bin'}\n" in cfg
    assert run([venv / "bin" / "python", "-c", "pass"], site.environ()).returncode != 0


@pytest.mark.parametrize(
    ("where", "modules", "has_ipykernel"),
    [
        ("module:python/3.11.7", (GCC, PY), True),
        ("module:python/3.11.7-bare", (GCC, BARE), False),
        ("venv:analysis", (GCC, PY), True),
        ("venv:bare-ipk", (GCC, BARE), True),
        ("venv:noipk", (GCC, BARE), False),
        ("venv:hostile", (GCC, PY), True),
        ("venv:unicode", (GCC, PY), True),
        ("venv:too-deep", (GCC, PY), True),
        ("venv:plain", (), True),
        ("conda:astro", (), True),
        ("conda:ml", (), True),
        ("conda:conda-noipk", (), False),
    ],
)
def test_ipykernel_exactly_where_claimed(
    site: Site, where: str, modules: tuple[str, ...], has_ipykernel: bool
) -> None:
    kind, label = where.split(":")
    if kind == "module":
        python = module_python(site, label)
    else:
        python = (site.venvs if kind == "venv" else site.conda_envs)[label] / "bin" / "python"
    env = site.module_environ(*modules) if modules else site.environ()
    proc = run([python, "-c", PROBE], env)
    if has_ipykernel:
        assert proc.returncode == 0, proc.stderr
        assert os.path.samefile(proc.stdout.split(" ", 1)[1].strip(), python.parent.parent)
    else:
        assert proc.returncode == 1
        assert "No module named 'ipykernel'" in proc.stderr


def test_python_scientific_pulls_in_python(site: Site) -> None:
    env = site.module_environ(GCC, "python-scientific/3.11.7")
    assert env["LOADEDMODULES"].split(":") == [GCC, PY, "python-scientific/3.11.7"]
    proc = run(["python", "-c", "import sciextra, ipykernel; print(sciextra.__file__)"], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(str(site.modules["python-scientific/3.11.7"]))


def test_no_default_versions(site: Site) -> None:
    modulefiles = site.root / "modules"
    defaults = [p for p in modulefiles.rglob("*") if p.name in ("default", ".version", ".modulerc")]
    assert defaults == []
    with pytest.raises(RuntimeError, match="cannot be loaded"):
        site.module_environ(PY)  # needs gcccore first, like on OzSTAR
    with pytest.raises(RuntimeError, match="exist"):
        site.module_environ(GCC, "python")


def test_spider_sees_the_hierarchy(site: Site) -> None:
    assert site.lmod_cmd
    spider = Path(site.lmod_cmd).parent / "spider"
    proc = run([spider, "-o", "spider-json", site.modulepath], site.environ())
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    found = {e["fullName"]: e for pkg in data.values() for e in pkg.values()}
    assert {PY, BARE, GCC, "python-scientific/3.11.7", "conda/latest"} <= found.keys()
    assert found[PY]["parentAA"] == [[GCC]]
    assert found[PY]["pathA"] == {str(site.modules[PY] / "bin"): 1}
    assert found[PY]["lpathA"] == {str(site.modules[PY] / "lib"): 1}


def test_conda_module_refuses_to_run(site: Site) -> None:
    proc = run(["conda", "env", "list"], site.module_environ("conda/latest"))
    assert proc.returncode == 99
    assert CONDA_NEVER in proc.stderr


def test_conda_layout(site: Site) -> None:
    conda_dir = site.home / ".conda"
    assert conda_dir.is_symlink()
    assert site.conda_envs["astro"].parent.parent == conda_dir
    listed = (conda_dir / "environments.txt").read_text().splitlines()
    assert str(site.conda_envs["astro"]) in listed
    assert any(not Path(p).exists() for p in listed)
    for prefix in site.conda_envs.values():
        assert (prefix / "conda-meta" / "history").is_file()
    envs_dir = site.conda_envs["ml"].parent
    assert f"envs_dirs:\n  - {envs_dir}\n" in (site.home / ".condarc").read_text()
    assert (envs_dir / "notconda").is_dir()
    assert not (envs_dir / "notconda" / "conda-meta" / "history").exists()
    state = json.loads((site.conda_envs["astro"] / "conda-meta" / "state").read_text())
    assert state["env_vars"]["OZK_STATE_VAR"] == "from-state"


def test_conda_python_starts_without_modules(site: Site) -> None:
    env = site.environ()
    env.pop("LD_LIBRARY_PATH", None)
    proc = run([site.conda_envs["astro"] / "bin" / "python", "-c", "print('ok')"], env)
    assert (proc.returncode, proc.stdout) == (0, "ok\n"), proc.stderr


def test_scanner_traps_exist(site: Site) -> None:
    venvs = site.home / "venvs"
    assert (venvs / "loop").resolve() == site.home.resolve()
    assert (venvs / "dangling").is_symlink() and not (venvs / "dangling").exists()
    assert "home =" not in (site.venvs["broken"] / "pyvenv.cfg").read_text()
    assert not (venvs / "not-a-venv" / "pyvenv.cfg").exists()
    assert site.venvs["too-deep"].relative_to(venvs).parts == ("nested", "deep", "too-deep")


def test_nothing_was_pwned(site: Site) -> None:
    assert site.venvs["hostile"].name == "we'ird $(touch PWNED) ;x"
    for top in (site.root, Path.cwd()):
        for dirpath, dirnames, filenames in os.walk(top):
            assert "PWNED" not in filenames + dirnames, dirpath


def test_environ_drops_leaked_state(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDA_PREFIX", "/leak")
    monkeypatch.setenv("LOADEDMODULES", "leak/1")
    monkeypatch.setenv("__LMOD_REF_COUNT_PATH", "leak")
    env = site.environ(EXTRA="1")
    assert not {"CONDA_PREFIX", "LOADEDMODULES", "__LMOD_REF_COUNT_PATH"} & env.keys()
    assert (env["HOME"], env["MODULEPATH"], env["EXTRA"]) == (str(site.home), site.modulepath, "1")
    assert env["JUPYTER_DATA_DIR"] == str(site.root / "jupyter-data")


def test_lmod_output_is_parsed_not_run(tmp_path: Path) -> None:
    code = (
        "import os\n"
        'os.environ["A"] = "x\'y";\n'
        "del os.environ['B']\n"
        f"open({str(tmp_path / 'ran')!r}, 'w')\n"
        "os.environ['C'] = __import__('os').getcwd()\n"
        "_mlstatus = True\n"
    )
    assert apply_lmod_python(code, {"B": "1", "D": "2"}) == {"A": "x'y", "D": "2"}
    assert not (tmp_path / "ran").exists()


def test_site_without_lmod(tmp_path: Path) -> None:
    site = build_site(tmp_path, lmod=False, hostile=False)
    assert (site.modules, site.modulepath, site.lmod_cmd) == ({}, "", None)
    assert "hostile" not in site.venvs and "MODULEPATH" not in site.environ()
    for label, has_ipykernel in (("analysis", True), ("noipk", False), ("bare-ipk", True)):
        proc = run([site.venvs[label] / "bin" / "python", "-c", PROBE], site.environ())
        assert (proc.returncode == 0) == has_ipykernel, proc.stderr


def test_rebuild_and_refuse_foreign_dir(tmp_path: Path) -> None:
    build_site(tmp_path / "s", lmod=False, hostile=False)
    assert build_site(tmp_path / "s", lmod=False, hostile=False).venvs["plain"].is_dir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "precious").touch()
    with pytest.raises(RuntimeError, match="not empty"):
        build_site(tmp_path / "other")


# ------------------------------------------------------------------ the Environment Modules site


def test_tcl_site_is_what_it_claims(tmod_site: Site, no_lmod: None) -> None:
    """EasyBuild-style Tcl modules, proved with the real modulecmd.tcl while Lmod is hidden."""
    n = tmod_site.names
    python = tmod_site.modules[n["python"]] / "bin" / "python3"
    assert run([python, "-c", "pass"], tmod_site.environ()).returncode != 0  # needs its module
    # The Python loads its own compiler runtime (EasyBuild's is-loaded guard) ...
    env = tmod_site.module_environ(n["python"])
    assert env["LOADEDMODULES"].split(":") == [n["gcc"], n["python"]]
    proc = run(["python3", "-c", "import ipykernel, sys; print(sys.prefix)"], env)
    assert proc.returncode == 0 and proc.stdout.strip() == str(tmod_site.modules[n["python"]])
    # ... the bundle loads the Python, the bare Python is only visible below GCCcore,
    env = tmod_site.module_environ(n["sci"])
    assert env["LOADEDMODULES"].split(":") == [n["gcc"], n["python"], n["sci"]]
    with pytest.raises(RuntimeError, match="could not load"):
        tmod_site.module_environ(n["bare"])
    assert tmod_site.module_environ(n["gcc"], n["bare"])["LOADEDMODULES"].endswith(n["bare"])
    # ... there are no default versions, and the conda module's conda refuses to run.
    with pytest.raises(RuntimeError, match="could not load"):
        tmod_site.module_environ("Python")
    proc = run(["conda", "env", "list"], tmod_site.module_environ(n["conda"]))
    assert proc.returncode == 99 and CONDA_NEVER in proc.stderr
    text = tmod_site.modulefiles[n["python"]].read_text()
    assert text.startswith("#%Module") and f"if {{ ![ is-loaded {n['gcc']} ] }}" in text
    assert "LMOD" not in "".join(tmod_site.environ())
