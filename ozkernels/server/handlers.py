"""HTTP handlers: the REST API under /ozkernels/api/ and the /ozkernels page."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerJinjaMixin, ExtensionHandlerMixin
from jupyter_server.utils import url_path_join
from tornado import web

from ..display import shorten
from ..errors import LockError, OzkernelsError
from ..failures import StartFailure
from ..sync import BROKEN, NEEDS_SYNC, NO_IPYKERNEL, UNTRACKED, UP_TO_DATE, Action, Plan
from ..sync import REMOVED as USER_REMOVED
from .service import Inventory

AUTH_RESOURCE = "ozkernels"
REMOVED = "to be removed"
KERNEL_STATUS = {"keep": UP_TO_DATE, "add": NEEDS_SYNC, "update": NEEDS_SYNC, "remove": REMOVED}
# Rows the page shows with their fix under them.
PROBLEMS = (BROKEN, NO_IPYKERNEL, USER_REMOVED)

T = TypeVar("T")


def kernel_model(action: Action, kernels_dir: str,
                 failures: Mapping[str, StartFailure] | None = None,
                 checks: Mapping[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """One of ozkernels' kernels (on disk or about to be), its status and last start failure."""
    failed = (failures or {}).get(action.name)
    spec = action.spec or {}
    owner = spec.get("metadata", {}).get("ozkernels", {})
    status = KERNEL_STATUS[action.op]
    if action.op == "keep" and action.env is None:
        status = UNTRACKED
    elif action.op == "keep" and action.env is not None and action.env.broken:
        status = BROKEN
    return {"name": action.name, "display_name": spec.get("display_name", ""),
            "kind": owner.get("kind", ""), "prefix": owner.get("prefix", ""),
            "environment": owner.get("env_name", ""), "modules": owner.get("modules", []),
            "variant": owner.get("variant", ""), "wraps": owner.get("wraps", ""),
            "language": spec.get("language", ""), "status": status, "reason": action.reason,
            "on_disk": action.op != "add",
            "resource_dir": os.path.join(kernels_dir, action.name),
            "last_start_failure": failed.to_dict() if failed else None,
            "last_check": (checks or {}).get(action.name)}


def kernels_model(plan: Plan, inventory: Inventory) -> dict[str, Any]:
    """ozkernels' kernels in the managed dir, and how the background sync is doing."""
    return {"kernels_dir": plan.kernels_dir,
            "kernels": [kernel_model(a, plan.kernels_dir, inventory.failures, inventory.checks)
                        for a in plan.actions],
            "background_sync": inventory.status()}


def page_context(plan: Plan, inventory: Inventory) -> dict[str, Any]:
    """The template's data: rows ready to show and the counts above them."""
    rows = []
    for row in plan.rows:
        data = row.to_dict()
        data.update(where=shorten(row.env.path or row.env.prefix),
                    state=row.status.replace(" ", "-"), problem=row.status in PROBLEMS)
        rows.append(data)
    status = inventory.status()
    last = inventory.last_sync
    return {
        "rows": rows,
        "notes": plan.notes,
        "kernels_dir": shorten(plan.kernels_dir),
        "counts": {"environments": len(rows),
                   "kernels": sum(bool(r["kernel"]) + len(r["variant_kernels"]) + sum(
                       bool(k["kernel"]) + len(k["variant_kernels"]) for k in r["other_kernels"])
                       for r in rows),
                   "problems": sum(r["problem"] for r in rows),
                   "stale": sum(r["status"] == NEEDS_SYNC for r in rows) + sum(
                       k["status"] == NEEDS_SYNC for r in rows for k in r["other_kernels"])},
        "sync": status,
        "last_sync_time": time.strftime("%H:%M:%S", time.localtime(last.finished)) if last
        else "",
    }


