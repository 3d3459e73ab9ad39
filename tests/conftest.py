"""Shared fixtures: one real test site per session, a fresh kernels dir and an ozkernels runner."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any, Protocol

import pytest
from hypothesis import HealthCheck, settings

from ozkernels.demosite import Site, build_site


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
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """The session's site; missing Lmod or patchelf is a failure (tests/run.sh installs them)."""
    return build_site(tmp_path_factory.mktemp("site"), lmod=True, hostile=True)


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


def make_venv(site: Site, path, module: str = "python/3.11.7", *, system: bool = True) -> None:
    """Create a real venv with a module Python, the way a user on the site would."""
    env = site.module_environ(f"gcccore/{site_gcc()}", module)
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
