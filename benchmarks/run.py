"""Benchmark ozkernels against its peers on one machine, in one run, and write RESULTS.md.

  python3 benchmarks/run.py      # defaults: 500 venvs, 100 conda envs, 300 modules (20 Pythons)

Sections:
  1. discovery and sync as whole processes on a large synthetic site (`ozkernels list --json`,
     cold and no-op `ozkernels sync`) side by side with `nb_venv_kernels scan`, interleaved;
  2. filesystem metadata syscalls per environment of a no-op sync (strace -f), minus the same
     run on a site with zero environments;
  3. kernel start-to-ready and graceful shutdown through jupyter_client on the real test site
     (real interpreters and ipykernel): a plain `ipykernel install` spec, ozkernels' venv and
     conda kernels and an envkernel `lmod` kernel, interleaved, as ratios to the plain spec;
  4. REST latency of a real jupyter_server: /api/kernelspecs, and /ozkernels/api/environments
     once ozkernels has a server extension;
  5. kernel start on a login node: the server has modules loaded and no `module` function, the
     site a large EasyBuild-like Lmod hierarchy (default 3,000 modulefiles); launcher
     time-to-exec with and without the launch memo, start-to-ready of ozkernels' venv, conda
     and module kernels next to plain specs and same-env controls (`--only loginnode`, ~7 minutes);
  6. the server extension's change detection on the synthetic site: paths and time of the quick
     check (every second) and the full one, and creation/deletion of a venv to the
     kernelspecs-changed event (`--only watch`; also `python3 benchmarks/watch.py`).
Peers (nb_venv_kernels, envkernel) and ozkernels' dependencies are installed from PyPI into
their own venvs under benchmarks/_site/venvs (kept between runs); ozkernels itself is this
checkout.  Everything the run builds lives in benchmarks/_site/ (git-ignored).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

import api  # noqa: E402
import discovery  # noqa: E402
import loginnode  # noqa: E402
import realsite  # noqa: E402
import report  # noqa: E402
import synthsite  # noqa: E402
import syscalls  # noqa: E402
import watch  # noqa: E402
from common import (  # noqa: E402
    SITE_DIR,
    ensure_tool,
    log,
    machine,
    package_version,
    run_in_tool_venv,
)

SECTIONS = ("discovery", "syscalls", "kernels", "api", "loginnode", "watch")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python3 benchmarks/run.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venvs", type=int, default=500, help="venvs on the synthetic site "
                        "(default 500)")
    parser.add_argument("--conda", type=int, default=100, help="conda-layout envs (default 100)")
    parser.add_argument("--modules", type=int, default=300, help="Lua modulefiles in the Lmod "
                        "hierarchy (default 300)")
    parser.add_argument("--pythons", type=int, default=20, help="how many of the modules are "
                        "Pythons (default 20)")
    parser.add_argument("--runs", type=int, default=7, help="rounds of section 1, median over "
                        "them (default 7, at least 5 for the targets)")
    parser.add_argument("--kernel-runs", type=int, default=20, help="timed starts per kernel "
                        "kind in section 3 (default 20)")
    parser.add_argument("--api-requests", type=int, default=50, help="GETs per endpoint in "
                        "section 4 (default 50)")
    parser.add_argument("--login-modules", type=int, default=3000, help="modulefiles in the "
                        "login-node site's Lmod hierarchy in section 5 (default 3000)")
    parser.add_argument("--login-runs", type=int, default=25, help="interleaved rounds of "
                        "section 5 (default 25, at least 25 for the targets)")
    parser.add_argument("--only", "--sections", action="append", choices=SECTIONS,
                        dest="only", help="run only these sections (repeatable); default all")
    parser.add_argument("--src", type=Path, default=HERE.parent,
                        help="the ozkernels checkout to measure (default: this one); e.g. a "
                        "copy with a candidate speed fix")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md",
                        help="where to write the report (default benchmarks/RESULTS.md)")
    return parser.parse_args(argv)


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run."""
    parts = ["python3", "benchmarks/run.py"]
    defaults = parse_args([])
    for name in ("venvs", "conda", "modules", "pythons", "runs", "kernel_runs", "api_requests",
                 "login_modules", "login_runs"):
        if getattr(args, name) != getattr(defaults, name):
            parts.append(f"--{name.replace('_', '-')}={getattr(args, name)}")
    if args.src != defaults.src.resolve():
        parts.append(f"--src={args.src}")
    for only in args.only or []:
        parts.append(f"--only={only}")
    return " ".join(shlex.quote(p) for p in parts)


