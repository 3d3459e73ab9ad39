"""A real JupyterLab in Debian's headless Chromium: ozkernels' kernels, kept in sync, and its page.

Run on its own (`pytest -m browser`): pytest-jupyter's event loop collides with Playwright's.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from ozkernels.demosite import Site

# The test site's venvs are made from the interpreter running the tests.
HOST_PY = platform.python_version()

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
GCC, PY = "gcccore/13.2.0", "python/3.11.7"
ANALYSIS = f"Python {HOST_PY} (venv: analysis)"
NEW_VENV = "made-in-terminal"
NEW_DISPLAY = f"Python {HOST_PY} (venv: {NEW_VENV})"
# The extension's defaults: a quick check every second, a full one every 10 s; the server pushes
# a kernelspecs-changed event and the labextension refreshes the Launcher (no 61 s poll).
PUSH_BUDGET = 10
SHOTS = ARTIFACTS / "screenshots"
NEEDS_ASTRO = "needs-astro"
ASTRO = "astro-tools/1.0"
ASTRO_DISPLAY = f"Python {HOST_PY} (venv: {NEEDS_ASTRO} + {ASTRO})"
PANEL_COMMAND = "ozkernels: Environments and kernels"
PROBE = 'import os, sys; print(os.environ.get("LOADEDMODULES")); print(sys.prefix)'
KERNEL_READY = """(name) => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const kernel = panel && panel.querySelector('.jp-KernelName');
  const status = panel && panel.querySelector('.jp-Notebook-ExecutionIndicator');
  return !!kernel && kernel.textContent.trim() === name
    && !!status && status.getAttribute('data-status') === 'idle';
}"""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def card(name: str) -> str:
    """The Launcher's notebook card of a kernel."""
    return f'.jp-LauncherCard[data-category="Notebook"][title="{name}"]'


def kernel_processes(marker: str) -> list[int]:
    """Pids of live processes whose command line mentions marker (the runtime dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
        except OSError:
            continue
        if marker in cmdline and int(entry.name) != os.getpid():
            pids.append(int(entry.name))
    return pids


@dataclass
class Lab:
    """A running `python -m jupyterlab` and where it keeps its files."""

    url: str
    token: str
    proc: subprocess.Popen[bytes]
    runtime_dir: Path
    log: Path
    env: dict[str, str]

    def request(self, path: str, method: str = "GET") -> Any:
        """A token-authenticated API call; the decoded JSON answer."""
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def wait_ready(self, timeout: float = 60) -> None:
        """Poll /api/status until the server answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"jupyter lab exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                self.request("api/status")
                return
            except OSError:  # refused while starting (URLError is an OSError)
                time.sleep(0.2)
        pytest.fail(f"jupyter lab did not answer in {timeout} s:\n{self.log.read_text()}")


