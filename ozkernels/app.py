"""The `ozkernels` command: sync, list, add, remove, check and demo, as traitlets subcommands."""

from __future__ import annotations

import json
import os
import sys
from copy import deepcopy
from typing import Any

from jupyter_core.paths import SYSTEM_JUPYTER_PATH, jupyter_config_path
from traitlets import Bool, Float, List, TraitError, Unicode, default
from traitlets.config import Application

from ._version import __version__
from .display import shorten
from .errors import OzkernelsError
from .failures import read_failures
from .manager import CONFIGURABLES, KernelsManager, SyncResult
from .sync import BROKEN, NEEDS_SYNC, NO_IPYKERNEL, NO_PYTHON_KERNEL, Plan

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
        except TraitError as e:
            self.fail(f"bad configuration: {e}")
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
        """Sync (or plan, with --dry-run) and report."""
        self.report(self.manager().run_sync(dry_run=self.dry_run, force=self.force))

    def report(self, result: SyncResult) -> None:
        """Print what was (or would be) done."""
        self.notes(result.plan)
        plan, changes = result.plan, result.done
        counts = {op: sum(a.op == op for a in changes) for op in ("add", "update", "remove")}
        kept = sum(a.op == "keep" for a in plan.actions)
        verbs = {"add": "added", "update": "updated", "remove": "removed"}
        if result.dry_run:
            verbs = {k: f"would {k}" for k in verbs}
        lines = list(result.notes)
        lines += [f"{verbs[a.op]:<14} {a.name:<28} {a.reason}" for a in changes]
        summary = ", ".join(f"{counts[op]} {verbs[op]}" for op in verbs)
        lines.append(f"{shorten(plan.kernels_dir)}: {summary}, {kept} unchanged")
        self.emit(result.to_dict(), "\n".join(lines))


class ListApp(OzkernelsCommand):
    """List every environment found, with its kernel and status."""

    description = """Show every environment ozkernels finds (module Pythons, venvs, conda envs)
    and each of its kernels - the Python one and one per kernelspec the env ships (IRkernel,
    bash_kernel, ...): kind, name, kernel, language, status (up to date / needs sync / no
    ipykernel / broken) and, when something is wrong, why and the command that fixes it."""

    def run(self) -> None:
        """Plan without writing and show the rows."""
        plan = self.manager().plan()
        self.notes(plan)
        failures = read_failures()
        data = plan.environments_model(failures)
        rows: list[list[str]] = []
        for r in plan.rows:
            common = [r.env.kind, r.env.name]
            modules = " ".join(r.env.modules) or "-"
            # An R-only env is listed by its R kernel: a 'no python kernel' line says nothing.
            if r.status != NO_PYTHON_KERNEL:
                rows.append([*common, r.kernel or "-", "python", r.status, modules,
                             shorten(r.where)])
            rows += [[*common, k["kernel"] or "-", k["language"] or "?", k["status"], modules,
                      shorten(r.where)] for k in r.kernels]
        text = table(rows, ["KIND", "NAME", "KERNEL", "LANGUAGE", "STATUS", "MODULES", "PATH"])
        extra = [[v["kernel"], v["display_name"]] for r in plan.rows
                 for v in [*r.variants, *(v for k in r.kernels for v in k["variant_kernels"])]]
        if extra:
            text += "\nSlurm kernels:\n" + table(extra, ["KERNEL", "DISPLAY NAME"])
        problems = [r for r in plan.rows if r.status in (BROKEN, NO_IPYKERNEL)]
        for r in problems:
            text += f"\n{r.env.kind}:{r.env.name}: {r.status}"
            text += f": {r.detail}" if r.detail else ""
            text += f"\n    fix: {r.fix}" if r.fix else ""
        for env in data["environments"]:
            failed = env["last_start_failure"]
            if failed:
                text += (f"\nkernel {failed['kernel']}: last start failed "
                         f"{failed['when']}: {failed['message']}")
        for r in plan.rows:
            for k in r.kernels:
                if k["status"] == BROKEN and r.status != BROKEN:
                    text += f"\n{r.env.kind}:{r.env.name}: kernelspec {k['wraps']}: broken: "
                    text += k["detail"]
        stale = sum(r.status == NEEDS_SYNC for r in plan.rows) + sum(
            k["status"] == NEEDS_SYNC for r in plan.rows for k in r.kernels)
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
        """Record the env and sync; fail when it still has no kernel."""
        if len(self.extra_args) != 1:
            raise OzkernelsError("usage: ozkernels add PATH [--module M ...]")
        path = self.extra_args[0]
        result = self.manager().add(path, list(self.modules))
        SyncApp(parent=self, json=self.json).report(result.sync)
        row = result.row
        if row is not None and not row.kernel:
            msg = (f"{os.path.abspath(os.path.expanduser(path))} has no kernel: {row.status}"
                   + (f"; fix: {row.fix}" if row.fix else ""))
            raise OzkernelsError(msg)


