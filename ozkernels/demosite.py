"""The demo site builder (the tests' site too): module Pythons, venvs, conda envs in a dir.

The modules are Lua modulefiles for Lmod or EasyBuild-style Tcl modulefiles for Environment
Modules, with the same roles (a compiler runtime, Pythons, a bundle, tools, conda).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .lmod import find_lmod_cmd

GCC_VERSION = "13.2.0"
PY_MODULE_VERSION = "3.11.7"
HOSTILE_NAME = "we'ird $(touch PWNED) ;x"
UNICODE_NAME = "δοκιμή env"
CONDA_NEVER = "conda must never be called by ozkernels"
MARKER = ".ozkernels-testsite"
TIMEOUT = 60

# Debian 12 ships /lib/x86_64-linux-gnu/libpython3.11.so.1.0 (package libpython3.11), which
# would let an RPATH-less copy start without its module; a site-unique soname cannot be found
# by accident, so "fails without the module" holds on every host.
MODULE_LIBPYTHON = "libpython{pyxy}-ozk-easybuild.so.1.0"
SKIP_PACKAGES = ("pip", "setuptools", "pkg_resources", "_distutils_hack", "__pycache__")
DROPPED_VARS = (
    "VIRTUAL_ENV",
    "VIRTUAL_ENV_PROMPT",
    "LOADEDMODULES",
    "_LMFILES_",
    "PYTHONPATH",
    "PYTHONHOME",
    "CONDARC",
    "CONDA_ENVS_PATH",
    "MODULEPATH",
    "_CE_CONDA",
    "_CE_M",
)
DROPPED_PREFIXES = ("CONDA_", "_ModuleTable", "__LMOD_REF_COUNT_", "__MODULES_", "LMOD_",
                    "MODULES_", "BASH_FUNC_module", "BASH_FUNC_ml", "BASH_FUNC__module")
# Module names by role, per module system: OzSTAR's lower-case Lmod names, EasyBuild's Tcl ones.
ROLES = ("gcc", "python", "bare", "sci", "tools", "conda", "cmake", "git", "zlib")
NAMES = {
    "lmod": dict(zip(ROLES, (
        f"gcccore/{GCC_VERSION}", f"python/{PY_MODULE_VERSION}", f"python/{PY_MODULE_VERSION}-bare",
        f"python-scientific/{PY_MODULE_VERSION}", "astro-tools/1.0", "conda/latest",
        "cmake/3.27.6", "git/2.42.0", "zlib/1.3"))),
    "tmod": dict(zip(ROLES, (
        f"GCCcore/{GCC_VERSION}", f"Python/{PY_MODULE_VERSION}-GCCcore-{GCC_VERSION}",
        f"Python/{PY_MODULE_VERSION}-GCCcore-{GCC_VERSION}-bare",
        f"SciPy-bundle/2023.11-GCCcore-{GCC_VERSION}", "astro-tools/1.0", "Miniforge3/24.1.2-0",
        "CMake/3.27.6", "git/2.42.0", f"zlib/1.3-GCCcore-{GCC_VERSION}"))),
}


@dataclass(frozen=True)
class Site:
    """A built site: paths of everything in it and the environment to run ozkernels against it."""

    root: Path
    home: Path
    modulepath: str
    lmod_cmd: str | None
    modules: dict[str, Path] = field(default_factory=dict)
    system: str = ""
    modules_cmd: str | None = None
    names: dict[str, str] = field(default_factory=dict)
    modulefiles: dict[str, Path] = field(default_factory=dict)
    venvs: dict[str, Path] = field(default_factory=dict)
    conda_envs: dict[str, Path] = field(default_factory=dict)

    def environ(self, **extra: str) -> dict[str, str]:
        """Return a copy of os.environ pointed at the site, without leaked env or module state."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in DROPPED_VARS and not k.startswith(DROPPED_PREFIXES)
        }
        env["HOME"] = str(self.home)
        if self.lmod_cmd:
            env["MODULEPATH"] = self.modulepath
            # OzSTAR has no default versions: `module load python` must fail, as it does there.
            env["LMOD_EXACT_MATCH"] = "yes"
        elif self.modules_cmd:
            # What Environment Modules' init leaves in a user's shell; no implicit defaults.
            env.update(MODULEPATH=self.modulepath, MODULES_CMD=self.modules_cmd,
                       MODULESHOME=modules_home(self.modules_cmd), MODULES_IMPLICIT_DEFAULT="0")
        for name in ("data", "config", "runtime"):
            env[f"JUPYTER_{name.upper()}_DIR"] = str(self.root / f"jupyter-{name}")
        env.update(extra)
        return env

    def module_environ(self, *names: str, **extra: str) -> dict[str, str]:
        """Return environ(**extra) after the site's module system has loaded the named modules."""
        env = self.environ(**extra)
        if self.lmod_cmd:
            out = _run([self.lmod_cmd, "python", "load", *names], env=env).stdout
        elif self.modules_cmd:
            out = _run([self.modules_cmd, "python", "load", *names], env=env).stdout
            if not out.rstrip().endswith("_mlstatus = True"):
                msg = f"Environment Modules could not load {' '.join(names)}"
                raise RuntimeError(msg)
        else:
            msg = "this site was built without modules"
            raise RuntimeError(msg)
        return apply_lmod_python(out, env)


