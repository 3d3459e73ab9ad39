"""Cheap change detection: the paths whose stat changes when a sync would do something new."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

from jupyter_core.paths import jupyter_path

from ..discovery import Discovery
from ..environment import Environment
from ..manager import KernelsManager
from ..sources import Context

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

    def subset(self, paths: Iterable[str], now: int | None = None) -> Snapshot:
        """The stamps of some of the paths (taken with this snapshot: no new stat)."""
        now = time.time_ns() if now is None else now
        stamps = {p: self.stamps[p] for p in paths if p in self.stamps}
        racy = any(abs(now - s[0]) < RACY_NS for s in stamps.values() if s != MISSING)
        return Snapshot(stamps, racy)


def kernelspecs_stamp(dirs: Iterable[str]) -> dict[str, Stamp]:
    """The stamp of every kernel.json on the Jupyter path, by kernel name (first dir wins)."""
    found: dict[str, Stamp] = {}
    for directory in dirs:
        try:
            with os.scandir(directory) as entries:
                names = sorted(e.name for e in entries if not e.name.startswith("."))
        except OSError:
            continue
        for name in names:
            key = name.lower()
            if key not in found:
                spec = stamp(os.path.join(directory, name, "kernel.json"))
                if spec != MISSING:
                    found[key] = spec
    return found


def specs_diff(before: dict[str, Stamp], after: dict[str, Stamp]) -> dict[str, list[str]]:
    """Kernel names added, removed and changed between two kernelspecs_stamp() results."""
    diff = {"added": sorted(set(after) - set(before)),
            "removed": sorted(set(before) - set(after)),
            "changed": sorted(n for n in set(before) & set(after) if before[n] != after[n])}
    return {k: v for k, v in diff.items() if v}


def watch_paths(manager: KernelsManager, discovery: Discovery, context: Context,
                envs: Iterable[Environment]) -> list[str]:
    """Every path whose stat changes when a sync of these environments could change something."""
    paths = [manager.kernels_dir(), *jupyter_path("kernels"), discovery.registry_path]
    for source in discovery.configured():
        paths += source.watch_paths(context)
    for env in envs:
        paths += discovery.source_for(env.kind).env_watch_paths(env)
    return list(dict.fromkeys(paths))
