"""Section 5: kernel start on a real login node.

The server's environment has modules loaded (a compiler, a Python and a JupyterLab module, as
`module load jupyterlab` leaves it) and no `module` function; the site has a large EasyBuild-like
Lmod hierarchy (Core -> Compiler -> MPI, default 3,000 modulefiles) around the real test site's
modules.  Measured, interleaved: each launcher's time-to-exec (its argv with the interpreter
replaced by /bin/true) with and without the launch memo, and start-to-ready through
jupyter_client of ozkernels' venv, conda and module kernels next to a plain spec for the same
interpreter and to the same interpreter started with exactly the kernel's environment but no
launcher (which splits a difference into the launcher's part and the environment's).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import realsite
from common import log, median, p95

from ozkernels.demosite import GCC_VERSION, PY_MODULE_VERSION, Site, build_site

OLD_GCC = "12.3.0"
SERVER_MODULES = (f"gcccore/{OLD_GCC}", "python/3.11.3", "jupyterlab/4.2.5")
KINDS = {
    "venv": "venv on a module Python (gcccore + python modules)",
    "conda": "conda env (no modules: the server's are purged)",
    "module": "module Python itself (gcccore + python modules)",
}
FLOORS = {
    "true": "`/bin/true` (spawning any process)",
    "stand-in": "the interpreter stand-in alone (`sh`, exits at once)",
    "bash": "`bash -p -c :` (the launcher's shell starting)",
}


def _lua(value: str | Path) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _modulefile(path: Path, name: str, version: str, prefix: Path, *extra: str) -> None:
    """An EasyBuild-style Lua modulefile (help, whatis, the usual paths, EBROOT/EBVERSION)."""
    var = "".join(c for c in name.upper() if c.isalnum())
    lines = [
        f"help([==[\n\nDescription\n===========\n{name} {version}, installed by EasyBuild.\n"
        f"\nMore information\n================\n - Homepage: https://example.org/{name}\n]==])",
        f'whatis([==[Description: {name} {version}]==])',
        f'whatis([==[Homepage: https://example.org/{name}]==])',
        f"local root = {_lua(prefix)}",
        f'conflict("{name}")',
        'prepend_path("PATH", pathJoin(root, "bin"))',
        'prepend_path("LD_LIBRARY_PATH", pathJoin(root, "lib"))',
        'prepend_path("LIBRARY_PATH", pathJoin(root, "lib"))',
        'prepend_path("CPATH", pathJoin(root, "include"))',
        'prepend_path("MANPATH", pathJoin(root, "share/man"))',
        'prepend_path("PKG_CONFIG_PATH", pathJoin(root, "lib/pkgconfig"))',
        f'setenv("EBROOT{var}", root)',
        f'setenv("EBVERSION{var}", "{version}")',
        f'setenv("EBDEVEL{var}", pathJoin(root, "easybuild/{name}-{version}-easybuild-devel"))',
        *extra,
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def grow_tree(site: Site, total: int) -> dict[str, int]:
    """Fill the site's Lmod tree up to `total` modulefiles, EasyBuild-like, around the real
    modules (so loading them walks big dirs), and add the server's modules; return counts."""
    mods = Path(site.modulepath).parent
    sw = site.root / "apps" / "software"
    core = mods / "Core"
    new_cc = mods / "Compiler" / "gcccore" / GCC_VERSION
    old_cc = mods / "Compiler" / "gcccore" / OLD_GCC
    mpi = mods / "MPI" / "gcc" / GCC_VERSION / "openmpi" / "4.1.6"
    stamp = mods / f".bench-grown-{total}"
    existing = sum(1 for _ in mods.rglob("*.lua"))
    if stamp.exists():
        return {"modulefiles": existing}
    # The server's stack: an older compiler with its own Python and a JupyterLab on it.
    _modulefile(core / "gcccore" / f"{OLD_GCC}.lua", "GCCcore", OLD_GCC, sw / "GCCcore" / OLD_GCC,
                f'prepend_path("MODULEPATH", {_lua(old_cc)})', 'family("compiler")')
    _modulefile(old_cc / "python" / "3.11.3.lua", "Python", "3.11.3",
                sw / "Python" / f"3.11.3-GCCcore-{OLD_GCC}",
                'setenv("PYTHONNOUSERSITE", "1")')
    _modulefile(old_cc / "jupyterlab" / "4.2.5.lua", "JupyterLab", "4.2.5",
                sw / "JupyterLab" / f"4.2.5-GCCcore-{OLD_GCC}",
                'if not isloaded("python/3.11.3") then load("python/3.11.3") end',
                'prepend_path("PYTHONPATH", pathJoin(root, "lib/python3.11/site-packages"))',
                'prepend_path("JUPYTER_PATH", pathJoin(root, "share/jupyter"))',
                'setenv("JUPYTERLAB_DIR", pathJoin(root, "share/jupyter/lab"))')
    _modulefile(core / "gcc" / f"{GCC_VERSION}.lua", "GCC", GCC_VERSION, sw / "GCC" / GCC_VERSION,
                f'prepend_path("MODULEPATH", {_lua(mods / "Compiler" / "gcc" / GCC_VERSION)})')
    _modulefile(mods / "Compiler" / "gcc" / GCC_VERSION / "openmpi" / "4.1.6.lua", "OpenMPI",
                "4.1.6", sw / "OpenMPI" / "4.1.6", f'prepend_path("MODULEPATH", {_lua(mpi)})')
    rest = max(0, total - sum(1 for _ in mods.rglob("*.lua")))
    # Where EasyBuild sites keep their software: most of it built with a compiler.
    shares = [(core, 0.15), (new_cc, 0.40), (old_cc, 0.30), (mpi, 0.15)]
    k = 0
    for i, (tree, share) in enumerate(shares):
        count = rest - k if i == len(shares) - 1 else int(rest * share)
        for j in range(count):
            # Three versions per package, as sites keep old ones around.
            name, version = f"pkg{(k + j) // 3:04d}", f"{1 + j % 3}.{j % 11}.{j % 5}"
            _modulefile(tree / name / f"{version}.lua", name, version, sw / name / version)
        k += count
    stamp.write_text("")
    return {"modulefiles": sum(1 for _ in mods.rglob("*.lua"))}