@pytest.fixture(scope="module")
def lab(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab on the test site, enabled the way an install enables it, fresh Jupyter dirs."""
    base = tmp_path_factory.mktemp("lab")
    dirs = {name: base / name for name in ("config", "data", "runtime", "root", "ipython",
                                           "cache")}
    for path in dirs.values():
        path.mkdir()
    # The file an install puts in etc/jupyter/jupyter_server_config.d (pip -e does not).
    confd = dirs["config"] / "jupyter_server_config.d"
    confd.mkdir()
    shutil.copy(REPO / "share" / "jupyter_server_config.d" / "ozkernels.json", confd)
    settings = dirs["config"] / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # HOME stays the site's: its venvs, conda envs and condarc are what ozkernels discovers.
    env = site.environ(JUPYTER_CONFIG_DIR=str(dirs["config"]), JUPYTER_DATA_DIR=str(dirs["data"]),
                       JUPYTER_RUNTIME_DIR=str(dirs["runtime"]), IPYTHONDIR=str(dirs["ipython"]),
                       XDG_CACHE_HOME=str(dirs["cache"]),
                       # Where `pip install .` puts the prebuilt labextension (pip -e does not).
                       JUPYTER_PATH=str(REPO / "share" / "jupyter"))
    port, token = free_port(), secrets.token_hex(16)
    log = base / "jupyterlab.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
             f"--port={port}", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={dirs['root']}", "--LabApp.expose_app_in_browser=True"],
            env=env, cwd=dirs["root"], stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Lab(f"http://127.0.0.1:{port}/", token, proc, dirs["runtime"], log, env)
    try:
        server.wait_ready()
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        for name in (NEW_VENV, NEEDS_ASTRO):
            shutil.rmtree(site.home / "venvs" / name, ignore_errors=True)


@pytest.fixture(scope="module")
def page(lab: Lab) -> Iterator[Any]:
    """A Chromium page with JupyterLab opened."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        tab = context.new_page()
        tab.goto(f"{lab.url}lab?token={lab.token}")
        yield tab
        context.close()
        browser.close()


@contextmanager
def artifacts(page: Any, lab: Lab, name: str) -> Iterator[None]:
    """Save a screenshot and the server log when the block fails."""
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        with contextlib.suppress(Exception):  # never hide the failure behind a broken page
            for i, tab in enumerate(page.context.pages):
                tab.screenshot(path=str(ARTIFACTS / f"{name}-{i}.png"), full_page=True)
        shutil.copy(lab.log, ARTIFACTS / f"{name}-jupyterlab.log")
        raise


def shot(page: Any, name: str) -> Path:
    """Save a screenshot a person looks at (test-artifacts/screenshots/NAME.png)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def test_launcher_cards_show_kernel_logos(page: Any, lab: Lab) -> None:
    with artifacts(page, lab, "logos"):
        icon = page.locator(card(ANALYSIS)).locator(".jp-LauncherCard-icon img")
        icon.wait_for(timeout=60_000)
        # JupyterLab takes the SVG when there is one (ipykernel's own spec carries one too).
        assert "/kernelspecs/venv-analysis/logo-svg.svg" in icon.get_attribute("src")
        resources = lab.request("api/kernelspecs")["kernelspecs"]["venv-analysis"]["resources"]
        assert {"logo-32x32", "logo-64x64", "logo-svg"} <= set(resources)
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0",
                               arg=icon.element_handle(), timeout=10_000)
        tiles = page.locator('.jp-LauncherCard[data-category="Notebook"]')
        letters = tiles.locator(".jp-LauncherCard-noKernelIcon")
        assert letters.count() == 0, "an ozkernels card shows a letter tile instead of a logo"


def test_module_venv_kernel_starts_from_the_launcher(page: Any, lab: Lab, site: Site) -> None:
    with artifacts(page, lab, "launcher"):
        page.locator(card(ANALYSIS)).click(timeout=60_000)
        page.wait_for_function(KERNEL_READY, arg=ANALYSIS, timeout=60_000)
        notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        cell = notebook.locator(".jp-Cell").first
        cell.locator(".cm-content").click()
        page.keyboard.type(PROBE)
        page.keyboard.press("Shift+Enter")
        cell.locator(".jp-InputPrompt", has_text="[1]:").wait_for(timeout=60_000)
        lines = cell.locator(".jp-OutputArea-output").inner_text().split()
        assert lines == [f"{GCC}:{PY}", os.path.realpath(site.venvs["analysis"])]


def test_new_venv_appears_in_the_launcher_without_restart(page: Any, lab: Lab,
                                                          site: Site) -> None:
    with artifacts(page, lab, "new-venv"):
        polls: list[float] = []
        page.on("request", lambda r: polls.append(time.monotonic())
                if "/api/kernelspecs" in r.url else None)
        page.locator('[data-command="launcher:create"]').first.click()
        page.locator(card(ANALYSIS)).wait_for(timeout=30_000)
        created = time.monotonic()
        subprocess.run(["python3", "-m", "venv", "--without-pip", "--system-site-packages",
                        str(site.home / "venvs" / NEW_VENV)],
                       env=site.module_environ(GCC, PY), check=True, timeout=60)
        made = time.monotonic() - created
        page.locator(card(NEW_DISPLAY)).wait_for(timeout=PUSH_BUDGET * 1000 + 60_000)
        shown = time.monotonic() - created
        print(f"\nnew venv: made in {made:.1f} s, Launcher card after {shown:.1f} s "
              f"(JupyterLab fetched kernelspecs at "
              f"{', '.join(f'{t - created:+.1f}' for t in polls) or 'no time'} s)")
        assert shown < PUSH_BUDGET, f"the Launcher card took {shown:.1f} s"


def test_ozkernels_page_lists_the_new_venv_and_syncs(page: Any, lab: Lab) -> None:
    ozk = page.context.new_page()
    with artifacts(ozk, lab, "ozkernels-page"):
        ozk.goto(f"{lab.url}ozkernels")
        row = ozk.locator(f'tr.ozk-row[data-name="{NEW_VENV}"]')
        assert row.locator(".ozk-status").inner_text() == "up to date"
        assert row.locator(".ozk-kernel").inner_text().startswith(NEW_DISPLAY)
        assert ozk.locator('tr.ozk-row[data-name="broken"] + tr.ozk-fixrow').count() == 1
        with ozk.expect_response(lambda r: r.url.endswith("/ozkernels/api/sync")) as sync:
            ozk.locator("#ozk-sync").click()
        assert sync.value.status == 200
        assert sync.value.request.headers.get("x-xsrftoken")
        result = ozk.locator("#ozk-result")
        result.locator("text=Sync done").wait_for(timeout=10_000)
        assert "up to date" in result.inner_text() or "unchanged" in result.inner_text()


def test_deleted_venv_leaves_the_launcher(page: Any, lab: Lab, site: Site) -> None:
    with artifacts(page, lab, "deleted-venv"):
        page.bring_to_front()
        page.locator('[data-command="launcher:create"]').first.click()
        page.locator(card(NEW_DISPLAY)).first.wait_for(state="attached", timeout=30_000)
        deleted = time.monotonic()
        shutil.rmtree(site.home / "venvs" / NEW_VENV)
        page.wait_for_function("(sel) => document.querySelectorAll(sel).length === 0",
                               arg=card(NEW_DISPLAY), timeout=PUSH_BUDGET * 1000 + 60_000)
        gone = time.monotonic() - deleted
        print(f"\ndeleted venv: Launcher card gone after {gone:.1f} s")
        assert gone < PUSH_BUDGET, f"the deleted venv's card stayed {gone:.1f} s"


def open_panel_from_palette(page: Any) -> Any:
    """Open ozkernels' panel the way a user does: the command palette."""
    page.locator("#jp-main-dock-panel").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+Shift+C")
    search = page.locator(".lm-CommandPalette-input").last
    search.wait_for(timeout=10_000)
    search.fill("ozkernels")
    page.locator(".lm-CommandPalette-item", has_text=PANEL_COMMAND).first.click()
    panel = page.locator(".ozk-Panel:visible")
    panel.locator("tr.ozk-Row").first.wait_for(timeout=30_000)
    return panel


def test_panel_from_palette_menu_and_launcher_with_sync_and_check(page: Any, lab: Lab) -> None:
    with artifacts(page, lab, "panel"):
        page.bring_to_front()
        page.locator('[data-command="launcher:create"]').first.click()
        assert page.locator('.jp-LauncherCard[data-category="Other"]:visible',
                            has_text="Environments").count() == 1
        page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
        assert page.locator(".lm-Menu-itemLabel", has_text=PANEL_COMMAND).count() == 1
        page.keyboard.press("Escape")

        panel = open_panel_from_palette(page)
        row = panel.locator('tr.ozk-Row[data-name="analysis"]')
        assert row.locator(".ozk-Status").first.inner_text() == "up to date"
        assert f"{GCC} {PY}" in row.locator(".ozk-Modules").inner_text()
        broken = panel.locator('tr.ozk-Row[data-name="broken"]')
        assert broken.locator(".ozk-Fix code").inner_text()

        panel.locator(".ozk-SyncButton").click()
        panel.locator(".ozk-Message", has_text="Sync done").wait_for(timeout=30_000)

        line = row.locator('.ozk-KernelLine[data-kernel="venv-analysis"]')
        line.locator(".ozk-CheckButton").click()
        line.locator(".ozk-CheckButton", has_text="Checking").wait_for(timeout=5_000)
        line.locator(".ozk-Check.ozk-pass").wait_for(timeout=90_000)
        assert "pass, ready in" in line.locator(".ozk-Check").inner_text()
        print(f"\npanel light: {shot(page, 'panel-light')}")

        page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', "
                      "{theme: 'JupyterLab Dark'})")
        page.locator('body[data-jp-theme-light="false"]').wait_for(state="attached",
                                                                    timeout=30_000)
        page.wait_for_timeout(500)
        background = panel.evaluate("(node) => getComputedStyle(node).backgroundColor")
        print(f"panel dark: {shot(page, 'panel-dark')} (background {background})")
        assert background != "rgb(255, 255, 255)", "the panel ignores the dark theme"
        page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', "
                      "{theme: 'JupyterLab Light'})")
        page.locator('body[data-jp-theme-light="true"]').wait_for(state="attached",
                                                                   timeout=30_000)


