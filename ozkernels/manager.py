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
from .debris import remove_dead_temps
from .discovery import Discovery
from .display import shorten
from .environment import Environment
from .errors import NotFoundError, OzkernelsError
from .registry import Registry
from .slurm import SlurmProfiles
from .sources import Context
from .sources.conda import CondaSource
from .sources.modules import ModuleSource
from .sources.venvs import VenvSource
from .store import KernelStore, SpecFile
from .sync import NEEDS_SYNC, REMOVED, Action, Plan, Row, Syncer

if TYPE_CHECKING:
    from .check import CheckResult

TARGETS = ("user", "sys-prefix", "system")


def _delta(before: list[str], after: list[str], *, bare: bool = False) -> str:
    """' (added X; dropped Y)' between two module lists, or ''."""
    added = [m for m in after if m not in before]
    dropped = [m for m in before if m not in after]
    parts = ([f"added {' '.join(added)}"] if added else []) + \
        ([f"dropped {' '.join(dropped)}"] if dropped else [])
    if not parts or not before:
        return ""
    return ("; " if bare else " (") + "; ".join(parts) + ("" if bare else ")")


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
    """An environment recorded by `add`, and the sync that followed (or would)."""

    prefix: str
    sync: SyncResult
    row: Row | None
    kind: str = ""
    modules: list[str] = field(default_factory=list)
    previous: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """What `ozkernels add --json` prints: the env, its modules, then the sync."""
        data = self.sync.to_dict()
        data.update(prefix=self.prefix, kind=self.kind, modules=self.modules,
                    previous_modules=self.previous,
                    notes=[*self.notes, *data.get("notes", [])],
                    environment=self.row.to_dict() if self.row else None)
        return data