def _plain(kernels: Path, name: str, python: str, env: dict[str, str]) -> None:
    """What `python -m ipykernel install` writes, plus the env users add by hand."""
    spec = {"argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": name, "language": "python", "metadata": {"debugger": True}}
    if env:
        spec["env"] = env
    (kernels / name).mkdir(parents=True, exist_ok=True)
    (kernels / name / "kernel.json").write_text(json.dumps(spec, indent=1))


def prepare(root: Path, ozk_python: Path, modules: int) -> dict:
    """Build the site and its big tree, sync, write the plain specs; return what measure needs."""
    log(f"building the login-node site in {root} ({modules} modulefiles)")
    site = build_site(root, lmod=True, hostile=False)
    counts = grow_tree(site, modules)
    notes = [n for n in [realsite.add_psutil(site)] if n]
    user_env = realsite.server_environ(site)
    sync = json.loads(realsite._run([str(ozk_python), "-m", "ozkernels", "sync", "--json",
                                     "--Syncer.module_kernels=True"], user_env))
    by_prefix = {a["prefix"]: a["kernel"] for a in sync["actions"] if a["action"] == "add"}
    py_module = f"python/{PY_MODULE_VERSION}"
    module_prefix = site.modules[py_module]
    lib = {"LD_LIBRARY_PATH": str(module_prefix / "lib")}
    kernels = Path(user_env["JUPYTER_DATA_DIR"]) / "kernels"
    venv, conda = site.venvs["analysis"], site.conda_envs["astro"]
    prefixes = {"venv": venv, "conda": conda, "module": module_prefix}
    pythons = {"venv": venv / "bin" / "python", "conda": conda / "bin" / "python",
               "module": module_prefix / "bin" / "python3"}
    kinds: dict[str, str] = {}
    for kind, prefix in prefixes.items():
        name = by_prefix.get(os.path.realpath(prefix)) or by_prefix.get(str(prefix))
        if not name:
            notes.append(f"ozkernels sync wrote no kernel for {prefix}")
            continue
        _plain(kernels, f"bench-plain-{kind}", str(pythons[kind]),
               {} if kind == "conda" else lib)
        kinds[f"plain_{kind}"] = f"bench-plain-{kind}"
        kinds[f"ozk_{kind}"] = name
    server = site.module_environ(*SERVER_MODULES, **{
        k: v for k, v in user_env.items() if k.startswith("LMOD_")})
    # What Lmod's own output leaves; the `module` shell function is not in the environment.
    server = {k: v for k, v in server.items() if not k.startswith("BASH_FUNC_")}
    return {"site": site, "env": server, "kinds": kinds, "kernels": kernels, "notes": notes,
            "counts": counts, "modules": [f"gcccore/{GCC_VERSION}", py_module]}


