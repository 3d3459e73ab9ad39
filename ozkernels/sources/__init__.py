"""Discovery sources: one configurable class per kind of environment, loaded as plugins."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from traitlets.config import LoggingConfigurable

from ..environment import Environment
from ..errors import SourceError
from ..layout import path_problem, site_packages
from ..moduleinfo import ModuleInfo
from ..modulesystem import LMOD, ModuleSystem
from ..registry import Registry

ENTRY_POINT_GROUP = "ozkernels.sources"
BUILTIN = {
    "modules": "ozkernels.sources.modules:ModuleSource",
    "venvs": "ozkernels.sources.venvs:VenvSource",
    "conda": "ozkernels.sources.conda:CondaSource",
}


@dataclass
class ModuleIndex:
    """Modules by the bin dirs they put on PATH, to map interpreters back to modules."""

    modules: list[ModuleInfo] = field(default_factory=list)
    system: ModuleSystem = field(default_factory=ModuleSystem)
    modulepath: str = ""
    skipped: str = ""

    @property
    def lmod_cmd(self) -> str:
        """Lmod's command when the site runs Lmod, else ''."""
        return self.system.cmd if self.system.name == LMOD else ""

    def __post_init__(self):
        self._by_bin: dict[str, ModuleInfo] = {}
        for m in self.modules:
            for d in m.bin_dirs:
                if not path_problem(d):  # a damaged modulefile's PATH entry is no dir
                    self._by_bin.setdefault(os.path.normpath(d), m)
        self._real: dict[str, ModuleInfo] | None = None
        self._names: set[str] | None = None

    def knows(self, name: str) -> bool:
        """Whether the module system has a module by this name (full, or its default)."""
        if self._names is None:
            self._names = {m.full_name for m in self.modules}
            self._names |= {m.full_name.split("/")[0] for m in self.modules}
        return name in self._names

    def close_to(self, name: str) -> list[str]:
        """Modules whose names are close to a mistyped or removed one, closest first."""
        import difflib

        names = sorted({m.full_name for m in self.modules})
        package = name.split("/")[0].lower()
        same = [n for n in names if n.split("/")[0].lower() == package]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        return [*sorted(same, key=lambda n: -difflib.SequenceMatcher(None, name, n).ratio()),
                *(n for n in close if n not in same)][:3]

    def python_module(self, version: str) -> ModuleInfo | None:
        """The module Python to rebuild a venv of Python X.Y on: that version if any, newest."""
        def key(m: ModuleInfo) -> tuple[bool, bool, tuple[int, ...]]:
            number = tuple(int(p) for p in re.findall(r"\d+", m.version)[:3])
            same = bool(version) and (m.version == version or m.version.startswith(version + "."))
            return same, "bare" not in m.version, number

        pythons = [m for m in self.modules if not m.hidden
                   and m.full_name.lower().startswith("python/")]
        return max(pythons, key=key, default=None)

    def for_bin_dir(self, bin_dir: str) -> ModuleInfo | None:
        """The module whose PATH entry is bin_dir (compared as given, then resolved)."""
        hit = self._by_bin.get(os.path.normpath(bin_dir))
        if hit or not self._by_bin:
            return hit
        if self._real is None:
            self._real = {os.path.realpath(d): m for d, m in self._by_bin.items()}
        return self._real.get(os.path.realpath(bin_dir))


@dataclass
class Context:
    """What every source may consult: the module index and the user's registry."""

    modules: ModuleIndex
    registry: Registry
    home: str = field(default_factory=lambda: os.path.expanduser("~"))
    site: bool = False
    modulepath: str = ""
    removed: list[Environment] = field(default_factory=list)

    def recorded_modules(self, prefix: str, base: tuple[str, ...]) -> tuple[str, ...]:
        """Modules recorded for this env, else the base chain; the base chain is kept."""
        record = self.registry.get(prefix)
        if not record or not record.modules:
            return base
        recorded = tuple(record.modules)
        return recorded + tuple(m for m in base if m not in recorded)


