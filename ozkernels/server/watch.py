"""Cheap change detection: the paths whose stat changes when a sync would do something new."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from jupyter_core.paths import jupyter_path

from ..discovery import Discovery
from ..environment import Environment
from ..layout import site_packages
from ..manager import KernelsManager
from ..sources import Context
from ..sources.conda import CondaSource, condarc_paths
from ..sources.modules import ModuleSource
from ..sources.venvs import VenvSource

Stamp = tuple[int, int, int]
MISSING: Stamp = (-1, -1, -1)
# Lustre and many NFS servers keep mtimes in whole seconds: a change within the same second
# as the snapshot would leave the stamp unchanged, so fresh stamps are not trusted.
RACY_NS = 2_000_000_000


def stamp(path: str) -> Stamp:
    """mtime, inode and size of a path (followed through symlinks), or MISSING."""
    try:
        st = os.stat(path)
    except OSError:
        return MISSING
    return st.st_mtime_ns, st.st_ino, st.st_size


@dataclass(frozen=True)
class Snapshot:
    """The stamps of the watched paths, taken right after a sync."""

    stamps: dict[str, Stamp]
    racy: bool = False

    @classmethod
    def take(cls, paths: Iterable[str]) -> Snapshot:
        """Stamp every path now."""
        now = time.time_ns()
        stamps = {p: stamp(p) for p in paths}
        racy = any(abs(now - s[0]) < RACY_NS for s in stamps.values() if s != MISSING)
        return cls(stamps, racy)

    def changed(self) -> bool:
        """Whether any watched path differs now, or the snapshot was too fresh to trust."""
        return self.racy or any(stamp(p) != s for p, s in self.stamps.items())


def _expand(path: str) -> str:
    return os.path.expanduser(os.path.expandvars(path))


def searched_dirs(root: str, max_depth: int) -> Iterator[str]:
    """The root and every non-venv dir VenvSource looks into or at, up to max_depth below it."""
    yield root
    stack, seen = [(root, 0)], set()
    while stack:
        path, depth = stack.pop()
        real = os.path.realpath(path)
        if real in seen or depth >= max_depth:
            continue
        seen.add(real)
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        for entry in entries:
            try:
                if not entry.is_dir() or os.path.exists(os.path.join(entry.path, "pyvenv.cfg")):
                    continue
            except OSError:
                continue
            # A dir that is not a venv yet may become one: its own mtime changes then.
            yield entry.path
            stack.append((entry.path, depth + 1))


def venv_paths(source: VenvSource, context: Context) -> list[str]:
    """Venv roots, the dirs searched below them and the explicitly listed venvs' parents."""
    paths: list[str] = []
    for root in source.roots:
        paths += searched_dirs(_expand(root), source.max_depth)
    for path in [*map(_expand, source.paths), *context.registry.added("venv")]:
        paths += [path, os.path.dirname(path.rstrip("/"))]
    return paths


def conda_paths(source: CondaSource, context: Context) -> list[str]:
    """environments.txt, every condarc, every envs dir and the conda-meta dir of each entry."""
    home = context.home
    paths = [os.path.join(home, ".conda", "environments.txt"), *condarc_paths(os.environ, home)]
    for envs_dir in source.candidate_dirs(context):
        paths.append(envs_dir)
        try:
            entries = [e.path for e in os.scandir(envs_dir)]
        except OSError:
            continue
        # conda writes conda-meta/history last: an env being created is not one yet.
        paths += [p for e in entries for p in (e, os.path.join(e, "conda-meta"))]
    return paths


def module_paths(source: ModuleSource, discovery: Discovery, context: Context) -> list[str]:
    """MODULEPATH dirs and the dirs holding module Pythons' modulefiles."""
    modulepath = context.modules.modulepath or discovery.modulepath or \
        os.environ.get("MODULEPATH", "")
    paths = [p for p in modulepath.split(":") if p]
    for module in context.modules.modules:
        if source.matches(module):
            paths += [os.path.dirname(module.path), module.mpath]
    return [p for p in paths if p]


def environment_paths(env: Environment) -> list[str]:
    """What changes when an environment is removed, repaired or gets (or loses) ipykernel."""
    paths = [env.prefix, env.python, *env.watch]
    if env.path:
        paths.append(env.path)
    if env.version:
        paths.append(site_packages(env.prefix, env.version))
    marker = {"venv": "pyvenv.cfg", "conda": "conda-meta"}.get(env.kind)
    if marker:
        paths.append(os.path.join(env.path or env.prefix, marker))
    return paths


def watch_paths(manager: KernelsManager, discovery: Discovery, context: Context,
                envs: Iterable[Environment]) -> list[str]:
    """Every path whose stat changes when a sync of these environments could change something."""
    paths = [manager.kernels_dir(), *jupyter_path("kernels"), discovery.registry_path]
    for name in discovery.sources:
        source = discovery.source(name)
        if isinstance(source, VenvSource):
            paths += venv_paths(source, context)
        elif isinstance(source, CondaSource):
            paths += conda_paths(source, context)
        elif isinstance(source, ModuleSource):
            paths += module_paths(source, discovery, context)
    for env in envs:
        paths += environment_paths(env)
    return list(dict.fromkeys(paths))
