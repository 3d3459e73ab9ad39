"""Sync: plan what to add, update, remove or keep, then apply the plan."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from traitlets import Bool, Float, List, Type, Unicode
from traitlets.config import LoggingConfigurable

from . import fixes
from .environment import Environment, WrappedSpec
from .kernel_files import launcher_files
from .kernelspecs import resource_bytes, spec_gone
from .logos import ipykernel_spec_dir, kernel_logos
from .sources import Context, Source
from .specs import (
    DEFAULT_DISPLAY,
    LAUNCHER_NAME,
    build_spec,
    build_wrapped_spec,
    choose_kernel_name,
    display_name,
    kernel_file,
    prefix_hash,
    wrapped_display_name,
)
from .store import KernelStore, SpecFile
from .variants import VariantProvider, VariantRequest, Wanted

UP_TO_DATE = "up to date"
NEEDS_SYNC = "needs sync"
NO_IPYKERNEL = "no ipykernel"
BROKEN = "broken"
NO_KERNEL = "no kernel"
SITE_KERNEL = "site kernel"
NO_PYTHON_KERNEL = "no python kernel"
REMOVED = "removed"
UNTRACKED = "not found"


#: What each status in `list`, the page and the API means, in the order `--help` lists them.
STATUS_HELP = {
    UP_TO_DATE: "its kernel is written and current",
    NEEDS_SYNC: "a kernel would be written or rewritten: run the printed 'ozkernels sync'",
    NO_IPYKERNEL: "no kernel until ipykernel is installed; the printed fix installs it",
    BROKEN: "the env cannot start as it is (why, and the repair, are printed)",
    NO_KERNEL: "module Pythons get kernels from a site sync or with Syncer.module_kernels",
    SITE_KERNEL: "a site-wide kernel already covers it",
    NO_PYTHON_KERNEL: "no Python kernel, but the env's other kernels (R, bash...) are listed",
    REMOVED: "removed with 'ozkernels remove'; the printed 'ozkernels add PATH' restores it",
}


@dataclass
class Action:
    """One change (or non-change) a sync makes to a kernel spec."""

    op: str
    name: str
    env: Environment | None = None
    spec: dict[str, Any] | None = None
    reason: str = ""
    files: dict[str, bytes] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        owner = (self.spec or {}).get("metadata", {}).get("ozkernels", {})
        return {"action": self.op, "kernel": self.name, "reason": self.reason,
                "kind": self.env.kind if self.env else owner.get("kind", ""),
                "prefix": self.env.prefix if self.env else owner.get("prefix", ""),
                "wraps": owner.get("wraps", "")}


@dataclass
class Row:
    """What `ozkernels list` shows for one environment."""

    env: Environment
    kernel: str = ""
    status: str = ""
    detail: str = ""
    fix: str = ""
    display_name: str = ""
    variants: list[dict[str, str]] = field(default_factory=list)
    where: str = ""
    kernels: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = self.env.to_dict()
        data.update(kernel=self.kernel, status=self.status, detail=self.detail, fix=self.fix,
                    display_name=self.display_name, variant_kernels=self.variants,
                    other_kernels=self.kernels)
        return data


def _newest(failures: Mapping[str, Any], names: list[str]) -> dict[str, Any] | None:
    """The newest recorded start failure of these kernels, JSON-ready, or None."""
    found = [failures[n] for n in names if n and n in failures]
    newest = max(found, key=lambda f: f.time, default=None)
    return newest.to_dict() if newest else None


@dataclass
class Plan:
    """Everything a sync would do, and the state of every environment."""

    kernels_dir: str
    actions: list[Action] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    searched: list[str] = field(default_factory=list)
    module_system: dict[str, str] = field(default_factory=dict)

    @property
    def changes(self) -> list[Action]:
        """The actions that write or remove something."""
        return [a for a in self.actions if a.op != "keep"]

    def environments_model(self, failures: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What `ozkernels list --json` and GET environments return.

        failures: the last start failure by kernel name (failures.StartFailure); each
        environment shows the newest one of its kernels as `last_start_failure`.
        """
        failures = failures or {}
        envs = []
        for row in self.rows:
            data = row.to_dict()
            names = [row.kernel, *(v["kernel"] for v in row.variants)]
            data["other_kernels"] = [dict(k) for k in data["other_kernels"]]
            for other in data["other_kernels"]:
                mine = [other["kernel"], *(v["kernel"] for v in other["variant_kernels"])]
                other["last_start_failure"] = _newest(failures, mine)
                names += mine
            data["last_start_failure"] = _newest(failures, names)
            envs.append(data)
        return {"kernels_dir": self.kernels_dir, "environments": envs, "notes": self.notes,
                "searched": self.searched,
                "module_system": self.module_system}

    def sync_model(self, done: list[Action], dry_run: bool = False,
                   notes: list[str] | None = None) -> dict[str, Any]:
        """What `ozkernels sync --json` and POST sync return."""
        return {"kernels_dir": self.kernels_dir, "dry_run": dry_run,
                "actions": [a.to_dict() for a in done],
                "unchanged": sum(a.op == "keep" for a in self.actions),
                "notes": self.notes + (notes or [])}


