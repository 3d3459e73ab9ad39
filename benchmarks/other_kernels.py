"""The R kernel of an R-only conda env: start-to-ready through ozkernels next to the same
kernelspec started in an env activated by hand, interleaved.

  python3 benchmarks/other_kernels.py --runs 10     # about 2 minutes

Needs Debian's r-base-core and r-cran-irkernel, bash_kernel, Lmod and patchelf (tests/run.sh
installs them). Builds the demo/test site in benchmarks/_site/other-kernels, runs `ozkernels
sync`, `list` and `check` against it (their output is kept in that dir), then starts
  - `conda-rstats-ir`, the ozkernels kernel (launcher activates the env, execs `R ...`), and
  - `ir-by-hand`, a copy of the env's own `ir` kernelspec (relative `R`), started with the env
    activated by hand: PATH, CONDA_PREFIX, CONDA_DEFAULT_ENV, CONDA_SHLVL and what the env's
    activate.d script sets,
through jupyter_client, in alternating order, one warm-up round each. Not part of run.py or the
test suite; prints a summary and writes _site/other-kernels-results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import SITE_DIR, log, machine, median, p95, run_in_tool_venv  # noqa: E402

from ozkernels.demosite import build_site  # noqa: E402

OZK, BY_HAND = "conda-rstats-ir", "ir-by-hand"


def start_to_ready(kernels_dir: Path, name: str, env: dict[str, str]) -> float:
    """Seconds from start_kernel to a kernel_info reply; the kernel is then shut down."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name=name,
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]))
    t0 = time.perf_counter()
    km.start_kernel(env=env)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        return time.perf_counter() - t0
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def main() -> None:
    """Build, sync, list, check, then the interleaved starts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="starts of each kernel (10)")
    args = parser.parse_args()
    run_in_tool_venv(__file__)
    root = SITE_DIR / "other-kernels"
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    log(f"building the site in {root}")
    site = build_site(root, lmod=True, hostile=True, other_kernels=True)
    if "rstats" not in site.conda_envs:
        sys.exit("R and IRkernel are needed: apt-get install r-base-core r-cran-irkernel")
    env = site.environ()
    outputs = {}
    for cmd in ("sync", "list", "check"):
        log(f"ozkernels {cmd}")
        proc = subprocess.run([sys.executable, "-m", "ozkernels", cmd], env=env, text=True,
                              capture_output=True, timeout=900, check=False)
        outputs[cmd] = proc.stdout
        (root / f"ozkernels-{cmd}.txt").write_text(proc.stdout)
    prefix = os.path.realpath(site.conda_envs["rstats"])
    plain = root / "plain-kernels"
    shutil.copytree(Path(prefix) / "share" / "jupyter" / "kernels" / "ir", plain / BY_HAND)
    by_hand = dict(env, PATH=f"{prefix}/bin:{env['PATH']}", CONDA_PREFIX=prefix,
                   CONDA_DEFAULT_ENV="rstats", CONDA_SHLVL="1",
                   GDAL_DATA=f"{prefix}/share/gdal",
                   GDAL_DRIVER_PATH=f"{prefix}/lib/gdalplugins")
    kinds = {OZK: (Path(env["JUPYTER_DATA_DIR"]) / "kernels", env),
             BY_HAND: (plain, by_hand)}
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for i in range(args.runs + 1):
        order = list(kinds) if i % 2 == 0 else list(reversed(kinds))
        for name in order:
            kernels_dir, kernel_env = kinds[name]
            took = start_to_ready(kernels_dir, name, kernel_env)
            if i:  # round 0 warms the page cache
                times[name].append(took)
        log(f"round {i}/{args.runs}")
    summary = {k: {"median": median(v), "p95": p95(v), "min": min(v), "max": max(v),
                   "runs": v} for k, v in times.items()}
    for name, s in summary.items():
        print(f"{name:16s} start-to-ready median {s['median']:.3f} s  p95 {s['p95']:.3f} s  "
              f"min {s['min']:.3f}  max {s['max']:.3f}  (n={args.runs})")
    diff = summary[OZK]["median"] - summary[BY_HAND]["median"]
    print(f"ozkernels - by hand: {diff * 1000:+.0f} ms (medians)")
    result = {"machine": machine(), "summary": summary, "outputs": outputs}
    (SITE_DIR / "other-kernels-results.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
