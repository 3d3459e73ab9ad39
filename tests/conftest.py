"""Shared fixtures: one real test site per session, a fresh kernels dir and an ozkernels runner."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import pytest
from hypothesis import HealthCheck, settings
from ozktest.envmodules import enter_private_namespace, find_deb, lmod_hidden, lmod_visible, unpack

from ozkernels.demosite import Site, build_site

# The module systems every kernel test runs against: Lmod and Environment Modules (Tcl).
SYSTEMS = ["lmod", "tmod"]


def pytest_configure(config: pytest.Config) -> None:
    """Run the session in a mount namespace of its own, so Tcl tests can hide Lmod."""
    enter_private_namespace()


def console_script(name: str) -> str:
    """A console script of the interpreter under test (its bin dir need not be on PATH)."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    assert os.access(path, os.X_OK), f"{path} is missing: pip install -e '.[test]' writes it"
    return path


def shell_reply(kc: Any, msg_id: str, timeout: float) -> dict[str, Any]:
    """The shell reply to msg_id, skipping replies to wait_for_ready's repeated kernel_info."""
    deadline = time.monotonic() + timeout
    while True:
        reply = kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply
        assert reply["msg_type"] == "kernel_info_reply", reply


class RunOzk(Protocol):
    """Signature of the run_ozk fixture."""

    def __call__(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run `python -m ozkernels *args`."""


@pytest.fixture(scope="session")
def lmod_site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """The session's Lmod site; without Lmod or patchelf a failure (tests/run.sh installs them)."""
    return build_site(tmp_path_factory.mktemp("site"), lmod=True, hostile=True)


@pytest.fixture(scope="session")
def site(lmod_site: Site) -> Site:
    """The session's site (Lmod)."""
    return lmod_site


@pytest.fixture(scope="session")
def envmodules_cmd(tmp_path_factory: pytest.TempPathFactory) -> str:
    """modulecmd.tcl of Debian's Environment Modules 5.2, unpacked for this session."""
    return unpack(find_deb(), tmp_path_factory.mktemp("envmodules"))


@pytest.fixture(scope="session")
def tmod_site(tmp_path_factory: pytest.TempPathFactory, envmodules_cmd: str) -> Site:
    """The session's Environment Modules site: EasyBuild-style Tcl modulefiles."""
    return build_site(tmp_path_factory.mktemp("tmod-site"), modules="tmod",
                      modules_cmd=envmodules_cmd, hostile=True)


@pytest.fixture(scope="session")
def hide_lmod(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[Site], contextlib.AbstractContextManager[None]]:
    """`with hide_lmod(site):` makes Lmod unfindable while a Tcl site is in use."""
    empty = tmp_path_factory.mktemp("empty")

    def hide(site: Site) -> contextlib.AbstractContextManager[None]:
        return lmod_hidden(empty) if site.system == "tmod" else contextlib.nullcontext()

    return hide


@pytest.fixture
def no_lmod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Lmod unfindable for the duration of the test."""
    with lmod_hidden(tmp_path_factory.mktemp("empty")):
        assert not lmod_visible()
        yield


@pytest.fixture(params=SYSTEMS)
def msite(request: pytest.FixtureRequest, hide_lmod) -> Iterator[Site]:
    """Each module system's site in turn; Lmod is hidden while the Tcl one is in use."""
    site = request.getfixturevalue(f"{request.param}_site")
    with hide_lmod(site):
        assert lmod_visible() == (site.system == "lmod")
        yield site


@pytest.fixture
def msite_env(msite: Site, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The module system site's environment with a kernels dir of this test's own."""
    return msite.environ(JUPYTER_DATA_DIR=str(tmp_path_factory.mktemp("jupyter-data")))


@pytest.fixture
def site_env(site: Site, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The site's environment with a kernels dir of this test's own."""
    return site.environ(JUPYTER_DATA_DIR=str(tmp_path_factory.mktemp("jupyter-data")))


@pytest.fixture
def run_ozk(site_env: dict[str, str]) -> RunOzk:
    """Run the ozkernels CLI in a subprocess, by default against the site."""

    def run(
        *args: str,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "ozkernels", *args]
        proc = subprocess.run(
            cmd,
            env=dict(site_env if env is None else env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check:
            output = f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
            assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{output}"
        return proc

    return run


def make_venv(site: Site, path, module: str = "", *, system: bool = True) -> None:
    """Create a real venv with a module Python (default the full one), as a user would."""
    module = module or site.names["python"]
    env = site.module_environ(site.names["gcc"], module)
    prefix = site.modules[module]
    cmd = [str(prefix / "bin" / "python3"), "-m", "venv", "--without-pip", str(path)]
    if system:
        cmd.insert(4, "--system-site-packages")
    subprocess.run(cmd, env=env, check=True, timeout=60, capture_output=True)


def site_gcc() -> str:
    """The site's gcccore version."""
    from ozkernels.demosite import GCC_VERSION

    return GCC_VERSION


@pytest.fixture
def own_site(tmp_path: object) -> Site:
    """A private site for tests that change it (it builds in about half a second)."""
    from pathlib import Path

    return build_site(Path(str(tmp_path)) / "site", lmod=True, hostile=False, other_kernels=False)


# Generated-input tests: no example database left in the checkout, no per-example deadline on
# 2 shared cores; the example counts are in each test (scaled by OZK_EXAMPLES_SCALE).
settings.register_profile(
    "ozkernels", database=None, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("ozkernels")


@pytest.fixture
def own_msite(msite: Site, tmp_path: object, request: pytest.FixtureRequest) -> Site:
    """A private site of the same module system as msite, for tests that change it."""
    from pathlib import Path

    cmd = request.getfixturevalue("envmodules_cmd") if msite.system == "tmod" else None
    return build_site(Path(str(tmp_path)) / "site", modules=msite.system, modules_cmd=cmd,
                      hostile=False)
