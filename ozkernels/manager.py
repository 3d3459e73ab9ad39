"""The operations shared by the CLI and the server extension: inventory and sync of one dir."""

from __future__ import annotations

import os
import sys

from jupyter_core.paths import SYSTEM_JUPYTER_PATH, jupyter_data_dir, jupyter_path
from traitlets import List, Unicode
from traitlets.config import LoggingConfigurable

from .discovery import Discovery
from .errors import OzkernelsError
from .layout import env_kind
from .registry import Registry
from .sources import Context
from .store import KernelStore, SpecFile
from .sync import Action, Plan, Syncer


class KernelsManager(LoggingConfigurable):
    """Discovers environments and keeps one kernels dir in step with them."""

    target = Unicode(
        "user", help="Which kernels dir: 'user', 'sys-prefix' or 'system' (site-wide)."
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
        for path in self.site_envs:
            path = os.path.expanduser(os.path.expandvars(path))
            kind = env_kind(path)
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

    def plan(self, context: Context | None = None) -> Plan:
        """Discover and plan without writing anything."""
        context = context or self.context()
        envs = self.discovery().environments(context)
        return self.syncer().plan(envs, self.store(), context.modules, others=self.other_specs())

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
