"""The `ozkernels` command: sync, list, add, remove, check and demo, as traitlets subcommands."""

from __future__ import annotations

import json
import os
import sys
from copy import deepcopy
from typing import Any

from jupyter_core.paths import SYSTEM_JUPYTER_PATH, jupyter_config_path
from traitlets import Bool, Float, List, Unicode, default
from traitlets.config import Application, Configurable

from . import __version__
from .discovery import Discovery
from .errors import NotFoundError, OzkernelsError
from .layout import env_kind
from .manager import KernelsManager
from .registry import Registry
from .slurm import SlurmProfiles
from .sources.conda import CondaSource
from .sources.modules import ModuleSource
from .sources.venvs import VenvSource
from .sync import BROKEN, NEEDS_SYNC, NO_IPYKERNEL, Plan, Syncer

CONFIGURABLES: list[type[Configurable]] = [
    KernelsManager, Discovery, ModuleSource, VenvSource, CondaSource, Syncer, SlurmProfiles,
]

target_flags: dict[str, Any] = {
    "user": ({"KernelsManager": {"target": "user"}},
             "Use the user's kernels dir (JUPYTER_DATA_DIR or ~/.local/share/jupyter; default)."),
    "sys-prefix": ({"KernelsManager": {"target": "sys-prefix"}},
                   f"Use {sys.prefix}/share/jupyter/kernels (this Python's environment)."),
    "system": ({"KernelsManager": {"target": "system"}},
               "Site-wide: module Pythons and site-configured envs, in "
               f"{SYSTEM_JUPYTER_PATH[0]}/kernels (or --prefix)."),
    "json": ({"OzkernelsCommand": {"json": True}}, "Print JSON for scripts instead of a table."),
    "debug": ({"Application": {"log_level": 10}}, "Log at DEBUG level (discovery details)."),
}
target_aliases: dict[str, Any] = {
    "prefix": "KernelsManager.prefix",
    "config": "OzkernelsBase.config_file",
    "log-level": "Application.log_level",
}


def shorten(path: str) -> str:
    """A path with $HOME shown as ~."""
    home = os.path.expanduser("~")
    return "~" + path[len(home):] if home != "/" and path.startswith(home + "/") else path


def table(rows: list[list[str]], headers: list[str]) -> str:
    """A plain text table with left-aligned columns."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
             for r in [headers, *rows]]
    return "\n".join(lines)


class OzkernelsBase(Application):
    """A Jupyter-style app without JupyterApp's imports (asyncio alone costs 20 ms a run)."""

    name = "jupyter-ozkernels"
    version = __version__
    config_file = Unicode("", help="A config file to load as well.").tag(config=True)

    def initialize(self, argv=None) -> None:
        """Parse the command line, then load jupyter_ozkernels_config under it."""
        super().initialize(argv)
        if self.subapp is not None:
            return
        command_line = deepcopy(self.config)
        self.load_config_file("jupyter_ozkernels_config", path=jupyter_config_path())
        if self.config_file:
            folder, filename = os.path.split(os.path.abspath(self.config_file))
            self.load_config_file(filename, path=[folder])
        self.update_config(command_line)

    def print_help(self, classes: bool = False) -> None:
        """Help, then where configuration is read from."""
        super().print_help(classes)
        paths = ", ".join(jupyter_config_path())
        print(f"Configuration: jupyter_ozkernels_config.py|json in {paths}")


class OzkernelsCommand(OzkernelsBase):
    """Shared options and plumbing of every subcommand."""

    flags = target_flags
    aliases = target_aliases
    classes = CONFIGURABLES

    json = Bool(False, help="Print JSON for scripts instead of a table.").tag(config=True)

    @default("log_level")
    def _default_log_level(self):
        return "WARN"

    @default("log_format")
    def _default_log_format(self):
        return "ozkernels: %(message)s"

    def manager(self) -> KernelsManager:
        """The manager for the kernels dir this run uses."""
        return KernelsManager(parent=self)

    @property
    def site(self) -> bool:
        """Whether this run manages site-wide kernels."""
        return self.manager().site

    def emit(self, data: Any, text: str) -> None:
        """Print JSON or text, as asked."""
        print(json.dumps(data, indent=1) if self.json else text)

    def fail(self, message: str, code: int = 1) -> None:
        """One clear line on stderr and a non-zero exit."""
        print(f"ozkernels: error: {message}", file=sys.stderr)
        self.exit(code)

    def start(self) -> None:
        """Run the command, turning ozkernels' errors into one line."""
        try:
            self.run()
        except OzkernelsError as e:
            self.fail(str(e))
        except PermissionError as e:
            hint = " (site kernels need root; or use --prefix)" if self.site else ""
            self.fail(f"permission denied: {e.filename}{hint}")

    def run(self) -> None:
        """The command's work."""
        raise NotImplementedError

    def notes(self, plan: Plan) -> None:
        """Print the plan's notes (e.g. Lmod missing) once, on stderr."""
        if not self.json:
            for note in plan.notes:
                print(f"ozkernels: {note}", file=sys.stderr)


