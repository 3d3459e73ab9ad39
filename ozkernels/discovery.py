"""Discovery: runs every source over one module index and merges what they find."""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import replace
from functools import cached_property, partial

from jupyter_core.paths import jupyter_data_dir
from traitlets import Bool, Enum, Int, List, Unicode, default
from traitlets.config import LoggingConfigurable

from . import envmodules, fixes
from .environment import Environment
from .errors import LmodError, ModulesError
from .lmod import SpiderCache, run_spider
from .modulesystem import FIRST_HAND, RECORDED, SYSTEMS, TMOD, ModuleSystem, detect
from .registry import Registry
from .sources import BUILTIN, Context, ModuleIndex, Source, load_source_class


def base_modulepath(environ) -> str:
    """MODULEPATH without what loaded modules added (Lmod records the base in its table)."""
    current = environ.get("MODULEPATH", "")
    size = environ.get("_ModuleTable_Sz_", "")
    if not size.isdigit() or not environ.get("LOADEDMODULES"):
        return current
    chunks = "".join(environ.get(f"_ModuleTable{i:03d}_", "") for i in range(1, int(size) + 1))
    try:
        table = base64.b64decode(chunks).decode("utf-8", "replace")
    except (ValueError, binascii.Error):
        return current
    m = re.search(r'systemBaseMPATH\s*=\s*"([^"]*)"', table)
    return m.group(1) if m and m.group(1) else current


