"""A large synthetic HPC site: many venvs, conda envs and Lua modules, layout-faithful but cheap.

Nothing here can run as a kernel (interpreters are shell stubs): the site exists to measure
discovery and sync, which never run an interpreter.  Kernel timings use the real test site from
`ozkernels.demosite.build_site` instead.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from ozkernels.demosite import Site, find_lmod

PYXY = "3.11"
GCC = "13.2.0"
GCC_FULL = "11.3.0"
MPI = "4.1.4"
MARKER = ".ozkernels-synthsite"


@dataclass(frozen=True)
class Sizes:
    """How big the synthetic site is."""

    venvs: int = 500
    conda: int = 100
    modules: int = 300
    pythons: int = 20

    @property
    def envs(self) -> int:
        """Every environment discovery should report (module Pythons included)."""
        return self.venvs + self.conda + self.pythons


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    """Write text to path, creating parents."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def _stub_python(path: Path) -> None:
    """An 'interpreter' that exists and runs, without copying a real one."""
    _write(path, f'#!/bin/sh\nexec {sys.executable} "$@"\n', 0o755)


def _modulefile(path: Path, whatis: str, *lines: str) -> None:
    """A Lua modulefile like EasyBuild writes (help, whatis, paths)."""
    body = [f'help([[{whatis}]])', f'whatis("Description: {whatis}")', *lines, ""]
    _write(path, "\n".join(body))


def _python_versions(n: int) -> list[str]:
    """n distinct module versions: 3.11.1 ... then the same with -bare."""
    half = (n + 1) // 2
    plain = [f"{PYXY}.{i}" for i in range(1, half + 1)]
    return (plain + [f"{v}-bare" for v in plain])[:n]


def build_modules(root: Path, sizes: Sizes) -> tuple[str, list[Path]]:
    """A Core -> Compiler -> MPI Lmod tree of sizes.modules modulefiles; return MODULEPATH and
    the Python prefixes."""
    mods = root / "modules"
    sw = root / "apps" / "software"
    core = mods / "Core"
    gcccore_tree = mods / "Compiler" / "gcccore" / GCC
    gcc_tree = mods / "Compiler" / "gcc" / GCC_FULL
    mpi_tree = mods / "MPI" / "gcc" / GCC_FULL / "openmpi" / MPI
    _modulefile(core / "gcccore" / f"{GCC}.lua", "GCCcore compiler runtime",
                f'prepend_path("PATH", "{sw}/GCCcore/{GCC}/bin")',
                f'prepend_path("MODULEPATH", "{gcccore_tree}")')
    _modulefile(core / "gcc" / f"{GCC_FULL}.lua", "GCC compiler",
                f'prepend_path("PATH", "{sw}/GCC/{GCC_FULL}/bin")',
                f'prepend_path("MODULEPATH", "{gcc_tree}")')
    _modulefile(gcc_tree / "openmpi" / f"{MPI}.lua", "Open MPI",
                f'prepend_path("PATH", "{sw}/OpenMPI/{MPI}/bin")',
                f'prepend_path("LD_LIBRARY_PATH", "{sw}/OpenMPI/{MPI}/lib")',
                f'prepend_path("MODULEPATH", "{mpi_tree}")')
    prefixes = []
    for version in _python_versions(sizes.pythons):
        prefix = sw / "Python" / f"{version.replace('-bare', '')}-GCCcore-{GCC}" \
            f"{'-bare' if version.endswith('-bare') else ''}"
        binary = prefix / "bin" / f"python{PYXY}"
        _stub_python(binary)
        for alias in ("python3", "python"):
            (prefix / "bin" / alias).symlink_to(binary.name)
        site = prefix / "lib" / f"python{PYXY}" / "site-packages"
        site.mkdir(parents=True)
        if not version.endswith("-bare"):
            _write(site / "ipykernel_launcher.py", "# stand-in\n")
        _modulefile(gcccore_tree / "python" / f"{version}.lua", f"Python {version}",
                    f'prepend_path("PATH", "{prefix}/bin")',
                    f'prepend_path("LD_LIBRARY_PATH", "{prefix}/lib")',
                    f'setenv("EBROOTPYTHON", "{prefix}")')
        prefixes.append(prefix)
    rest = max(0, sizes.modules - 3 - sizes.pythons)
    n_core, n_gcccore = int(rest * 0.35), int(rest * 0.45)
    trees = [(core, n_core), (gcccore_tree, n_gcccore), (mpi_tree, rest - n_core - n_gcccore)]
    k = 0
    for tree, count in trees:
        for i in range(count):
            # Two versions per package, as sites keep old ones around.
            name, version = f"pkg{k // 2:03d}", f"{1 + k % 2}.{i % 7}.0"
            prefix = sw / name / version
            _modulefile(tree / name / f"{version}.lua", f"{name} {version}",
                        f'prepend_path("PATH", "{prefix}/bin")',
                        f'prepend_path("LD_LIBRARY_PATH", "{prefix}/lib")',
                        f'setenv("EBROOT{name.upper()}", "{prefix}")')
            k += 1
    return str(core), prefixes