def record_active_modules(registry: Registry) -> str:
    """Record LOADEDMODULES for the env this command runs in; return a note or ''."""
    active = os.environ.get("VIRTUAL_ENV") or os.environ.get("CONDA_PREFIX") or ""
    loaded = [m for m in os.environ.get("LOADEDMODULES", "").split(":") if m]
    if not active or not loaded or not env_kind(active):
        return ""
    prefix = os.path.realpath(active)
    record = registry.get(prefix)
    if record and record.modules == loaded:
        return ""
    registry.update(prefix, modules=loaded)
    return f"recorded modules for {shorten(prefix)}: {' '.join(loaded)}"


class SyncApp(OzkernelsCommand):
    """Add, update and remove ozkernels' kernel specs to match the environments found."""

    description = """Add, update and remove ozkernels' kernel specs so that every environment
    with ipykernel has a kernel that starts, and a deleted environment loses its kernel.
    Specs ozkernels did not write are never touched. Run inside an activated env with
    modules loaded to record those modules for that env."""
    flags = {
        **target_flags,
        "dry-run": ({"SyncApp": {"dry_run": True}}, "Show what would change; write nothing."),
        "force": ({"SyncApp": {"force": True}},
                  "With --system: write even into a group/other-writable directory."),
    }
    dry_run = Bool(False, help="Show what would change without writing.").tag(config=True)
    force = Bool(False, help="Allow site kernels in a group/other-writable dir.").tag(config=True)

    def run(self) -> None:
        """Record active modules, plan under the lock, apply, report."""
        manager = self.manager()
        context = manager.context()
        recorded = "" if self.site else record_active_modules(context.registry)
        if recorded and not self.dry_run:
            context.registry.save()
        if self.dry_run:
            plan = manager.plan(context)
        else:
            plan, _ = manager.sync(context, force=self.force)
        self.report(plan, recorded)

    def report(self, plan: Plan, recorded: str) -> None:
        """Print what was (or would be) done."""
        self.notes(plan)
        changes = plan.changes
        counts = {op: sum(a.op == op for a in changes) for op in ("add", "update", "remove")}
        kept = sum(a.op == "keep" for a in plan.actions)
        data = plan.sync_model(changes, self.dry_run, [recorded] if recorded else [])
        verbs = {"add": "added", "update": "updated", "remove": "removed"}
        if self.dry_run:
            verbs = {k: f"would {k}" for k in verbs}
        lines = [recorded] if recorded else []
        lines += [f"{verbs[a.op]:<14} {a.name:<28} {a.reason}" for a in changes]
        summary = ", ".join(f"{counts[op]} {verbs[op]}" for op in verbs)
        lines.append(f"{shorten(plan.kernels_dir)}: {summary}, {kept} unchanged")
        self.emit(data, "\n".join(lines))


class ListApp(OzkernelsCommand):
    """List every environment found, with its kernel and status."""

    description = """Show every environment ozkernels finds (module Pythons, venvs, conda envs):
    kind, name, kernel, status (up to date / needs sync / no ipykernel / broken) and, when
    something is wrong, why and the command that fixes it."""

    def run(self) -> None:
        """Plan without writing and show the rows."""
        plan = self.manager().plan()
        self.notes(plan)
        data = plan.environments_model()
        rows = [[r.env.kind, r.env.name, r.kernel or "-", r.status,
                 " ".join(r.env.modules) or "-",
                 shorten(r.env.prefix if r.env.kind == "module" else r.env.path or r.env.prefix)]
                for r in plan.rows]
        text = table(rows, ["KIND", "NAME", "KERNEL", "STATUS", "MODULES", "PATH"])
        extra = [[v["kernel"], v["display_name"]] for r in plan.rows for v in r.variants]
        if extra:
            text += "\nSlurm kernels:\n" + table(extra, ["KERNEL", "DISPLAY NAME"])
        problems = [r for r in plan.rows if r.status in (BROKEN, NO_IPYKERNEL)]
        for r in problems:
            text += f"\n{r.env.kind}:{r.env.name}: {r.status}"
            text += f": {r.detail}" if r.detail else ""
            text += f"\n    fix: {r.fix}" if r.fix else ""
        stale = sum(r.status == NEEDS_SYNC for r in plan.rows)
        if stale:
            flag = " --system" if self.site else ""
            text += f"\n{stale} kernel(s) need sync: run 'ozkernels sync{flag}'"
        self.emit(data, text)


