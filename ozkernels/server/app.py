"""The Jupyter Server extension: ozkernels' page, REST API and background sync."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

from jupyter_server.extension.application import ExtensionApp, ExtensionAppJinjaMixin
from traitlets import Float, default

from .._version import __version__
from ..configfile import ConfigErrorFilter
from ..failures import ENV_VAR, FailureWatch, failures_dir, launcher_default
from ..manager import CONFIGURABLES, KernelsManager
from .events import Announcer
from .handlers import CheckHandler, EnvironmentsHandler, KernelsHandler, PageHandler, SyncHandler
from .service import Inventory

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class OzkernelsExtension(ExtensionAppJinjaMixin, ExtensionApp):
    """Shows every environment and its kernel in Jupyter, and keeps the kernels in sync."""

    # The name makes this app read jupyter_ozkernels_config.{py,json}, as the CLI does.
    name = "ozkernels"
    version = __version__
    description = "ozkernels' environments and kernels in Jupyter, kept in sync while it runs."
    extension_url = "/ozkernels"
    load_other_extensions = True
    classes = [*ExtensionApp.classes, *CONFIGURABLES]

    sync_interval = Float(
        10.0, help="Seconds between background checks for new, changed or deleted environments "
        "(a cheap stat of the watched dirs; a sync only when one changed). 0 turns it off.",
    ).tag(config=True)
    watch_interval = Float(
        1.0, help="Seconds between quick checks of the dirs where environments appear and "
        "disappear (venv roots, conda envs dirs, module dirs, kernels dirs; about one stat per "
        "dir, not per environment) and of the start-failure records. 0 turns them off.",
    ).tag(config=True)
    check_timeout = Float(
        60.0, help="Seconds a Check from JupyterLab waits for the kernel to be ready.",
    ).tag(config=True)
    request_timeout = Float(
        30.0, help="Seconds a request waits for discovery or a sync before answering 504 "
        "(the work goes on in the background).",
    ).tag(config=True)

    def load_config_file(self, *args: Any, **kwargs: Any) -> None:
        """Load the config; a file that does not load is one log line, and the server runs on."""
        errors = ConfigErrorFilter(suffix="; ozkernels runs without it")
        self.log.addFilter(errors)
        try:
            super().load_config_file(*args, **kwargs)
        finally:
            self.log.removeFilter(errors)

    @default("static_paths")
    def _default_static_paths(self) -> list[str]:
        return [os.path.join(PACKAGE_DIR, "static")]

    @default("template_paths")
    def _default_template_paths(self) -> list[str]:
        return [os.path.join(PACKAGE_DIR, "templates")]

    def initialize_settings(self) -> None:
        """Create the inventory the handlers share, configured from this app's config."""
        records = failures_dir()
        if records != launcher_default():
            # JUPYTER_PLATFORM_DIRS moved the data dir where bash cannot compute it: tell the
            # launchers of this server's kernels where to record a failed start.
            os.environ[ENV_VAR] = records
        self.inventory = Inventory(KernelsManager(parent=self), self.log,
                                   timeout=self.request_timeout,
                                   interval=max(self.sync_interval, 0.0),
                                   watch_interval=max(self.watch_interval, 0.0),
                                   announce=Announcer(getattr(self.serverapp, "event_logger",
                                                              None), self.log),
                                   failures=FailureWatch(records, since=time.time()),
                                   check_timeout=self.check_timeout)
        self.settings["ozkernels_inventory"] = self.inventory
        self._background: asyncio.Task[Any] | None = None

    def initialize_handlers(self) -> None:
        """The page and the REST API."""
        self.handlers.extend([
            (r"/ozkernels/?", PageHandler),
            (r"/ozkernels/api/environments", EnvironmentsHandler),
            (r"/ozkernels/api/kernels", KernelsHandler),
            (r"/ozkernels/api/sync", SyncHandler),
            (r"/ozkernels/api/kernels/([^/]+)/check", CheckHandler),
        ])

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Start the background sync once the server's event loop runs."""
        if self.inventory.interval > 0 or self.inventory.watch_interval > 0:
            self._background = asyncio.create_task(self.inventory.run_background())

    async def stop_extension(self) -> None:
        """Stop the background sync."""
        task, self._background = self._background, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