class RemoveApp(OzkernelsCommand):
    """Remove one of ozkernels' kernels and stop syncing it back."""

    description = """Remove a kernel ozkernels wrote (by kernel name, or by environment path),
    with the environment's Slurm kernels, and remember not to add them again; `ozkernels add
    PATH` undoes that."""

    def run(self) -> None:
        """Remove the env's kernels and say how to bring them back."""
        if len(self.extra_args) != 1:
            raise OzkernelsError("usage: ozkernels remove NAME|PATH")
        result = self.manager().remove(self.extra_args[0])
        names, prefix = result.removed, result.prefix
        self.emit(result.to_dict(),
                  f"removed {', '.join(names)} ({shorten(prefix)}); "
                  f"'ozkernels add {shorten(prefix)}' brings {'them' if names[1:] else 'it'} "
                  "back")


class CheckApp(OzkernelsCommand):
    """Start kernels through jupyter_client, probe them and report."""

    description = """Start each of ozkernels' kernels (all, or those named) through
    jupyter_client, ask its kernel_info, run a probe in the kernel's own language (Python, R,
    bash, Julia) to check from inside that the right environment and modules are active (and
    for a Slurm kernel that it runs in its job), shut it down, and print start-to-ready time,
    the Slurm job, node and queue wait, and pass/fail with the reason. Exits 1 if any failed."""
    aliases = {**target_aliases, "timeout": "CheckApp.timeout"}
    timeout = Float(60.0, help="Seconds a kernel may take to become ready.").tag(config=True)

    def progress(self, i: int, n: int, name: str) -> None:
        """Progress on stderr when more than one kernel is checked."""
        if not self.json and n > 1:
            print(f"[{i}/{n}] starting {name} ...", file=sys.stderr, flush=True)

    def run(self) -> None:
        """Check the kernels one by one and show the table."""
        report = self.manager().check(list(self.extra_args), self.timeout, self.progress)
        results = report.results
        rows = [[r.name, r.language or "-", "pass" if r.ok else "FAIL",
                 f"{r.start_seconds:.2f}s" if r.start_seconds else "-", r.error or r.note or "-"]
                for r in results]
        headers = ["KERNEL", "LANGUAGE", "RESULT", "START", "ERROR"]
        if any(r.slurm for r in results):
            headers[4:4] = ["SLURM JOB", "QUEUE WAIT"]
            for row, r in zip(rows, results):
                wait = r.slurm.get("queue_wait")
                job = f"{r.slurm.get('job')} on {r.slurm.get('node')}" if r.slurm.get(
                    "job") else "-"
                row[4:4] = [job, f"{wait:.2f}s" if wait is not None else "-"]
        text = table(rows, headers) if rows else "no ozkernels kernels to check"
        self.emit(report.to_dict(), text)
        if not report.ok:
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


# The command names users type, each with its app and the line `ozkernels --help` shows.
SUBCOMMANDS: dict[str, tuple[type[OzkernelsCommand], str]] = {
    "sync": (SyncApp, "Add, update and remove ozkernels' kernel specs to match the environments."),
    "list": (ListApp, "List every environment found, with its kernel and status."),
    "add": (AddApp, "Add an environment explicitly (optionally with its modules) and sync."),
    "remove": (RemoveApp, "Remove one of ozkernels' kernels and stop syncing it back."),
    "check": (CheckApp, "Start kernels through jupyter_client, probe them and report."),
    "demo": (DemoApp, "Build a small demo site in a temporary dir, sync it, start every kernel."),
}


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
    subcommands = {name: (app, help) for name, (app, help) in SUBCOMMANDS.items()}

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
