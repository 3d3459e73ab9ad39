"""The operations shared by the CLI and the server extension: inventory and sync of one dir."""

from __future__ import annotations

import os
import sys

from jupyter_core.paths import SYSTEM_JUPYTER_PATH, jupyter_data_dir, jupyter_path
from traitlets import Unicode
from traitlets.config import LoggingConfigurable

from .discovery import Discovery
from .errors import OzkernelsError
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
        return KernelStore(self.kernels_dir(), site=self.site)

    def other_specs(self) -> list[SpecFile]:
        """Specs in every other kernels dir on the Jupyter path."""
        mine = os.path.realpath(self.kernels_dir())
        found: list[SpecFile] = []
        for d in jupyter_path("kernels"):
            if os.path.realpath(d) != mine:
                found += KernelStore(d).scan().values()
        return found

    def discovery(self) -> Discovery:
        """Discovery configured from the same config (site runs keep their own registry)."""
        discovery = Discovery(parent=self)
        if self.site:
            discovery.registry_path = os.path.join(self.kernels_dir(), ".ozkernels-site.json")
        return discovery

    def syncer(self) -> Syncer:
        """The configured syncer."""
        return Syncer(parent=self)

    def plan(self, context: Context | None = None) -> Plan:
        """Discover and plan without writing anything."""
        discovery = self.discovery()
        context = context or discovery.context()
        envs = discovery.environments(context)
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