def stand_in(root: Path, python: str, instead: str = "exit 0") -> str:
    """An interpreter stand-in: does `instead` when asked to start ipykernel (the exec the
    launcher ends in), runs the real interpreter for anything else (e.g. conda env vars)."""
    key = (python.strip("/") + ("" if instead == "exit 0" else ".env")).replace("/", "%")
    path = root / "stand-ins" / key
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'#!/bin/sh\nif [ "$1 $2" = "-m ipykernel_launcher" ]; then {instead}; fi\n'
                        f'exec {shlex.quote(python)} "$@"\n')
        path.chmod(0o755)
    return str(path)


def _argv(kernels: Path, name: str, root: Path, instead: str = "exit 0") -> list[str]:
    """A kernel's argv with the interpreter replaced by its stand-in."""
    argv = json.loads((kernels / name / "kernel.json").read_text())["argv"]
    argv = [stand_in(root, a, instead) if prev == "--python" else a
            for prev, a in zip(["", *argv], argv)]
    return [a.replace("{connection_file}", "/dev/null") for a in argv]


def time_to_exec(p: dict, runs: int) -> dict:
    """Launcher time-to-exec per kind, with the memo (after one warm-up start) and without,
    next to the floors and Lmod's own purge and load, interleaved; medians and p95s in s."""
    env, kernels, kinds = p["env"], p["kernels"], p["kinds"]
    lmod = env["LMOD_CMD"]
    cmds: dict[str, tuple[list[str], dict[str, str]]] = {
        f"floor:{k}": (["/bin/true"] if k == "true" else ["bash", "-p", "-c", ":"], env)
        for k in FLOORS}
    cmds["floor:stand-in"] = ([stand_in(p["site"].root, "/bin/true"), "-m",
                               "ipykernel_launcher"], env)
    for kind in KINDS:
        if f"ozk_{kind}" in kinds:
            argv = _argv(kernels, kinds[f"ozk_{kind}"], p["site"].root)
            cmds[f"memo:{kind}"] = (argv, env)
            cmds[f"nomemo:{kind}"] = (argv, {**env, "OZKERNELS_LAUNCH_CACHE": "0"})
    cmds["lmod:purge"] = ([lmod, "bash", "--force", "purge"], env)
    purged = realsite._run(["bash", "-c", 'eval "$("$0" bash --force purge)" && env -0', lmod],
                           env)
    purged_env = dict(x.split("=", 1) for x in purged.split("\0") if "=" in x)
    cmds["lmod:load"] = ([lmod, "bash", "load", *p["modules"]], purged_env)
    for argv, e in cmds.values():  # warm-up: the memo is written here
        subprocess.run(argv, env=e, capture_output=True, timeout=120, check=False)
    times: dict[str, list[float]] = {k: [] for k in cmds}
    labels = list(cmds)
    for i in range(runs):
        for label in labels[i % len(labels):] + labels[:i % len(labels)]:
            argv, e = cmds[label]
            start = time.perf_counter()
            proc = subprocess.run(argv, env=e, capture_output=True, timeout=120, check=False)
            times[label].append(time.perf_counter() - start)
            if proc.returncode and not label.startswith("lmod:"):
                msg = f"{label}: {' '.join(argv)} failed: {proc.stderr.decode()[-500:]}"
                raise RuntimeError(msg)
    return {k: {"p50": median(v), "p95": p95(v), "runs": len(v), "times": v}
            for k, v in times.items()}


