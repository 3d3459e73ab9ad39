"""The Jupyter Server extension: ozkernels' page, REST API and background sync."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from jupyter_server.extension.application import ExtensionApp, ExtensionAppJinjaMixin
from traitlets import Float, default

from .._version import __version__
from ..manager import CONFIGURABLES, KernelsManager
from .handlers import EnvironmentsHandler, KernelsHandler, PageHandler, SyncHandler
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
    request_timeout = Float(
        30.0, help="Seconds a request waits for discovery or a sync before answering 504 "
        "(the work goes on in the background).",
    ).tag(config=True)

    @default("static_paths")
    def _default_static_paths(self) -> list[str]:
        return [os.path.join(PACKAGE_DIR, "static")]

    @default("template_paths")
    def _default_template_paths(self) -> list[str]:
        return [os.path.join(PACKAGE_DIR, "templates")]

    def initialize_settings(self) -> None:
        """Create the inventory the handlers share, configured from this app's config."""
        self.inventory = Inventory(KernelsManager(parent=self), self.log,
                                   timeout=self.request_timeout,
                                   interval=max(self.sync_interval, 0.0))
        self.settings["ozkernels_inventory"] = self.inventory
        self._background: asyncio.Task[Any] | None = None

    def initialize_handlers(self) -> None:
        """The page and the REST API."""
        self.handlers.extend([
            (r"/ozkernels/?", PageHandler),
            (r"/ozkernels/api/environments", EnvironmentsHandler),
            (r"/ozkernels/api/kernels", KernelsHandler),
            (r"/ozkernels/api/sync", SyncHandler),
        ])

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Start the background sync once the server's event loop runs."""
        if self.inventory.interval > 0:
            self._background = asyncio.create_task(self.inventory.run_background())

    async def stop_extension(self) -> None:
        """Stop the background sync."""
        task, self._background = self._background, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
