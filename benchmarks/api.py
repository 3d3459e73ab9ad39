"""Section 4: REST latency of a real jupyter_server on the large site, on loopback only.

`/api/kernelspecs` is always measured (every Jupyter front end calls it to fill its kernel
list); `/ozkernels/api/environments` only when ozkernels has a server extension.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from common import log, median, p95

READY_TIMEOUT = 90
KERNELSPECS = "/api/kernelspecs"
ENVIRONMENTS = "/ozkernels/api/environments"


def extension_available(python: Path, env: Mapping[str, str]) -> bool:
    """Whether this ozkernels declares a Jupyter server extension."""
    proc = subprocess.run(
        [str(python), "-c", "import ozkernels; ozkernels._jupyter_server_extension_points"],
        env=dict(env), capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(conn: http.client.HTTPConnection, path: str, token: str) -> tuple[float, int, bytes]:
    start = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"token {token}"})
    resp = conn.getresponse()
    body = resp.read()
    return time.perf_counter() - start, resp.status, body


def run(python: Path, env: Mapping[str, str], config_dir: Path, cwd: Path, requests: int,
        with_extension: bool) -> dict:
    """Start a server, time GETs of each endpoint (interleaved), stop the server."""
    config = {"ServerApp": {"jpserver_extensions": {"ozkernels": with_extension}}}
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(config))
    token, port = secrets.token_hex(16), _free_port()
    paths = [KERNELSPECS] + ([ENVIRONMENTS] if with_extension else [])
    cmd = [str(python.parent / "jupyter-server"), "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI run as root
    log_file = config_dir / "server.log"
    result: dict = {"paths": {}, "requests": requests, "log": str(log_file)}
    with open(log_file, "w") as logf:
        server = subprocess.Popen(cmd, env=dict(env), cwd=cwd, stdout=logf, stderr=logf)
        try:
            conn = _wait_ready(server, port, token)
            for path in paths:
                first, status, body = _get(conn, path, token)
                result["paths"][path] = {"first": first, "status": status, "times": [],
                                         "items": _count(body)}
            for _ in range(requests):
                for path in paths:
                    t, status, _ = _get(conn, path, token)
                    result["paths"][path]["times"].append(t)
                    result["paths"][path]["status"] = status
            conn.close()
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
    for data in result["paths"].values():
        data["p50"], data["p95"] = median(data["times"]), p95(data["times"])
    return result


def ipykernel_logos() -> list[Path]:
    """The logo files `ipykernel install` copies into a kernel dir (none if ipykernel is absent)."""
    spec = importlib.util.find_spec("ipykernel")
    if not spec or not spec.origin:
        return []
    return sorted((Path(spec.origin).parent / "resources").glob("logo-*"))


def plain_copy(kernels: Path, dest: Path) -> int:
    """Write, for every spec in kernels, what `python -m ipykernel install` would have written."""
    count, logos = 0, ipykernel_logos()
    for spec_file in sorted(kernels.glob("*/kernel.json")):
        spec = json.loads(spec_file.read_text())
        python = spec.get("metadata", {}).get("ozkernels", {}).get("python", "python")
        spec = {"argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": spec["display_name"], "language": "python",
                "metadata": {"debugger": True}}
        out = dest / spec_file.parent.name
        out.mkdir(parents=True, exist_ok=True)
        (out / "kernel.json").write_text(json.dumps(spec, indent=1))
        for logo in logos:
            shutil.copyfile(logo, out / logo.name)
        count += 1
    return count


def _count(body: bytes) -> int | None:
    """How many kernel specs or environments a response lists."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, dict):
        for key in ("kernelspecs", "environments"):
            if isinstance(data.get(key), (dict, list)):
                return len(data[key])
    return len(data) if isinstance(data, list) else None


def _wait_ready(server: subprocess.Popen, port: int, token: str) -> http.client.HTTPConnection:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            msg = f"jupyter server exited with {server.returncode} before it was ready"
            raise RuntimeError(msg)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            _, status, _ = _get(conn, "/api/status", token)
            if status == 200:
                log(f"jupyter server ready on 127.0.0.1:{port}")
                return conn
        except OSError:
            pass
        conn.close()
        time.sleep(0.2)
    msg = f"jupyter server not ready after {READY_TIMEOUT} s"
    raise RuntimeError(msg)
