"""The server's events (jupyter_events) that make JupyterLab refresh and tell of failures."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import test_server
from test_server import get_json, kernelspecs, make_venv, wait_for

from ozkernels.demosite import Site
from ozkernels.server.events import SCHEMA_ID

pytest_plugins = ["pytest_jupyter.jupyter_server"]
# Every fixture of test_server.py (the same site, config and venv root), whatever it adds.
globals().update({name: value for name, value in vars(test_server).items()
                  if type(value).__name__ == "FixtureFunctionDefinition"})

QUICK = {"OzkernelsExtension": {"sync_interval": 60, "watch_interval": 0.2}}
OFF = {"OzkernelsExtension": {"sync_interval": 0, "watch_interval": 0}}


class Events:
    """ozkernels' events as a browser receives them from /api/events/subscribe."""

    def __init__(self, ws: Any):
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def next(self, action: str, timeout: float = 15, **match: Any) -> dict[str, Any]:
        """The next event with this action (and these fields), or a failed test."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no {action} {match} event in {timeout} s; saw {self.seen}")
            try:
                message = await asyncio.wait_for(self.ws.read_message(), left)
            except asyncio.TimeoutError:
                continue
            assert message is not None, "the events socket closed"
            event = json.loads(message)
            if event.get("schema_id") != SCHEMA_ID:
                continue
            self.seen.append(event)
            if event["action"] == action and all(event.get(k) == v for k, v in match.items()):
                return event


async def subscribe(jp_ws_fetch: Any) -> Events:
    """A browser's subscription to the server's events."""
    return Events(await jp_ws_fetch("api", "events", "subscribe"))


@pytest.mark.parametrize("ozk_config", [QUICK])
async def test_venv_made_or_deleted_in_a_terminal_is_announced(
        jp_fetch: Any, jp_serverapp: Any, jp_ws_fetch: Any, projects: Path, site: Site) -> None:
    events = await subscribe(jp_ws_fetch)
    await jp_serverapp.extension_manager.start_all_extensions()
    await wait_for(lambda: get_json(jp_fetch, "ozkernels", "api", "kernels"), 30, "the server")
    inventory = jp_serverapp.web_app.settings["ozkernels_inventory"]
    await wait_for(lambda: asyncio.sleep(0, inventory.last_sync), 30, "the first sync")
    make_venv(site, projects / "fresh")
    created = time.monotonic()
    event = await events.next("kernelspecs-changed", added=["venv-fresh"])
    took = time.monotonic() - created
    assert "venv-fresh" in await kernelspecs(jp_fetch), "announced before it was served"
    # Far below the 60 s full check: the quick check of the venv roots saw it.
    assert took < 10, f"{took:.1f} s"
    print(f"\nnew venv announced after {took:.2f} s: {event}")

    shutil.rmtree(projects / "fresh")
    await events.next("kernelspecs-changed", removed=["venv-fresh"])

    # A spec another tool writes (or `ozkernels sync` in a terminal) is news too.
    foreign = Path(inventory.manager.kernels_dir()) / "echo-by-hand"
    foreign.mkdir()
    (foreign / "kernel.json").write_text(json.dumps(
        {"argv": ["/bin/true"], "display_name": "by hand", "language": "text"}))
    await events.next("kernelspecs-changed", added=["echo-by-hand"])
    assert (foreign / "kernel.json").exists(), "a spec ozkernels did not write was touched"


@pytest.mark.parametrize("ozk_config", [OFF])
async def test_post_sync_announces_only_changes(jp_fetch: Any, jp_ws_fetch: Any,
                                                 projects: Path, site: Site) -> None:
    events = await subscribe(jp_ws_fetch)
    await get_json(jp_fetch, "ozkernels", "api", "sync", method="POST", body="")
    first = await events.next("kernelspecs-changed")
    assert {"venv-analysis", "conda-astro"} <= set(first["added"])
    await get_json(jp_fetch, "ozkernels", "api", "sync", method="POST", body="")
    make_venv(site, projects / "later")
    await get_json(jp_fetch, "ozkernels", "api", "sync", method="POST", body="")
    # The sync that changed nothing said nothing: the next event is the one for `later`.
    assert (await events.next("kernelspecs-changed"))["added"] == ["venv-later"]


@pytest.mark.parametrize("ozk_config", [{"OzkernelsExtension": {"sync_interval": 0,
                                                                "watch_interval": 0.2}}])
async def test_start_failure_record_is_announced_and_served(
        jp_fetch: Any, jp_serverapp: Any, jp_data_dir: Path, jp_ws_fetch: Any) -> None:
    events = await subscribe(jp_ws_fetch)
    await get_json(jp_fetch, "ozkernels", "api", "sync", method="POST", body="")
    await jp_serverapp.extension_manager.start_all_extensions()
    records = jp_data_dir / "ozkernels" / "failures"
    records.mkdir(parents=True, exist_ok=True)
    line = ("module load gcccore/13.2.0 python/3.11.7 failed: module gone; the module may have "
            "been removed or renamed: run 'ozkernels sync'")
    tmp = records / ".venv-analysis.1"
    tmp.write_text(f"{line}\n/run/kernel-1.json\n")  # what the launcher writes, renamed in place
    tmp.rename(records / "venv-analysis")
    event = await events.next("start-failed", kernel="venv-analysis")
    assert event["message"] == line and event["connection_file"] == "/run/kernel-1.json"
    kernels = (await get_json(jp_fetch, "ozkernels", "api", "kernels"))["kernels"]
    analysis = next(k for k in kernels if k["name"] == "venv-analysis")
    assert analysis["last_start_failure"]["message"] == line
    envs = (await get_json(jp_fetch, "ozkernels", "api", "environments"))["environments"]
    assert next(e for e in envs if e["name"] == "analysis")["last_start_failure"]["message"] \
        == line


@pytest.mark.parametrize("ozk_config", [OFF])
async def test_check_runs_off_the_loop_and_reports_progress(jp_fetch: Any,
                                                            jp_ws_fetch: Any) -> None:
    events = await subscribe(jp_ws_fetch)
    await get_json(jp_fetch, "ozkernels", "api", "sync", method="POST", body="")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    beat = asyncio.create_task(ticker())
    try:
        result = await get_json(jp_fetch, "ozkernels", "api", "kernels", "venv-analysis",
                                "check", method="POST", body="")
    finally:
        beat.cancel()
    assert result["ok"], result
    assert ticks >= 5, "the event loop stalled during the check"
    await events.next("check-started", kernel="venv-analysis")
    done = await events.next("check-finished", kernel="venv-analysis")
    assert done["ok"] is True and done["seconds"] > 0
    kernels = (await get_json(jp_fetch, "ozkernels", "api", "kernels"))["kernels"]
    assert next(k for k in kernels if k["name"] == "venv-analysis")["last_check"]["ok"]
    with pytest.raises(Exception) as missing:
        await jp_fetch("ozkernels", "api", "kernels", "no-such", "check", method="POST", body="")
    assert getattr(missing.value, "code", None) == 404