def profile_sync(python: Path, env: dict[str, str], out: Path) -> str:
    """Evidence for a slow sync: cProfile of a no-op sync and the import-time leaders."""
    code = ("import cProfile, sys; sys.argv = ['ozkernels', 'sync']; "
            "from ozkernels.app import main; "
            f"cProfile.run('main()', {str(out)!r})")
    try:
        subprocess.run([str(python), "-c", code], env=env, capture_output=True, timeout=300,
                       check=False)
        buf = io.StringIO()
        stats = pstats.Stats(str(out), stream=buf)
        runs = [calls for (path, _, func), (_, calls, *_) in stats.stats.items()
                if func == "environments" and path.endswith("discovery.py")]
        repeated = (f"Discovery (`Discovery.environments`) ran {runs[0]} times in this one "
                    "sync.\n\n") if runs and runs[0] > 1 else ""
        stats.sort_stats("cumulative").print_stats(
            r"/ozkernels/(?!.*site-packages)", 20)
        prof = "\n".join(line for line in buf.getvalue().splitlines()
                         if line.strip() and not line.startswith(("   Ordered", "   List")))
        imp = subprocess.run([str(python), "-X", "importtime", "-c", "import ozkernels.app"],
                             env=env, capture_output=True, text=True, timeout=120,
                             check=False).stderr
        imports = import_leaders(imp)
        return (f"{repeated}cProfile of a no-op `ozkernels sync`, ozkernels functions by "
                f"cumulative time:\n\n```\n{prof}\n```\n\nSlowest top-level imports of "
                f"`ozkernels.app` (-X importtime, cumulative):\n\n```\n{imports}\n```")
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        return f"(profiling failed: {e})"


def import_leaders(importtime: str, depth: int = 2, count: int = 12) -> str:
    """The slowest imports down to `depth` levels below the top, from -X importtime output."""
    rows = []
    for line in importtime.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2]
        level = (len(name) - len(name.lstrip(" ")) - 1) // 2
        if level <= depth:
            rows.append((int(parts[1]), "  " * level + name.strip()))
    top = sorted(rows, reverse=True)[:count]
    return "\n".join(f"{us / 1000:7.1f} ms  {name}" for us, name in top)