def test_start_failure_is_notified_with_its_reason(page: Any, lab: Lab, site: Site) -> None:
    with artifacts(page, lab, "start-failure"):
        page.bring_to_front()
        venv = site.home / "venvs" / NEEDS_ASTRO
        subprocess.run(["python3", "-m", "venv", "--without-pip", "--system-site-packages",
                        str(venv)], env=site.module_environ(GCC, PY), check=True, timeout=60)
        subprocess.run([sys.executable, "-m", "ozkernels", "add", str(venv), "--module", GCC,
                        "--module", PY, "--module", ASTRO], env=lab.env, check=True,
                       timeout=120, capture_output=True)
        page.locator('[data-command="launcher:create"]').first.click()
        astro_card = page.locator(card(ASTRO_DISPLAY) + ":visible")
        astro_card.wait_for(timeout=PUSH_BUDGET * 1000)
        lua = next(p for p in site.root.rglob("1.0.lua") if p.parent.name == "astro-tools")
        away = lua.with_name("removed-by-the-admins")
        lua.rename(away)
        try:
            clicked = time.monotonic()
            astro_card.click()
            toast = page.locator(".Toastify__toast", has_text="could not start")
            toast.wait_for(timeout=30_000)
            seen = time.monotonic() - clicked
            page.wait_for_timeout(1500)  # the toast slides in
            text = toast.inner_text()
            print(f"\nstart failure notified {seen:.1f} s after the click: "
                  f"{shot(page, 'start-failure')}\n{text}")
            assert f'Kernel "{ASTRO_DISPLAY}" could not start: module load {GCC} {PY} {ASTRO}' \
                in text
            assert seen < 15
            toast.locator("button", has_text="Details").click()
            dialog = page.locator(".jp-Dialog")
            dialog.wait_for(timeout=10_000)
            details = dialog.inner_text()
            print(f"details: {shot(page, 'start-failure-details')}\n{details}")
            assert f"module load {GCC} {PY} {ASTRO} failed" in details
            assert "Fix: the module may have been removed or renamed: run 'ozkernels sync'" in \
                details
            dialog.locator("button", has_text="Show in ozkernels").click()
            row = page.locator(".ozk-Panel:visible").locator(
                f'tr.ozk-Row.ozk-focus[data-name="{NEEDS_ASTRO}"]')
            row.wait_for(timeout=10_000)
            assert f"module load {GCC} {PY} {ASTRO} failed" in \
                row.locator(".ozk-StartFailure").inner_text()
            assert row.locator('.ozk-Status[data-status="start failed"]').count() == 1
            print(f"panel on the failed kernel: {shot(page, 'start-failure-panel')}")
        finally:
            away.rename(lua)


def test_shutdown_leaves_no_kernel_process(page: Any, lab: Lab) -> None:
    marker = str(lab.runtime_dir)
    assert kernel_processes(marker), "the kernel started earlier is not running"
    # The start-failure test leaves a kernel that the server keeps restarting; jupyter_client's
    # shutdown_all fails (InvalidStateError, a 500) when it meets a start still under way.
    deadline = time.monotonic() + 30
    busy = ("starting", "restarting", "autorestarting")
    while time.monotonic() < deadline and any(
            k["execution_state"] in busy for k in lab.request("api/kernels")):
        time.sleep(0.2)
    lab.request("api/shutdown", method="POST")
    lab.proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while kernel_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kernel_processes(marker) == []
