"""The real test site (real interpreters, real ipykernel) and the four kernel specs compared."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import HERE, log, median, p95

from ozkernels.demosite import GCC_VERSION, PY_MODULE_VERSION, Site, build_site, link_packages

MODULES = (f"gcccore/{GCC_VERSION}", f"python/{PY_MODULE_VERSION}")
LABELS = {
    "plain": "plain `ipykernel install` spec (venv python + LD_LIBRARY_PATH)",
    "ozk_venv": "ozkernels venv kernel (modules + venv)",
    "ozk_conda": "ozkernels conda kernel",
    "envkernel": "envkernel `lmod` kernel (same venv)",
}


def server_environ(site: Site) -> dict[str, str]:
    """What a Jupyter server started from a login shell with Lmod initialised would have."""
    env = site.environ()
    if site.lmod_cmd:
        env.update(LMOD_CMD=site.lmod_cmd, LMOD_DIR=os.path.dirname(site.lmod_cmd),
                   LMOD_PKG=os.path.dirname(os.path.dirname(site.lmod_cmd)))
    return env


def _run(cmd: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode:
        msg = f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-1500:]}"
        raise RuntimeError(msg)
    return proc.stdout


def add_psutil(site: Site) -> str:
    """Give the site's Pythons psutil when the host lacks it; return a note if that failed.

    The site's Pythons get their packages from the host's site-packages, and ipykernel
    depends on psutil: without it ipykernel skips terminating its children at shutdown, and
    shutdown times would be better than any real install gives.
    """
    if importlib.util.find_spec("psutil"):
        return ""  # already linked in by build_site
    target = HERE / "_site" / "pydeps"
    if not (target / "psutil").is_dir():
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target",
                               str(target), "psutil"], capture_output=True, text=True,
                              timeout=600, check=False)
        if proc.returncode:
            return f"psutil could not be installed for the site's Pythons: {proc.stderr[-300:]}"
    pyxy = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for prefix in (site.modules[MODULES[1]], site.conda_envs["astro"]):
        link_packages(prefix / "lib" / pyxy / "site-packages", [target])
    return ""


def prepare(root: Path, ozk_python: Path, envkernel_python: Path | None
            ) -> tuple[Site, dict[str, str], dict[str, str], list[str]]:
    """Build the site, sync ozkernels, install the plain and envkernel specs; return the site,
    the server environment, kind -> kernel name, and notes."""
    if importlib.util.find_spec("ipykernel") is None:
        msg = (f"the real test site takes ipykernel from the interpreter running the benchmark "
               f"({sys.executable}), which has none: pip install -e '.[test]'")
        raise RuntimeError(msg)
    log(f"building the real test site in {root}")
    site = build_site(root, lmod=True, hostile=False, other_kernels=False)
    env = server_environ(site)
    notes: list[str] = []
    why = add_psutil(site)
    if why:
        notes.append(why)
    venv = site.venvs["analysis"]
    conda = site.conda_envs["astro"]
    sync = json.loads(_run([str(ozk_python), "-m", "ozkernels", "sync", "--json"], env))
    by_prefix = {a["prefix"]: a["kernel"] for a in sync["actions"] if a["action"] == "add"}
    kinds: dict[str, str] = {}
    plain_env = site.module_environ(*MODULES)
    _run([str(venv / "bin" / "python"), "-m", "ipykernel", "install", "--user",
          "--name", "bench-plain", "--display-name", "bench plain"], plain_env)
    spec_path = Path(env["JUPYTER_DATA_DIR"]) / "kernels" / "bench-plain" / "kernel.json"
    spec = json.loads(spec_path.read_text())
    # What users do by hand so that a module-Python venv starts at all.
    spec["env"] = {"LD_LIBRARY_PATH": str(site.modules[MODULES[1]] / "lib")}
    spec_path.write_text(json.dumps(spec, indent=1))
    kinds["plain"] = "bench-plain"
    for kind, prefix in (("ozk_venv", venv), ("ozk_conda", conda)):
        name = by_prefix.get(os.path.realpath(prefix))
        if name:
            kinds[kind] = name
        else:
            notes.append(f"ozkernels sync wrote no kernel for {prefix}")
    if envkernel_python:
        cmd = f"{venv / 'bin' / 'python'} -m ipykernel_launcher -f {{connection_file}}"
        _run([str(envkernel_python.parent / "envkernel"), "lmod", "--user",
              "--name", "bench-envkernel", "--kernel-cmd", cmd, *MODULES], env)
        kinds["envkernel"] = "bench-envkernel"
    return site, env, kinds, notes


def measure(driver: Path, env: dict[str, str], kinds: dict[str, str], runs: int,
            extra: tuple[str, ...] = ()) -> dict:
    """Run kernels.py with the driver interpreter (it needs jupyter_client) in the server
    environment; return its results with medians added."""
    cmd = [str(driver), str(HERE / "kernels.py"), "--runs", str(runs), *extra,
           *(f"{k}={v}" for k, v in kinds.items())]
    # The kernels' own stderr (ipykernel's TCP warning, every start) goes to a file.
    log_path = HERE / "_site" / "kernels.log"
    with open(log_path, "w") as errors:
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=errors, text=True,
                              timeout=3600, check=False)
    if proc.returncode:
        msg = f"kernels.py failed ({proc.returncode}); see {log_path}"
        raise RuntimeError(msg)
    data = json.loads(proc.stdout)
    for x in data["results"].values():
        x["start_p50"], x["start_p95"] = median(x["start"]), p95(x["start"])
        x["shutdown_p50"], x["shutdown_p95"] = median(x["shutdown"]), p95(x["shutdown"])
        x["gone_p50"] = median(x["gone"]) if x.get("gone") else None
    data["labels"] = {k: LABELS.get(k, k) for k in kinds}
    return data


def launcher_overhead(env: dict[str, str], kinds: dict[str, str], runs: int) -> dict:
    """What ozkernels' launcher costs before the interpreter starts: each ozkernels kernel's
    argv run with the interpreter replaced by /bin/true, and its `lmod bash load` alone."""
    kernels = Path(env["JUPYTER_DATA_DIR"]) / "kernels"
    cmds: dict[str, list[str]] = {"bash -p -c : (shell start-up)": ["bash", "-p", "-c", ":"]}
    for kind in ("ozk_venv", "ozk_conda"):
        if kind not in kinds:
            continue
        argv = json.loads((kernels / kinds[kind] / "kernel.json").read_text())["argv"]
        argv = ["/bin/true" if prev == "--python" else a
                for prev, a in zip(["", *argv], argv)]
        argv = [a.replace("{connection_file}", "/dev/null") for a in argv]
        cmds[f"{LABELS[kind]}: launcher up to exec"] = argv
        modules = [a for prev, a in zip(["", *argv], argv) if prev == "--module"]
        if modules and env.get("LMOD_CMD"):
            cmds[f"of which `lmod bash load {' '.join(modules)}`"] = [
                env["LMOD_CMD"], "bash", "load", *modules]
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(runs):
        for label, argv in cmds.items():
            start = time.perf_counter()
            subprocess.run(argv, env=env, capture_output=True, timeout=120, check=False)
            times[label].append(time.perf_counter() - start)
    return {k: {"p50": median(v), "p95": p95(v), "runs": len(v)} for k, v in times.items()}


NOTES = [
    "The plain spec is what `python -m ipykernel install --user` writes from inside the venv, "
    "plus the `env: {LD_LIBRARY_PATH: <module prefix>/lib}` that users add by hand: without it "
    "the module-Python venv's interpreter does not start at all (it is the floor any launcher "
    "is compared to).",
    "The 'server' (the jupyter_client driver) runs with Lmod initialised (LMOD_CMD, LMOD_PKG, "
    "LMOD_DIR, MODULEPATH) and no module loaded, as `jupyter lab` started from a login shell "
    "on the site. The site's Pythons have ipykernel and its dependency psutil (with psutil "
    "ipykernel terminates the kernel's leftover children at shutdown, and waits for them).",
    "Each round starts the four kinds in a rotated order after one untimed warm-up round; "
    "start-to-ready = `KernelManager.start_kernel()` until `BlockingKernelClient."
    "wait_for_ready()` returns; shutdown = `shutdown_kernel(now=False)`; *process exited* = "
    "when the kernel process had exited, seen by polling every 2 ms (jupyter_client looks every "
    "0.1 s, so its shutdown time is the exit rounded up to the next 0.1 s). *killed* counts "
    "kernels that did not exit after the shutdown request and were killed by jupyter_client.",
]