def main(argv: list[str] | None = None) -> int:
    """Run the sections asked for and write the report."""
    args = parse_args(argv)
    args.out, args.src = args.out.resolve(), args.src.resolve()
    run_in_tool_venv(__file__, argv, args.src)
    sections = args.only or list(SECTIONS)
    started = time.monotonic()
    SITE_DIR.mkdir(exist_ok=True)
    # `python -m ozkernels` and `-c` put the working dir first on sys.path: from the checkout's
    # root they would import that tree instead of the one installed (--src) in the venv.
    os.chdir(SITE_DIR)
    raw: dict = {"machine": machine(), "command": command_line(args), "versions": {}}
    notes: list[str] = []
    ozk_python, why = ensure_tool("ozkernels", args.src)
    if not ozk_python:
        log(why)
        return 1
    peers = {}
    for name in ("nb_venv_kernels", "envkernel"):
        python, why = ensure_tool(name)
        peers[name] = python
        if python:
            raw["versions"][name] = package_version(python, name)
        else:
            notes.append(f"{name} could not be installed, so it is left out: {why}")
    for dist in ("jupyter_client", "jupyter_server", "traitlets"):
        raw["versions"][dist] = package_version(ozk_python, dist)
    sizes = synthsite.Sizes(args.venvs, args.conda, args.modules, args.pythons)
    raw["sizes"] = {**sizes.__dict__, "envs": sizes.envs}
    synth = None
    if {"discovery", "syscalls", "api", "watch"} & set(sections):
        log(f"building the synthetic site ({sizes})")
        synth = synthsite.build(SITE_DIR / "synth", sizes)
        synth_env = synthsite.environ(synth)
    checks: list[report.Check] = []
    body: list[str] = []

    def section(title: str, fn) -> None:
        """Run one section; a failure is reported, not fatal."""
        t0 = time.monotonic()
        try:
            text, cks = fn()
            checks.extend(cks)
            body.append(f"## {title}\n\n{text}")
        except Exception as e:  # noqa: BLE001 - the other sections still run
            traceback.print_exc()
            body.append(f"## {title}\n\nNot measured: `{type(e).__name__}: {e}`")
            raw.setdefault("not_measured", []).append(title)
        log(f"{title}: {time.monotonic() - t0:.0f} s")

    def sec_discovery():
        d = discovery.run(synth.root, synth.home, synth_env, ozk_python,
                          peers["nb_venv_kernels"], args.runs)
        raw["discovery"] = d
        return report.discovery_section(d, raw["sizes"])

    def sec_syscalls():
        if not syscalls.available():
            raise RuntimeError("strace is not installed (apt-get install strace)")
        empty = synthsite.build(SITE_DIR / "empty", synthsite.Sizes(0, 0, 0, 0))
        empty_env = synthsite.environ(empty)
        sync = [str(ozk_python), "-m", "ozkernels", "sync"]
        counts = {}
        for label, site, env in (("full", synth, synth_env), ("empty", empty, empty_env)):
            subprocess.run(sync, env=env, capture_output=True, timeout=300, check=True)
            out = syscalls.trace(sync, env, SITE_DIR / f"strace-ozkernels-{label}.txt")
            counts[label] = syscalls.parse(out, site.root)
        result = {"ozkernels": syscalls.per_env(counts["full"], counts["empty"], sizes.envs)}
        full_trace = SITE_DIR / "strace-ozkernels-full.txt"
        result["samples"] = {
            label: syscalls.calls_touching(full_trace, synth.root, needles)
            for label, needles, present in (
                ("venv `~/venvs/env0000` and its kernel",
                 ["/venvs/env0000/", "/venvs/env0000\"", "/kernels/venv-env0000/"], sizes.venvs),
                ("conda env `conda000` and its kernel",
                 ["/conda000/", "/conda000\"", "/kernels/conda-conda000/"], sizes.conda))
            if present}
        if peers["nb_venv_kernels"]:
            pc = {}
            found = 0
            for label, site, env in (("full", synth, synth_env), ("empty", empty, empty_env)):
                scan = [str(peers["nb_venv_kernels"].parent / "nb_venv_kernels"), "scan",
                        "--path", str(site.home), "--json"]
                discovery.reset_nbvk(site.home)
                _, data = discovery.settle_nbvk(scan, env, site.home)
                if label == "full":
                    found = len(data["environments"])
                out = syscalls.trace(scan, env, SITE_DIR / f"strace-nbvk-{label}.txt",
                                     cwd=str(site.home))
                pc[label] = syscalls.parse(out, site.root)
            result["nb_venv_kernels"] = syscalls.per_env(pc["full"], pc["empty"], found)
        raw["syscalls"] = result
        return report.syscalls_section(result)

    def sec_api():
        with_ext = api.extension_available(ozk_python, synth_env)
        subprocess.run([str(ozk_python), "-m", "ozkernels", "sync"], env=synth_env,
                       capture_output=True, timeout=300, check=True)
        a = api.run(ozk_python, synth_env, synth.root / "jupyter-config", synth.home,
                    args.api_requests, with_ext)
        # Control: the same number of plain specs, no extension, so the ratio shows what
        # ozkernels' specs and extension add to jupyter_server's own cost per spec.
        plain_data = synth.root / "plain-data"
        shutil.rmtree(plain_data, ignore_errors=True)
        api.plain_copy(Path(synth_env["JUPYTER_DATA_DIR"]) / "kernels", plain_data / "kernels")
        plain_env = {**synth_env, "JUPYTER_DATA_DIR": str(plain_data)}
        a["controls"] = {
            label: api.run(ozk_python, env, synth.root / "jupyter-config", synth.home,
                           args.api_requests, False)["paths"].get(api.KERNELSPECS)
            for label, env in (("ozkernels' specs, server without the ozkernels extension",
                                synth_env),
                               ("the same envs' plain `ipykernel install` specs (with its logos), "
                                "server without the ozkernels extension", plain_env))}
        parts = subprocess.run([str(ozk_python), str(HERE / "apiparts.py")], env=synth_env,
                               capture_output=True, text=True, timeout=600, check=False)
        a["parts"] = json.loads(parts.stdout) if parts.returncode == 0 else {
            "error": parts.stderr.strip()[-500:]}
        raw["api"] = a
        text, cks = report.api_section(a)
        if not with_ext:
            text += ("\n\nozkernels has no server extension yet "
                     "(`ozkernels._jupyter_server_extension_points` is missing), so "
                     "`/ozkernels/api/environments` was not measured.")
            cks.append(report.Check("`/ozkernels/api/environments` p50", "-", "<= 50 ms", None))
        text += (f"\n\nServer: `jupyter server` {raw['versions'].get('jupyter_server')} on "
                 "127.0.0.1 with the synthetic site's environment, after a sync (so "
                 "/api/kernelspecs lists every kernel ozkernels wrote); one keep-alive "
                 "connection, the endpoints requested alternately.")
        return text, cks

    def sec_kernels():
        site, env, kinds, knotes = realsite.prepare(SITE_DIR / "real", ozk_python,
                                                    peers["envkernel"])
        k = realsite.measure(ozk_python, env, kinds, args.kernel_runs)
        k["overhead"] = realsite.launcher_overhead(env, kinds, args.kernel_runs)
        raw["kernels"] = k
        text, cks = report.kernels_section(k)
        text += "\n\n" + "\n".join(f"- {n}" for n in [*knotes, *realsite.NOTES])
        return text, cks

    def sec_loginnode():
        d = loginnode.run(ozk_python, SITE_DIR / "login", args.login_modules, args.login_runs)
        raw["loginnode"] = d
        return report.loginnode_section(d)

    def sec_watch():
        d = watch.run(ozk_python, synth_env, synth.home, watch.base_of(synth.home))
        raw["watch"] = d
        return watch.section(d)

    if "discovery" in sections:
        section("1. Discovery and sync (whole process)", sec_discovery)
    if "syscalls" in sections:
        section("2. Filesystem metadata calls per environment (no-op sync)", sec_syscalls)
    if "kernels" in sections:
        section("3. Kernel start-to-ready and graceful shutdown", sec_kernels)
    if "api" in sections:
        section("4. Server API latency", sec_api)
    if "loginnode" in sections:
        section("5. Kernel start on a login node (server modules loaded, large module tree)",
                sec_loginnode)
    if "watch" in sections:
        section("6. Change detection of the server extension (push refresh)", sec_watch)
    misses = [c for c in checks if c.ok is False]
    bounds = []
    if any(c.name.startswith(("no-op sync", "cold sync")) for c in misses) and synth:
        subprocess.run([str(ozk_python), "-m", "ozkernels", "sync"], env=synth_env,
                       capture_output=True, timeout=300, check=True)
        bounds.append(profile_sync(ozk_python, synth_env, SITE_DIR / "sync.prof"))
    raw["elapsed"] = time.monotonic() - started
    md = render(raw, checks, body, bounds, notes)
    args.out.write_text(md)
    (SITE_DIR / "results.json").write_text(json.dumps(raw, indent=1, default=str))
    print(md)
    log(f"wrote {args.out} in {raw['elapsed']:.0f} s")
    return 0


def render(raw: dict, checks: list, body: list[str], bounds: list[str],
           notes: list[str]) -> str:
    """The whole RESULTS.md."""
    m = raw["machine"]
    lines = ["# ozkernels benchmarks", "",
             "Written by the command below; rerun it to refresh. Timings on a shared 2-core "
             "machine are noisy: medians over interleaved runs.", "",
             f"    {raw['command']}", "",
             "## Machine", "",
             report.table(["", ""], [[k, v] for k, v in m.items()]), "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in raw["versions"].items()) + ".",
             f" Whole run: {raw['elapsed']:.0f} s.", "",
             "## Targets", "", report.targets_table(checks), ""]
    lines += [f"- {n}" for n in notes]
    lines += ["", *[b + "\n" for b in body]]
    lines += ["## What bounds it", ""]
    if any(c.ok is False for c in checks):
        lines += [*(f"{b}\n" for b in report.bounds(raw, checks)), *bounds]
    elif raw.get("not_measured"):
        lines.append("Every target measured was met; not measured (see the section): "
                     + "; ".join(raw["not_measured"]) + ".")
    else:
        lines.append("Every target measured was met.")
    return "\n".join(lines).rstrip() + "\n"

if __name__ == "__main__":
    sys.exit(main())