@dataclass
class RemoveResult:
    """The kernels `remove` deleted for one environment."""

    prefix: str
    removed: list[str]
    dry_run: bool = False
    forgotten: bool = False

    def to_dict(self) -> dict[str, Any]:
        """What `ozkernels remove --json` prints."""
        return {"removed": self.removed[0] if self.removed else None, "prefix": self.prefix,
                "also_removed": self.removed[1:], "dry_run": self.dry_run,
                "forgotten": self.forgotten}


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
        if not self.site:
            plan.rows += self.removed_rows(context)
        if not plan.rows:
            plan.searched = self.searched(context)
        return plan

    def searched(self, context: Context | None = None) -> list[str]:
        """Where discovery looked, one line per source (for an empty result)."""
        context = context or self.context()
        return [source.looked_in(context) for source in self.discovery().configured()]

    def removed_rows(self, context: Context) -> list[Row]:
        """Rows for the envs the user removed (status `removed`, with how to restore them)."""
        envs = {e.prefix: e for e in context.removed}
        discovery = self.discovery()
        for prefix, record in context.registry.records.items():
            kind = record.kind or discovery.kind_of(prefix)
            if record.ignored and prefix not in envs and kind and discovery.kind_of(prefix):
                envs[prefix] = Environment(kind=kind, prefix=prefix, python="",
                                           name=os.path.basename(prefix.rstrip("/")))
        rows = []
        for env in envs.values():
            path = env.path or env.prefix
            rows.append(Row(env=env, status=REMOVED, where=path, fix=fixes.add(
                path, flags=self.target_flags()), detail="removed with 'ozkernels remove'; "
                "sync leaves it alone"))
        return sorted(rows, key=lambda r: (r.env.kind, r.env.name.lower()))

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
            # A sync killed (or out of space) earlier may have left temporary files.
            store.clean()
            discovery = self.discovery()
            remove_dead_temps(os.path.dirname(discovery.registry_path))
            remove_dead_temps(discovery.cache_dir)
            plan = self.plan(context)
            try:
                done = syncer.apply(plan, store)
            finally:
                store.drop_staging()
        return plan, done

    def record_active_modules(self, registry: Registry,
                              environ: Mapping[str, str] | None = None, *,
                              dry_run: bool = False) -> str:
        """Record LOADEDMODULES for the env this process runs in; return a note or ''."""
        environ = os.environ if environ is None else environ
        active = environ.get("VIRTUAL_ENV") or environ.get("CONDA_PREFIX") or ""
        loaded = [m for m in environ.get("LOADEDMODULES", "").split(":") if m]
        if self.site or not active or not loaded or not self.discovery().kind_of(active):
            return ""
        prefix = os.path.realpath(active)
        record = registry.get(prefix)
        before = list(record.modules) if record else []
        if before == loaded:
            return ""
        registry.update(prefix, modules=loaded)
        verb = "would record" if dry_run else "recorded"
        return f"{verb} modules for {shorten(prefix)}: {' '.join(loaded)}{_delta(before, loaded)}"

    def run_sync(self, *, dry_run: bool = False, force: bool = False,
                 record_active: bool = True, context: Context | None = None) -> SyncResult:
        """`ozkernels sync`: record the active env's modules, then sync (or only plan)."""
        context = context or self.context()
        recorded = self.record_active_modules(context.registry, dry_run=dry_run) \
            if record_active else ""
        if recorded and not dry_run:
            context.registry.save()
        notes = [recorded] if recorded else []
        if dry_run:
            plan = self.plan(context)
            return SyncResult(plan, plan.changes, dry_run=True, notes=notes)
        plan, done = self.sync(context, force=force)
        return SyncResult(plan, done, notes=notes)

    def check_modules(self, modules: list[str], context: Context) -> None:
        """Refuse module names the module system does not know, naming close matches."""
        index = context.modules
        if not index.modules:
            why = index.skipped or "the module system lists no modules"
            msg = f"cannot check --module {' '.join(modules)}: {why}; --force records them anyway"
            raise NotFoundError(msg)
        unknown = [m for m in modules if not index.knows(m)]
        if not unknown:
            return
        where = f" on MODULEPATH={index.modulepath}" if index.modulepath else ""
        parts = []
        for name in unknown:
            close = index.close_to(name)
            parts.append(f"{name}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        msg = (f"unknown module{'s' if unknown[1:] else ''} {'; '.join(parts)}: not known to "
               f"the module system{where} ('module spider' lists them); --force records "
               f"{'them' if unknown[1:] else 'it'} anyway")
        raise NotFoundError(msg)

    def add(self, path: str, modules: list[str] | None = None, *, force: bool = False,
            dry_run: bool = False, no_modules: bool = False) -> AddResult:
        """Record an env (and the modules it needs), sync, and say what its kernel is."""
        path = os.path.abspath(os.path.expanduser(path))
        discovery = self.discovery()
        kind = discovery.kind_of(path)
        if not kind:
            raise NotFoundError(f"{path} is neither {discovery.describe_kinds()}")
        if modules and no_modules:
            raise OzkernelsError("--module and --no-modules contradict each other")
        real = os.path.realpath(path)
        context = self.context()
        if modules and not force:
            self.check_modules(modules, context)
        registry = context.registry
        record = registry.get(real)
        previous = list(record.modules) if record else []
        was_removed = bool(record and record.ignored)
        changes: dict[str, Any] = {"kind": kind, "added": True, "ignored": False}
        if modules or no_modules:
            changes["modules"] = list(modules or [])
        registry.update(real, **changes)
        current = list(modules or []) if (modules or no_modules) else previous
        verb = "would record" if dry_run else "recorded"
        where = shorten(real)
        if modules:
            note = f"{verb} modules for {where}: {' '.join(modules)}" + (
                f" (replacing {' '.join(previous)}{_delta(previous, modules, bare=True)})"
                if previous and previous != modules else
                " (unchanged)" if previous == modules else " (none were recorded)")
        elif no_modules:
            note = (f"{verb} that {where} needs no extra modules"
                    + (f" (dropping {' '.join(previous)})" if previous else ""))
        elif previous:
            note = f"kept the recorded modules for {where}: {' '.join(previous)}"
        else:
            note = ""
        if was_removed:
            note = "; ".join(filter(None, [f"{'would bring' if dry_run else 'brought'} back "
                                           f"{where}, removed earlier", note]))
        if dry_run:
            result = self.run_sync(dry_run=True, record_active=False, context=context)
        else:
            registry.save()
            result = self.run_sync(force=force)
        rows = [r for r in result.plan.rows if r.env.prefix == real]
        return AddResult(real, result, rows[0] if rows else None, kind, current, previous,
                         [note] if note else [])

    def remove(self, name_or_path: str, *, dry_run: bool = False) -> RemoveResult:
        """Remove an env's kernels (by kernel name or env path) and stop syncing them back."""
        store = self.store()
        specs = store.scan()
        target = specs.get(name_or_path.lower())
        if target is None and os.path.lexists(name_or_path):
            real = os.path.realpath(name_or_path)
            target = next((s for s in specs.values() if s.owner and s.owner["prefix"] == real),
                          None)
            if target is None:
                return self._forget(real, name_or_path, dry_run)
        if target is None:
            raise NotFoundError(f"no kernel {name_or_path!r} in {shorten(store.path)}")
        if target.owner is None:
            msg = f"kernel {target.name!r} was not written by ozkernels; left alone"
            raise OzkernelsError(msg)
        prefix = target.owner["prefix"]
        kernels = sorted((s for s in specs.values() if s.owner and s.owner.get("prefix") == prefix
                          and s.owner.get("kind") == target.owner.get("kind")),
                         key=lambda s: (bool(s.owner and s.owner.get("variant")),
                                        bool(s.owner and s.owner.get("wraps")), s.name))
        if target.owner.get("variant") and target is specs.get(name_or_path.lower()):
            msg = (f"kernel {target.name!r} comes from Slurm profile "
                   f"{target.owner.get('slurm', {}).get('name', '?')!r}: take it out of "
                   "SlurmProfiles.enabled or narrow its envs; 'ozkernels remove "
                   f"{shorten(prefix)}' removes every kernel of that environment")
            raise OzkernelsError(msg)
        if target.owner.get("wraps") and target is specs.get(name_or_path.lower()):
            # The registry ignores whole environments: one kernelspec goes by uninstalling it.
            msg = (f"kernel {target.name!r} runs kernelspec {target.owner['wraps']!r} of "
                   f"{shorten(prefix)}: uninstall that kernelspec from the environment "
                   f"({shorten(target.owner.get('wrapped_dir', ''))}) and run 'ozkernels sync'; "
                   f"'ozkernels remove {shorten(prefix)}' removes every kernel of that "
                   "environment")
            raise OzkernelsError(msg)
        names = [s.name for s in kernels]
        if dry_run:
            return RemoveResult(prefix, names, dry_run=True)
        registry = self.discovery().registry()
        registry.update(prefix, ignored=True, added=False)
        with store.lock():
            for spec in kernels:
                store.remove(spec.name)
        registry.save()
        return RemoveResult(prefix, names)

    def _forget(self, real: str, arg: str, dry_run: bool) -> RemoveResult:
        """`remove PATH` of an env without a kernel: hide it, or forget a path that is no env."""
        discovery = self.discovery()
        registry = discovery.registry()
        record = registry.get(real)
        is_env = bool(discovery.kind_of(real))
        if not is_env and not record:
            raise NotFoundError(f"no kernel for {arg!r} in {shorten(self.kernels_dir())}, and "
                                "ozkernels has nothing recorded for it")
        if not is_env:
            # Not an env any more: forget what was recorded, nothing to hide.
            if not dry_run:
                registry.update(real, added=False, ignored=False, modules=[])
                registry.save()
            return RemoveResult(real, [], dry_run=dry_run, forgotten=True)
        if not dry_run:
            registry.update(real, ignored=True, added=False)
            registry.save()
        return RemoveResult(real, [], dry_run=dry_run)

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
