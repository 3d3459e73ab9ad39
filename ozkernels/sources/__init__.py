"""Discovery sources: one configurable class per kind of environment, loaded as plugins."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import import_module

from traitlets.config import LoggingConfigurable

from ..environment import Environment
from ..lmod import ModuleInfo
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
    lmod_cmd: str = ""
    modulepath: str = ""
    skipped: str = ""

    def __post_init__(self):
        self._by_bin: dict[str, ModuleInfo] = {}
        for m in self.modules:
            for d in m.bin_dirs:
                self._by_bin.setdefault(os.path.normpath(d), m)
        self._real: dict[str, ModuleInfo] | None = None

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

    def recorded_modules(self, prefix: str, base: tuple[str, ...]) -> tuple[str, ...]:
        """Modules recorded for this env, else the base chain; the base chain is kept."""
        record = self.registry.get(prefix)
        if not record or not record.modules:
            return base
        recorded = tuple(record.modules)
        return recorded + tuple(m for m in base if m not in recorded)


class Source(LoggingConfigurable):
    """A place environments come from."""

    kind = ""

    def find(self, context: Context) -> list[Environment]:
        """Every environment this source knows about."""
        raise NotImplementedError


def load_source_class(name: str) -> type[Source]:
    """A built-in source by name, or one from the `ozkernels.sources` entry-point group."""
    target = BUILTIN.get(name)
    if target is None:
        from importlib.metadata import entry_points  # only third-party sources need the scan

        matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not matches:
            msg = f"unknown discovery source {name!r}"
            raise KeyError(msg)
        return matches[0].load()
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)