def make_venv(path: Path, base: Path, *, ipykernel: bool, system: bool) -> None:
    """A venv laid out as `python -m venv` on 3.11 makes it, minus pip."""
    home = base / "bin"
    cfg = (f"home = {home}\n"
           f"include-system-site-packages = {'true' if system else 'false'}\n"
           f"version = {PYXY}.7\n"
           f"executable = {home / f'python{PYXY}'}\n"
           f"command = {home / f'python{PYXY}'} -m venv "
           f"{'--system-site-packages ' if system else ''}{path}\n")
    _write(path / "pyvenv.cfg", cfg)
    bin_dir = path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(home / f"python{PYXY}")
    (bin_dir / "python3").symlink_to("python")
    (bin_dir / f"python{PYXY}").symlink_to("python")
    _write(bin_dir / "activate", f'VIRTUAL_ENV="{path}"\nexport VIRTUAL_ENV\n')
    site = path / "lib" / f"python{PYXY}" / "site-packages"
    site.mkdir(parents=True)
    (path / "lib64").symlink_to("lib")
    (path / "include").mkdir()
    if ipykernel:
        _write(site / "ipykernel_launcher.py", "# stand-in\n")
        (site / "ipykernel").mkdir()


def make_conda_env(prefix: Path, *, ipykernel: bool) -> None:
    """A conda env with conda's on-disk layout (no conda involved)."""
    _write(prefix / "conda-meta" / "history",
           f"==> 2026-11-01 10:00:00 <==\n# cmd: mamba create -p {prefix} python={PYXY}\n"
           f"+conda-forge/linux-64::python-{PYXY}.7-hab00c5b_0_cpython\n")
    _write(prefix / "conda-meta" / f"python-{PYXY}.7-hab00c5b_0_cpython.json", "{}\n")
    _stub_python(prefix / "bin" / f"python{PYXY}")
    (prefix / "bin" / "python").symlink_to(f"python{PYXY}")
    (prefix / "bin" / "python3").symlink_to(f"python{PYXY}")
    site = prefix / "lib" / f"python{PYXY}" / "site-packages"
    site.mkdir(parents=True)
    if ipykernel:
        _write(site / "ipykernel_launcher.py", "# stand-in\n")


def _prepare(root: Path) -> None:
    """Make root an empty dir, wiping only a previous synthetic site."""
    if root.exists():
        if not (root / MARKER).exists() and any(root.iterdir()):
            msg = f"{root} is not empty and holds no synthetic site; refusing to wipe it"
            raise RuntimeError(msg)
        shutil.rmtree(root)
    root.mkdir(parents=True)
    _write(root / MARKER, "Built by benchmarks/synthsite.py; it may wipe this dir.\n")


def build(root: Path, sizes: Sizes) -> Site:
    """Build the synthetic site under root and describe it as a demosite.Site.

    Half the envs sit behind a symlink to 'project storage' (/fred), as on OzSTAR:
    ~/envs -> /fred/.../envs holds half the venvs, ~/.conda -> /fred/.../.conda half the conda
    envs; the other conda half is in an envs_dirs entry of ~/.condarc, and
    ~/.conda/environments.txt lists every conda env as typed (through the symlink).
    """
    root = Path(root).absolute()
    _prepare(root)
    home = root / "home"
    fred = root / "fred" / "oz000" / "user"
    for d in (home, fred, root / "cache"):
        d.mkdir(parents=True)
    for name in ("data", "config", "runtime"):
        (root / f"jupyter-{name}").mkdir()
    modulepath, pythons = build_modules(root, sizes) if sizes.modules else ("", [])
    with_ipk = [p for p in pythons if not p.name.endswith("-bare")] or pythons
    # ~/venvs is a real dir, ~/envs a symlink into project storage.
    (fred / "envs").mkdir()
    (home / "envs").symlink_to(fred / "envs")
    for i in range(sizes.venvs):
        parent = home / "venvs" if i % 2 == 0 else home / "envs"
        # A fifth are grouped per project one level down, as people do.
        path = parent / f"proj{i % 9}" / f"env{i:04d}" if i % 5 == 4 else parent / f"env{i:04d}"
        system = i % 5 == 1  # 20% --system-site-packages, ipykernel from the module Python
        base = pythons[i % len(pythons)] if pythons else Path(sys.base_prefix)
        ipk = not system and i % 10 != 3  # most have ipykernel installed in the venv
        path.parent.mkdir(parents=True, exist_ok=True)
        make_venv(path, base if system else (with_ipk[i % len(with_ipk)] if pythons else base),
                  ipykernel=ipk, system=system)
    conda_real = fred / ".conda"
    (conda_real / "envs").mkdir(parents=True)
    (home / ".conda").symlink_to(conda_real)
    listed = []
    for i in range(sizes.conda):
        if i % 2 == 0:
            prefix = conda_real / "envs" / f"conda{i:03d}"
            listed.append(home / ".conda" / "envs" / prefix.name)
        else:
            prefix = fred / "conda-envs" / f"conda{i:03d}"
            listed.append(prefix)
        make_conda_env(prefix, ipykernel=i % 10 != 7)
    _write(conda_real / "environments.txt", "".join(f"{p}\n" for p in listed))
    _write(home / ".condarc", f"envs_dirs:\n  - {fred / 'conda-envs'}\n")
    lmod_cmd = find_lmod()
    return Site(root=root, home=home, modulepath=modulepath if lmod_cmd else "",
                lmod_cmd=lmod_cmd)


def environ(site: Site, **extra: str) -> dict[str, str]:
    """The environment ozkernels and the peers run with against the site."""
    env = site.environ(XDG_CACHE_HOME=str(site.root / "cache"), **extra)
    if site.lmod_cmd:
        pkg = os.path.dirname(os.path.dirname(site.lmod_cmd))
        env.update(LMOD_CMD=site.lmod_cmd, LMOD_PKG=pkg, LMOD_DIR=os.path.dirname(site.lmod_cmd))
    return env
