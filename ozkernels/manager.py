"""The operations shared by the CLI and the server: list, sync, add, remove and check one dir."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jupyter_core.paths import SYSTEM_JUPYTER_PATH, jupyter_data_dir, jupyter_path
from traitlets import Enum, List, Unicode
from traitlets.config import Configurable, LoggingConfigurable

from . import fixes
from .discovery import Discovery
from .display import shorten
from .errors import NotFoundError, OzkernelsError
from .registry import Registry
from .slurm import SlurmProfiles
from .sources import Context
from .sources.conda import CondaSource
from .sources.modules import ModuleSource
from .sources.venvs import VenvSource
from .store import KernelStore, SpecFile
from .sync import NEEDS_SYNC, Action, Plan, Row, Syncer

if TYPE_CHECKING:
    from .check import CheckResult

TARGETS = ("user", "sys-prefix", "system")


@dataclass
class SyncResult:
    """What one sync found and did (or, in a dry run, would do)."""

    plan: Plan
    done: list[Action]
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)
    finished: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """What `ozkernels sync --json` prints and POST sync returns."""
        return self.plan.sync_model(self.done, self.dry_run, self.notes)


@dataclass
class AddResult:
    """An environment recorded by `add`, and the sync that followed."""

    prefix: str
    sync: SyncResult
    row: Row | None


@dataclass
class RemoveResult:
    """The kernels `remove` deleted for one environment."""

    prefix: str
    removed: list[str]

    def to_dict(self) -> dict[str, Any]:
        """What `ozkernels remove --json` prints."""
        return {"removed": self.removed[0], "prefix": self.prefix,
                "also_removed": self.removed[1:]}


@dataclass
class CheckReport:
    """The outcome of starting each of the kernels checked."""

    kernels_dir: str
    results: list[CheckResult]

    @property
    def ok(self) -> bool:
        """Whether every kernel passed."""
        return all(r.ok for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        """What `ozkernels check --json` prints."""
        return {"kernels_dir": self.kernels_dir, "results": [r.to_dict() for r in self.results]}


class KernelsManager(LoggingConfigurable):
    """Discovers environments and keeps one kernels dir in step with them."""

    # The name echoes jupyter_client's KernelManager, but `c.KernelsManager.*` is in site
    # configs (site_envs, target): renaming it would break them.
    target = Enum(
        list(TARGETS), default_value="user",
        help="Which kernels dir: 'user', 'sys-prefix' or 'system' (site-wide).",
    ).tag(config=True)
    prefix = Unicode(
        "", help="Use PREFIX/share/jupyter/kernels (e.g. a site kernels tree on JUPYTER_PATH)."
    ).tag(config=True)
    site_envs = List(
        Unicode(), default_value=[],
        help="venvs and conda envs (paths) that get site-wide kernels in a --system sync, "
        "besides every module Python.",
    ).tag(config=True)

    @property
    def site(self) -> bool:
        """Whether this manages site-wide kernels."""
        return self.target == "system"

    def kernels_dir(self) -> str:
        """The kernels dir managed."""
        if self.prefix:
            return os.path.abspath(os.path.join(self.prefix, "share", "jupyter", "kernels"))
        if self.target == "sys-prefix":
            return os.path.join(sys.prefix, "share", "jupyter", "kernels")
        if self.site:
            return os.path.join(SYSTEM_JUPYTER_PATH[0], "kernels")
        return os.path.join(jupyter_data_dir(), "kernels")

    def store(self) -> KernelStore:
        """The managed kernels dir."""
        kernels_dir = self.kernels_dir()
        if not self.site:
            return KernelStore(kernels_dir)
        # From --prefix (or the system Jupyter dir) down, no dir may be writable by others.
        root = os.path.abspath(self.prefix) if self.prefix else os.path.dirname(kernels_dir)
        return KernelStore(kernels_dir, site=True, root=root)

    def other_specs(self) -> list[SpecFile]:
        """Specs in every other kernels dir on the Jupyter path."""
        mine = os.path.realpath(self.kernels_dir())
        found: list[SpecFile] = []
        for d in jupyter_path("kernels"):
            if os.path.realpath(d) != mine:
                found += KernelStore(d).scan().values()
        return found

    def discovery(self) -> Discovery:
        """Discovery configured from the same config."""
        return Discovery(parent=self)

    def site_registry(self) -> Registry:
        """An in-memory registry of the configured site envs (nobody's home is searched)."""
        registry = Registry(os.devnull)
        discovery = self.discovery()
        for path in self.site_envs:
            path = os.path.expanduser(os.path.expandvars(path))
            kind = discovery.kind_of(path)
            if not kind:
                self.log.warning("site env %s is neither a venv nor a conda env; skipped", path)
                continue
            registry.update(os.path.realpath(path), kind=kind, added=True)
        return registry

    def context(self) -> Context:
        """The discovery context: the user's registry, or the site's envs for a site run."""
        discovery = self.discovery()
        if self.site:
            return discovery.context(self.site_registry(), site=True)
        return discovery.context()

    def syncer(self) -> Syncer:
        """The configured syncer."""
        return Syncer(parent=self)

    def target_flags(self) -> list[str]:
        """The command-line flags that select this manager's kernels dir."""
        flags = {"system": ["--system"], "sys-prefix": ["--sys-prefix"]}.get(self.target, [])
        return flags + (["--prefix", self.prefix] if self.prefix else [])

    def plan(self, context: Context | None = None) -> Plan:
        """Discover and plan without writing anything (what `ozkernels list` shows)."""
        context = context or self.context()
        discovery = self.discovery()
        envs = discovery.environments(context)
        plan = self.syncer().plan(envs, self.store(), context, discovery.kinds(),
                                  others=self.other_specs())
        for row in plan.rows:
            if row.status == NEEDS_SYNC:
                row.fix = fixes.sync(self.target_flags())
        return plan

    def sync(self, context: Context | None = None, *,
             force: bool = False) -> tuple[Plan, list[Action]]:
        """Plan and apply under the dir's lock; return the plan and what was done."""
        store = self.store()
        if self.site and not force:
            unsafe = store.unsafe_reason()
            if unsafe:
                msg = f"refusing to write site kernels: {unsafe}; fix its mode or use --force"
                raise OzkernelsError(msg)
        syncer = self.syncer()
        with store.lock(syncer.lock_timeout):
            plan = self.plan(context)
            done = syncer.apply(plan, store)
        return plan, done

    def record_active_modules(self, registry: Registry,
                              environ: Mapping[str, str] | None = None) -> str:
        """Record LOADEDMODULES for the env this process runs in; return a note or ''."""
        environ = os.environ if environ is None else environ
        active = environ.get("VIRTUAL_ENV") or environ.get("CONDA_PREFIX") or ""
        loaded = [m for m in environ.get("LOADEDMODULES", "").split(":") if m]
        if self.site or not active or not loaded or not self.discovery().kind_of(active):
            return ""
        prefix = os.path.realpath(active)
        record = registry.get(prefix)
        if record and record.modules == loaded:
            return ""
        registry.update(prefix, modules=loaded)
        return f"recorded modules for {shorten(prefix)}: {' '.join(loaded)}"

    def run_sync(self, *, dry_run: bool = False, force: bool = False,
                 record_active: bool = True) -> SyncResult:
        """`ozkernels sync`: record the active env's modules, then sync (or only plan)."""
        context = self.context()
        recorded = self.record_active_modules(context.registry) if record_active else ""
        if recorded and not dry_run:
            context.registry.save()
        notes = [recorded] if recorded else []
        if dry_run:
            plan = self.plan(context)
            return SyncResult(plan, plan.changes, dry_run=True, notes=notes)
        plan, done = self.sync(context, force=force)
        return SyncResult(plan, done, notes=notes)

    def add(self, path: str, modules: list[str] | None = None, *,
            force: bool = False) -> AddResult:
        """Record an env (and the modules it needs), sync, and say what its kernel is."""
        path = os.path.abspath(os.path.expanduser(path))
        discovery = self.discovery()
        kind = discovery.kind_of(path)
        if not kind:
            raise NotFoundError(f"{path} is neither {discovery.describe_kinds()}")
        real = os.path.realpath(path)
        registry = discovery.registry()
        changes: dict[str, Any] = {"kind": kind, "added": True, "ignored": False}
        if modules:
            changes["modules"] = list(modules)
        registry.update(real, **changes)
        registry.save()
        result = self.run_sync(force=force)
        rows = [r for r in self.plan().rows if r.env.prefix == real]
        return AddResult(real, result, rows[0] if rows else None)

    def remove(self, name_or_path: str) -> RemoveResult:
        """Remove an env's kernels (by kernel name or env path) and stop syncing them back."""
        store = self.store()
        specs = store.scan()
        target = specs.get(name_or_path.lower())
        if target is None and os.path.exists(name_or_path):
            real = os.path.realpath(name_or_path)
            target = next((s for s in specs.values() if s.owner and s.owner["prefix"] == real),
                          None)
        if target is None:
            raise NotFoundError(f"no kernel {name_or_path!r} in {shorten(store.path)}")
        if target.owner is None:
            msg = f"kernel {target.name!r} was not written by ozkernels; left alone"
            raise OzkernelsError(msg)
        prefix = target.owner["prefix"]
        kernels = sorted((s for s in specs.values() if s.owner and s.owner.get("prefix") == prefix
                          and s.owner.get("kind") == target.owner.get("kind")),
                         key=lambda s: (bool(s.owner and s.owner.get("variant")), s.name))
        if target.owner.get("variant") and target is specs.get(name_or_path.lower()):
            msg = (f"kernel {target.name!r} comes from Slurm profile "
                   f"{target.owner.get('slurm', {}).get('name', '?')!r}: take it out of "
                   "SlurmProfiles.enabled or narrow its envs; 'ozkernels remove "
                   f"{shorten(prefix)}' removes every kernel of that environment")
            raise OzkernelsError(msg)
        registry = self.discovery().registry()
        registry.update(prefix, ignored=True, added=False)
        with store.lock():
            for spec in kernels:
                store.remove(spec.name)
        registry.save()
        return RemoveResult(prefix, [s.name for s in kernels])

    def check(self, names: list[str] | None = None, timeout: float = 60.0,
              progress: Callable[[int, int, str], None] | None = None) -> CheckReport:
        """Start each named kernel (default: all of ozkernels') and probe it from inside."""
        from .check import check_kernel

        store = self.store()
        owned = {n: s for n, s in store.scan().items() if s.owner}
        wanted = [n.lower() for n in names or []] or sorted(owned)
        unknown = [n for n in wanted if n not in owned]
        if unknown:
            raise NotFoundError(f"no ozkernels kernel named {', '.join(unknown)} in "
                                f"{shorten(store.path)}")
        results = []
        for i, name in enumerate(wanted, 1):
            if progress is not None:
                progress(i, len(wanted), name)
            results.append(check_kernel(owned[name].name, store.path, timeout))
        return CheckReport(store.path, results)


CONFIGURABLES: list[type[Configurable]] = [
    KernelsManager, Discovery, ModuleSource, VenvSource, CondaSource, Syncer, SlurmProfiles,
]
