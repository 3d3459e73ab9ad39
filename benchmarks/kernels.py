"""Section 3: kernel start-to-ready and graceful shutdown through jupyter_client.

Run as a script in the environment a Jupyter server would have on the site (so kernels inherit
it, as they do from a server):  python kernels.py --runs 20 KIND=KERNEL_NAME ...
Prints JSON: per kind, the start and shutdown seconds of every run and the kernel's exit codes.
Each round starts the kinds in a rotated order, so drift and noise hit them alike.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

from jupyter_client.manager import KernelManager

READY_TIMEOUT = 60


def once(kernel_name: str, kill: bool = False) -> tuple[float, float, int | None, float | None]:
    """Start a kernel, wait until it answers, shut it down gracefully; return the two times
    the kernel process' exit code (negative: it had to be killed) and when the process had
    gone after the shutdown began."""
    km = KernelManager(kernel_name=kernel_name)
    start = time.perf_counter()
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=READY_TIMEOUT)
        ready = time.perf_counter() - start
    finally:
        kc.stop_channels()
    proc = getattr(km.provisioner, "process", None)
    gone: list[float] = []
    start = time.perf_counter()
    if proc is not None:
        # jupyter_client checks every 0.1 s whether the kernel has exited; this sees it at once.
        threading.Thread(target=_watch_exit, args=(proc, start, gone), daemon=True).start()
    km.shutdown_kernel(now=kill)
    down = time.perf_counter() - start
    code = proc.poll() if proc is not None else None
    return ready, down, code, gone[0] if gone else None


def _watch_exit(proc: Any, start: float, gone: list[float]) -> None:
    deadline = start + 30
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            gone.append(time.perf_counter() - start)
            return
        time.sleep(0.002)


def main(argv: list[str] | None = None) -> int:
    """Measure every KIND=KERNEL_NAME pair, interleaved, and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="Timed rounds (default 20).")
    parser.add_argument("--warmup", type=int, default=1, help="Untimed rounds first (default 1).")
    parser.add_argument("--kill", action="store_true", help="Stop each kernel with "
                        "shutdown_kernel(now=True) (when shutdown is not measured).")
    parser.add_argument("--group", type=int, default=1, metavar="N", help="The kinds come in "
                        "groups of N (a control and what is compared to it): keep each group "
                        "together, rotating which goes first (default 1: no groups).")
    parser.add_argument("kinds", nargs="+", metavar="KIND=KERNEL_NAME")
    args = parser.parse_args(argv)
    kinds = dict(k.split("=", 1) for k in args.kinds)
    labels = list(kinds)
    results = {k: {"start": [], "shutdown": [], "exit_codes": [], "gone": []} for k in labels}
    errors: dict[str, str] = {}
    retried: dict[str, list[str]] = {k: [] for k in labels}
    for i in range(args.warmup + args.runs):
        order = labels[i % len(labels):] + labels[:i % len(labels)]
        if args.group > 1:
            # Each kernel next to its controls, each of them first in turn, so a ratio's sides
            # are seconds apart and none always goes first.
            n = args.group
            groups = [labels[j:j + n] for j in range(0, len(labels), n)]
            groups = groups[i % len(groups):] + groups[:i % len(groups)]
            order = [k for g in groups for k in g[i % len(g):] + g[:i % len(g)]]
        for label in order:
            if label in errors:
                continue
            try:
                ready, down, code, gone = once(kinds[label], args.kill)
            except Exception as e:  # noqa: BLE001 - one broken kind must not stop the others
                # A start can lose a race for its random ports with other processes on a
                # shared machine ("Address already in use"): that kind is retried in this
                # round, and given up only when it keeps failing.
                retried[label].append(f"{type(e).__name__}: {e}")
                if len(retried[label]) >= 3:
                    errors[label] = retried[label][-1]
                    continue
                try:
                    ready, down, code, gone = once(kinds[label], args.kill)
                except Exception as e2:  # noqa: BLE001
                    retried[label].append(f"{type(e2).__name__}: {e2}")
                    errors[label] = retried[label][-1]
                    continue
            if i >= args.warmup:
                results[label]["start"].append(ready)
                results[label]["shutdown"].append(down)
                results[label]["exit_codes"].append(code)
                if gone is not None:
                    results[label]["gone"].append(gone)
        print(f"[kernels] round {i + 1}/{args.warmup + args.runs} done", file=sys.stderr,
              flush=True)
    json.dump({"results": results, "errors": errors, "kernels": kinds,
               "retried": {k: v for k, v in retried.items() if v}}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
