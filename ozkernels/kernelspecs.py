"""Kernelspecs an environment ships besides its Python kernel (IRkernel, bash_kernel, ...), read
from their files under PREFIX/share/jupyter/kernels, never by running anything."""

from __future__ import annotations

import json
import os
import re
from typing import Any

from .environment import WrappedSpec
from .layout import read_small

KERNELS_SUBDIR = os.path.join("share", "jupyter", "kernels")
# Files of a kernelspec dir that clients read as resources (logos in JupyterLab, kernel.js and
# kernel.css in the classic notebook); anything else there is the kernel's own business.
RESOURCE_NAMES = re.compile(r"^(logo-[A-Za-z0-9._-]+|kernel\.js|kernel\.css)$")
MAX_RESOURCE_BYTES = 1 << 20
# conda packages that carry a language's version, to tell 'R 4.2' from 'R'.
CONDA_LANGUAGE_PACKAGES = {"r": "r-base", "julia": "julia", "python": "python", "ruby": "ruby",
                           "octave": "octave", "bash": "bash", "perl": "perl", "scala": "scala"}
_RECORD = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+)-(?P<build>[^-]+)\.json$")


def kernels_dir(prefix: str) -> str:
    """Where an environment keeps its kernelspecs."""
    return os.path.join(prefix, KERNELS_SUBDIR)


def is_python_kernel(name: str, spec: dict[str, Any]) -> bool:
    """Whether a spec is the env's own ipykernel 'python3' spec (ozkernels' Python kernel)."""
    argv = spec.get("argv")
    runs_ipykernel = isinstance(argv, list) and any(
        str(a) in ("ipykernel_launcher", "ipykernel") for a in argv)
    return name.lower() == "python3" and runs_ipykernel


def _owned(spec: dict[str, Any]) -> bool:
    meta = spec.get("metadata")
    return isinstance(meta, dict) and isinstance(meta.get("ozkernels"), dict)


def _problem(spec: Any) -> str:
    """Why a loaded kernel.json cannot be wrapped, or ''."""
    if not isinstance(spec, dict):
        return "kernel.json is not a JSON object"
    argv = spec.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        return "kernel.json has no argv (a non-empty list of strings)"
    if not argv[0]:
        return "kernel.json's argv[0] is empty"
    env = spec.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        return "kernel.json's env is not an object of strings"
    if spec.get("interrupt_mode", "signal") not in ("signal", "message"):
        return "kernel.json's interrupt_mode is neither 'signal' nor 'message'"
    return ""


def read_kernelspec(path: str, name: str) -> WrappedSpec | None:
    """The kernelspec in dir `path`; None for one ozkernels must not wrap (ipykernel's, its own)."""
    try:
        text = read_small(os.path.join(path, "kernel.json"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        return WrappedSpec(name, path, problem=f"cannot read {path}/kernel.json: {e.strerror}")
    try:
        spec = json.loads(text)
    except ValueError as e:
        return WrappedSpec(name, path, problem=f"{path}/kernel.json is not valid JSON: {e}")
    problem = _problem(spec)
    if problem:
        return WrappedSpec(name, path, problem=f"{path}: {problem}")
    if is_python_kernel(name, spec) or _owned(spec):
        return None
    resources = []
    try:
        for entry in os.scandir(path):
            if RESOURCE_NAMES.match(entry.name) and entry.is_file():
                resources.append(entry.name)
    except OSError:
        pass
    return WrappedSpec(name, path, json.dumps(spec, sort_keys=True), tuple(sorted(resources)))


def find_kernelspecs(prefix: str, language_versions=None) -> tuple[WrappedSpec, ...]:
    """Every wrappable kernelspec under PREFIX/share/jupyter/kernels (one scandir when none).

    language_versions(language) gives the version shown in display names ('' for none).
    """
    try:
        entries = sorted(os.scandir(kernels_dir(prefix)), key=lambda e: e.name)
    except OSError:
        return ()
    found = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        ws = read_kernelspec(entry.path, entry.name)
        if ws is None:
            continue
        if language_versions and not ws.problem and ws.language:
            version = language_versions(ws.language)
            if version:
                ws = WrappedSpec(ws.name, ws.resource_dir, ws.spec_json, ws.resources, version)
        found.append(ws)
    return tuple(found)


def conda_versions(prefix: str):
    """A language -> 'X.Y' lookup from the env's conda-meta records (one scandir, on demand)."""
    cache: dict[str, str] | None = None

    def lookup(language: str) -> str:
        nonlocal cache
        if cache is None:
            cache = {}
            try:
                names = [e.name for e in os.scandir(os.path.join(prefix, "conda-meta"))]
            except OSError:
                names = []
            for n in names:
                m = _RECORD.match(n)
                if m:
                    cache[m.group("name")] = ".".join(m.group("version").split(".")[:2])
        return cache.get(CONDA_LANGUAGE_PACKAGES.get(language.lower(), ""), "")

    return lookup


def resource_bytes(ws: WrappedSpec) -> dict[str, bytes]:
    """The resource files (logos) to copy into the wrapping kernel's dir, by name."""
    files = {}
    for name in ws.resources:
        path = os.path.join(ws.resource_dir, name)
        try:
            if os.path.getsize(path) <= MAX_RESOURCE_BYTES:
                with open(path, "rb") as f:
                    files[name] = f.read()
        except OSError:
            continue
    return files


def spec_gone(resource_dir: str) -> bool:
    """Whether a wrapped kernelspec certainly no longer exists (unreadable is not gone)."""
    try:
        os.stat(os.path.join(resource_dir, "kernel.json"))
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def spec_watch_paths(prefix: str, specs: tuple[WrappedSpec, ...]) -> tuple[str, ...]:
    """Paths whose stat changes when a kernelspec is installed, changed or removed."""
    paths = [kernels_dir(prefix)]
    for ws in specs:
        paths += [ws.resource_dir, os.path.join(ws.resource_dir, "kernel.json")]
    return tuple(paths)
