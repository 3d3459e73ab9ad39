"""Where a request's time goes: the work behind each endpoint, timed in-process (no HTTP).

Run with ozkernels' venv interpreter in the site's environment; prints JSON of medians (s).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time


def _median_of(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    """Time the pieces and print them."""
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_server.services.kernelspecs.handlers import kernelspec_model

    class Handler:
        base_url = "/"

    ksm = KernelSpecManager()
    specs = ksm.get_all_specs()

    async def fan_out():
        tasks = {n: asyncio.create_task(asyncio.to_thread(
            kernelspec_model, Handler, n, i["spec"], i["resource_dir"])) for n, i in specs.items()}
        return {n: await t for n, t in tasks.items()}

    models = asyncio.run(fan_out())
    out = {
        "/api/kernelspecs": {
            "KernelSpecManager.get_all_specs()": _median_of(ksm.get_all_specs, runs),
            "kernelspec_model() per spec, each in asyncio.to_thread (as jupyter_server does)":
                _median_of(lambda: asyncio.run(fan_out()), runs),
            "the same, in one loop": _median_of(lambda: [kernelspec_model(
                Handler, n, i["spec"], i["resource_dir"]) for n, i in specs.items()], runs),
            "json.dumps(model)": _median_of(lambda: json.dumps({"kernelspecs": models}), runs),
        },
        "specs": len(specs),
    }
    try:
        import ozkernels

        ozkernels._jupyter_server_extension_points  # noqa: B018 - the extension's marker
    except (ImportError, AttributeError):
        print(json.dumps(out))
        return 0
    from ozkernels.manager import KernelsManager

    manager = KernelsManager()
    plan = manager.plan()
    rows = [r.to_dict() for r in plan.rows]
    out["/ozkernels/api/environments"] = {
        "KernelsManager().plan() (discovery + plan)":
            _median_of(lambda: manager.plan(), runs),
        "rows to dicts": _median_of(lambda: [r.to_dict() for r in plan.rows], runs),
        "json.dumps(model)": _median_of(lambda: json.dumps({"environments": rows}), runs),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
