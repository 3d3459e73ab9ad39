"""The server extension in a real Jupyter Server (pytest-jupyter) against the real test site."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth import Authorizer
from jupyter_server.utils import url_path_join
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from ozkernels.demosite import Site
from ozkernels.manager import KernelsManager
from ozkernels.server.watch import RACY_NS, Snapshot, watch_paths
from ozkernels.sources.venvs import VenvSource

# The test site's venvs are made from the interpreter running the tests.
HOST_PY = platform.python_version()

pytest_plugins = ["pytest_jupyter.jupyter_server"]

GCC, PY = "gcccore/13.2.0", "python/3.11.7"
ROUTES = [("GET", "ozkernels"), ("GET", "ozkernels/api/environments"),
          ("GET", "ozkernels/api/kernels"), ("POST", "ozkernels/api/sync")]
XSS = "<img src=x onerror=alert(1)>"


class DenyOzkernels(Authorizer):
    """Allows everything except ozkernels' resource."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        """Refuse the 'ozkernels' resource."""
        return resource != "ozkernels"


@pytest.fixture
def site_environ(jp_environ: None, site: Site, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The process environment pointed at the test site; Jupyter's dirs stay pytest-jupyter's."""
    env = site.environ()
    for key in set(os.environ) - set(env):
        monkeypatch.delenv(key)
    for key, value in env.items():
        if not key.startswith("JUPYTER_"):
            monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    """An extra venv root every test server searches, for the venvs tests make."""
    root = tmp_path / "projects"
    root.mkdir()
    return root


@pytest.fixture
def extra_config() -> dict[str, Any]:
    """Server config sections a test adds (override with parametrize)."""
    return {}


@pytest.fixture
def ozk_config() -> dict[str, Any]:
    """What a test puts in jupyter_ozkernels_config.json, the CLI's config file."""
    return {}


@pytest.fixture
def ozk_config_bytes() -> bytes | None:
    """Raw bytes of jupyter_ozkernels_config.json, e.g. a damaged file (None: ozk_config)."""
    return None


@pytest.fixture
def jp_server_config(site_environ: dict[str, str], projects: Path, jp_config_dir: Path,
                     extra_config: dict[str, Any], ozk_config: dict[str, Any],
                     ozk_config_bytes: bytes | None) -> Config:
    """The extension on, with a projects dir added to the default venv roots."""
    if ozk_config:
        (jp_config_dir / "jupyter_ozkernels_config.json").write_text(json.dumps(ozk_config))
    if ozk_config_bytes is not None:
        (jp_config_dir / "jupyter_ozkernels_config.json").write_bytes(ozk_config_bytes)
    roots = [*VenvSource.class_traits()["roots"].default(), str(projects)]
    config = Config({"ServerApp": {"jpserver_extensions": {"ozkernels": True}},
                     "VenvSource": {"roots": roots}})
    config.merge(Config(extra_config))
    return config


async def get_json(jp_fetch: Callable[..., Any], *parts: str, **kwargs: Any) -> Any:
    """The decoded JSON body of a request."""
    response = await jp_fetch(*parts, **kwargs)
    return json.loads(response.body)


async def kernelspecs(jp_fetch: Callable[..., Any]) -> dict[str, Any]:
    """Jupyter Server's own /api/kernelspecs, as JupyterLab sees it."""
    return (await get_json(jp_fetch, "api", "kernelspecs"))["kernelspecs"]


async def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll an async check until it returns something true."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)


def make_venv(site: Site, path: Path) -> None:
    """A venv on the module Python, made the way a user does in a terminal."""
    subprocess.run(["python3", "-m", "venv", "--without-pip", "--system-site-packages", str(path)],
                   env=site.module_environ(GCC, PY), check=True, timeout=60,
                   capture_output=True)


def append(path: Path, text: str) -> None:
    """Append to a file in place (its dir's mtime stays)."""
    with path.open("a") as f:
        f.write(text)


def ozk_threads() -> list[str]:
    """Names of the live threads ozkernels started."""
    return [t.name for t in threading.enumerate() if t.name.startswith("ozkernels-")]


async def test_environments_match_the_cli(jp_fetch: Any, jp_data_dir: Path, site: Site) -> None:
    data = await get_json(jp_fetch, "ozkernels", "api", "environments")
    env = site.environ(JUPYTER_DATA_DIR=str(jp_data_dir))
    cli = subprocess.run([sys.executable, "-m", "ozkernels", "list", "--json"], env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    assert data == json.loads(cli.stdout)

    rows = {(r["kind"], r["prefix"]): r for r in data["environments"]}
    expected = {("venv", os.path.realpath(site.venvs[k])) for k in
                ("analysis", "bare-ipk", "noipk", "plain", "broken", "hostile", "unicode",
                 "tools")}
    expected |= {("conda", os.path.realpath(p)) for p in site.conda_envs.values()}
    expected |= {("module", os.path.realpath(site.modules[m])) for m in (PY, f"{PY}-bare")}
    assert set(rows) == expected
    analysis = rows["venv", os.path.realpath(site.venvs["analysis"])]
    assert analysis["modules"] == [GCC, PY]
    assert analysis["kernel"] == "venv-analysis"
    assert analysis["display_name"] == f"Python {HOST_PY} (venv: analysis)"
    broken = rows["venv", os.path.realpath(site.venvs["broken"])]
    assert broken["status"] == "broken" and "pyvenv.cfg" in broken["detail"] and broken["fix"]
    noipk = rows["venv", os.path.realpath(site.venvs["noipk"])]
    assert noipk["status"] == "no ipykernel" and "pip install ipykernel" in noipk["fix"]
    # Each env's other kernels, with their status, as in `ozkernels list`.
    rstats = rows["conda", os.path.realpath(site.conda_envs["rstats"])]
    assert rstats["status"] == "no python kernel"
    assert [(k["kernel"], k["language"], k["status"]) for k in rstats["other_kernels"]] == [
        ("conda-rstats-ir", "R", "needs sync")]
    assert rstats["other_kernels"][0]["display_name"] == "R 4.2 (conda: rstats)"


async def test_sync_writes_kernels_jupyter_serves(jp_fetch: Any, jp_kernel_dir: Path) -> None:
    before = await get_json(jp_fetch, "ozkernels", "api", "kernels")
    assert before["background_sync"]["last_sync"] is None
    pending = {k["name"]: k for k in before["kernels"]}
    assert pending["venv-analysis"]["status"] == "needs sync"
    assert not pending["venv-analysis"]["on_disk"]
    assert "venv-analysis" not in await kernelspecs(jp_fetch)

    synced = await get_json(jp_fetch, "ozkernels", "api", "sync", method="POST", body="")
    added = {a["kernel"] for a in synced["actions"] if a["action"] == "add"}
    assert {"venv-analysis", "venv-bare-ipk", "conda-astro"} <= added
    assert synced["kernels_dir"] == str(jp_kernel_dir)

    specs = await kernelspecs(jp_fetch)
    assert specs["venv-analysis"]["spec"]["display_name"] == f"Python {HOST_PY} (venv: analysis)"
    assert "echo" in specs, "a spec ozkernels did not write was touched"
    after = await get_json(jp_fetch, "ozkernels", "api", "kernels")
    analysis = next(k for k in after["kernels"] if k["name"] == "venv-analysis")
    assert analysis["status"] == "up to date" and analysis["on_disk"]
    assert analysis["modules"] == [GCC, PY]
    assert after["background_sync"]["last_sync"]

    again = await get_json(jp_fetch, "ozkernels", "api", "sync", method="POST", body="")
    assert again["actions"] == [] and again["unchanged"] == len(added)


async def test_page_lists_environments_escaped(jp_fetch: Any, projects: Path) -> None:
    (projects / XSS).mkdir()
    (projects / XSS / "pyvenv.cfg").write_text("not = a venv\n")
    response = await jp_fetch("ozkernels")
    html = response.body.decode()
    assert response.headers["Content-Type"].startswith("text/html")
    assert 'id="ozk-sync"' in html and 'name="ozk-xsrf"' in html
    for name in ("analysis", "bare-ipk", "astro", "ml tools", "python/3.11.7-bare"):
        assert f'<div class="ozk-name">{name}</div>' in html
    assert "we&#39;ird $(touch PWNED) ;x" in html
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "pip install ipykernel" in html and "-m venv --upgrade" in html
    css = await jp_fetch("static", "ozkernels", "ozkernels.css")
    assert b"prefers-color-scheme: dark" in css.body


async def test_requests_without_token_are_refused(jp_serverapp: Any, http_server_client: Any,
                                                  jp_base_url: str) -> None:
    for method, path in ROUTES:
        response = await http_server_client.fetch(
            url_path_join(jp_base_url, path), method=method, body="" if method == "POST" else None,
            raise_error=False, follow_redirects=False)
        if path == "ozkernels":
            assert response.code == 302 and "/login" in response.headers["Location"]
        else:
            assert response.code in (401, 403), (method, path, response.code)


async def test_post_needs_xsrf_when_authenticated_by_cookie(
    jp_fetch: Any, http_server_client: Any, jp_base_url: str
) -> None:
    page = await jp_fetch("ozkernels")
    cookies: SimpleCookie = SimpleCookie()
    for header in page.headers.get_list("Set-Cookie"):
        cookies.load(header)
    xsrf = cookies["_xsrf"].value
    login = "; ".join(f"{k}={m.value}" for k, m in cookies.items() if k != "_xsrf")
    url = url_path_join(jp_base_url, "ozkernels/api/sync")

    async def post(headers: dict[str, str]) -> Any:
        return await http_server_client.fetch(url, method="POST", body="", headers=headers,
                                              raise_error=False)

    refused = await post({"Cookie": login})
    assert refused.code == 403
    assert "_xsrf" in json.loads(refused.body)["message"]
    assert (await post({"Cookie": f"{login}; _xsrf={xsrf}"})).code == 403
    accepted = await post({"Cookie": f"{login}; _xsrf={xsrf}", "X-XSRFToken": xsrf})
    assert accepted.code == 200, accepted.body
    assert "actions" in json.loads(accepted.body)


@pytest.mark.parametrize(
    "extra_config", [{"ServerApp": {"allow_unauthenticated_access": False}}]
)
async def test_routes_served_without_unauthenticated_access(jp_fetch: Any,
                                                            jp_serverapp: Any) -> None:
    assert jp_serverapp.web_app.settings["allow_unauthenticated_access"] is False
    for method, path in ROUTES:
        response = await jp_fetch(path, method=method, body="" if method == "POST" else None)
        assert response.code == 200, (method, path)


@pytest.mark.parametrize(
    "extra_config", [{"ServerApp": {"authorizer_class": DenyOzkernels}}]
)
async def test_routes_are_authorized(jp_fetch: Any) -> None:
    for method, path in ROUTES:
        with pytest.raises(HTTPClientError) as e:
            await jp_fetch(path, method=method, body="" if method == "POST" else None)
        assert e.value.code == 403, (method, path)
    assert await kernelspecs(jp_fetch)


@pytest.mark.parametrize("extra_config", [{"OzkernelsExtension": {"request_timeout": 0.5}}])
async def test_hung_filesystem_answers_504_and_shares_one_job(
    jp_fetch: Any, projects: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A FIFO for pyvenv.cfg blocks whoever opens it, like a read on a hung NFS or Lustre mount.
    fifo = projects / "stuck" / "pyvenv.cfg"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    try:
        calls = [jp_fetch("ozkernels", "api", "environments") for _ in range(3)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        for result in results:
            assert isinstance(result, HTTPClientError) and result.code == 504, result
            assert result.response is not None
            message = json.loads(result.response.body)["message"]
            assert "did not finish within 0.5 s" in message and "filesystem" in message
        assert ozk_threads().count("ozkernels-plan") == 1
        with pytest.raises(HTTPClientError) as e:
            await jp_fetch("ozkernels", "api", "sync", method="POST", body="")
        assert e.value.code == 504
        with pytest.raises(HTTPClientError) as e:
            await jp_fetch("ozkernels")
        assert e.value.code == 504
        assert sorted(ozk_threads()) == ["ozkernels-plan", "ozkernels-sync"]
        started = time.monotonic()
        assert "echo" in await kernelspecs(jp_fetch)
        assert time.monotonic() - started < 0.5, "the stuck jobs held up the event loop"
    finally:
        # Opening read-write never blocks; unlinked and closed, the stuck readers see EOF.
        fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        os.unlink(fifo)
        os.close(fd)
    fifo.write_text("not = a venv\n")
    data = await get_json(jp_fetch, "ozkernels", "api", "environments")
    stuck = next(r for r in data["environments"] if r["name"] == "stuck")
    assert stuck["status"] == "broken"
    assert logged_exceptions(caplog.records) == []


# The interval comes from the config file the CLI reads too.
@pytest.mark.parametrize("ozk_config", [{"OzkernelsExtension": {"sync_interval": 0.25}}])
async def test_background_sync_follows_venvs_created_and_deleted(
    jp_fetch: Any, jp_serverapp: Any, projects: Path, site: Site
) -> None:
    await jp_serverapp.extension_manager.start_all_extensions()  # what the server does on start

    async def has(name: str) -> Any:
        return (await kernelspecs(jp_fetch)).get(name)

    await wait_for(lambda: has("venv-analysis"), 30, "the first background sync")
    make_venv(site, projects / "newproj")
    created = time.monotonic()
    spec = await wait_for(lambda: has("venv-newproj"), 15, "the new venv's kernel")
    assert spec["spec"]["display_name"] == f"Python {HOST_PY} (venv: newproj)"
    argv = spec["spec"]["argv"]
    assert argv[argv.index("--prefix") + 1] == str(projects / "newproj")
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--module"] == [GCC, PY]
    print(f"new venv appeared in /api/kernelspecs after {time.monotonic() - created:.2f} s")

    shutil.rmtree(projects / "newproj")

    async def gone() -> bool:
        return not await has("venv-newproj")

    await wait_for(gone, 15, "the deleted venv's kernel to go")
    assert await has("venv-analysis")
    status = (await get_json(jp_fetch, "ozkernels", "api", "kernels"))["background_sync"]
    assert status["interval"] == 0.25 and status["error"] == ""

    # Once the changes are older than the racy window, checks go on but syncs stop.
    inventory = jp_serverapp.web_app.settings["ozkernels_inventory"]
    await asyncio.sleep(RACY_NS / 1e9 + 0.5)
    settled = inventory.last_sync.finished
    await asyncio.sleep(1)
    assert inventory.last_sync.finished == settled


def test_change_detection_sees_what_a_sync_would(site_environ: dict[str, str], projects: Path,
                                                 site: Site) -> None:
    conda_dir = projects / "conda-envs"
    conda_dir.mkdir()
    roots = [*VenvSource.class_traits()["roots"].default(), str(projects)]
    manager = KernelsManager(config=Config({"VenvSource": {"roots": roots},
                                            "CondaSource": {"envs_dirs": [str(conda_dir)]}}))

    def snapshot() -> Snapshot:
        discovery = manager.discovery()
        context = discovery.context()
        envs = [row.env for row in manager.plan(context).rows]
        paths = watch_paths(manager, discovery, context, envs)
        assert len(paths) < 200
        # Trusted as if taken well after the last change; racy stamps are checked below.
        return Snapshot(Snapshot.take(paths).stamps)

    snap = snapshot()
    assert not snap.changed()
    manager.sync()
    snap = snapshot()
    manager.plan()
    assert not snap.changed(), "reading everything must not look like a change"

    steps: list[tuple[str, Callable[[], object]]] = [
        ("a new dir in a venv root", lambda: (projects / "proj").mkdir()),
        ("a venv made in it", lambda: make_venv(site, projects / "proj" / ".venv")),
        ("ipykernel installed into it", lambda: (
            projects / "proj" / ".venv" / "lib" / "python3.11" / "site-packages" /
            "ipykernel_launcher.py").write_text("")),
        ("pyvenv.cfg edited in place", lambda: append(projects / "proj" / ".venv" / "pyvenv.cfg",
                                                      "# edited\n")),
        ("a conda env dir", lambda: (conda_dir / "new" / "conda-meta").mkdir(parents=True)),
        ("its conda-meta/history", lambda: (conda_dir / "new" / "conda-meta" / "history")
         .write_text("")),
        ("the venv deleted", lambda: shutil.rmtree(projects / "proj" / ".venv")),
        ("a kernel spec removed by hand", lambda: shutil.rmtree(
            Path(manager.kernels_dir()) / "venv-analysis")),
    ]
    for what, change in steps:
        change()
        assert snap.changed(), what
        snap = snapshot()
        assert not snap.changed(), what

    (projects / "fresh").mkdir()
    assert Snapshot.take([str(projects)]).racy


def test_change_detection_follows_tcl_modulefiles(jp_environ: None, envmodules_cmd: str,
                                                  no_lmod: None, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """At an Environment Modules site: new Pythons anywhere in the hierarchy, edited parents."""
    from ozkernels.demosite import build_site

    site = build_site(tmp_path / "site", modules="tmod", modules_cmd=envmodules_cmd,
                      hostile=False)
    env = site.environ(XDG_CACHE_HOME=str(tmp_path / "cache"))
    for key in set(os.environ) - set(env):
        monkeypatch.delenv(key)
    for key, value in env.items():
        if not key.startswith("JUPYTER_"):
            monkeypatch.setenv(key, value)
    manager = KernelsManager(config=Config({"Syncer": {"module_kernels": True}}))

    def snapshot() -> Snapshot:
        discovery = manager.discovery()
        context = discovery.context()
        assert context.modules.system.name == "tmod"
        envs = [row.env for row in manager.plan(context).rows]
        return Snapshot(Snapshot.take(watch_paths(manager, discovery, context, envs)).stamps)

    n = site.names
    core_python, bare = site.modulefiles[n["python"]], site.modulefiles[n["bare"]]
    gcc = site.modulefiles[n["gcc"]]
    manager.sync()
    snap = snapshot()
    assert not snap.changed()
    steps: list[tuple[str, Callable[[], object]]] = [
        ("a new Python in the Core dir", lambda: core_python.with_name("3.12.0").write_text(
            core_python.read_text())),
        ("a new Python below GCCcore (the hierarchy)", lambda: bare.with_name(
            "3.12.0-bare").write_text(bare.read_text())),
        ("the module that adds the hierarchy edited in place", lambda: append(
            gcc, f"module use {tmp_path / 'more'}\n")),
    ]
    for what, change in steps:
        change()
        assert snap.changed(), what
        snap = snapshot()
        assert not snap.changed(), what


def logged_exceptions(records: list[Any]) -> list[str]:
    """Server log records that carry a traceback or report an uncaught exception."""
    return [f"{r.name}: {r.getMessage()}" for r in records
            if r.exc_info or "Uncaught" in r.getMessage() or "Traceback" in r.getMessage()]


@pytest.mark.parametrize("ozk_config", [{"Syncer": {"lock_timeout": 0.2}}])
async def test_error_pages_render_without_exceptions(
    jp_serverapp: Any, http_server_client: Any, jp_base_url: str, jp_auth_header: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import fcntl
    import logging

    caplog.set_level(logging.DEBUG)

    async def fetch(path: str, method: str = "GET", auth: bool = True) -> Any:
        return await http_server_client.fetch(
            url_path_join(jp_base_url, path), method=method,
            headers=jp_auth_header if auth else {}, allow_nonstandard_methods=True,
            body="" if method in ("POST", "PUT", "PATCH") else None, raise_error=False,
            follow_redirects=False)

    # 405: methods tornado refuses before authentication, and ones the handlers lack.
    for auth in (True, False):
        for method in ("PROPFIND", "PUT", "DELETE", "PATCH"):
            page = await fetch("ozkernels", method, auth)
            assert page.code in (403, 405), (method, auth, page.code)
            assert page.code == 405 or method not in ("PROPFIND",)
            assert b"</html>" in page.body, (method, auth, page.body[:200])
            api = await fetch("ozkernels/api/sync", "GET" if method == "PUT" else method, auth)
            assert api.code in (403, 405), (method, auth, api.code)
            assert "message" in json.loads(api.body)
    # 404: below the extension's URL.
    for path in ("ozkernels/nope", "ozkernels/api/nope"):
        missing = await fetch(path)
        assert missing.code == 404 and b"</html>" in missing.body
    # 409: another sync holds the kernels dir longer than Syncer.lock_timeout.
    kernels_dir = jp_serverapp.web_app.settings["ozkernels_inventory"].manager.kernels_dir()
    os.makedirs(kernels_dir, exist_ok=True)
    fd = os.open(os.path.join(kernels_dir, ".ozkernels.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        busy = await fetch("ozkernels/api/sync", "POST")
        assert busy.code == 409, busy.body
        assert "another ozkernels sync" in json.loads(busy.body)["message"]
    finally:
        os.close(fd)
    assert (await fetch("ozkernels/api/sync", "POST")).code == 200
    assert logged_exceptions(caplog.records) == []


@pytest.mark.parametrize("ozk_config_bytes", [b"{not json", b"\xff\0"])
async def test_malformed_config_file_is_one_log_line_and_the_server_runs(
    capfd: pytest.CaptureFixture[str], jp_fetch: Any, jp_config_dir: Path
) -> None:
    cfg = jp_config_dir / "jupyter_ozkernels_config.json"
    assert (await jp_fetch("ozkernels", "api", "environments")).code == 200
    # The server's log handler writes to the stderr it found at start (traitlets' dictConfig
    # replaces handlers added before): read it as the terminal would show it.
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if str(cfg) in line]
    assert len(lines) == 1 and "cannot load config file" in lines[0], err[-2000:]
    assert "Traceback" not in err