def cache_home() -> str:
    """ozkernels' cache dir (XDG_CACHE_HOME honoured)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ozkernels")


class Discovery(LoggingConfigurable):
    """Finds every Python environment on the site, never running one."""

    sources = List(
        Unicode(), default_value=["modules", "venvs", "conda"],
        help="Discovery sources to run: built-in 'modules', 'venvs', 'conda', or the name of "
        "an 'ozkernels.sources' entry point.",
    ).tag(config=True)
    lmod_cmd = Unicode(
        "", help="Lmod's 'lmod' command; empty to find it from LMOD_CMD, LMOD_DIR, LMOD_PKG "
        "or the standard install locations.",
    ).tag(config=True)
    module_system = Enum(
        SYSTEMS, default_value="auto",
        help="Module system: 'auto' (the one the user's shell initialised, else the one "
        "installed), 'lmod', 'tmod' (Environment Modules) or 'none'.",
    ).tag(config=True)
    modules_cmd = Unicode(
        "", help="Environment Modules' modulecmd.tcl; empty to find it from MODULES_CMD, "
        "MODULESHOME or the standard install locations.",
    ).tag(config=True)
    hierarchy_depth = Int(
        3, help="Levels of modulefiles that add to MODULEPATH followed when listing "
        "Environment Modules (Lmod's spider walks its hierarchy itself).",
    ).tag(config=True)
    modulepath = Unicode(
        "", help="MODULEPATH searched for module Pythons; empty to use $MODULEPATH."
    ).tag(config=True)
    spider_cache = Bool(
        True, help="Reuse the module tree's listing (Lmod spider, Environment Modules avail and "
        "display) until a module directory or a Python modulefile changes."
    ).tag(config=True)
    cache_dir = Unicode(help="Where ozkernels keeps its caches.").tag(config=True)
    registry_path = Unicode(
        help="File recording added envs, per-env module lists and removed kernels."
    ).tag(config=True)

    @default("cache_dir")
    def _default_cache_dir(self):
        return cache_home()

    @default("registry_path")
    def _default_registry_path(self):
        return os.path.join(jupyter_data_dir(), "ozkernels", "environments.json")

    def registry(self) -> Registry:
        """The user's registry, loaded (a damaged part is skipped with one warning)."""
        registry = Registry(self.registry_path).load()
        for warning in registry.warnings:
            self.log.warning("%s", warning)
        return registry

    @cached_property
    def _made(self) -> dict[str, Source]:
        return {}

    def source(self, name: str) -> Source:
        """A configured instance of a named source (one per name and Discovery)."""
        if name not in self._made:
            self._made[name] = load_source_class(name)(parent=self)
        return self._made[name]

    def configured(self) -> list[Source]:
        """The sources Discovery.sources names, in order (an unknown one fails here)."""
        return [self.source(name) for name in self.sources]

    def kinds(self) -> dict[str, Source]:
        """The source for each kind: the configured ones, then the built-in ones, whose specs
        may still be on disk after a source was taken out of the configuration."""
        found: dict[str, Source] = {}
        for source in [*self.configured(), *(self.source(n) for n in BUILTIN)]:
            found.setdefault(source.kind, source)
        return found

    def source_for(self, kind: str) -> Source:
        """The source that knows a kind; a generic one for a kind nobody knows any more."""
        return self.kinds().get(kind) or Source(parent=self)

    def kind_of(self, path: str) -> str:
        """The kind of env a dir is, by the first source whose marker it holds, or ''."""
        return next((s.kind for s in self.kinds().values() if s.owns(path)), "")

    def describe_kinds(self) -> str:
        """'a venv (no pyvenv.cfg) nor a conda env (no conda-meta/history)', for messages."""
        return " nor ".join(f"{s.noun or 'a ' + s.kind + ' env'} (no {s.marker})"
                            for s in self.kinds().values() if s.marker)

    def detect_module_system(self) -> ModuleSystem:
        """The module system in use (the override, else the user's shell's, else the one
        recorded at an earlier sync, else installed); a first-hand answer is recorded."""
        path = os.path.join(self.cache_dir, "module-system.json")
        recorded = None
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            recorded = ModuleSystem(str(data["name"]), str(data["cmd"]), RECORDED)
        except (OSError, ValueError, KeyError, TypeError):
            pass
        system = detect(os.environ, override=self.module_system, lmod_cmd=self.lmod_cmd,
                        modules_cmd=self.modules_cmd, recorded=recorded)
        if system.name and system.reason in FIRST_HAND and (
                not recorded or (recorded.name, recorded.cmd) != (system.name, system.cmd)):
            # A server started by systemd or a hub lacks the shell's MODULES_CMD/LMOD_CMD.
            try:
                os.makedirs(self.cache_dir, exist_ok=True)
                tmp = f"{path}.{os.getpid()}.tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump({"name": system.name, "cmd": system.cmd}, f)
                os.replace(tmp, path)
            except OSError:
                pass
        return system

    def module_index(self) -> ModuleIndex:
        """Every module the site's module system can see, or an empty index saying why not."""
        sources = self.configured()
        if not any(s.uses_modules for s in sources):
            return ModuleIndex()
        system = self.detect_module_system()
        if not system.name:
            return ModuleIndex(system=system, skipped=f"{system.reason}; module Pythons skipped")
        modulepath = self.modulepath or base_modulepath(os.environ)
        if not modulepath:
            return ModuleIndex(system=system,
                               skipped="MODULEPATH is empty; module Pythons skipped")

        def watch(module) -> bool:
            return any(s.watches_module(module) for s in sources)

        walk = None
        if system.name == TMOD:
            walk = partial(envmodules.walk, system.cmd, modulepath, self.hierarchy_depth)
        try:
            if self.spider_cache:
                cache = SpiderCache(self.cache_dir, system.cmd, modulepath, watch=watch,
                                    walk=walk)
                modules = cache.modules()
            else:
                modules = walk() if walk else run_spider(system.cmd, modulepath)
        except (LmodError, ModulesError) as e:
            return ModuleIndex(system=system, modulepath=modulepath,
                               skipped=f"{e}; module Pythons skipped")
        if system.name == TMOD and not self.modulepath:
            modulepath = envmodules.base_modulepath(modulepath, modules)
        return ModuleIndex(modules=modules, system=system, modulepath=modulepath)

    def context(self, registry: Registry | None = None, site: bool = False) -> Context:
        """The shared context sources consult (an unknown source fails here, before any work)."""
        self.configured()
        return Context(modules=self.module_index(), registry=registry or self.registry(),
                       site=site, modulepath=self.modulepath)

    def environments(self, context: Context) -> list[Environment]:
        """Every environment from every source, once per real prefix, ignored ones left out
        (they go to context.removed)."""
        seen: set[str] = set()
        found = []
        for source in self.configured():
            for env in sorted(source.find(context), key=lambda e: e.name.lower()):
                if env.prefix in seen:
                    continue
                seen.add(env.prefix)
                record = context.registry.get(env.prefix)
                if record and record.ignored:
                    context.removed.append(env)
                    continue
                found.append(stale_modules(env, context))
        return found


def stale_modules(env: Environment, context: Context) -> Environment:
    """The env, broken when a module recorded for it no longer exists (with the fix)."""
    record = context.registry.get(env.prefix)
    index = context.modules
    if env.broken or not record or not record.modules or not index.modules:
        return env
    gone = [m for m in record.modules if not index.knows(m)]
    if not gone:
        return env
    keep = []
    for name in record.modules:
        if index.knows(name):
            keep.append(name)
        elif index.close_to(name) and index.close_to(name)[0] not in keep:
            keep.append(index.close_to(name)[0])
    path = env.path or env.prefix
    problem = (f"recorded module{'s' if gone[1:] else ''} {' '.join(gone)} "
               f"{'are' if gone[1:] else 'is'} not known to the module system (removed or "
               "renamed?)")
    return replace(env, problem=problem, fix=fixes.add(path, keep, none=not keep))