class AddApp(OzkernelsCommand):
    """Add an environment explicitly (optionally with the modules it needs) and sync."""

    description = """Add a venv or conda env that discovery does not find, and/or record the
    modules its kernel must load (in order, e.g. --module gcccore/13.2.0 --module
    python/3.11.5 --module astro-tools/1.0). Then sync."""
    aliases = {**target_aliases, "module": "AddApp.modules"}
    modules = List(Unicode(), help="Modules to load before activating, in order.").tag(config=True)

    def run(self) -> None:
        """Record the env and sync."""
        if len(self.extra_args) != 1:
            raise OzkernelsError("usage: ozkernels add PATH [--module M ...]")
        path = os.path.abspath(os.path.expanduser(self.extra_args[0]))
        kind = env_kind(path)
        if not kind:
            msg = (f"{path} is neither a venv (no pyvenv.cfg) nor a conda env "
                   "(no conda-meta/history)")
            raise NotFoundError(msg)
        manager = self.manager()
        registry = manager.discovery().registry()
        changes: dict[str, Any] = {"kind": kind, "added": True, "ignored": False}
        if self.modules:
            changes["modules"] = list(self.modules)
        registry.update(os.path.realpath(path), **changes)
        registry.save()
        SyncApp(parent=self, json=self.json).run()
        plan_env = [r for r in manager.plan().rows
                    if r.env.prefix == os.path.realpath(path)]
        if plan_env and not plan_env[0].kernel:
            row = plan_env[0]
            msg = f"{path} has no kernel: {row.status}" + (f"; fix: {row.fix}" if row.fix else "")
            raise OzkernelsError(msg)


class RemoveApp(OzkernelsCommand):
    """Remove one of ozkernels' kernels and stop syncing it back."""

    description = """Remove a kernel ozkernels wrote (by kernel name, or by environment path),
    with the environment's Slurm kernels, and remember not to add them again; `ozkernels add
    PATH` undoes that."""

    def run(self) -> None:
        """Find the owned spec, mark its env ignored, delete the spec."""
        if len(self.extra_args) != 1:
            raise OzkernelsError("usage: ozkernels remove NAME|PATH")
        arg = self.extra_args[0]
        manager = self.manager()
        store = manager.store()
        specs = store.scan()
        target = specs.get(arg.lower())
        if target is None and os.path.exists(arg):
            real = os.path.realpath(arg)
            target = next((s for s in specs.values() if s.owner and s.owner["prefix"] == real),
                          None)
        if target is None:
            raise NotFoundError(f"no kernel {arg!r} in {shorten(store.path)}")
        if target.owner is None:
            msg = f"kernel {target.name!r} was not written by ozkernels; left alone"
            raise OzkernelsError(msg)
        prefix = target.owner["prefix"]
        kernels = sorted((s for s in specs.values() if s.owner and s.owner.get("prefix") == prefix
                          and s.owner.get("kind") == target.owner.get("kind")),
                         key=lambda s: (bool(s.owner and s.owner.get("variant")), s.name))
        if target.owner.get("variant") and target is specs.get(arg.lower()):
            msg = (f"kernel {target.name!r} comes from Slurm profile "
                   f"{target.owner.get('slurm', {}).get('name', '?')!r}: take it out of "
                   "SlurmProfiles.enabled or narrow its envs; 'ozkernels remove "
                   f"{shorten(prefix)}' removes every kernel of that environment")
            raise OzkernelsError(msg)
        registry = manager.discovery().registry()
        registry.update(prefix, ignored=True, added=False)
        with store.lock():
            for spec in kernels:
                store.remove(spec.name)
        registry.save()
        names = [s.name for s in kernels]
        self.emit({"removed": names[0], "prefix": prefix, "also_removed": names[1:]},
                  f"removed {', '.join(names)} ({shorten(prefix)}); "
                  f"'ozkernels add {shorten(prefix)}' brings {'them' if names[1:] else 'it'} "
                  "back")


