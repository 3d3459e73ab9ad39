"""The commands printed as fixes: each one works, as printed, for the user who reads it."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence

_SAFE = re.compile(r"^[A-Za-z0-9._+-]+$")


def quote(word: str) -> str:
    """One shell word."""
    return shlex.quote(word)


def loaded(modules: Sequence[str], command: str) -> str:
    """`module load M... && command`, or the command alone without modules."""
    if not modules:
        return command
    return "module load " + " ".join(quote(m) for m in modules) + " && " + command


def venv_slug(module_name: str) -> str:
    """A venv dir name for a module: 'python/3.11.5' -> 'python-3.11.5'."""
    slug = re.sub(r"[^A-Za-z0-9._+-]+", "-", module_name).strip("-.")
    return slug or "jupyter"


def module_ipykernel(python: str, chain: Sequence[str], name: str, *, site: bool) -> str:
    """Give a module Python a kernel: admins install into it; users make a venv on it."""
    if site:
        return loaded(chain, f"{quote(python)} -m pip install ipykernel")
    # Users cannot write to a module's prefix (and PIP_REQUIRE_VIRTUALENV forbids --user).
    slug = venv_slug(name)
    venv = f"~/venvs/{slug}" if _SAFE.match(slug) else quote(f"$HOME/venvs/{slug}")
    return loaded(chain, f"python -m venv --system-site-packages {venv} && "
                         f"{venv}/bin/python -m pip install ipykernel && ozkernels sync")


def venv_ipykernel(python: str, modules: Sequence[str], *, pip: bool, uv: bool) -> str:
    """Install ipykernel into a venv, with or without pip in it (uv makes venvs without)."""
    py = quote(python)
    if uv:
        command = f"uv pip install --python {py} ipykernel"
    elif pip:
        command = f"{py} -m pip install ipykernel"
    else:
        command = f"{py} -m ensurepip && {py} -m pip install ipykernel"
    return loaded(modules, command)


def conda_ipykernel(prefix: str, conda_module: str, *, python: bool) -> str:
    """Install ipykernel (and python, when missing) into a conda env."""
    packages = "ipykernel" if python else "python ipykernel"
    return loaded([conda_module] if conda_module else [],
                  f"conda install -y -p {quote(prefix)} {packages}")


def recreate_venv(path: str, chain: Sequence[str], *, system_site: bool,
                  dangling: bool = False) -> str:
    """Point a venv at a Python that exists again, keeping what is in it."""
    # --upgrade rewrites pyvenv.cfg and bin/python in place; --clear would delete the user's
    # packages and files. It fails on a dangling bin/python: only those links go first.
    flags = "--upgrade --system-site-packages" if system_site else "--upgrade"
    python = "python" if chain else "python3"
    command = loaded(chain, f"{python} -m venv {flags} {quote(path)}")
    if dangling:
        bin_dir = quote(path.rstrip("/") + "/bin")
        command = f"find {bin_dir} -maxdepth 1 -name 'python*' -xtype l -delete && {command}"
    return command


def readable(path: str) -> str:
    """Make a file readable by its owner."""
    return f"chmod u+r {quote(path)}"


def sync(flags: Iterable[str] = ()) -> str:
    """Run a sync with the same target flags."""
    return " ".join(["ozkernels", "sync", *(quote(f) for f in flags)])


def module_kernels(flags: Iterable[str] = ()) -> str:
    """Write user kernels for module Pythons too."""
    return sync([*flags, "--Syncer.module_kernels=True"])


def add(path: str, modules: Sequence[str] = (), flags: Iterable[str] = (), *,
        none: bool = False) -> str:
    """Add an env back (and record its modules, or that it needs none)."""
    words = ["ozkernels", "add", quote(path)]
    words += [f"--module {quote(m)}" for m in modules] or (["--no-modules"] if none else [])
    return " ".join([*words, *(quote(f) for f in flags)])


def remove(path: str, flags: Iterable[str] = ()) -> str:
    """Forget an env."""
    return " ".join(["ozkernels", "remove", quote(path), *(quote(f) for f in flags)])
