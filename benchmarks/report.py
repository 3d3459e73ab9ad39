"""RESULTS.md: the machine, the command, one table per section, targets, and what bounds a miss."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

TARGETS = {
    "noop": 0.3,
    "noop_vs_nbvk": 1 / 3,
    "cold": 1.5,
    "metadata_per_env": 10,
    "start_ratio": 1.10,
    "shutdown": 0.3,
    "api_p50": 0.050,
    "login_start_ratio": 1.05,
    "login_exec": 0.030,
}


@dataclass
class Check:
    """One target and whether the run met it."""

    name: str
    measured: str
    target: str
    ok: bool | None  # None: not measured

    @property
    def verdict(self) -> str:
        """PASS, FAIL or n/a."""
        return "n/a" if self.ok is None else ("PASS" if self.ok else "**FAIL**")


def s(x: float | None) -> str:
    """Seconds, 3 decimals."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def ms(x: float | None) -> str:
    """Milliseconds, 1 decimal."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 1000:.1f}"


def paired_ratio(xs: list[float], ys: list[float]) -> float:
    """Median of per-round ratios x/y (rounds interleaved, so drift in load cancels); the ratio
    of medians when the rounds do not pair up."""
    if xs and len(xs) == len(ys) and all(ys):
        return statistics.median(x / y for x, y in zip(xs, ys))
    if xs and ys:
        return statistics.median(xs) / statistics.median(ys)
    return float("nan")


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def discovery_section(d: dict, sizes: dict) -> tuple[str, list[Check]]:
    """Section 1."""
    c = d["commands"]
    nbvk = c.get("nbvk", {}).get("median")
    nbvk_times = c.get("nbvk", {}).get("times", [])
    rows = []
    order = ["list", "cold", "noop", "nbvk_first", "nbvk", "kslist", "import", "jupyter_core",
             "pass"]
    for key in order:
        if key not in c:
            continue
        x = c[key]
        found = x.get("found")
        per_env = ms(x["median"] / found) if found else "-"
        ratio = f"{paired_ratio(x['times'], nbvk_times):.2f}x" if nbvk else "-"
        rows.append([x["label"], s(x["median"]), s(x["p95"]), str(x["runs"]),
                     str(found) if found is not None else "-", per_env, ratio])
    text = table(["command (whole process)", "median s", "p95 s", "runs",
                  "envs (specs) found", "ms per env (spec)", "vs nb_venv_kernels repeat scan*"],
                 rows)
    noop, cold = c["noop"]["median"], c["cold"]["median"]
    vs_nbvk = paired_ratio(c["noop"]["times"], nbvk_times) if nbvk else None
    checks = [
        Check("no-op sync", f"{s(noop)} s", f"<= {TARGETS['noop']} s", noop <= TARGETS["noop"]),
        Check("no-op sync vs nb_venv_kernels scan", f"{vs_nbvk:.2f}x" if vs_nbvk else "-",
              "<= 0.33x", vs_nbvk <= TARGETS["noop_vs_nbvk"] if vs_nbvk else None),
        Check("cold sync", f"{s(cold)} s", f"<= {TARGETS['cold']} s", cold <= TARGETS["cold"]),
    ]
    notes = [
        f"Site: {sizes['venvs']} venvs, {sizes['conda']} conda envs, {sizes['modules']} Lua "
        f"modules of which {sizes['pythons']} Pythons ({sizes['envs']} environments in all); "
        "half the venvs behind `~/envs -> /fred/...`, half the conda envs behind "
        "`~/.conda -> /fred/...`.",
        f"ozkernels finds every environment; {d.get('kernels', '?')} of them have ipykernel "
        "and get a kernel (the cold sync writes them all, the no-op sync checks them all); "
        "`jupyter kernelspec list` counts kernel specs.",
        "*cold* = no kernel specs and no ozkernels cache (the spider cache is rebuilt by running "
        "Lmod's spider); *no-op* = a second sync that finds nothing to change (checked: zero "
        "actions). *first* nb_venv_kernels scan = empty registry; *repeat* = the scan run again, "
        "its cheapest case, used for the ratios.",
        "*Ratios are medians of the per-round ratios (each round runs every command once, so "
        "a burst of load on this shared machine hits both sides of a ratio alike).",
        "nb_venv_kernels skips symlinked and hidden dirs, so it does not see the venvs behind "
        "`~/envs` at all; it lists the conda envs from `~/.conda/environments.txt` "
        "(`conda` is not on PATH, as on a login node without the conda module). Its per-env "
        "cost is per env it found.",
    ]
    return text + "\n\n" + "\n".join(f"- {n}" for n in notes), checks


def syscalls_section(r: dict) -> tuple[str, list[Check]]:
    """Section 2."""
    ozk, peer = r["ozkernels"], r.get("nb_venv_kernels")
    head = [["ozkernels sync (no-op)", str(ozk["total"]), str(ozk["baseline"]),
             str(ozk["envs"]), f"{ozk['per_env']:.1f}"]]
    if peer:
        head.append(["nb_venv_kernels scan (repeat)", str(peer["total"]),
                     str(peer["baseline"]), str(peer["envs"]), f"{peer['per_env']:.1f}"])
    text = table(["run", "metadata calls", "same run, zero envs", "envs", "per env"], head)
    rows = []
    for name, (full, base) in ozk["by_call"].items():
        row = [f"`{name}`", str(full), str(base), f"{(full - base) / ozk['envs']:.2f}"]
        if peer:
            pf, pb = peer["by_call"].get(name, [0, 0])
            row.append(f"{(pf - pb) / peer['envs']:.2f}")
        rows.append(row)
    text += "\n\nBy syscall:\n\n" + table(
        ["syscall", "ozkernels no-op sync", "zero envs", "ozkernels per env"]
        + (["nb_venv_kernels per env"] if peer else []), rows)
    rows = [[place, str(full), str(base), f"{(full - base) / ozk['envs']:.2f}"]
            for place, (full, base) in ozk["by_place"].items()]
    text += "\n\nozkernels by place on the site:\n\n" + table(
        ["where", "no-op sync", "zero envs", "per env"], rows)
    for label, calls in r.get("samples", {}).items():
        text += (f"\n\nEvery metadata call of the no-op sync that names the {label}, in "
                 "order:\n\n" + table(["#", "syscall", "path (relative to the site)"],
                                      [[str(i), f"`{c}`", f"`{p}`"]
                                       for i, (c, p) in enumerate(calls, 1)]))
    per = ozk["per_env"]
    checks = [Check("metadata calls per env (no-op sync)", f"{per:.1f}",
                    f"<= {TARGETS['metadata_per_env']}", per <= TARGETS["metadata_per_env"])]
    return text, checks


def kernels_section(k: dict) -> tuple[str, list[Check]]:
    """Section 3."""
    res = k["results"]
    plain = res.get("plain", {}).get("start_p50")
    plain_times = res.get("plain", {}).get("start", [])
    rows = []
    for kind, x in res.items():
        ratio = f"{paired_ratio(x['start'], plain_times):.2f}x" if plain and x["start"] else "-"
        killed = sum(1 for c in x["exit_codes"] if c is not None and c < 0)
        rows.append([k["labels"][kind], str(len(x["start"])), s(x["start_p50"]), s(x["start_p95"]),
                     ratio, s(x["shutdown_p50"]), s(x["shutdown_p95"]),
                     s(x["gone_p50"]) if x.get("gone_p50") is not None else "-",
                     f"{killed}/{len(x['exit_codes'])}"])
    text = table(["kernel", "runs", "start-to-ready p50 s", "p95 s", "vs plain*",
                  "graceful shutdown p50 s", "p95 s", "process exited p50 s", "killed"], rows)
    text += ("\n\n*Median of the per-round ratios to the plain spec (the kinds are interleaved "
             "in every round).")
    if k.get("overhead"):
        text += "\n\nWhere a launcher's time goes (same environment, medians):\n\n" + table(
            ["step", "p50 ms", "p95 ms", "runs"],
            [[label, ms(x["p50"]), ms(x["p95"]), str(x["runs"])]
             for label, x in k["overhead"].items()])
    for kind, err in k.get("errors", {}).items():
        text += f"\n\n{k['labels'].get(kind, kind)} failed: `{err}`"
    checks = []
    for kind in ("ozk_venv", "ozk_conda"):
        x = res.get(kind)
        if not x or not x["start"] or not plain:
            checks.append(Check(f"{kind} start vs plain", "-", "<= 1.10x", None))
            continue
        ratio = paired_ratio(x["start"], plain_times)
        checks.append(Check(f"{k['labels'][kind]}: start-to-ready vs plain spec",
                            f"{ratio:.2f}x", f"<= {TARGETS['start_ratio']:.2f}x",
                            ratio <= TARGETS["start_ratio"]))
        checks.append(Check(f"{k['labels'][kind]}: graceful shutdown",
                            f"{s(x['shutdown_p50'])} s", f"<= {TARGETS['shutdown']} s",
                            x["shutdown_p50"] <= TARGETS["shutdown"]))
    return text, checks


KERNELSPECS = "/api/kernelspecs"


def api_section(a: dict) -> tuple[str, list[Check]]:
    """Section 4."""
    rows, checks = [], []
    for path, x in a["paths"].items():
        rows.append([f"`GET {path}`", str(x["status"]), str(x["items"]), ms(x["first"]),
                     ms(x["p50"]), ms(x["p95"]), str(len(x["times"]))])
        checks.append(Check(f"`{path}` p50", f"{ms(x['p50'])} ms",
                            f"<= {TARGETS['api_p50'] * 1000:.0f} ms",
                            x["status"] == 200 and x["p50"] <= TARGETS["api_p50"]))
    controls = a.get("controls") or {}
    for label, c in controls.items():
        if c:
            rows.append([f"`GET {KERNELSPECS}`, control: {label}", str(c["status"]),
                         str(c["items"]), ms(c["first"]), ms(c["p50"]), ms(c["p95"]),
                         str(len(c["times"]))])
    text = table(["request", "HTTP status", "items", "first request ms", "p50 ms", "p95 ms",
                  "requests"], rows)
    ours = a["paths"].get(KERNELSPECS)
    ratios = [f"{ours['p50'] / c['p50']:.2f}x with {label}" for label, c in controls.items()
              if ours and c and c["p50"]]
    if ratios:
        text += ("\n\n`/api/kernelspecs` p50 with ozkernels' specs and its extension running: "
                 + "; ".join(ratios) + " (separate servers, one after the other).")
    parts = a.get("parts", {})
    rows = [[f"`{endpoint}`", step, ms(t)] for endpoint, steps in parts.items()
            if isinstance(steps, dict) for step, t in steps.items()]
    if rows:
        text += ("\n\nThe work behind each request, timed in-process without HTTP (medians of 7, "
                 f"{parts.get('specs')} kernel specs):\n\n" + table(["endpoint", "step", "ms"],
                                                                    rows))
    elif parts.get("error"):
        text += f"\n\n(in-process breakdown failed: `{parts['error']}`)"
    return text, checks


def targets_table(checks: list[Check]) -> str:
    """Every target with its verdict."""
    return table(["target", "measured", "target", "result"],
                 [[c.name, c.measured, c.target, c.verdict] for c in checks])


def bounds(raw: dict, checks: list[Check]) -> list[str]:
    """For each missed target, what the measurements say bounds it."""
    missed = [c.name for c in checks if c.ok is False]
    out = []
    cmds = raw.get("discovery", {}).get("commands", {})
    if cmds and any(n.startswith(("no-op sync", "cold sync")) for n in missed):
        imp, noop = cmds["import"]["median"], cmds["noop"]["median"]
        nbvk = cmds.get("nbvk", {}).get("median")
        jc = cmds.get("jupyter_core", {}).get("median")
        envs = raw["sizes"]["envs"]
        text = (f"**Sync time.** Interpreter start-up takes {s(cmds['pass']['median'])} s; "
                f"start-up plus importing ozkernels' CLI {s(imp)} s")
        if jc:
            text += (f", of which {s(jc)} s is start-up plus `traitlets.config` and "
                     "`jupyter_core.paths` (what any traitlets command that reads Jupyter's "
                     "config path pays)")
        if nbvk:
            text += f". That floor alone is {imp / nbvk:.2f}x of nb_venv_kernels' repeat scan"
        text += (f". The no-op sync's own work is {s(noop - imp)} s for {envs} environments "
                 f"({(noop - imp) / envs * 1000:.3f} ms each); the profile below shows where it "
                 "goes.")
        out.append(text)
    sc = raw.get("syscalls", {})
    if sc and any(n.startswith("metadata") for n in missed):
        text = (f"**Metadata calls.** {sc['ozkernels']['per_env']:.1f} per environment (by "
                "place and by syscall in section 2).")
        for label, calls in sc.get("samples", {}).items():
            paths: dict[str, int] = {}
            for c, p in calls:
                if c != "fstat (open fd)":
                    paths[p] = paths.get(p, 0) + 1
            twice = {p: n for p, n in paths.items() if n > 1}
            fstats = sum(c == "fstat (open fd)" for c, _ in calls)
            text += f" For the {label}: {len(calls)} calls on {len(paths)} paths"
            if twice:
                text += ("; these paths are looked up (opened, stat'ed, read as links) more "
                         "than once in one run: " +
                         ", ".join(f"`{p}` x{n}" for p, n in list(twice.items())[:6]))
            if fstats:
                text += (f"; {fstats} are fstat of a file just opened (Python's "
                         "`open().read()` does two per file)")
            text += "."
        out.append(text)
    api = raw.get("api", {})
    parts = api.get("parts", {})
    if parts and any(n.startswith("`/") for n in missed):
        text = "**API.** In-process, without HTTP (section 4): "
        text += "; ".join(
            f"`{endpoint}`: " + ", ".join(f"{step} {ms(t)} ms" for step, t in steps.items())
            for endpoint, steps in parts.items() if isinstance(steps, dict))
        text += "."
        env_p50 = api.get("paths", {}).get("/ozkernels/api/environments", {}).get("p50")
        plan = next((t for step, t in parts.get("/ozkernels/api/environments", {}).items()
                     if step.startswith("KernelsManager().plan()")), None)
        if env_p50 and plan and env_p50 >= 0.8 * plan:
            text += (f" `/ozkernels/api/environments` takes {ms(env_p50)} ms at p50, at least "
                     f"one discovery and plan ({ms(plan)} ms): the server discovers again for "
                     "every request.")
        ks = api.get("paths", {}).get("/api/kernelspecs", {}).get("p50")
        if ks and ks > TARGETS["api_p50"]:
            text += (f" `/api/kernelspecs` ({ms(ks)} ms) is jupyter_server's handler over "
                     f"jupyter_client's KernelSpecManager: its cost grows with the number of "
                     f"kernel specs ({parts.get('specs')}), mostly reading every kernel.json and "
                     "one thread hop per spec.")
            plain = [c for label, c in (api.get("controls") or {}).items()
                     if c and "plain" in label]
            if plain and plain[0].get("p50"):
                text += (f" The same envs' plain `ipykernel install` specs on a server without "
                         f"ozkernels take "
                         f"{ms(plain[0]['p50'])} ms: the cost is jupyter_server's per spec, not "
                         "ozkernels'; fewer specs is the only lever.")
        out.append(text)
    login = raw.get("loginnode", {})
    if login and any(n.startswith("login node") for n in missed):
        out.append("**Kernel start on a login node.** Missed: " + ", ".join(
            n for n in missed if n.startswith("login node")) + ". Section 5's *Where a start "
            "goes* splits each start into the launcher's part and the environment's, with the "
            "floors, Lmod's own times and a profile of the launcher.")
    k = raw.get("kernels", {})
    if k and any("start-to-ready" in n and not n.startswith("login node") for n in missed):
        over = k.get("overhead", {})
        text = ("**Kernel start.** A launcher adds its own time before the interpreter starts "
                "(section 3): " + "; ".join(f"{label} {ms(x['p50'])} ms"
                                            for label, x in over.items()))
        out.append(text + ".")
    if k and any("shutdown" in n for n in missed):
        exits = [f"{k['labels'][kind]} {s(x['gone_p50'])} s" for kind, x in k["results"].items()
                 if x.get("gone_p50") is not None]
        text = "**Shutdown.** "
        if exits:
            text += ("`shutdown_kernel()` checks whether the kernel has exited every 0.1 s, so "
                     "it reports the exit rounded up to the next 0.1 s (plus 0.01 s). The kernel "
                     "processes themselves had exited after (p50): " + "; ".join(exits) + ". "
                     "After the launcher's `exec` the process is ipykernel alone, so its exit "
                     "time is ipykernel's; the plain spec shows the same. ")
        out.append(text + "Killed by jupyter_client: " + "; ".join(
            f"{k['labels'][kind]}: {sum(1 for c in x['exit_codes'] if c is not None and c < 0)}"
            f" of {len(x['exit_codes'])}" for kind, x in k["results"].items()) + ".")
    return out


LOGIN_KINDS = {
    "venv": "venv on a module Python (loads gcccore + python)",
    "conda": "conda env (no modules: only the purge)",
    "module": "module Python itself (loads gcccore + python)",
}


def loginnode_section(d: dict) -> tuple[str, list[Check]]:
    """Section 5."""
    tte, res = d["time_to_exec"], d["kernels"]["results"]
    rows, checks = [], []
    for kind, label in LOGIN_KINDS.items():
        memo, nomemo = tte.get(f"memo:{kind}"), tte.get(f"nomemo:{kind}")
        ozk, plain = res.get(f"ozk_{kind}"), res.get(f"plain_{kind}")
        if not memo or not ozk or not plain or not ozk["start"] or not plain["start"]:
            checks.append(Check(f"login node, {kind} kernel", "-", "measured", None))
            continue
        ratio = paired_ratio(ozk["start"], plain["start"])
        spread = _quartiles(ozk["start"], plain["start"])
        same = res.get(f"same_{kind}") or {}
        split = ["-", "-"]
        if same.get("start"):
            split = [f"{paired_ratio(ozk['start'], same['start']):.2f}x",
                     f"{paired_ratio(same['start'], plain['start']):.2f}x"]
        rows.append([label, ms(memo["p50"]), ms(memo["p95"]), ms(nomemo["p50"]),
                     ms(nomemo["p95"]), s(plain["start_p50"]), s(ozk["start_p50"]),
                     s(ozk["start_p95"]), f"{ratio:.2f}x", spread,
                     f"{ozk['start_p50'] / plain['start_p50']:.2f}x", *split,
                     str(len(ozk["start"]))])
        checks.append(Check(f"login node, {kind} kernel: start-to-ready vs plain spec",
                            f"{ratio:.2f}x", f"<= {TARGETS['login_start_ratio']:.2f}x",
                            ratio <= TARGETS["login_start_ratio"]))
        checks.append(Check(f"login node, {kind} kernel: launcher time-to-exec p50",
                            f"{ms(memo['p50'])} ms", f"<= {TARGETS['login_exec'] * 1000:.0f} ms",
                            memo["p50"] <= TARGETS["login_exec"]))
    text = table(["kernel", "time-to-exec p50 ms", "p95 ms", "without memo p50 ms", "p95 ms",
                  "plain spec start-to-ready p50 s", "ozkernels p50 s", "p95 s", "vs plain*",
                  "per-round ratios, quartiles", "ratio of the p50s",
                  "launcher: vs same env unlaunched*", "env: same env unlaunched vs plain*",
                  "rounds"], rows)
    parts = [["`/bin/true` (spawning any process)", "floor:true"],
             ["the interpreter stand-in alone (`sh`, exits at once)", "floor:stand-in"],
             ["`bash -p -c :` (the launcher's shell starting)", "floor:bash"],
             ["`lmod bash --force purge` in the server's environment", "lmod:purge"],
             [f"`lmod bash load {' '.join(d.get('loaded', []))}` after the purge", "lmod:load"]]
    text += "\n\nThe parts, in the same interleaved rounds:\n\n" + table(
        ["step", "p50 ms", "p95 ms", "runs"],
        [[label, ms(tte[key]["p50"]), ms(tte[key]["p95"]), str(tte[key]["runs"])]
         for label, key in parts if key in tte])
    for kind, err in d["kernels"].get("errors", {}).items():
        text += f"\n\n{kind} failed: `{err}`"
    for kind, errs in d["kernels"].get("retried", {}).items():
        text += (f"\n\n{kind}: {len(errs)} start(s) failed and were retried in the same "
                 f"round (a race for random ports on this shared machine): `{errs[0]}`")
    envs = "; ".join(
        f"{kind}: `LOADEDMODULES={e['LOADEDMODULES']}`, server module variables left: "
        f"{', '.join(e['server_left']) or 'none'}" for kind, e in d.get("kernel_env", {}).items())
    notes = [
        f"Site: the real test site's modules inside an EasyBuild-like Lmod hierarchy of "
        f"{d['counts']['modulefiles']} Lua modulefiles (Core 15%, two GCCcore compiler "
        "levels 40% and 30%, an MPI level 15%; help, whatis, seven paths and three EB "
        "variables each, as EasyBuild writes them).",
        f"Server: `module load {' '.join(d['server_modules'])}` applied from Lmod's own output "
        "(the JupyterLab module loads its Python), Lmod initialised (`LMOD_CMD`, `LMOD_PKG`, "
        "`LMOD_DIR`), no `module` function; every kernel is started from that environment.",
        "*time-to-exec* = the kernel's own argv run as a process, with the interpreter replaced "
        "by a stand-in that exits when the launcher `exec`s it (and runs the real interpreter "
        "for the conda env vars), spawn to exit; *with memo* = after one warm-up start wrote "
        "the launch memo (the steady state of every start from one server); *without memo* = "
        "`OZKERNELS_LAUNCH_CACHE=0`, which is what every start cost before (Lmod purge, then "
        "Lmod load).",
        "*start-to-ready* through jupyter_client as in section 3; the plain specs are what "
        "`ipykernel install` writes for the same interpreter (plus `LD_LIBRARY_PATH` for the "
        "module Pythons, without which they do not start). *Median of per-round ratios; in "
        "every round (after one warm-up round) each ozkernels kernel starts right next to its "
        "plain spec and its *same env unlaunched* control, each of the three first in turn, "
        "the groups rotating; each kernel is killed once ready (`shutdown_kernel(now=True)`; "
        "graceful shutdown is section 3's). *Same env unlaunched* = the plain spec's argv "
        "started by `/usr/bin/env` with exactly the environment the ozkernels launcher gives "
        "the kernel (server module variables unset, the kernel's modules and activation set) "
        "and no launcher: *launcher* compares ozkernels to it (what the launcher's own run "
        "costs), *env* compares it to the plain spec (what the activated environment costs "
        "the interpreter and ipykernel after `exec`).",
        f"What the kernels got (interpreter replaced by `env`): {envs}. Memo files: "
        f"{d.get('memos', '?')}.",
    ]
    text += "\n\n" + "\n".join(f"- {n}" for n in notes + d.get("notes", []))
    return text + "\n\n" + where_a_start_goes(d), checks


def _quartiles(xs: list[float], ys: list[float]) -> str:
    """The first and third quartile of the per-round ratios x/y (how noisy a ratio is)."""
    if not xs or len(xs) != len(ys):
        return "-"
    q = statistics.quantiles([x / y for x, y in zip(xs, ys)], n=4)
    return f"{q[0]:.2f}-{q[2]:.2f}"


def where_a_start_goes(d: dict) -> str:
    """Section 5's account of a start: floors, Lmod, the launcher's and the env's parts."""
    tte = d["time_to_exec"]
    text = ("**Where a start goes.** Time-to-exec with the memo, p50: " + "; ".join(
        f"{kind} {ms(tte[f'memo:{kind}']['p50'])} ms" for kind in LOGIN_KINDS
        if f"memo:{kind}" in tte) + f". The floors: spawning `/bin/true` "
        f"{ms(tte['floor:true']['p50'])} ms, the stand-in {ms(tte['floor:stand-in']['p50'])} ms, "
        f"`bash -p` starting {ms(tte['floor:bash']['p50'])} ms. Without the memo every start "
        f"runs Lmod: purge {ms(tte['lmod:purge']['p50'])} ms and load "
        f"{ms(tte['lmod:load']['p50'])} ms on this tree.")
    res = d["kernels"]["results"]
    expect = [f"{kind} {(res[f'plain_{kind}']['start_p50'] + tte[f'memo:{kind}']['p50']) / res[f'plain_{kind}']['start_p50']:.3f}x"  # noqa: E501
              for kind in LOGIN_KINDS if f"memo:{kind}" in tte and res.get(f"plain_{kind}", {})
              .get("start")]
    if expect:
        noise = []
        for kind in LOGIN_KINDS:
            xs = res.get(f"plain_{kind}", {}).get("start") or []
            if len(xs) >= 4:
                q = statistics.quantiles(xs, n=4)
                noise.append(f"{kind} {100 * (q[2] - q[0]) / 2 / statistics.median(xs):.0f}%")
        text += (" What a launcher adds to a start is its time-to-exec (the interpreter and "
                 "ipykernel then start as in the plain spec), so the start-to-ready ratio these "
                 "times predict is " + ", ".join(expect) + ". The measured per-round ratios "
                 "scatter more than that (their quartiles in the table): the plain spec's own "
                 "start-to-ready varies from round to round by " + (", ".join(noise) or "-") +
                 " (half its interquartile range over its median), so a ratio within those "
                 "quartiles of 1.00x cannot tell the launcher's few milliseconds from that "
                 "noise; the time-to-exec rows measure them directly.")
        diffs = []
        for kind in LOGIN_KINDS:
            o, q = res.get(f"ozk_{kind}", {}), res.get(f"plain_{kind}", {})
            c = res.get(f"same_{kind}", {})
            if f"memo:{kind}" in tte and o.get("start") and len(o["start"]) == len(q["start"]):
                diff = statistics.median(a - b for a, b in zip(o["start"], q["start"]))
                part = f"{kind} {ms(diff)} ms (time-to-exec {ms(tte[f'memo:{kind}']['p50'])} ms"
                if c.get("start") and len(c["start"]) == len(o["start"]):
                    launcher = statistics.median(a - b for a, b in zip(o["start"], c["start"]))
                    env = statistics.median(a - b for a, b in zip(c["start"], q["start"]))
                    part += f"; of it, launcher {ms(launcher)} ms and environment {ms(env)} ms"
                diffs.append(part + ")")
        if diffs:
            text += (" Median per-round difference in start-to-ready, ozkernels minus plain, "
                     "split by the *same env unlaunched* control into the launcher's part "
                     "(ozkernels minus the control) and the activated environment's (the "
                     "control minus plain; medians of differences do not add up exactly): "
                     + "; ".join(diffs) + ".")
    imports = d.get("imports") or {}
    rows = [f"{kind} {ms(imports[f'plain:{kind}']['p50'])} ms wall / "
            f"{ms(imports[f'plain:{kind}'].get('cpu_p50'))} ms CPU in the plain spec's "
            f"environment, {ms(imports[f'kernel:{kind}']['p50'])} ms / "
            f"{ms(imports[f'kernel:{kind}'].get('cpu_p50'))} ms in the kernel's"
            for kind in LOGIN_KINDS if f"plain:{kind}" in imports]
    if rows:
        runs = next(iter(imports.values()))["runs"]
        text += (" After the `exec` a kernel's start is the interpreter importing ipykernel and "
                 "IPython: `python -c 'import ipykernel.kernelapp'`, interleaved, p50 of "
                 f"{runs}: " + "; ".join(rows) + ".")
    for kind, prof in (d.get("profile") or {}).items():
        top = [(n, t) for n, t in prof.items() if n != "(all traced)"][:6]
        text += (f"\n\nProfile of one {kind} launcher start with the memo (bash xtrace with "
                 f"`EPOCHREALTIME`, median of 7; tracing slows every command, so read the "
                 f"shares): {ms(prof.get('(all traced)'))} ms traced; " + ", ".join(
                     f"`{n}` {ms(t)} ms" for n, t in top) + ".")
    return text
