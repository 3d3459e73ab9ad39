"""Change detection of the server extension on a large site: cost per check, time to announce.

  python3 benchmarks/watch.py        # 500 venvs + 100 conda envs + 20 module Pythons; ~1 minute

Measures, with the synthetic site's environment, in a child process that imports ozkernels the
way the server does:
  - the quick check (every `watch_interval`, 1 s by default): how many paths it stats and how
    long one check takes, next to the full check (every `sync_interval`, 10 s) that also stats
    every environment's own files, and the start-failure poll (one stat);
  - from `python -m venv`-like creation of a venv in a venv root to the server's
    kernelspecs-changed event (the quick check, then a sync), and the same for its deletion:
    the server's part of the push refresh (the browser adds its GET /api/kernelspecs, about
    0.1 s; tests/test_browser.py measures the whole way to the Launcher card).
Also a section of `benchmarks/run.py` (`--only watch`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

# What a per-check cost must stay under on this 600-env site to be worth running every second.
QUICK_TARGET = 0.010


def probe(rounds: int, new_venv: str, base_python: str) -> dict:
    """In the site's environment: time the checks and the announce of a created/deleted venv."""
    import asyncio
    import logging

    from synthsite import make_venv

    from ozkernels.failures import FailureWatch, failures_dir
    from ozkernels.manager import KernelsManager
    from ozkernels.server.service import Inventory
    from ozkernels.server.watch import Snapshot, watch_paths

    manager = KernelsManager()
    manager.run_sync()
    discovery = manager.discovery()
    context = discovery.context()
    envs = [row.env for row in manager.plan(context).rows]
    full_paths = watch_paths(manager, discovery, context, envs)
    quick_paths = watch_paths(manager, discovery, context, [])
    # As the background sees them once the changes are older than the racy window: every path
    # is stat'ed and compared (a racy snapshot would answer "changed" without a stat).
    full = Snapshot(Snapshot.take(full_paths).stamps)
    quick = Snapshot(full.stamps).subset(quick_paths, now=0)
    failures = FailureWatch(failures_dir(), since=time.time())

    def timing(fn) -> list[float]:
        fn()
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return times

    assert not quick.changed() and not full.changed(), "the site changed while measured"
    result: dict = {"envs": len(envs), "quick_paths": len(quick_paths),
                    "full_paths": len(full_paths),
                    "quick": timing(quick.changed), "full": timing(full.changed),
                    "failures": timing(failures.poll)}
    t0 = time.perf_counter()
    manager.run_sync()
    result["noop_sync"] = time.perf_counter() - t0

    async def announce_times() -> dict[str, float]:
        seen: dict[str, float] = {}
        got = asyncio.Event()

        def announce(action: str, **data) -> None:
            if action == "kernelspecs-changed":
                for key in ("added", "removed"):
                    if any(name.endswith(Path(new_venv).name) for name in data.get(key, [])):
                        seen[key] = time.perf_counter()
                        got.set()

        inventory = Inventory(KernelsManager(), logging.getLogger("watch"), interval=10.0,
                              watch_interval=1.0, announce=announce)
        await inventory.sync()
        task = asyncio.create_task(inventory.run_background())
        await asyncio.sleep(1.5)  # past the racy window of the first snapshot
        times = {}
        for step in ("added", "removed"):
            got.clear()
            t0 = time.perf_counter()
            if step == "added":
                make_venv(Path(new_venv), Path(base_python), ipykernel=True, system=False)
            else:
                shutil.rmtree(new_venv)
            await asyncio.wait_for(got.wait(), 60)
            times[step] = seen[step] - t0
            await asyncio.sleep(2.5)
        task.cancel()
        return times

    result["announce"] = asyncio.run(announce_times())
    return result


def run(python: Path, env: dict[str, str], home: Path, base_python: Path,
        rounds: int = 200) -> dict:
    """Run the probe with the site's environment; its JSON."""
    new_venv = home / "venvs" / "watch-bench-new"
    shutil.rmtree(new_venv, ignore_errors=True)
    out = subprocess.run([str(python), str(Path(__file__).resolve()), "--probe",
                          "--rounds", str(rounds), "--new-venv", str(new_venv),
                          "--base-python", str(base_python)],
                         env={**env, "PYTHONPATH": str(HERE)},
                         capture_output=True, text=True, timeout=900, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip()[-2000:])
    return json.loads(out.stdout.splitlines()[-1])


def base_of(home: Path) -> Path:
    """The module Python the site's first venv was made on (new venvs are made the same way)."""
    cfg = (home / "venvs" / "env0000" / "pyvenv.cfg").read_text()
    line = next(x for x in cfg.splitlines() if x.startswith("home = "))
    return Path(line.split(" = ", 1)[1]).parent


def section(data: dict) -> tuple[str, list]:
    """Markdown and the targets."""
    from report import Check

    med = {k: statistics.median(data[k]) for k in ("quick", "full", "failures")}
    ms = {k: v * 1000 for k, v in med.items()}
    text = (
        f"On the synthetic site with {data['envs']} environments, one quick check (every "
        f"`watch_interval` = 1 s) stats {data['quick_paths']} paths in {ms['quick']:.2f} ms "
        f"(median of {len(data['quick'])}); the full check (every `sync_interval` = 10 s) "
        f"stats {data['full_paths']} paths in {ms['full']:.2f} ms; the start-failure poll "
        f"costs {ms['failures'] * 1000:.0f} us (one stat). Per minute that is "
        f"{60 * med['quick'] + 6 * med['full']:.3f} s of one thread, off the event loop. A "
        f"check that sees a change runs a sync ({data['noop_sync']:.2f} s when it finds "
        f"nothing to do).\n\n"
        f"A venv created in a venv root was announced (kernelspecs-changed, after the sync "
        f"wrote its kernel) {data['announce']['added']:.2f} s after its creation started; "
        f"its deletion {data['announce']['removed']:.2f} s after `rm -r`.\n")
    checks = [
        Check("quick change check per second (600-env site)", f"{ms['quick']:.2f} ms",
              f"< {QUICK_TARGET * 1000:.0f} ms", med["quick"] < QUICK_TARGET),
        Check("new venv -> kernelspecs-changed event", f"{data['announce']['added']:.2f} s",
              "< 5 s", data["announce"]["added"] < 5),
        Check("deleted venv -> kernelspecs-changed event",
              f"{data['announce']['removed']:.2f} s", "< 10 s",
              data["announce"]["removed"] < 10),
    ]
    return text, checks


def main() -> int:
    """Standalone: build (or rebuild) a 600-env synthetic site and report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--new-venv", help=argparse.SUPPRESS)
    parser.add_argument("--base-python", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=200, help="checks timed (default 200)")
    parser.add_argument("--venvs", type=int, default=500)
    parser.add_argument("--conda", type=int, default=100)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(args.rounds, args.new_venv, args.base_python)))
        return 0
    import synthsite
    from common import SITE_DIR

    sizes = synthsite.Sizes(args.venvs, args.conda, 300, 20)
    site = synthsite.build(SITE_DIR / "watch", sizes)
    env = synthsite.environ(site)
    data = run(Path(sys.executable), env, site.home, base_of(site.home))
    text, checks = section(data)
    print(text)
    for c in checks:
        print(f"{c.verdict:9} {c.name}: {c.measured} (target {c.target})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