def missing(path: str) -> bool:
    """Whether path certainly does not exist (an error that proves nothing says no)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        pass
    return False


class Source(LoggingConfigurable):
    """A place environments come from, and everything ozkernels knows about their kind."""

    #: The kind's name: spec metadata, kernel names (`venv-...`), `list`.
    kind = ""
    #: What `add` and messages call one of them ("a venv", "a conda env").
    noun = ""
    #: A file below the prefix that every env of this kind has: its absence proves the env is
    #: gone, its presence lets `add` take a path as one. '' when the kind has none.
    marker = ""
    #: How the launcher activates it: a key of kernel_files.ACTIVATIONS.
    activation = "module"
    #: Shared by everybody (module Pythons): user kernels only with Syncer.module_kernels.
    shared = False
    #: Whether find() reads the Lmod module index (so discovery runs Lmod's spider for it).
    uses_modules = False

    def find(self, context: Context) -> list[Environment]:
        """Every environment this source knows about."""
        raise NotImplementedError

    def owns(self, path: str) -> bool:
        """Whether a dir is an env of this kind, by its marker (one stat)."""
        return bool(self.marker) and os.path.exists(os.path.join(path, self.marker))

    def gone(self, owner: dict[str, Any], context: Context) -> str:
        """Why the env behind a spec of this kind certainly no longer exists, or ''."""
        prefix = owner.get("prefix", "")
        # Only proof of absence removes a kernel: a dir that is unreadable or on a filesystem
        # that is down right now must not cost the user their kernel.
        try:
            if not stat.S_ISDIR(os.stat(prefix).st_mode):
                return f"{prefix} no longer exists"
        except (FileNotFoundError, NotADirectoryError):
            return f"{prefix} no longer exists"
        except OSError:
            return ""
        if self.marker and missing(os.path.join(prefix, self.marker)):
            return f"{prefix} is no longer a {owner.get('kind', self.kind)} env"
        return ""

    def watch_paths(self, context: Context) -> list[str]:
        """Paths whose stat changes when an env of this kind appears (roots, envs dirs...)."""
        return []

    def looked_in(self, context: Context) -> str:
        """Where find() looks, for a user told that nothing was found."""
        return f"{self.kind} envs from the {type(self).__name__} source"

    def env_watch_paths(self, env: Environment) -> list[str]:
        """What changes when one env is removed, repaired or gets (or loses) ipykernel."""
        paths = [env.prefix, env.python, *env.watch]
        if env.path:
            paths.append(env.path)
        if env.version:
            paths.append(site_packages(env.prefix, env.version))
        if self.marker:
            # The marker's top dir: conda writes conda-meta/history last, into a dir that
            # already exists, and that dir's mtime shows it.
            paths.append(os.path.join(env.path or env.prefix, self.marker.split("/")[0]))
        return paths

    def watches_module(self, module: ModuleInfo) -> bool:
        """Whether a modulefile's contents matter to this source (the spider cache stats it)."""
        return False

    def location(self, env: Environment) -> str:
        """The path `ozkernels list` shows for an env."""
        return env.path or env.prefix


def load_source_class(name: str) -> type[Source]:
    """A built-in source by name, or one from the `ozkernels.sources` entry-point group."""
    target = BUILTIN.get(name)
    if target is None:
        from importlib.metadata import entry_points  # only third-party sources need the scan

        found = entry_points(group=ENTRY_POINT_GROUP)
        matches = [ep for ep in found if ep.name == name]
        if not matches:
            known = sorted({*BUILTIN, *(ep.name for ep in found)})
            msg = (f"unknown discovery source {name!r} in Discovery.sources; known sources: "
                   f"{', '.join(known)} (others come from the {ENTRY_POINT_GROUP!r} entry-point "
                   "group of an installed package)")
            raise SourceError(msg)
        try:
            loaded = matches[0].load()
        except Exception as e:  # noqa: BLE001 - a broken plugin is the plugin's error
            msg = f"discovery source {name!r} ({matches[0].value}) cannot be loaded: {e}"
            raise SourceError(msg) from e
        if not (isinstance(loaded, type) and issubclass(loaded, Source)):
            msg = (f"discovery source {name!r} ({matches[0].value}) is not a subclass of "
                   "ozkernels.sources.Source")
            raise SourceError(msg)
        return loaded
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)