def kernel_env(p: dict, kind: str) -> dict[str, str]:
    """The environment an ozkernels kernel gets (the stand-in prints it; run once per kind)."""
    seen = p.setdefault("kernel_envs", {})
    if kind not in seen:
        argv = _argv(p["kernels"], p["kinds"][f"ozk_{kind}"], p["site"].root, "exec env -0")
        proc = subprocess.run(argv, env=p["env"], capture_output=True, timeout=120, check=True)
        env = dict(x.split("=", 1) for x in proc.stdout.decode().split("\0") if "=" in x)
        env.pop("_", None)  # the shell's last command, not the kernel's environment
        seen[kind] = env
    return dict(seen[kind])


def same_env_specs(p: dict) -> None:
    """Add a control per kind: the plain spec's interpreter started by `env` with exactly the
    environment the ozkernels launcher gives its kernel, and no launcher (what the activated
    environment alone costs after `exec`)."""
    for kind in KINDS:
        if f"ozk_{kind}" not in p["kinds"]:
            continue
        kenv = kernel_env(p, kind)
        plain = json.loads((p["kernels"] / p["kinds"][f"plain_{kind}"] / "kernel.json")
                           .read_text())
        unset = [a for k in sorted(set(p["env"]) - set(kenv)) for a in ("-u", k)]
        sets = [f"{k}={v}" for k, v in sorted(kenv.items()) if p["env"].get(k) != v]
        spec = {**plain, "argv": ["/usr/bin/env", *unset, *sets, *plain["argv"]],
                "display_name": f"bench-same-env-{kind}"}
        spec.pop("env", None)
        name = f"bench-same-env-{kind}"
        (p["kernels"] / name).mkdir(parents=True, exist_ok=True)
        (p["kernels"] / name / "kernel.json").write_text(json.dumps(spec, indent=1))
        p["kinds"][f"same_{kind}"] = name