def _key(owner: dict[str, Any]) -> tuple[str, str, str, str]:
    return (owner.get("kind", ""), owner.get("prefix", ""), owner.get("wraps", ""),
            owner.get("variant", ""))


def _changed(owner: dict[str, Any], spec: dict[str, Any]) -> str:
    """Why an owned spec is rewritten: which modules were added or dropped, else 'changed'."""
    old = owner.get("modules")
    new = spec["metadata"]["ozkernels"].get("modules")
    if not isinstance(old, list) or not isinstance(new, list) or old == new:
        return "changed"
    added = [m for m in new if m not in old]
    dropped = [m for m in old if m not in new]
    parts = ([f"added {' '.join(added)}"] if added else []) + \
        ([f"dropped {' '.join(dropped)}"] if dropped else [])
    return "modules " + ("; ".join(parts) or "reordered")


class Syncer(LoggingConfigurable):
    """Keeps ozkernels' kernel specs in one kernels dir in step with the environments."""

    display_name_template = Unicode(
        DEFAULT_DISPLAY,
        help="Kernel display name; fields {version} (3.11) {full_version} (3.11.7 when known) "
        "{kind} {name} {prefix} {modules} {extra_modules} (those besides the interpreter's) "
        "{plus_modules} (' + astro-tools/1.0' for each).",
    ).tag(config=True)
    wrapped_display_template = Unicode(
        "{display_name} {language_version} ({kind}: {name})",
        help="Display name of a kernel wrapping a kernelspec the env ships (IRkernel, "
        "bash_kernel); fields {display_name} (the spec's own) {language} {language_version} "
        "{kernelspec} {kind} {name} {prefix} {modules}.",
    ).tag(config=True)
    module_kernels = Bool(
        False, help="Also write user kernels for module Pythons themselves (site syncs always do)."
    ).tag(config=True)
    lock_timeout = Float(
        30.0, help="Seconds to wait for another sync of the same kernels dir before giving up."
    ).tag(config=True)
    variant_providers = List[Any](
        trait=Type(klass="ozkernels.variants.VariantProvider"),
        default_value=["ozkernels.slurm.SlurmProfiles"],
        help="Classes that add variants of each environment's kernel (VariantProvider "
        "subclasses, e.g. ozkernels.slurm.SlurmProfiles: a kernel per Slurm profile).",
    ).tag(config=True)

    def wanted(self, env: Environment, source: Source, site: bool) -> bool:
        """Whether env should have a kernel in this sync."""
        return env.kernel_capable and (not source.shared or self.module_kernels or site)

    def wanted_wrapped(self, env: Environment, source: Source, site: bool) -> bool:
        """Whether env's own kernelspecs should get kernels in this sync."""
        return not env.broken and (not source.shared or self.module_kernels or site)

    def plan(self, envs: list[Environment], store: KernelStore, context: Context,
             kinds: Mapping[str, Source], *, others: list[SpecFile] | None = None) -> Plan:
        """Decide every action without writing anything; `kinds` knows each env's kind."""
        site, index = store.site, context.modules

        def source_for(kind: str) -> Source:
            return kinds.get(kind) or Source(parent=self)

        plan = Plan(kernels_dir=store.path, module_system=index.system.to_dict())
        if index.skipped:
            plan.notes.append(index.skipped)
        existing = store.scan()
        owned: dict[tuple[str, str, str, str], SpecFile] = {}
        for found in existing.values():
            if found.owner:
                owned.setdefault(_key(found.owner), found)
        taken = set(existing) | {o.name.lower() for o in others or []}
        covered = {} if site else {
            (o.owner["prefix"], o.owner.get("wraps", "")): o.name
            for o in others or [] if o.owner and o.owner.get("site") and not o.owner.get("variant")
        }
        for env in envs:
            source = source_for(env.kind)
            sf: SpecFile | None = owned.pop((env.kind, env.prefix, "", ""), None)
            row = Row(env=env, kernel=sf.name if sf else "", fix=env.fix,
                      where=source.location(env))
            plan.rows.append(row)
            for ws in env.kernelspecs:
                self._plan_wrapped(plan, row, ws, source, store, context, owned, taken, covered)
            if (env.prefix, "") in covered and not sf:
                row.kernel, row.status = covered[env.prefix, ""], SITE_KERNEL
                row.detail = "a site-wide kernel covers this environment"
                continue
            if not self.wanted(env, source, site):
                self._unwanted(env, sf, row, plan, read_only=source.shared and not site)
                continue
            name = sf.name if sf else choose_kernel_name(env, taken, site)
            taken.add(name)
            files = {**launcher_files(source.activation), **self.logos(env)}
            spec = build_spec(
                env, kernel_name=name, site=site, files=files, activation=source.activation,
                launcher=kernel_file(os.path.join(store.path, name), LAUNCHER_NAME),
                display=display_name(env, self.display_name_template),
                module_system=index.system.name, module_cmd=index.system.cmd,
                modulepath=index.modulepath,
            )
            row.kernel, row.display_name = name, spec["display_name"]
            row.status = self._want(plan, env, name, Wanted("", spec, files), sf, site)
            if not self._plan_variants(plan, env, Wanted("", spec, files, name), "", store,
                                       owned, taken, row.variants):
                row.status = NEEDS_SYNC
        seen = {(e.kind, e.prefix) for e in envs}
        broken = {(e.kind, e.prefix): e.problem for e in envs if e.broken}
        for sf in owned.values():
            kind, prefix, wraps, variant = _key(sf.owner or {})
            why = source_for(kind).gone(sf.owner or {}, context)
            wrapped_dir = (sf.owner or {}).get("wrapped_dir", "")
            if not why and wraps and wrapped_dir and spec_gone(wrapped_dir):
                why = f"kernelspec {wraps!r} is no longer in {prefix}"
            if not why and (kind, prefix) in broken:
                plan.actions.append(Action("keep", sf.name, None, sf.spec,
                                           "broken: " + broken[kind, prefix]))
                continue
            if not why and (kind, prefix) in seen:
                why = f"variant {variant!r} is no longer configured" if variant else \
                    "no longer wanted"
            if why:
                plan.actions.append(Action("remove", sf.name, None, sf.spec, why))
            else:
                plan.actions.append(Action("keep", sf.name, None, sf.spec,
                                           "not found by discovery, but not proven gone"))
        return plan

    def logos(self, env: Environment) -> dict[str, bytes]:
        """The logo files of an environment's kernel: its own ipykernel's, else ozkernels'."""
        return kernel_logos(ipykernel_spec_dir(env.prefix))

    @cached_property
    def providers(self) -> list[VariantProvider]:
        """The configured variant providers, configured from the same config."""
        return [cls(parent=self) for cls in self.variant_providers]

    def _plan_variants(self, plan: Plan, env: Environment, base: Wanted, wraps: str,
                       store: KernelStore, owned: dict[tuple[str, str, str, str], SpecFile],
                       taken: set[str], listed: list[dict[str, str]]) -> bool:
        """Plan every provider's variants of one kernel; whether all are up to date."""
        current = True
        for provider in self.providers:
            for request in provider.requests(env):
                vsf = owned.pop((env.kind, env.prefix, wraps, request.variant), None)
                vname = vsf.name if vsf else self._variant_name(env, base.name, request, taken)
                taken.add(vname.lower())
                extra = provider.build(request, env, base,
                                       os.path.join(os.path.abspath(store.path), vname))
                listed.append({"kernel": vname, "variant": extra.variant,
                               "display_name": extra.spec["display_name"]})
                if self._want(plan, env, vname, extra, vsf, store.site) != UP_TO_DATE:
                    current = False
        return current

    def _plan_wrapped(self, plan: Plan, row: Row, ws: WrappedSpec, source: Source,
                      store: KernelStore, context: Context,
                      owned: dict[tuple[str, str, str, str], SpecFile], taken: set[str],
                      covered: dict[tuple[str, str], str]) -> None:
        """Plan the kernel (and its variants) for one kernelspec the environment ships."""
        env, site, index = row.env, store.site, context.modules
        sf = owned.pop((env.kind, env.prefix, ws.name, ""), None)
        entry: dict[str, Any] = {"kernel": sf.name if sf else "", "wraps": ws.name,
                                 "language": ws.language, "display_name": "", "status": "",
                                 "detail": "", "resource_dir": ws.resource_dir,
                                 "variant_kernels": []}
        row.kernels.append(entry)
        if (env.prefix, ws.name) in covered and not sf:
            entry.update(kernel=covered[env.prefix, ws.name], status=SITE_KERNEL,
                         detail="a site-wide kernel covers this kernelspec")
            return
        problem = ws.problem or env.problem
        if problem:
            entry.update(status=BROKEN, detail=problem)
            if sf:
                plan.actions.append(Action("keep", sf.name, env, sf.spec, "broken: " + problem))
            return
        if not self.wanted_wrapped(env, source, site):
            entry.update(status=NO_KERNEL, kernel="",
                         detail="modules get kernels from a site sync or with module_kernels")
            if sf:
                plan.actions.append(Action("remove", sf.name, env, sf.spec, entry["detail"]))
            return
        name = sf.name if sf else choose_kernel_name(env, taken, site, ws.name)
        taken.add(name)
        files = {**launcher_files(source.activation), **resource_bytes(ws)}
        spec = build_wrapped_spec(
            env, ws, kernel_name=name, site=site, files=files, activation=source.activation,
            launcher=kernel_file(os.path.join(store.path, name), LAUNCHER_NAME),
            display=wrapped_display_name(env, ws, self.wrapped_display_template),
            module_system=index.system.name, module_cmd=index.system.cmd,
            modulepath=index.modulepath,
        )
        entry.update(kernel=name, display_name=spec["display_name"])
        entry["status"] = self._want(plan, env, name, Wanted("", spec, files), sf, site)
        if not self._plan_variants(plan, env, Wanted("", spec, files, name), ws.name, store,
                                   owned, taken, entry["variant_kernels"]):
            entry["status"] = NEEDS_SYNC

    @staticmethod
    def _variant_name(env: Environment, name: str, request: VariantRequest,
                      taken: set[str]) -> str:
        """A new variant's kernel name: the base name and the suffix, unique among `taken`."""
        vname = name + request.suffix
        if vname.lower() in taken:
            vname = f"{name}{request.suffix}-{prefix_hash(env.prefix + request.variant)}"
        return vname

    def _want(self, plan: Plan, env: Environment, name: str, wanted: Wanted,
              sf: SpecFile | None, site: bool) -> str:
        """Plan add/update/keep of one wanted kernel; return the row status it implies."""
        spec = wanted.spec
        fp = spec["metadata"]["ozkernels"]["fingerprint"]
        if sf and sf.owner and sf.owner.get("fingerprint") == fp:
            plan.actions.append(Action("keep", name, env, spec, files=wanted.files))
            return UP_TO_DATE
        reason = _changed(sf.owner or {}, spec) if sf else "new environment"
        plan.actions.append(Action("update" if sf else "add", name, env, spec, reason,
                                   files=wanted.files))
        return NEEDS_SYNC

    def _unwanted(self, env: Environment, sf: SpecFile | None, row: Row, plan: Plan, *,
                  read_only: bool) -> None:
        """Status (and removal) for an environment that gets no kernel."""
        if env.broken:
            row.status, row.detail = BROKEN, env.problem
            if sf:
                plan.actions.append(Action("keep", sf.name, env, sf.spec, "broken: " + env.problem))
            return
        if not env.has_ipykernel and env.kernelspecs:
            # An R-only env is not broken: its own kernels are its point.
            row.status = NO_PYTHON_KERNEL
            row.detail = ("no Python in this environment" if not env.python else
                          "ipykernel is not installed") + "; its other kernels are listed with it"
        elif not env.has_ipykernel:
            row.status = NO_IPYKERNEL
            row.detail = "ipykernel is not installed in this environment"
            if read_only:
                row.detail += " (users cannot install into a shared Python: make a venv on it)"
        else:
            row.status, row.fix = NO_KERNEL, fixes.module_kernels()
            row.detail = "module Pythons get kernels from a site sync or with module_kernels"
        if sf:
            plan.actions.append(Action("remove", sf.name, env, sf.spec, row.detail))
            row.kernel = ""

    def apply(self, plan: Plan, store: KernelStore) -> list[Action]:
        """Carry out the plan's changes; return what was done."""
        done = []
        for action in plan.changes:
            if action.op == "remove":
                store.remove(action.name)
            elif action.spec is not None:
                store.write(action.name, action.spec, action.files)
            done.append(action)
        return done