def apply_lmod_python(code: str, env: Mapping[str, str]) -> dict[str, str]:
    """Apply the os.environ lines of Lmod's python output to a copy of env (parsed, never run)."""
    result = dict(env)
    for node in ast.parse(code).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            key = _environ_key(node.targets[0])
            if key is not None and isinstance(node.value, ast.Constant):
                result[key] = str(node.value.value)
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                key = _environ_key(target)
                if key is not None:
                    result.pop(key, None)
    return result


def _environ_key(node: ast.expr) -> str | None:
    """Return K for an `os.environ[K]` node, else None."""
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "environ"
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, str)
    ):
        return node.slice.value
    return None


def modules_home(modules_cmd: str) -> str:
    """MODULESHOME of an Environment Modules install, from its modulecmd.tcl's place."""
    libdir = Path(modules_cmd).parent
    for home in (libdir.parent, libdir.parent / "share" / "modules",
                 libdir.parent.parent / "share" / "modules"):
        if (home / "init").is_dir():
            return str(home)
    return str(libdir.parent)


def find_lmod() -> str | None:
    """Return the path of Lmod's `lmod` command, or None when Lmod is not installed."""
    return find_lmod_cmd()


def _run(
    cmd: list[str], env: Mapping[str, str] | None = None, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run cmd, raising RuntimeError with its output when it fails."""
    try:
        return subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout, check=True
        )
    except subprocess.CalledProcessError as e:
        msg = f"{cmd!r} failed ({e.returncode}):\n{e.stdout}{e.stderr}"
        raise RuntimeError(msg) from e


def _lua(value: str | Path) -> str:
    """Return value as a Lua string literal (UTF-8 kept raw, Lua 5.1 compatible)."""
    out = []
    for ch in str(value):
        if ch in '\\"':
            out.append("\\" + ch)
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\{ord(ch):03d}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    """Write text to path (creating parents) with mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def _skip_package(name: str) -> bool:
    """Tell whether a site-packages entry must not be linked into site envs."""
    base = name.split("-", 1)[0] if name.endswith((".dist-info", ".egg-info")) else name
    return (
        base in SKIP_PACKAGES
        or name.endswith(".pth")
        or name.startswith(("ozkernels", "__editable__"))
    )


def host_site_packages() -> list[Path]:
    """Return the running interpreter's purelib and platlib dirs (where ipykernel is installed)."""
    paths = sysconfig.get_paths()
    dirs: list[Path] = []
    for key in ("purelib", "platlib"):
        path = Path(paths[key])
        if path.is_dir() and path not in dirs:
            dirs.append(path)
    return dirs


def link_packages(dest: Path, sources: Iterable[Path] | None = None) -> None:
    """'Install' ipykernel offline: symlink every package of the running interpreter into dest."""
    dest.mkdir(parents=True, exist_ok=True)
    for src_dir in host_site_packages() if sources is None else sources:
        for entry in sorted(src_dir.iterdir()):
            target = dest / entry.name
            if not _skip_package(entry.name) and not os.path.lexists(target):
                target.symlink_to(entry)


@dataclass
class _Host:
    """The running interpreter's files that site Pythons are made from."""

    binary: Path
    stdlib: Path
    libdir: Path
    soname: str
    pyxy: str
    dist_packages: bool = False

    @classmethod
    def detect(cls) -> _Host:
        """Describe the running interpreter, which must be a shared-library build."""
        if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
            msg = (
                f"{sys.executable} is a static build; the test site needs a CPython built with "
                "--enable-shared (e.g. pyenv with PYTHON_CONFIGURE_OPTS=--enable-shared)"
            )
            raise RuntimeError(msg)
        base = getattr(sys, "_base_executable", None) or sys.executable
        return cls(
            binary=Path(os.path.realpath(base)),
            stdlib=Path(sysconfig.get_paths()["stdlib"]),
            libdir=Path(str(sysconfig.get_config_var("LIBDIR"))),
            soname=str(sysconfig.get_config_var("INSTSONAME")),
            pyxy=str(sysconfig.get_python_version()),
            dist_packages=any(p.endswith("dist-packages") for p in site.getsitepackages()),
        )


class _Builder:
    """Builds the site's files; one instance per build_site call."""

    def __init__(self, root: Path, patchelf: str | None) -> None:
        self.root = root
        self.home = root / "home"
        self.patchelf = patchelf
        self.host = _Host.detect()
        self._libpython: Path | None = None

    def link_or_copy(self, src: Path, dst: Path) -> None:
        """Hard-link src to dst (libpython is ~20 MB), copying across filesystems."""
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    def libpython(self, dst: Path) -> None:
        """Put libpython at dst, linked to the first copy made inside the site."""
        if self._libpython is None:
            self.link_or_copy(self.host.libdir / self.host.soname, dst)
            self._libpython = dst
        else:
            self.link_or_copy(self._libpython, dst)

    def python_prefix(self, prefix: Path, *, module: bool) -> Path:
        """Make a Python at prefix; a module one starts only with prefix/lib on LD_LIBRARY_PATH."""
        host, pyxy = self.host, self.host.pyxy
        binary = prefix / "bin" / f"python{pyxy}"
        binary.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(host.binary, binary)
        for alias in ("python3", "python"):
            (prefix / "bin" / alias).symlink_to(binary.name)
        lib = prefix / "lib"
        self.libpython(lib / host.soname)
        (lib / f"libpython{pyxy}.so").symlink_to(host.soname)
        if (host.libdir / "libpython3.so").is_file():
            shutil.copy2(host.libdir / "libpython3.so", lib / "libpython3.so")
        if module:
            unique = MODULE_LIBPYTHON.format(pyxy=pyxy)
            self.libpython(lib / unique)
            self.patch(binary, "--remove-rpath", *self._needs_module_lib(binary, unique))
        else:
            # conda's builds find their libpython through an RPATH relative to the binary.
            self.patch(binary, "--force-rpath", "--set-rpath", "$ORIGIN/../lib")
        stdlib = lib / f"python{pyxy}"
        stdlib.mkdir()
        for entry in host.stdlib.iterdir():
            if entry.name != "site-packages":
                (stdlib / entry.name).symlink_to(entry)
        (stdlib / "site-packages").mkdir()
        if host.dist_packages:
            # Debian's patched site.py reads only dist-packages outside a venv.
            (stdlib / "dist-packages").symlink_to("site-packages")
        return binary

    def patch(self, binary: Path, *args: str) -> None:
        """Run patchelf on binary (without patchelf the host binary's own RUNPATH is kept)."""
        if self.patchelf:
            _run([self.patchelf, *args, str(binary)])

    def _needs_module_lib(self, binary: Path, unique: str) -> tuple[str, ...]:
        """patchelf options that make binary need the module's own libpython."""
        needed = _run([self.patchelf, "--print-needed", str(binary)]).stdout.split() \
            if self.patchelf else []
        if self.host.soname in needed:
            return ("--replace-needed", self.host.soname, unique)
        # Debian's python3 has libpython linked in: add the module's as a dependency, so the
        # copy still starts only with its module's LD_LIBRARY_PATH, as on a site.
        return ("--add-needed", unique)

    def site_packages(self, prefix: Path) -> Path:
        """Return prefix's site-packages dir (module, conda env or venv layout)."""
        return prefix / "lib" / f"python{self.host.pyxy}" / "site-packages"


def _modulefile(path: Path, whatis: str, *lines: str) -> None:
    """Write a Lua modulefile."""
    body = [f"whatis({_lua(whatis)})", *lines, ""]
    _write(path, "\n".join(body))


def _script(path: Path, body: str) -> None:
    """Write an executable sh script."""
    _write(path, "#!/bin/sh\n" + body + "\n", 0o755)


def _build_modules(b: _Builder) -> tuple[dict[str, Path], dict[str, Path]]:
    """Write the Lmod tree and its installs; return (module -> prefix, module -> python binary)."""
    root, sw = b.root, b.root / "apps" / "software"
    core = root / "modules" / "Core"
    compiler = root / "modules" / "Compiler" / "gcccore" / GCC_VERSION
    suffix, v = f"-GCCcore-{GCC_VERSION}", PY_MODULE_VERSION
    prefixes = {
        f"gcccore/{GCC_VERSION}": sw / "GCCcore" / GCC_VERSION,
        "astro-tools/1.0": sw / "astro-tools" / "1.0",
        "conda/latest": sw / "conda",
        "cmake/3.27.6": sw / "CMake" / "3.27.6",
        "git/2.42.0": sw / "git" / "2.42.0",
        f"python/{v}": sw / "Python" / f"{v}{suffix}",
        f"python/{v}-bare": sw / "Python" / f"{v}{suffix}-bare",
        f"python-scientific/{v}": sw / "Python-scientific" / f"{v}{suffix}",
        "zlib/1.3": sw / "zlib" / ("1.3" + suffix),
    }
    p = prefixes
    gcc = p[f"gcccore/{GCC_VERSION}"]
    _script(gcc / "bin" / "gcc", f"echo 'gcc (GCC) {GCC_VERSION}'")
    _modulefile(
        core / "gcccore" / f"{GCC_VERSION}.lua",
        f"GCCcore {GCC_VERSION}: compiler runtime",
        f'prepend_path("PATH", {_lua(gcc / "bin")})',
        f'setenv("EBROOTGCCCORE", {_lua(gcc)})',
        f'prepend_path("MODULEPATH", {_lua(compiler)})',
    )
    astro = p["astro-tools/1.0"]
    _script(astro / "bin" / "astro-info", "echo astro-tools 1.0")
    _modulefile(
        core / "astro-tools" / "1.0.lua",
        "astro-tools 1.0: non-Python astronomy tools",
        f'prepend_path("PATH", {_lua(astro / "bin")})',
        f'setenv("ASTRO_TOOLS_HOME", {_lua(astro)})',
    )
    conda_bin = p["conda/latest"] / "bin"
    for tool in ("conda", "mamba"):
        _script(conda_bin / tool, f'echo "{CONDA_NEVER}" >&2\nexit 99')
    _modulefile(
        core / "conda" / "latest.lua",
        "conda (really mamba)",
        f'prepend_path("PATH", {_lua(conda_bin)})',
        f'setenv("CONDA_EXE", {_lua(conda_bin / "conda")})',
    )
    for name in ("cmake/3.27.6", "git/2.42.0"):
        tool, version = name.split("/")
        _script(p[name] / "bin" / tool, f"echo '{tool} version {version}'")
        _modulefile(
            core / tool / f"{version}.lua",
            f"{tool} {version}",
            f'prepend_path("PATH", {_lua(p[name] / "bin")})',
        )
    zlib = p["zlib/1.3"]
    (zlib / "lib").mkdir(parents=True)
    _modulefile(
        compiler / "zlib" / "1.3.lua",
        "zlib 1.3",
        f'prepend_path("LD_LIBRARY_PATH", {_lua(zlib / "lib")})',
        f'setenv("EBROOTZLIB", {_lua(zlib)})',
    )
    pythons = {}
    for name in (f"python/{v}", f"python/{v}-bare"):
        prefix = p[name]
        pythons[name] = b.python_prefix(prefix, module=True)
        _modulefile(
            compiler / "python" / f"{name.split('/')[1]}.lua",
            f"Python {v}" + (" (bare)" if name.endswith("-bare") else ""),
            f'prepend_path("PATH", {_lua(prefix / "bin")})',
            f'prepend_path("LD_LIBRARY_PATH", {_lua(prefix / "lib")})',
            f'setenv("EBROOTPYTHON", {_lua(prefix)})',
            f'setenv("EBVERSIONPYTHON", "{v}")',
        )
    link_packages(b.site_packages(p[f"python/{v}"]))
    sci = b.site_packages(p[f"python-scientific/{v}"])
    _write(sci / "sciextra" / "__init__.py", '"""Stand-in for the scientific bundle."""\n')
    metadata = "Metadata-Version: 2.1\nName: sciextra\nVersion: 1.0\n"
    _write(sci / "sciextra-1.0.dist-info" / "METADATA", metadata)
    _modulefile(
        compiler / "python-scientific" / f"{v}.lua",
        "Python scientific bundle",
        f'depends_on("python/{v}")',
        f'prepend_path("PYTHONPATH", {_lua(sci)})',
    )
    return prefixes, pythons


def _tcl(value: str | Path) -> str:
    """Return value as one Tcl word (double-quoted, every special character escaped)."""
    out = []
    for ch in str(value):
        if ch in '\\"$[]{};':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _tcl_modulefile(path: Path, name: str, description: str, root: Path, *,
                    needs: Iterable[str] = (), lines: Iterable[str] = ()) -> None:
    """Write a Tcl modulefile the way EasyBuild does (help, whatis, root, deps it loads)."""
    family = name.split("/")[0]
    body = [
        "#%Module",
        "proc ModulesHelp { } {",
        f"    puts stderr {_tcl(description)}",
        "}",
        "",
        f"module-whatis {_tcl('Description: ' + description)}",
        "",
        f"set root {_tcl(root)}",
        "",
        f"conflict {family}",
        "",
    ]
    for dep in needs:
        body += [f"if {{ ![ is-loaded {dep} ] }} {{", f"    module load {dep}", "}", ""]
    body += [*lines, f'setenv\tEBROOT{family.upper().replace("-", "")}\t\t"$root"', ""]
    _write(path, "\n".join(body))


def _build_tcl_modules(b: _Builder) -> tuple[dict[str, Path], dict[str, Path]]:
    """Write an EasyBuild-style Tcl tree; return (module -> prefix, module -> python binary).

    Core holds the compiler runtime, tools, conda, and a Python that loads its own compiler
    runtime (EasyBuild's `is-loaded` guard); loading the compiler runtime adds the Compiler dir
    (a hierarchy) with the bare Python and zlib.
    """
    n, sw = NAMES["tmod"], b.root / "apps" / "software"
    core = b.root / "modules-tcl" / "Core"
    compiler = b.root / "modules-tcl" / "Compiler" / "GCCcore" / GCC_VERSION
    suffix, v = f"-GCCcore-{GCC_VERSION}", PY_MODULE_VERSION
    p = {
        n["gcc"]: sw / "GCCcore" / GCC_VERSION,
        n["tools"]: sw / "astro-tools" / "1.0",
        n["conda"]: sw / "Miniforge3" / "24.1.2-0",
        n["cmake"]: sw / "CMake" / "3.27.6",
        n["git"]: sw / "git" / "2.42.0",
        n["python"]: sw / "Python" / f"{v}{suffix}",
        n["bare"]: sw / "Python" / f"{v}{suffix}-bare",
        n["sci"]: sw / "SciPy-bundle" / f"2023.11{suffix}",
        n["zlib"]: sw / "zlib" / ("1.3" + suffix),
    }
    path_line = "prepend-path\tPATH\t\t$root/bin"
    lib_line = "prepend-path\tLD_LIBRARY_PATH\t\t$root/lib"
    _script(p[n["gcc"]] / "bin" / "gcc", f"echo 'gcc (GCC) {GCC_VERSION}'")
    _tcl_modulefile(core / n["gcc"], n["gcc"], f"GCCcore {GCC_VERSION}: compiler runtime",
                    p[n["gcc"]], lines=[path_line, f"module use {_tcl(compiler)}"])
    _script(p[n["tools"]] / "bin" / "astro-info", "echo astro-tools 1.0")
    _tcl_modulefile(core / n["tools"], n["tools"], "astro-tools 1.0: non-Python astronomy tools",
                    p[n["tools"]], lines=[path_line, 'setenv\tASTRO_TOOLS_HOME\t"$root"'])
    for tool in ("conda", "mamba"):
        _script(p[n["conda"]] / "bin" / tool, f'echo "{CONDA_NEVER}" >&2\nexit 99')
    _tcl_modulefile(core / n["conda"], n["conda"], "Miniforge3: conda (really mamba)",
                    p[n["conda"]], lines=[path_line, 'setenv\tCONDA_EXE\t"$root/bin/conda"'])
    for role in ("cmake", "git"):
        tool, version = n[role].split("/")
        _script(p[n[role]] / "bin" / tool.lower(), f"echo '{tool.lower()} version {version}'")
        _tcl_modulefile(core / n[role], n[role], f"{tool} {version}", p[n[role]],
                        lines=[path_line])
    (p[n["zlib"]] / "lib").mkdir(parents=True)
    _tcl_modulefile(compiler / n["zlib"], n["zlib"], "zlib 1.3", p[n["zlib"]],
                    lines=[lib_line])
    pythons = {}
    for role, where, needs in (("python", core, [n["gcc"]]), ("bare", compiler, [])):
        prefix = p[n[role]]
        pythons[n[role]] = b.python_prefix(prefix, module=True)
        _tcl_modulefile(where / n[role], n[role],
                        f"Python {v}" + (" (bare)" if role == "bare" else ""), prefix,
                        needs=needs, lines=[lib_line, path_line,
                                            f'setenv\tEBVERSIONPYTHON\t\t"{v}"'])
    link_packages(b.site_packages(p[n["python"]]))
    sci = b.site_packages(p[n["sci"]])
    _write(sci / "sciextra" / "__init__.py", '"""Stand-in for the scientific bundle."""\n')
    metadata = "Metadata-Version: 2.1\nName: sciextra\nVersion: 1.0\n"
    _write(sci / "sciextra-1.0.dist-info" / "METADATA", metadata)
    rel = sci.relative_to(p[n["sci"]])
    _tcl_modulefile(core / n["sci"], n["sci"], "Python scientific bundle", p[n["sci"]],
                    needs=[n["python"]], lines=[f"prepend-path\tPYTHONPATH\t\t$root/{rel}"])
    return p, pythons


def _venv(python: Path | str, path: Path, env: Mapping[str, str], system: bool) -> None:
    """Create a venv at path with the given base interpreter (never pip)."""
    args = [str(python), "-m", "venv", "--without-pip"]
    if system:
        args.append("--system-site-packages")
    _run([*args, str(path)], env=env)


def _build_venvs(
    b: _Builder, prefixes: Mapping[str, Path], pythons: Mapping[str, Path], hostile: bool,
    other_kernels: bool = False,
    names: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Create the venvs (in parallel: each is a subprocess) and the broken things next to them."""
    vroot = b.home / "venvs"
    vroot.mkdir(parents=True)
    host_env = dict(os.environ)
    for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        host_env.pop(var, None)
    names = names or NAMES["lmod"]
    full, bare = names["python"], names["bare"]

    def base(name: str) -> tuple[str, dict[str, str]]:
        """Interpreter and environment of a module (as the module would set it), or the host's."""
        if name not in pythons:
            return sys.executable, host_env
        lib = str(prefixes[name] / "lib")
        old = host_env.get("LD_LIBRARY_PATH")
        return str(pythons[name]), {**host_env, "LD_LIBRARY_PATH": f"{lib}:{old}" if old else lib}

    # label -> (path, base module, --system-site-packages, link ipykernel in)
    plan: dict[str, tuple[Path, str, bool, bool]] = {
        "analysis": (vroot / "analysis", full, True, False),
        "bare-ipk": (vroot / "bare-ipk", bare, False, True),
        "noipk": (vroot / "noipk", bare, False, False),
        "plain": (b.home / ".venvs" / "plain", "host", False, True),
        "too-deep": (vroot / "nested" / "deep" / "too-deep", full, True, False),
        "broken": (vroot / "broken", full, True, False),
    }
    if other_kernels:
        # bash_kernel's spec goes into this venv (--sys-prefix), next to its Python kernel.
        plan["tools"] = (vroot / "tools", full, True, True)
    if hostile:
        # Both names survive `python -m venv` on 3.11, so the nastiest one is kept as is.
        plan["hostile"] = (vroot / HOSTILE_NAME, full, True, False)
        plan["unicode"] = (vroot / UNICODE_NAME, full, True, False)
    if not pythons:
        # Without Lmod there are no module Pythons: the same venvs sit on the host interpreter.
        plan = {k: (path, "host", system, ipk) for k, (path, _, system, ipk) in plan.items()}

    def make(item: tuple[Path, str, bool, bool]) -> None:
        """Create one planned venv."""
        path, name, system, ipk = item
        python, env = base(name)
        _venv(python, path, env, system)
        # A venv on the host sees the base interpreter's packages, which lack ipykernel when
        # the interpreter under test is itself a venv: link the packages under test instead.
        if ipk or (system and name == "host"):
            link_packages(b.site_packages(path))
        if other_kernels and path == plan["tools"][0] and importlib.util.find_spec("bash_kernel"):
            # As its README says: the venv's own Python installs the spec into the venv.
            venv_python = str(path / "bin" / "python")
            _run([venv_python, "-m", "bash_kernel.install", "--sys-prefix"], env=env)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(make, plan.values()))
    _write(plan["broken"][0] / "pyvenv.cfg", "garbage = yes\n\x00\x01 not a pyvenv.cfg {[\n")
    _write(vroot / "not-a-venv" / "README", "Just a directory.\n")
    (vroot / "loop").symlink_to("..")
    (vroot / "dangling").symlink_to("/nonexistent/x")
    return {label: item[0] for label, item in plan.items()}


def _conda_record(name: str, version: str, build: str, subdir: str, files: list[str]) -> str:
    """Return a conda-meta/*.json package record."""
    record = {
        "name": name,
        "version": version,
        "build": build,
        "build_number": 0,
        "channel": f"https://conda.anaconda.org/conda-forge/{subdir}",
        "subdir": subdir,
        "fn": f"{name}-{version}-{build}.conda",
        "url": f"https://conda.anaconda.org/conda-forge/{subdir}/{name}-{version}-{build}.conda",
        "depends": [],
        "files": files,
        "requested_spec": name,
    }
    return json.dumps(record, indent=2) + "\n"


def _conda_env(b: _Builder, prefix: Path, ipykernel: bool) -> None:
    """Make a conda env with conda's on-disk layout (no conda involved)."""
    b.python_prefix(prefix, module=False)
    meta = prefix / "conda-meta"
    pyxy = b.host.pyxy
    py_build = "hab00c5b_0_cpython"
    lines = [
        "==> 2026-11-01 10:00:00 <==",
        f"# cmd: {b.root}/apps/software/conda/bin/mamba create -p {prefix} python={pyxy}"
        + (" ipykernel" if ipykernel else ""),
        "# conda version: 24.9.2",
        f"+conda-forge/linux-64::python-{PY_MODULE_VERSION}-{py_build}",
    ]
    files = [f"bin/python{pyxy}", "bin/python3", "bin/python", f"lib/{b.host.soname}"]
    _write(
        meta / f"python-{PY_MODULE_VERSION}-{py_build}.json",
        _conda_record("python", PY_MODULE_VERSION, py_build, "linux-64", files),
    )
    if ipykernel:
        link_packages(b.site_packages(prefix))
        lines.append("+conda-forge/noarch::ipykernel-6.29.5-pyh3099207_0")
        _write(
            meta / "ipykernel-6.29.5-pyh3099207_0.json",
            _conda_record("ipykernel", "6.29.5", "pyh3099207_0", "noarch", []),
        )
    specs = ["python=" + pyxy] + (["ipykernel"] if ipykernel else [])
    lines.append("# update specs: " + json.dumps(specs))
    _write(meta / "history", "\n".join(lines) + "\n")


def _build_conda(b: _Builder, other_kernels: bool = False) -> dict[str, Path]:
    """Make ~/.conda (symlinked to project storage), envs dirs, environments.txt and .condarc."""
    user = b.root / "fred" / "oz000" / "user"
    real = user / ".conda"
    (real / "envs").mkdir(parents=True)
    (b.home / ".conda").symlink_to(real)
    envs = {
        "astro": b.home / ".conda" / "envs" / "astro",
        "ml": user / "conda-envs" / "ml tools",
        "conda-noipk": user / "conda-envs" / "no-kernel",
    }
    for label, prefix in envs.items():
        _conda_env(b, prefix, ipykernel=label != "conda-noipk")
    astro = envs["astro"]
    state = {"env_vars": {"ASTRO_DATA": "/fred/oz000/data", "OZK_STATE_VAR": "from-state"}}
    _write(astro / "conda-meta" / "state", json.dumps(state) + "\n")
    _write(
        astro / "etc" / "conda" / "env_vars.d" / "astro.json",
        json.dumps({"OZK_ENVVARS_D": "from-env-vars-d"}) + "\n",
    )
    _write(
        astro / "etc" / "conda" / "activate.d" / "astro-activate.sh",
        'export ASTRO_ACTIVATED=yes\nexport ASTRO_SEEN_PREFIX="$CONDA_PREFIX"\n',
    )
    _write(user / "conda-envs" / "notconda" / "README", "Not a conda env: no conda-meta/history.\n")
    (user / "conda-envs" / "notconda" / "conda-meta").mkdir()
    irkernel = find_irkernel() if other_kernels else None
    if irkernel:
        envs["rstats"] = b.home / ".conda" / "envs" / "rstats"
        _r_env(b, envs["rstats"], *irkernel)
    deleted = b.home / ".conda" / "envs" / "deleted-env"
    listed = [envs["astro"], deleted, envs["ml"], envs["conda-noipk"]]
    _write(real / "environments.txt", "".join(f"{p}\n" for p in listed))
    condarc = f"channels:\n  - conda-forge\nenvs_dirs:\n  - {user / 'conda-envs'}\n"
    _write(b.home / ".condarc", condarc)
    return envs


# Where Debian's r-cran-irkernel (and a CRAN install) keep IRkernel's own kernelspec dir.
IRKERNEL_SPEC_DIRS = (
    "/usr/lib/R/site-library/IRkernel/kernelspec",
    "/usr/local/lib/R/site-library/IRkernel/kernelspec",
    "/usr/lib/R/library/IRkernel/kernelspec",
)
R_VERSION = "4.2.2"


def find_irkernel() -> tuple[str, Path] | None:
    """(R, IRkernel's kernelspec dir) when R and IRkernel are installed, else None."""
    r = shutil.which("R")
    spec_dir = next((Path(d) for d in IRKERNEL_SPEC_DIRS if os.path.isfile(f"{d}/kernel.json")),
                    None)
    return (os.path.realpath(r), spec_dir) if r and spec_dir else None


def _r_env(b: _Builder, prefix: Path, r: str, spec_dir: Path) -> None:
    """An R-only conda env laid out as conda-forge's r-base + r-irkernel make it (no Python).

    Its bin/R is Debian's R: the env cannot hold a real conda R here, and the kernelspec runs
    'R' relative, so only the activated PATH finds it.
    """
    meta = prefix / "conda-meta"
    (prefix / "bin").mkdir(parents=True)
    for tool in ("R", "Rscript"):
        target = os.path.join(os.path.dirname(r), tool)
        (prefix / "bin" / tool).symlink_to(target if os.path.exists(target) else r)
    kernel_dir = prefix / "share" / "jupyter" / "kernels" / "ir"
    kernel_dir.mkdir(parents=True)
    for entry in sorted(spec_dir.iterdir()):
        shutil.copyfile(entry, kernel_dir / entry.name)
    # conda-forge's gdal (an R-spatial dependency) sets GDAL_DATA on activation.
    _write(prefix / "etc" / "conda" / "activate.d" / "gdal-activate.sh",
           'export GDAL_DATA="$CONDA_PREFIX/share/gdal"\n'
           'export GDAL_DRIVER_PATH="$CONDA_PREFIX/lib/gdalplugins"\n')
    r_build, irk_build = "hb8a6f6e_2", "r42hc72bb7e_1"
    records = {
        ("r-base", R_VERSION, r_build, "linux-64"): ["bin/R", "bin/Rscript"],
        ("r-irkernel", "1.3.2", irk_build, "noarch"): [
            f"share/jupyter/kernels/ir/{e.name}" for e in sorted(spec_dir.iterdir())],
        ("gdal", "3.6.2", "h7cf6f7a_4", "linux-64"): ["etc/conda/activate.d/gdal-activate.sh"],
    }
    for (name, version, build, subdir), files in records.items():
        _write(meta / f"{name}-{version}-{build}.json",
               _conda_record(name, version, build, subdir, files))
    lines = [
        "==> 2026-11-02 09:30:00 <==",
        f"# cmd: {b.root}/apps/software/conda/bin/mamba create -p {prefix} r-base=4.2 r-irkernel",
        "# conda version: 24.9.2",
        *(f"+conda-forge/{s}::{n}-{v}-{bd}" for (n, v, bd, s) in records),
        '# update specs: ["r-base=4.2", "r-irkernel"]',
    ]
    _write(meta / "history", "\n".join(lines) + "\n")


def _prepare_root(root: Path) -> None:
    """Make root an empty dir, wiping a previous site there but nothing else."""
    root.mkdir(parents=True, exist_ok=True)
    if (root / MARKER).exists():
        for entry in root.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    elif any(root.iterdir()):
        msg = f"{root} is not empty and holds no test site; refusing to build one there"
        raise RuntimeError(msg)


def build_site(root: Path, *, lmod: bool = True, hostile: bool = True,
               other_kernels: bool = True, modules: str | None = None,
               modules_cmd: str | None = None) -> Site:
    """Build the site under root (a fresh or previously built dir) and describe it.

    other_kernels adds an R-only conda env with IRkernel (when R and IRkernel are installed)
    and a venv with bash_kernel's spec (when bash_kernel is importable). modules: 'lmod' (Lua
    modulefiles, the default when lmod is true), 'tmod' (Tcl modulefiles for Environment
    Modules' modulecmd.tcl, modules_cmd or the installed one) or '' (none).
    """
    system = ("lmod" if lmod else "") if modules is None else modules
    lmod_cmd, patchelf = find_lmod() if system == "lmod" else None, shutil.which("patchelf")
    if system == "tmod":
        from .envmodules import find_modules_cmd

        modules_cmd = modules_cmd or find_modules_cmd()
        if not (modules_cmd and patchelf):
            missing = [n for n, ok in (("environment-modules", modules_cmd),
                                       ("patchelf", patchelf)) if not ok]
            msg = f"the Tcl test site needs {' and '.join(missing)} (set MODULES_CMD to a " \
                "modulecmd.tcl, or apt-get install environment-modules patchelf)"
            raise RuntimeError(msg)
    if system == "lmod" and not (lmod_cmd and patchelf):
        missing = [n for n, ok in (("lmod", lmod_cmd), ("patchelf", patchelf)) if not ok]
        msg = f"the test site needs {' and '.join(missing)}: apt-get install {' '.join(missing)}"
        raise RuntimeError(msg)
    root = Path(root).absolute()
    _prepare_root(root)
    b = _Builder(root, patchelf)
    b.home.mkdir()
    for name in ("data", "config", "runtime"):
        (root / f"jupyter-{name}").mkdir()
    prefixes: dict[str, Path] = {}
    pythons: dict[str, Path] = {}
    names = NAMES.get(system, NAMES["lmod"])
    modulepath, tree = "", root / ("modules-tcl" if system == "tmod" else "modules")
    if system == "lmod":
        prefixes, pythons = _build_modules(b)
    elif system == "tmod":
        prefixes, pythons = _build_tcl_modules(b)
    if system:
        modulepath = str(tree / "Core")
    # name -> modulefile: the two path parts below a Core or Compiler/<name>/<version> dir.
    modulefiles = {"/".join(f.parts[-2:]).removesuffix(".lua"): f
                   for f in sorted(tree.rglob("*")) if f.is_file()} if system else {}
    venvs = _build_venvs(b, prefixes, pythons, hostile, other_kernels, names)
    conda_envs = _build_conda(b, other_kernels)
    _write(root / MARKER, "Built by ozkernels.demosite; build_site() may wipe this dir.\n")
    return Site(
        root=root,
        home=b.home,
        modulepath=modulepath,
        lmod_cmd=lmod_cmd,
        modules=prefixes,
        system=system,
        modules_cmd=modules_cmd if system == "tmod" else None,
        names=dict(names) if system else {},
        modulefiles=modulefiles,
        venvs=venvs,
        conda_envs=conda_envs,
    )