def import_times(p: dict, runs: int) -> dict:
    """The interpreter importing ipykernel's kernel app (most of a kernel's start) in the plain
    spec's environment and in the kernel's activated one, interleaved; medians in s."""
    cmds: dict[str, tuple[list[str], dict[str, str]]] = {}
    for kind in KINDS:
        if f"same_{kind}" not in p["kinds"]:
            continue
        plain = json.loads((p["kernels"] / p["kinds"][f"plain_{kind}"] / "kernel.json")
                           .read_text())
        argv = [plain["argv"][0], "-c", "import ipykernel.kernelapp"]
        kenv = kernel_env(p, kind)
        cmds[f"plain:{kind}"] = (argv, {**p["env"], **plain.get("env", {})})
        cmds[f"kernel:{kind}"] = (argv, kenv)
    times: dict[str, list[float]] = {k: [] for k in cmds}
    cpu: dict[str, list[float]] = {k: [] for k in cmds}
    labels = list(cmds)
    for i in range(runs + 1 if labels else 0):
        for label in labels[i % len(labels):] + labels[:i % len(labels)]:
            argv, e = cmds[label]
            start = time.perf_counter()
            proc = subprocess.Popen(argv, env=e, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            # The child's own CPU time: far less noisy than wall time on a shared machine.
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode:
                msg = f"{label}: {' '.join(argv)} exited {proc.returncode}"
                raise RuntimeError(msg)
            if i:
                times[label].append(time.perf_counter() - start)
                cpu[label].append(usage.ru_utime + usage.ru_stime)
    return {k: {"p50": median(v), "p95": p95(v), "cpu_p50": median(cpu[k]), "runs": len(v)}
            for k, v in times.items()}


def profile_launcher(p: dict, kind: str, runs: int = 7) -> dict[str, float]:
    """Where one launcher start goes, by function (ms per start, medians): a copy of the
    kernel's launcher traced with bash's xtrace, EPOCHREALTIME in each line (xtrace itself
    slows every traced command, so the shares matter, not the sum)."""
    argv = _argv(p["kernels"], p["kinds"][f"ozk_{kind}"], p["site"].root)
    copy = p["site"].root / "profile" / f"ozk-{kind}" / "ozkernels-launch"
    copy.parent.mkdir(parents=True, exist_ok=True)
    # The launcher's siblings (the conda env vars reader) must be next to the copy too.
    for f in Path(argv[0]).parent.iterdir():
        if f.is_file() and f.name != "kernel.json":
            shutil.copy2(f, copy.parent / f.name)
    lines = Path(argv[0]).read_text().split("\n")
    trace = copy.parent / "xtrace"
    lines.insert(1, "PS4='+ ${EPOCHREALTIME} ${FUNCNAME[0]:-main} '; "
                 f"exec {{_ozk_xfd}}>>{shlex.quote(str(trace))}; BASH_XTRACEFD=$_ozk_xfd; set -x")
    copy.write_text("\n".join(lines))
    copy.chmod(0o755)
    argv = [str(copy), *argv[1:]]
    # A failed start must not pass for a profile, nor leave a failure record for the kernel.
    env = {**p["env"], "OZKERNELS_FAILURES_DIR": str(copy.parent / "failures")}
    per_run: list[dict[str, float]] = []
    for i in range(runs + 1):
        trace.unlink(missing_ok=True)
        proc = subprocess.run(argv, env=env, capture_output=True, timeout=120, check=False)
        if proc.returncode:
            msg = f"profile of the {kind} launcher: exit {proc.returncode}: " \
                f"{proc.stderr.decode(errors='replace')[-500:]}"
            raise RuntimeError(msg)
        if not i:
            continue
        rows = []
        for line in trace.read_text(errors="replace").splitlines():
            parts = line.lstrip("+").split(" ", 3)
            if len(parts) >= 3 and parts[1].replace(".", "").replace(",", "").isdigit():
                rows.append((float(parts[1].replace(",", ".")), parts[2]))
        spent: dict[str, float] = {}
        for (t, fn), (t_next, _) in zip(rows, rows[1:]):
            spent[fn] = spent.get(fn, 0.0) + t_next - t
        spent["(all traced)"] = rows[-1][0] - rows[0][0] if rows else 0.0
        per_run.append(spent)
    names = {n for r in per_run for n in r}
    return dict(sorted(((n, median([r.get(n, 0.0) for r in per_run])) for n in names),
                       key=lambda x: -x[1]))


def run(ozk_python: Path, root: Path, modules: int, runs: int) -> dict:
    """The whole section: prepare, time-to-exec, start-to-ready, what the kernels got."""
    p = prepare(root, ozk_python, modules)
    log(f"time-to-exec: {runs} interleaved rounds")
    tte = time_to_exec(p, runs)
    leaks = {}
    for kind in KINDS:
        if f"ozk_{kind}" in p["kinds"]:
            kenv = kernel_env(p, kind)
            leaks[kind] = {"LOADEDMODULES": kenv.get("LOADEDMODULES", ""),
                           "server_left": sorted(k for k in ("EBROOTJUPYTERLAB", "JUPYTERLAB_DIR",
                                                             "PYTHONNOUSERSITE", "PYTHONPATH")
                                                 if k in kenv)}
    memo_dir = Path(p["env"]["HOME"]) / ".cache" / "ozkernels" / "launch"
    if p["env"].get("XDG_CACHE_HOME"):
        memo_dir = Path(p["env"]["XDG_CACHE_HOME"]) / "ozkernels" / "launch"
    profile = {kind: profile_launcher(p, kind) for kind in KINDS if f"ozk_{kind}" in p["kinds"]}
    same_env_specs(p)
    log("import time of ipykernel in the plain spec's environment and the kernel's")
    imports = import_times(p, max(15, runs))
    # Each kind's group: the plain spec, the ozkernels kernel, the same environment unlaunched.
    kinds = {f"{role}_{kind}": p["kinds"][f"{role}_{kind}"] for kind in KINDS
             for role in ("plain", "ozk", "same") if f"same_{kind}" in p["kinds"]}
    log(f"start-to-ready: {runs} interleaved rounds of {len(kinds)} kernels")
    # Shutdown is section 3's business: here kernels are killed, which keeps the rounds short.
    k = realsite.measure(ozk_python, p["env"], kinds, runs, ("--kill", "--group", "3"))
    return {"time_to_exec": tte, "kernels": k, "counts": p["counts"], "notes": p["notes"],
            "imports": imports,
            "kernel_env": leaks, "server_modules": list(SERVER_MODULES), "profile": profile,
            "memos": len(list(memo_dir.glob("*@*"))) if memo_dir.is_dir() else 0,
            "loaded": p["modules"]}