class OzkernelsHandlerMixin(ExtensionHandlerMixin):
    """The inventory, and its errors as HTTP errors, for every ozkernels handler."""

    auth_resource = AUTH_RESOURCE

    @property
    def inventory(self) -> Inventory:
        """The server's one inventory."""
        return cast(Inventory, self.settings["ozkernels_inventory"])

    async def result(self, work: Callable[[float], Awaitable[T]], what: str) -> T:
        """Await inventory work within the request timeout, mapping failures to HTTP errors."""
        timeout = self.inventory.timeout
        try:
            return await work(timeout)
        except asyncio.TimeoutError as e:
            msg = (f"ozkernels: {what} did not finish within {timeout:g} s; a filesystem it "
                   "reads (venv roots, conda envs dirs, module dirs or the kernels dir) may be "
                   "hanging. It goes on in the background: try again later.")
            raise web.HTTPError(504, "%s", msg) from e
        except LockError as e:
            raise web.HTTPError(409, "%s", f"ozkernels: {e}") from e
        except OzkernelsError as e:
            raise web.HTTPError(500, "%s", f"ozkernels: {e}") from e
        except OSError as e:
            msg = f"ozkernels: {what} failed: {e.strerror or e} ({e.filename or 'no file'})"
            raise web.HTTPError(500, "%s", msg) from e


class OzkernelsAPIHandler(OzkernelsHandlerMixin, APIHandler):
    """Base of the JSON API handlers."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A JSON error like every API handler's, its message filled in as tornado logs it."""
        # APIHandler reports log_message unformatted; ours pass paths (which may hold '%')
        # as arguments.
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, web.HTTPError) and error.log_message and error.args:
            plain = web.HTTPError(status_code, error.log_message % error.args,
                                  reason=error.reason)
            kwargs["exc_info"] = (type(plain), plain, None)
        super().write_error(status_code, **kwargs)


class EnvironmentsHandler(OzkernelsAPIHandler):
    """GET: every environment found, with its kernel and status (`ozkernels list --json`)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """List the environments."""
        plan = await self.result(self.inventory.plan, "discovery")
        self.finish(json.dumps(plan.environments_model(self.inventory.failures)))


class KernelsHandler(OzkernelsAPIHandler):
    """GET: ozkernels' kernel specs and their status."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """List the kernels."""
        plan = await self.result(self.inventory.plan, "discovery")
        self.finish(json.dumps(kernels_model(plan, self.inventory)))


class SyncHandler(OzkernelsAPIHandler):
    """POST: sync now and answer what changed (`ozkernels sync --json`)."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Sync, or join the sync already running."""
        result = await self.result(self.inventory.sync, "the sync")
        self.finish(json.dumps(result.to_dict()))


class CheckHandler(OzkernelsAPIHandler):
    """POST: start one of ozkernels' kernels, probe it and shut it down (`ozkernels check`)."""

    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        """Check the kernel (off the event loop; progress goes out as events)."""
        plan = await self.result(self.inventory.plan, "discovery")
        if not any(a.name == name and a.op != "add" for a in plan.actions):
            raise web.HTTPError(404, "%s", f"ozkernels: no kernel {name!r} in {plan.kernels_dir}")
        result = await self.inventory.check(name, plan.kernels_dir)
        self.finish(json.dumps(result.to_dict()))


class PageHandler(ExtensionHandlerJinjaMixin, OzkernelsHandlerMixin, JupyterHandler):
    """The page for people: environments, kernels, what is wrong and how to fix it."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Jupyter's error page, also for a request refused before authentication ran."""
        # tornado answers a method it does not know (405) before prepare() looks up the user;
        # the error template asks for current_user, which jupyter_server then refuses with a
        # RuntimeError and an empty page. Nobody is logged in yet for such a request.
        try:
            self.current_user  # noqa: B018
        except RuntimeError:
            self.current_user = None
        super().write_error(status_code, **kwargs)

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Render the page."""
        plan = await self.result(self.inventory.plan, "discovery")
        context = page_context(plan, self.inventory)
        context.update(sync_url=url_path_join(self.base_url, "ozkernels", "api", "sync"),
                       page_url=url_path_join(self.base_url, "ozkernels"))
        self.finish(self.render_template("ozkernels.html", **context))
