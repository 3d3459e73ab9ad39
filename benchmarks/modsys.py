"""Lmod next to Environment Modules (Tcl): sync times and kernel start-to-ready on the two sites.

  python3 benchmarks/modsys.py            # 10 sync rounds, 15 start rounds

Builds the real test site twice in benchmarks/_site/modsys (Lua modulefiles for Lmod, and the
same roles as EasyBuild-style Tcl modulefiles for Environment Modules 5.2, unpacked from the
.deb that tests/run.sh downloads), then, interleaved in rotated order:
  1. whole-process `ozkernels sync` into a fresh kernels dir, cold (empty cache dir: the module
     tree is listed) and warm (the listing cache is fresh);
  2. start-to-ready of the analysis venv kernel (a venv on the module Python) through
     jupyter_client, with the launch memo on (default) and off (OZKERNELS_LAUNCH_CACHE=0: the
     module system runs at every start), one warm-up round first.
Each site's kernels start from that site's server environment (its module system initialised,
no module loaded, no `module` function). Not part of run.py or the test suite; prints a table
and writes _site/modsys-results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))
sys.path.insert(2, str(HERE.parent / "tests"))

from common import SITE_DIR, log, machine, median, p95, run_in_tool_venv  # noqa: E402
from ozktest.envmodules import find_deb, unpack  # noqa: E402
from realsite import add_psutil, server_environ  # noqa: E402

from ozkernels.demosite import Site, build_site  # noqa: E402

SYSTEMS = ("lmod", "tmod")
LABELS = {"lmod": "Lmod 8.6 (Lua modulefiles)",
          "tmod": "Environment Modules 5.2 (Tcl modulefiles)"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python3 benchmarks/modsys.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--syncs", type=int, default=10, help="sync rounds (default 10)")
    parser.add_argument("--runs", type=int, default=15, help="kernel start rounds (default 15)")
    return parser.parse_args(argv)


def sites(root: Path) -> dict[str, tuple[Site, dict[str, str]]]:
    """Both sites and their server environments."""
    cmd = unpack(find_deb(), root / "envmodules")
    built = {}
    for system in SYSTEMS:
        log(f"building the {system} site")
        site = build_site(root / system, modules=system, modules_cmd=cmd, hostile=False)
        why = add_psutil(site)
        if why:
            log(why)
        built[system] = (site, server_environ(site))
    return built


def sync_once(env: dict[str, str], cache: Path | None, data: Path) -> float:
    """Seconds of one whole-process `ozkernels sync` into an empty kernels dir."""
    if data.exists():
        shutil.rmtree(data)
    run_env = {**env, "JUPYTER_DATA_DIR": str(data)}
    if cache is not None:
        run_env["XDG_CACHE_HOME"] = str(cache)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ozkernels", "sync"], env=run_env,
                   capture_output=True, timeout=300, check=True)
    return time.perf_counter() - start


def syncs(built: dict, rounds: int, scratch: Path) -> dict[str, list[float]]:
    """Cold and warm sync times per site, interleaved."""
    times: dict[str, list[float]] = {f"{s}-{k}": [] for s in SYSTEMS for k in ("cold", "warm")}
    for r in range(rounds):
        order = SYSTEMS[r % 2:] + SYSTEMS[:r % 2]
        for system in order:
            env = built[system][1]
            cold = scratch / f"cache-{system}-{r}"
            times[f"{system}-cold"].append(sync_once(env, cold, scratch / "data"))
            times[f"{system}-warm"].append(sync_once(env, cold, scratch / "data"))
            shutil.rmtree(cold, ignore_errors=True)
    return times


def starts(built: dict, rounds: int, scratch: Path) -> dict[str, list[float]]:
    """Start-to-ready of each site's analysis venv kernel, memo on and off, interleaved."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    kinds: dict[str, tuple[dict[str, str], str]] = {}
    for system in SYSTEMS:
        site, env = built[system]
        data = scratch / f"kernels-{system}"
        run_env = {**env, "JUPYTER_DATA_DIR": str(data),
                   "XDG_CACHE_HOME": str(scratch / f"cache-{system}")}
        subprocess.run([sys.executable, "-m", "ozkernels", "sync"], env=run_env,
                       capture_output=True, timeout=300, check=True)
        kdir = str(data / "kernels")
        kinds[f"{system}-memo"] = (run_env, kdir)
        kinds[f"{system}-nomemo"] = ({**run_env, "OZKERNELS_LAUNCH_CACHE": "0"}, kdir)
    times: dict[str, list[float]] = {k: [] for k in kinds}
    names = list(kinds)
    with open(SITE_DIR / "modsys-kernels.log", "w") as errors:
        for r in range(rounds + 1):
            for kind in names[r % len(names):] + names[:r % len(names)]:
                env, kdir = kinds[kind]
                km = KernelManager(kernel_name="venv-analysis",
                                   kernel_spec_manager=KernelSpecManager(kernel_dirs=[kdir]))
                t0 = time.perf_counter()
                km.start_kernel(env=env, stderr=errors)
                kc = km.client()
                kc.start_channels()
                try:
                    kc.wait_for_ready(timeout=60)
                    ready = time.perf_counter() - t0
                finally:
                    kc.stop_channels()
                    km.shutdown_kernel(now=False)
                if r:  # round 0 warms caches (and records the memos)
                    times[kind].append(ready)
    return times


def table(times: dict[str, list[float]], unit: str = "s") -> str:
    """Median and p95 per key."""
    rows = [f"| {k} | {median(v):.3f} {unit} | {p95(v):.3f} {unit} | {len(v)} |"
            for k, v in times.items()]
    return "\n".join(["| what | median | p95 | n |", "| --- | --- | --- | --- |", *rows])


def main(argv: list[str] | None = None) -> int:
    """Build, measure, report."""
    args = parse_args(argv)
    run_in_tool_venv(__file__, argv)
    SITE_DIR.mkdir(parents=True, exist_ok=True)
    root = SITE_DIR / "modsys"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    scratch = Path(tempfile.mkdtemp(prefix="ozk-modsys-"))
    try:
        built = sites(root)
        log(f"{args.syncs} sync rounds")
        sync_times = syncs(built, args.syncs, scratch)
        log(f"{args.runs} start rounds")
        start_times = starts(built, args.runs, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results = {"machine": machine(), "labels": LABELS, "sync": sync_times,
               "start": start_times}
    (SITE_DIR / "modsys-results.json").write_text(json.dumps(results, indent=1))
    print("ozkernels sync (whole process; cold: module tree listed, warm: listing cached)")
    print(table(sync_times))
    print("\nvenv kernel start-to-ready (memo: launch memo on; nomemo: module system every time)")
    print(table(start_times))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
