"""Slurm kernels on a private one-node Slurm cluster: start-to-ready next to the same kernel run
locally, and how long a forced kill leaves the job in the queue.

  python3 benchmarks/slurm.py            # 15 interleaved starts per kernel, 15 forced kills

Needs the Debian packages slurmctld slurmd slurm-client munge (tests/run.sh installs them),
Lmod and patchelf (for the real test site) and ipykernel in this interpreter.  Builds the real
test site in benchmarks/_site/slurm, writes one Slurm profile for the analysis venv into the
site's jupyter_ozkernels_config.json, runs `ozkernels sync`, then:
  1. start-to-ready and graceful shutdown of the venv kernel and its Slurm kernel through
     jupyter_client, interleaved in rotated order (benchmarks/kernels.py, one warm-up round);
  2. `shutdown_kernel(now=True)` of a ready Slurm kernel until `squeue` shows no job.
Not part of run.py or the test suite; prints a summary and writes _site/slurm-results.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
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
from ozktest.slurm_cluster import Cluster, start_cluster  # noqa: E402
from realsite import add_psutil, measure, server_environ  # noqa: E402

from ozkernels.demosite import build_site  # noqa: E402

LOCAL = "venv-analysis"
PROFILE = "bench"
SLURM = f"{LOCAL}-slurm-{PROFILE}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python3 benchmarks/slurm.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="timed starts per kernel "
                        "(default 15)")
    parser.add_argument("--kills", type=int, default=15, help="forced kills timed (default 15)")
    return parser.parse_args(argv)


def prepare(root: Path, cluster: Cluster) -> dict[str, str]:
    """Build the site, enable the profile, sync; return the server environment."""
    log(f"building the real test site in {root}")
    site = build_site(root, lmod=True, hostile=False, other_kernels=False)
    why = add_psutil(site)
    if why:
        log(why)
    env = cluster.environ(server_environ(site))
    config = Path(env["JUPYTER_CONFIG_DIR"])
    config.mkdir(parents=True, exist_ok=True)
    profile = {"cpus": 1, "time": "1:00:00", "envs": ["venv:analysis"]}
    (config / "jupyter_ozkernels_config.json").write_text(json.dumps(
        {"SlurmProfiles": {"profiles": {PROFILE: profile}, "enabled": [PROFILE]}}))
    subprocess.run([sys.executable, "-m", "ozkernels", "sync"], env=env, cwd=SITE_DIR,
                   capture_output=True, timeout=300, check=True)
    kernels = Path(env["JUPYTER_DATA_DIR"]) / "kernels"
    for name in (LOCAL, SLURM):
        if not (kernels / name / "kernel.json").exists():
            msg = f"ozkernels sync wrote no kernel {name} in {kernels}"
            raise RuntimeError(msg)
    return env


def starts(env: dict[str, str], runs: int) -> dict:
    """kernels.py over the local and the Slurm kernel, interleaved."""
    data = measure(Path(sys.executable), env, {"local": LOCAL, "slurm": SLURM}, runs)
    if data["errors"]:
        msg = f"kernels failed: {data['errors']}"
        raise RuntimeError(msg)
    return data["results"]


def forced_kills(env: dict[str, str], cluster: Cluster, runs: int) -> dict[str, list[float]]:
    """Seconds from shutdown_kernel(now=True) of a ready Slurm kernel until squeue is empty."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    ksm = KernelSpecManager(kernel_dirs=[str(Path(env["JUPYTER_DATA_DIR"]) / "kernels")])
    result: dict[str, list[float]] = {"squeue_empty": [], "call": []}
    with open(SITE_DIR / "slurm-kills.log", "w") as err:
        for _ in range(runs):
            km = KernelManager(kernel_name=SLURM, kernel_spec_manager=ksm)
            km.start_kernel(env=env, stderr=err)
            kc = km.client()
            kc.start_channels()
            try:
                kc.wait_for_ready(timeout=60)
            finally:
                kc.stop_channels()
            if not cluster.jobs():
                msg = "the Slurm kernel is ready but squeue shows no job"
                raise RuntimeError(msg)
            t0 = time.perf_counter()
            km.shutdown_kernel(now=True)
            result["call"].append(time.perf_counter() - t0)
            while cluster.jobs():
                if time.perf_counter() - t0 > 60:
                    msg = f"jobs left 60 s after a forced kill: {cluster.jobs()}"
                    raise RuntimeError(msg)
                time.sleep(0.01)
            result["squeue_empty"].append(time.perf_counter() - t0)
    return result


def stats(values: list[float]) -> str:
    """'median (p95, n)' in seconds."""
    return f"{median(values):.3f} s (p95 {p95(values):.3f} s, n={len(values)})"


def main(argv: list[str] | None = None) -> int:
    """Start the cluster, measure, stop the cluster, report."""
    args = parse_args(argv)
    run_in_tool_venv(__file__, argv)
    SITE_DIR.mkdir(exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="ozs-bench-", dir="/tmp"))
    log(f"starting a private Slurm cluster in {base}")
    cluster = start_cluster(base)
    try:
        env = prepare(SITE_DIR / "slurm", cluster)
        log(f"{args.runs} interleaved starts of {LOCAL} and {SLURM}")
        started = starts(env, args.runs)
        log(f"{args.kills} forced kills of {SLURM}")
        kills = forced_kills(env, cluster, args.kills)
        cluster.wait_empty(30)
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
    raw = {"machine": machine(), "starts": started, "kills": kills,
           "command": " ".join(shlex.quote(a) for a in ["python3", "benchmarks/slurm.py",
                                                          *(argv or sys.argv[1:])])}
    (SITE_DIR / "slurm-results.json").write_text(json.dumps(raw, indent=1))
    local, slurm = started["local"], started["slurm"]
    lines = [
        f"command: {raw['command']}",
        f"machine: {raw['machine']['CPU']}, {raw['machine']['cores']} cores",
        f"start-to-ready, local kernel {LOCAL}:        {stats(local['start'])}",
        f"start-to-ready, Slurm kernel {SLURM}: {stats(slurm['start'])}",
        f"  Slurm / local (medians): {median(slurm['start']) / median(local['start']):.2f}x",
        f"graceful shutdown, local:  {stats(local['shutdown'])}",
        f"graceful shutdown, Slurm:  {stats(slurm['shutdown'])}",
        f"forced kill (shutdown_kernel(now=True)) to squeue empty: "
        f"{stats(kills['squeue_empty'])}",
        f"  of which the shutdown_kernel(now=True) call: {stats(kills['call'])}",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
