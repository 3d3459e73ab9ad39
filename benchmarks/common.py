"""Shared helpers: statistics, timed subprocesses, the tools' venvs, the machine's description."""

from __future__ import annotations

import datetime
import importlib.util
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import venv
from collections.abc import Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SITE_DIR = HERE / "_site"
VENVS = SITE_DIR / "venvs"

# What each tool's venv gets from PyPI; ozkernels itself comes from this checkout (a .pth file),
# so the numbers are for the code in the working tree, installed the way pip would (no
# editable-install finder at start-up).
TOOLS: dict[str, list[str]] = {
    # ipykernel and psutil: the test sites' Pythons take their packages from the Python that
    # builds them (run_in_tool_venv), and ipykernel's shutdown depends on psutil.
    "ozkernels": ["jupyter_client>=7", "jupyter_core>=4.12", "traitlets>=5", "jupyter_server>=2",
                  "ipykernel", "psutil"],
    "nb_venv_kernels": ["nb_venv_kernels"],
    "envkernel": ["envkernel", "jupyter_client"],
}


def median(values: Sequence[float]) -> float:
    """The median (nan when empty)."""
    return statistics.median(values) if values else float("nan")


def p95(values: Sequence[float]) -> float:
    """The 95th percentile, nearest-rank (nan when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered) + 0.5) - 1))]


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def timed(cmd: Sequence[str], env: Mapping[str, str], cwd: str | os.PathLike | None = None,
          timeout: float = 300) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run cmd once as a whole process; return wall seconds and the result (raises on failure)."""
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), env=dict(env), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        msg = f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}" \
              f"{proc.stderr[-2000:]}"
        raise RuntimeError(msg)
    return elapsed, proc


def venv_python(name: str) -> Path:
    """The interpreter of a tool's venv."""
    return VENVS / name / "bin" / "python"


def ensure_tool(name: str, src: Path = REPO) -> tuple[Path | None, str]:
    """Create (once) and return a tool's venv interpreter, or None and why it failed;
    ozkernels' venv imports ozkernels from the checkout `src`."""
    python = venv_python(name)
    stamp = VENVS / name / ".bench-installed"
    wanted = " ".join(TOOLS[name])
    if not (stamp.exists() and stamp.read_text() == wanted and python.exists()):
        log(f"installing {wanted} into {python.parent.parent} (from PyPI)")
        shutil.rmtree(VENVS / name, ignore_errors=True)
        try:
            venv.create(VENVS / name, with_pip=True, clear=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q",
                            "--disable-pip-version-check", *TOOLS[name]],
                           capture_output=True, text=True, timeout=900, check=True)
        except (OSError, subprocess.SubprocessError) as e:
            out = getattr(e, "stderr", "") or ""
            return None, f"could not install {wanted}: {e} {out.strip()[-500:]}"
        stamp.write_text(wanted)
    if name == "ozkernels":
        purelib = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, timeout=60, check=True).stdout.strip()
        (Path(purelib) / "ozkernels-checkout.pth").write_text(f"{src}\n")
        # pip byte-compiles what it installs; a checkout may have no .pyc at all (e.g. with
        # PYTHONDONTWRITEBYTECODE set), and compiling on every run is not what users pay.
        subprocess.run([str(python), "-m", "compileall", "-q", str(src / "ozkernels")],
                       capture_output=True, text=True, timeout=300, check=True)
    return python, ""


def run_in_tool_venv(script: str, argv: Sequence[str] | None = None, src: Path = REPO) -> None:
    """Re-run `script` under ozkernels' benchmark venv when this Python lacks ipykernel or
    jupyter_client (a distribution's python3): the test sites' Pythons take their packages
    from the Python that builds them, and the drivers start kernels through jupyter_client."""
    if importlib.util.find_spec("ipykernel") and importlib.util.find_spec("jupyter_client"):
        return
    here = Path(sys.prefix).resolve()
    if here == (VENVS / "ozkernels").resolve():
        raise SystemExit(f"benchmark: ipykernel or jupyter_client is missing from {here}; "
                         f"remove {VENVS / 'ozkernels'} and rerun")
    python, why = ensure_tool("ozkernels", src)
    if not python:
        raise SystemExit(f"benchmark: {why}")
    log(f"{sys.executable} has no ipykernel or jupyter_client: running under {python}")
    args = list(sys.argv[1:] if argv is None else argv)
    os.execv(python, [str(python), str(Path(script).resolve()), *args])


def package_version(python: Path, dist: str) -> str:
    """The installed version of a distribution in a venv, or '?'."""
    proc = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True, text=True, timeout=60, check=False)
    return proc.stdout.strip() or "?"


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, kernel, Python, Lmod and the date."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    lmod = "not installed"
    from ozkernels.demosite import find_lmod

    cmd = find_lmod()
    if cmd:
        proc = subprocess.run([cmd, "--version"], capture_output=True, text=True, timeout=30,
                              check=False)
        for line in (proc.stderr + proc.stdout).splitlines():
            if "Version" in line:
                lmod = line.split("Version", 1)[1].split()[0]
                break
    os_name = "?"
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    fs = subprocess.run(["stat", "-f", "-c", "%T", str(SITE_DIR)], capture_output=True,
                        text=True, timeout=10, check=False).stdout.strip() or "?"
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "RAM": mem,
        "OS": os_name,
        "kernel": platform.release(),
        "Python": f"{platform.python_version()} ({sys.base_prefix})",
        "Lmod": lmod,
        "filesystem of the sites": fs,
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    }