class CheckApp(OzkernelsCommand):
    """Start kernels through jupyter_client, probe them and report."""

    description = """Start each of ozkernels' kernels (all, or those named) through
    jupyter_client, check from inside that the right environment and modules are active (and
    for a Slurm kernel that it runs in its job), shut it down, and print start-to-ready time,
    the Slurm job, node and queue wait, and pass/fail with the reason. Exits 1 if any failed."""
    aliases = {**target_aliases, "timeout": "CheckApp.timeout"}
    timeout = Float(60.0, help="Seconds a kernel may take to become ready.").tag(config=True)

    def run(self) -> None:
        """Check the kernels one by one, with progress on stderr."""
        from .check import check_kernel

        store = self.manager().store()
        owned = {n: s for n, s in store.scan().items() if s.owner}
        names = [n.lower() for n in self.extra_args] or sorted(owned)
        unknown = [n for n in names if n not in owned]
        if unknown:
            raise NotFoundError(f"no ozkernels kernel named {', '.join(unknown)} in "
                                f"{shorten(store.path)}")
        results = []
        for i, name in enumerate(names, 1):
            if not self.json and len(names) > 1:
                print(f"[{i}/{len(names)}] starting {name} ...", file=sys.stderr, flush=True)
            results.append(check_kernel(owned[name].name, store.path, self.timeout))
        rows = [[r.name, "pass" if r.ok else "FAIL",
                 f"{r.start_seconds:.2f}s" if r.start_seconds else "-", r.error or "-"]
                for r in results]
        headers = ["KERNEL", "RESULT", "START", "ERROR"]
        if any(r.slurm for r in results):
            headers[3:3] = ["SLURM JOB", "QUEUE WAIT"]
            for row, r in zip(rows, results):
                wait = r.slurm.get("queue_wait")
                job = f"{r.slurm.get('job')} on {r.slurm.get('node')}" if r.slurm.get(
                    "job") else "-"
                row[3:3] = [job, f"{wait:.2f}s" if wait is not None else "-"]
        self.emit({"kernels_dir": store.path, "results": [r.to_dict() for r in results]},
                  table(rows, headers) if rows else "no ozkernels kernels to check")
        if any(not r.ok for r in results):
            self.exit(1)


class DemoApp(OzkernelsCommand):
    """Build a small demo site in a temporary dir, sync it, and start every kernel."""

    description = """Build a throw-away HPC-like site (Lmod module Pythons if Lmod and patchelf
    are installed, venvs, a conda-layout env), then run `ozkernels list`, `sync` and `check`
    against it with a temporary Jupyter data dir. Your real kernels are not touched."""
    flags = {**target_flags, "keep": ({"DemoApp": {"keep": True}}, "Keep the demo dir.")}
    keep = Bool(False, help="Keep the demo site instead of deleting it.").tag(config=True)

    def run(self) -> None:
        """Build, list, sync, check."""
        import shutil
        import subprocess
        import tempfile

        from .demosite import build_site, find_lmod

        lmod = bool(find_lmod() and shutil.which("patchelf"))
        if not lmod:
            print("ozkernels: Lmod or patchelf missing; the demo site has no modules",
                  file=sys.stderr)
        root = tempfile.mkdtemp(prefix="ozkernels-demo-")
        code = 0
        try:
            print(f"Building a demo site in {root} ...", flush=True)
            site = build_site(__import__("pathlib").Path(root), lmod=lmod, hostile=True)
            env = site.environ()
            for step in (["list"], ["sync"], ["list"], ["check"]):
                print(f"\n$ ozkernels {' '.join(step)}", flush=True)
                proc = subprocess.run([sys.executable, "-m", "ozkernels", *step], env=env,
                                      timeout=600, check=False)
                code = code or proc.returncode
        finally:
            if self.keep:
                print(f"\nThe demo site stays in {root}")
            else:
                shutil.rmtree(root, ignore_errors=True)
        if code:
            self.exit(code)


class OzkernelsApp(OzkernelsBase):
    """Jupyter kernels that start, for every Python environment on an HPC cluster."""

    description = """ozkernels finds Lmod module Pythons, venvs and conda envs without running
    them, and writes kernel specs whose launcher loads the right modules and activates the
    environment before starting ipykernel. Configuration: jupyter_ozkernels_config.py|json in
    the Jupyter config path (~/.jupyter for a user, /etc/jupyter for a site)."""
    examples = """
    ozkernels list                 # every environment, its kernel and status
    ozkernels sync                 # add/update/remove kernels to match
    ozkernels add ~/proj/.venv --module gcccore/13.2.0 --module python/3.11.5
    ozkernels check                # start every kernel once and report
    ozkernels sync --system        # (admins) kernels for every module Python, site-wide
    ozkernels demo                 # try it all on a throw-away demo site
    """
    classes = CONFIGURABLES
    subcommands = {
        app.__name__[:-3].lower(): (app, (app.__doc__ or "").splitlines()[0])
        for app in (SyncApp, ListApp, AddApp, RemoveApp, CheckApp, DemoApp)
    }

    def start(self) -> None:
        """Run the subcommand, or explain the command."""
        if self.subapp is None:
            self.print_help()
            print("\nSubcommands: " + ", ".join(self.subcommands), file=sys.stderr)
            self.exit(2)
        else:
            self.subapp.start()


def main() -> None:
    """Console script entry point."""
    try:
        OzkernelsApp.launch_instance()
    except BrokenPipeError:
        # The reader (head, grep -m1) left: say nothing more, not even at exit's flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
