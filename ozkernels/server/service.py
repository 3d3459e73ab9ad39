"""Discovery and syncs off the event loop: one job of each kind at a time, shared by callers."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from ..manager import KernelsManager, SyncResult
from ..sync import Plan
from .watch import Snapshot, watch_paths

T = TypeVar("T")
DONE = {"add": "added", "update": "updated", "remove": "removed"}


def in_thread(fn: Callable[[], T], name: str) -> asyncio.Future[T]:
    """Run fn in a new daemon thread; the future resolves on the calling event loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)

    def work() -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = fn()
        except BaseException as e:  # handed to whoever awaits the future
            error = e
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the server stopped while the job ran; nobody is waiting

    # A daemon thread, not an executor: a job stuck on a hung filesystem must not keep the
    # server from exiting (executors join their workers at interpreter exit).
    threading.Thread(target=work, name=f"ozkernels-{name}", daemon=True).start()
    return future


class Inventory:
    """The environments and kernels ozkernels manages, read and synced off the event loop."""

    def __init__(self, manager: KernelsManager, log: logging.Logger, *,
                 timeout: float = 30.0, interval: float = 0.0):
        self.manager = manager
        self.log = log
        self.timeout = timeout
        self.interval = interval
        self.last_sync: SyncResult | None = None
        self.last_error = ""
        self._jobs: dict[str, asyncio.Future[Any]] = {}
        self._snapshot: Snapshot | None = None
        # (when, plan): reused while younger than the background check interval, unless a
        # sync ran or a change was seen since: a request then costs no discovery.
        self._cached: tuple[float, Plan] | None = None
        self._generation = 0

    def _share(self, key: str, fn: Callable[[], T]) -> asyncio.Future[T]:
        """The running job of this kind, or a new one: never two at once."""
        job = self._jobs.get(key)
        if job is None or job.done():
            job = self._jobs[key] = in_thread(fn, key)
        return job

    async def _wait(self, job: asyncio.Future[T], timeout: float | None) -> T:
        # shield: a caller that gives up (timeout, cancelled task) leaves the job to the others.
        return await asyncio.wait_for(asyncio.shield(job), timeout)

    async def plan(self, timeout: float | None = None) -> Plan:
        """Discover and plan without writing (what `ozkernels list` shows)."""
        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < self.interval:
            return cached[1]
        return await self._wait(self._share("plan", self._plan), timeout)

    def _plan(self) -> Plan:
        generation, started = self._generation, time.monotonic()
        plan = self.manager.plan()
        if generation == self._generation:  # no sync started meanwhile
            self._cached = (started, plan)
        return plan

    def _forget(self) -> None:
        self._generation += 1
        self._cached = None

    async def sync(self, timeout: float | None = None) -> SyncResult:
        """Run a sync, or join the one running."""
        return await self._wait(self._share("sync", self._sync), timeout)

    def _sync(self) -> SyncResult:
        self._forget()
        discovery = self.manager.discovery()
        context = discovery.context()
        plan, done = self.manager.sync(context)
        envs = [row.env for row in plan.rows]
        self._snapshot = Snapshot.take(watch_paths(self.manager, discovery, context, envs))
        result = self.last_sync = SyncResult(plan, done)
        return result

    async def refresh(self) -> SyncResult | None:
        """Sync if a watched path changed since the last sync; None when nothing did."""
        snapshot = self._snapshot
        if snapshot is not None and not await self._wait(
            self._share("check", snapshot.changed), None
        ):
            return None
        self._forget()
        return await self.sync()

    def status(self) -> dict[str, Any]:
        """The background sync's settings and outcome, JSON-ready."""
        last = self.last_sync
        return {
            "interval": self.interval,
            "last_sync": datetime.fromtimestamp(last.finished).astimezone().isoformat(
                timespec="seconds") if last else None,
            "last_changes": len(last.done) if last else 0,
            "error": self.last_error,
        }

    async def run_background(self) -> None:
        """Refresh every `interval` seconds until cancelled, logging what changed."""
        while True:
            try:
                # No timeout: a job stuck on a hung filesystem stalls this loop alone, and no
                # threads pile up behind it.
                result = await self.refresh()
            except Exception as e:
                message = str(e) or type(e).__name__
                if message != self.last_error:  # once, not every few seconds
                    self.log.warning("ozkernels: background sync failed: %s", message)
                self.last_error = message
            else:
                self.last_error = ""
                for action in result.done if result else []:
                    self.log.info("ozkernels: %s kernel %s (%s)", DONE.get(action.op, action.op),
                                  action.name, action.reason)
            await asyncio.sleep(self.interval)
