"""Discovery and syncs off the event loop: one job of each kind at a time, shared by callers."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from jupyter_core.paths import jupyter_path

from ..check import CheckResult, check_kernel
from ..failures import FailureWatch, StartFailure
from ..manager import KernelsManager, SyncResult
from ..sync import Plan
from .events import CHECK_FINISHED, CHECK_STARTED, KERNELSPECS_CHANGED, START_FAILED
from .watch import Snapshot, Stamp, kernelspecs_stamp, specs_diff, watch_paths

T = TypeVar("T")
DONE = {"add": "added", "update": "updated", "remove": "removed"}


@dataclass
class ServerSync(SyncResult):
    """A sync the server ran, and what it saw change on the Jupyter path."""

    # Kernel specs on the Jupyter path that appeared, disappeared or changed since the previous
    # sync, whoever changed them (this sync, or `ozkernels sync` in a terminal).
    specs_changed: dict[str, list[str]] = field(default_factory=dict)


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


def in_own_loop(fn: Callable[..., T], *args: Any) -> T:
    """Call blocking jupyter_client code in a worker thread, closing the loop it makes there."""
    try:
        return fn(*args)
    finally:
        # jupyter_client's blocking API runs an asyncio loop in the calling thread and leaves it
        # open; a thread per check would leak one each time.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            loop = asyncio.get_event_loop_policy().get_event_loop()
        loop.close()
        asyncio.set_event_loop(None)


class Inventory:
    """The environments and kernels ozkernels manages, read and synced off the event loop."""

    def __init__(self, manager: KernelsManager, log: logging.Logger, *,
                 timeout: float = 30.0, interval: float = 0.0, watch_interval: float = 0.0,
                 announce: Callable[..., None] | None = None,
                 failures: FailureWatch | None = None, check_timeout: float = 60.0):
        self.manager = manager
        self.log = log
        self.timeout = timeout
        self.interval = interval
        self.watch_interval = watch_interval
        self.announce = announce or (lambda action, **data: None)
        self.failure_watch = failures
        self.check_timeout = check_timeout
        self.last_sync: ServerSync | None = None
        self.last_error = ""
        self.checks: dict[str, dict[str, Any]] = {}
        self._jobs: dict[str, asyncio.Future[Any]] = {}
        self._snapshot: Snapshot | None = None
        # The dirs where environments appear and disappear: checked every watch_interval.
        self._fast: Snapshot | None = None
        self._specs: dict[str, Stamp] | None = None
        # (when, plan): reused while younger than the background check interval, unless a
        # sync ran or a change was seen since: a request then costs no discovery.
        self._cached: tuple[float, Plan] | None = None
        self._generation = 0

    def _share(self, key: str, fn: Callable[[], T],
               on_done: Callable[[asyncio.Future[T]], None] | None = None) -> asyncio.Future[T]:
        """The running job of this kind, or a new one: never two at once."""
        job = self._jobs.get(key)
        if job is None or job.done():
            job = self._jobs[key] = in_thread(fn, key)
            if on_done is not None:
                job.add_done_callback(on_done)
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

    async def sync(self, timeout: float | None = None) -> ServerSync:
        """Run a sync, or join the one running."""
        return await self._wait(self._share("sync", self._sync, self._synced), timeout)

    def _sync(self) -> ServerSync:
        self._forget()
        spec_dirs = jupyter_path("kernels")
        before = self._specs if self._specs is not None else kernelspecs_stamp(spec_dirs)
        discovery = self.manager.discovery()
        context = discovery.context()
        plan, done = self.manager.sync(context)
        envs = [row.env for row in plan.rows]
        # Each kernel's own dir too: a sync in a terminal that rewrites a kernel.json in place
        # changes only that dir.
        kernel_dirs = [os.path.join(plan.kernels_dir, a.name) for a in plan.actions
                       if a.op != "remove"]
        self._snapshot = Snapshot.take(
            [*watch_paths(self.manager, discovery, context, envs), *kernel_dirs])
        self._fast = self._snapshot.subset(watch_paths(self.manager, discovery, context, []))
        after = self._specs = kernelspecs_stamp(spec_dirs)
        result = self.last_sync = ServerSync(plan, done, specs_changed=specs_diff(before, after))
        return result

    def _synced(self, job: asyncio.Future[ServerSync]) -> None:
        """On the event loop: tell the browsers when the kernel specs changed."""
        if not job.cancelled() and job.exception() is None and job.result().specs_changed:
            self.announce(KERNELSPECS_CHANGED, **job.result().specs_changed)

    async def refresh(self, full: bool = True) -> ServerSync | None:
        """Sync if a watched path changed since the last sync; None when nothing did.

        full=False stats only the dirs where environments appear and disappear (and the kernels
        dirs), which a short interval can afford; full=True also every environment's own files.
        """
        snapshot = self._snapshot if full else self._fast
        if snapshot is not None and not await self._wait(
            self._share("check" if full else "quick-check", snapshot.changed), None
        ):
            return None
        self._forget()
        return await self.sync()

    @property
    def failures(self) -> dict[str, StartFailure]:
        """The last start failure of each kernel, as last read."""
        return self.failure_watch.current if self.failure_watch else {}

    async def watch_failures(self) -> list[StartFailure]:
        """Read new start failures (one stat when none) and announce each."""
        if self.failure_watch is None:
            return []
        new = await self._wait(self._share("failures", self.failure_watch.poll), None)
        for failure in new:
            self.log.warning("ozkernels: kernel %s failed to start: %s", failure.kernel,
                             failure.message)
            data = failure.to_dict()
            self.announce(START_FAILED, kernel=failure.kernel, message=failure.message,
                          connection_file=failure.connection_file, when=data["when"])
        return new

    async def check(self, name: str, kernels_dir: str) -> CheckResult:
        """Start one kernel and probe it, off the event loop; join a check already running."""
        key = f"check:{name}"
        if key not in self._jobs or self._jobs[key].done():
            self.checks[name] = {"state": "running", "started": time.time()}
            self.announce(CHECK_STARTED, kernel=name)

        def finished(job: asyncio.Future[CheckResult]) -> None:
            if job.cancelled() or job.exception() is not None:
                error = "cancelled" if job.cancelled() else str(job.exception())
                self.checks[name] = {"state": "done", "ok": False, "error": error}
                self.announce(CHECK_FINISHED, kernel=name, ok=False, message=error)
                return
            result = job.result()
            self.checks[name] = {"state": "done", **result.to_dict()}
            self.announce(CHECK_FINISHED, kernel=name, ok=result.ok, message=result.error,
                          seconds=result.start_seconds or 0.0)

        job = self._share(key, lambda: in_own_loop(check_kernel, name, kernels_dir,
                                                   self.check_timeout), finished)
        return await self._wait(job, None)

    def status(self) -> dict[str, Any]:
        """The background sync's settings and outcome, JSON-ready."""
        last = self.last_sync
        return {
            "interval": self.interval,
            "watch_interval": self.watch_interval,
            "last_sync": datetime.fromtimestamp(last.finished).astimezone().isoformat(
                timespec="seconds") if last else None,
            "last_changes": len(last.done) if last else 0,
            "error": self.last_error,
        }

    async def run_background(self) -> None:
        """Refresh until cancelled, logging what changed.

        Every `watch_interval` seconds a quick check (and a look for start failures), every
        `interval` seconds a full one; either is off at 0.
        """
        tick = self.watch_interval if self.watch_interval > 0 else self.interval
        last_full = -math.inf
        while True:
            full = self.interval > 0 and time.monotonic() - last_full >= self.interval
            if full:
                last_full = time.monotonic()
            try:
                # No timeout: a job stuck on a hung filesystem stalls this loop alone, and no
                # threads pile up behind it.
                await self.watch_failures()
                result = await self.refresh(full=True) if full else \
                    await self.refresh(full=False) if self.watch_interval > 0 else None
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
            await asyncio.sleep(tick)
