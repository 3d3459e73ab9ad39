"""The `ozkernels` command: sync, list, add, remove, check and demo, as traitlets subcommands."""

from __future__ import annotations

import json
import os
import sys
from copy import deepcopy
from typing import Any

from jupyter_core.paths import SYSTEM_JUPYTER_PATH, jupyter_config_path
from traitlets import Bool, Enum, Float, List, TraitError, Unicode, default
from traitlets.config import Application

from . import fixes
from ._version import __version__
from .configfile import ConfigErrorFilter
from .display import shorten, table, terminal_width
from .errors import OzkernelsError, UsageError
from .failures import read_failures
from .manager import CONFIGURABLES, KernelsManager, SyncResult
from .sync import (
    BROKEN,
    NEEDS_SYNC,
    NO_IPYKERNEL,
    NO_PYTHON_KERNEL,
    REMOVED,
    STATUS_HELP,
    Plan,
)

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


TARGET_USAGE = "[--user|--sys-prefix|--system] [--prefix P] [--json]"
ALWAYS = ("h", "help", "help-all", "version", "V")


def closest(word: str, choices: list[str]) -> str:
    """' (did you mean X?)' for the closest choice, or ''."""
    import difflib

    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f" (did you mean {match[0]}?)" if match else ""


class OzkernelsBase(Application):
    """A Jupyter-style app without JupyterApp's imports (asyncio alone costs 20 ms a run)."""

    name = "jupyter-ozkernels"
    version = __version__
    config_file = Unicode("", help="A config file to load as well.").tag(config=True)
    usage = "usage: ozkernels {sync,list,add,remove,check,demo} [options]"
    #: What the command prints, for --help: (word, meaning).
    statuses: dict[str, str] = {}

    def usage_error(self, message: str, argv: list[str] | None = None) -> None:
        """One line naming the mistake, the usage line, exit 2 (JSON too, with --json)."""
        if "--json" in (argv if argv is not None else self.argv or []):
            print(json.dumps({"error": message, "exit_code": 2, "usage": self.usage}, indent=1))
        print(f"ozkernels: error: {message}\n{self.usage}\n"
              f"(see '{self.usage.split()[1]} {self.usage.split()[2]} --help')"
              if not self.subcommands else
              f"ozkernels: error: {message}\n{self.usage}\n(see 'ozkernels --help')",
              file=sys.stderr)
        self.exit(2)

    def parse_command_line(self, argv=None) -> None:
        """Refuse unknown subcommands and options before traitlets reads the rest."""
        argv = list(sys.argv[1:] if argv is None else argv)
        words = argv[:argv.index("--")] if "--" in argv else argv
        if self.subcommands:
            first = next((w for w in words if not w.startswith("-")), "")
            if first and first != "help" and first not in self.subcommands and \
                    words.index(first) == 0:
                self.usage_error(f"unknown command {first!r}"
                                 + closest(first, list(self.subcommands)), argv)
        else:
            known = [*self.flags, *self.aliases]
            for word in words:
                if not word.startswith("-") or word == "-":
                    continue
                name = word.lstrip("-").split("=", 1)[0]
                if name in ALWAYS or name in known or "." in name:
                    continue
                self.usage_error(f"unknown option {word.split('=', 1)[0]}"
                                 + closest(name, known).replace("mean ", "mean --"), argv)
        super().parse_command_line(argv)

    def emit_description(self):
        """The usage line, the description, then what the command can print."""
        yield self.usage
        yield ""
        yield from super().emit_description()
        if self.statuses:
            yield "It prints:"
            for word, meaning in self.statuses.items():
                yield f"  {word:<14} {meaning}"
            yield ""

    def initialize(self, argv=None) -> None:
        """Parse the command line, then load jupyter_ozkernels_config under it."""
        super().initialize(argv)
        if self.subapp is not None:
            return
        command_line = deepcopy(self.config)
        errors = ConfigErrorFilter(keep=False)
        self.log.addFilter(errors)
        try:
            self.load_config_file("jupyter_ozkernels_config", path=jupyter_config_path())
            if self.config_file:
                folder, filename = os.path.split(os.path.abspath(self.config_file))
                self.load_config_file(filename, path=[folder])
        finally:
            self.log.removeFilter(errors)
        if errors.errors:
            print(f"ozkernels: error: {errors.errors[0]}; fix or move it", file=sys.stderr)
            self.exit(1)
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
        """One clear line on stderr (and a JSON error on stdout with --json), exit non-zero."""
        if self.json:
            print(json.dumps({"error": message, "exit_code": code}, indent=1))
        print(f"ozkernels: error: {message}", file=sys.stderr)
        self.exit(code)

    def start(self) -> None:
        """Run the command, turning ozkernels' errors into one line."""
        try:
            self.run()
        except UsageError as e:
            self.usage_error(str(e))
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

    def arguments(self, least: int, most: int | None, what: str) -> list[str]:
        """The positional arguments, or a usage error when there are too few or too many."""
        args = list(self.extra_args)
        if len(args) < least:
            raise UsageError(f"missing {what}")
        if most is not None and len(args) > most:
            extra = " ".join(args[most:])
            raise UsageError(f"unexpected argument{'s' if args[most + 1:] else ''} {extra!r}")
        return args

    def notes(self, plan: Plan) -> None:
        """Print the plan's notes (e.g. Lmod missing) once, on stderr."""
        if not self.json:
            for note in plan.notes:
                print(f"ozkernels: {note}", file=sys.stderr)


def looked(plan: Plan) -> str:
    """Where discovery looked and how to add an env elsewhere, for an empty result."""
    lines = ["no environments found. ozkernels looked for:"]
    lines += [f"  - {where}" for where in plan.searched]
    lines.append("Add one from elsewhere with 'ozkernels add PATH', or list more places in "
                 "~/.jupyter/jupyter_ozkernels_config.py (c.VenvSource.roots, "
                 "c.CondaSource.envs_dirs).")
    return "\n".join(lines)


class SyncApp(OzkernelsCommand):
    """Add, update and remove ozkernels' kernel specs to match the environments found."""

    description = """Add, update and remove ozkernels' kernel specs so that every environment
    with ipykernel has a kernel that starts, and a deleted environment loses its kernel.
    Specs ozkernels did not write are never touched. Run inside an activated env with
    modules loaded to record those modules for that env."""
    usage = f"usage: ozkernels sync [--dry-run] [--force] {TARGET_USAGE}"
    statuses = {
        "added": "a kernel was written for a new environment ('would add' with --dry-run)",
        "updated": "a kernel was rewritten (which modules were added or dropped, if that was "
                   "why); 'would update'",
        "removed": "a kernel whose environment is gone was deleted; 'would remove'",
        "unchanged": "kernels that were already right",
        "recorded": "the modules loaded now were recorded for the active env (added/dropped); "
                    "'would record'",
    }
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
        self.arguments(0, 0, "")
        self.report(self.manager().run_sync(dry_run=self.dry_run, force=self.force))

    def report(self, result: SyncResult, notes: list[str] | None = None,
               data: dict[str, Any] | None = None) -> None:
        """Print what was (or would be) done."""
        self.notes(result.plan)
        plan, changes = result.plan, result.done
        counts = {op: sum(a.op == op for a in changes) for op in ("add", "update", "remove")}
        kept = sum(a.op == "keep" for a in plan.actions)
        verbs = {"add": "added", "update": "updated", "remove": "removed"}
        if result.dry_run:
            verbs = {k: f"would {k}" for k in verbs}
        lines = [*(notes or []), *result.notes]
        lines += [f"{verbs[a.op]:<14} {a.name:<28} {a.reason}" for a in changes]
        summary = ", ".join(f"{counts[op]} {verbs[op]}" for op in verbs)
        unchanged = "would stay unchanged" if result.dry_run else "unchanged"
        lines.append(f"{shorten(plan.kernels_dir)}: {summary}, {kept} {unchanged}")
        if not plan.rows and plan.searched:
            lines.append(looked(plan))
        self.emit(data if data is not None else result.to_dict(), "\n".join(lines))


class ListApp(OzkernelsCommand):
    """List every environment found, with its kernel and status."""

    description = """Show every environment ozkernels finds (module Pythons, venvs, conda envs)
    and each of its kernels - the Python one and one per kernelspec the env ships (IRkernel,
    bash_kernel, ...) - and the ones you removed: kind, name, kernel, language, status and,
    when something is wrong, why and the command that fixes it. The table fits the terminal
    (COLUMNS): long paths and module lists are cut in the middle; --wide shows them whole."""
    usage = f"usage: ozkernels list [--wide] {TARGET_USAGE}"
    statuses = STATUS_HELP
    flags = {**target_flags,
             "wide": ({"ListApp": {"wide": True}}, "Show whole paths and module lists.")}
    wide = Bool(False, help="Do not cut the table to the terminal's width.").tag(config=True)

    def run(self) -> None:
        """Plan without writing and show the rows."""
        self.arguments(0, 0, "")
        plan = self.manager().plan()
        self.notes(plan)
        failures = read_failures()
        data = plan.environments_model(failures)
        if not plan.rows:
            self.emit(data, looked(plan))
            return
        width = None if self.wide else terminal_width()
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
        headers = ["KIND", "NAME", "KERNEL", "LANGUAGE", "STATUS", "MODULES", "PATH"]
        text = table(rows, headers, width, shrink=(6, 5, 1, 2))
        extra = [[v["kernel"], v["display_name"]] for r in plan.rows
                 for v in [*r.variants, *(v for k in r.kernels for v in k["variant_kernels"])]]
        if extra:
            text += "\nSlurm kernels:\n" + table(extra, ["KERNEL", "DISPLAY NAME"], width,
                                                  shrink=(1, 0))
        problems = [r for r in plan.rows if r.status in (BROKEN, NO_IPYKERNEL, REMOVED)]
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
        system = plan.module_system
        if system.get("name"):
            text += f"\nmodule system: {system['label']} ({system['cmd']}; {system['reason']})"
        stale = sum(r.status == NEEDS_SYNC for r in plan.rows) + sum(
            k["status"] == NEEDS_SYNC for r in plan.rows for k in r.kernels)
        if stale:
            text += (f"\n{stale} kernel(s) need sync: run "
                     f"'{fixes.sync(self.manager().target_flags())}'")
        self.emit(data, text)


class AddApp(OzkernelsCommand):
    """Add an environment explicitly (optionally with the modules it needs) and sync."""

    description = """Add a venv or conda env that discovery does not find (or that you
    removed), and/or record the modules its kernel must load, in order (e.g. --module
    gcccore/13.2.0 --module python/3.11.5 --module astro-tools/1.0). --module replaces the
    modules recorded before (it says which); without --module they are kept; --no-modules
    records that it needs none. Each module is checked against the module system; an unknown
    one is refused with the closest names (--force records it anyway). Then sync."""
    usage = ("usage: ozkernels add PATH [--module M ...|--no-modules] [--force] [--dry-run] "
             + TARGET_USAGE)
    statuses = {
        "recorded": "the modules recorded for the env (replacing which); 'would record'",
        **{k: v for k, v in SyncApp.statuses.items() if k != "recorded"},
        "no kernel": "the env still has no kernel: its status (e.g. 'no ipykernel') and fix, "
                     "exit 1",
    }
    flags = {
        **target_flags,
        "dry-run": ({"AddApp": {"dry_run": True}}, "Show what would be recorded and synced."),
        "force": ({"AddApp": {"force": True}},
                  "Record modules the module system does not know (and, with --system, write "
                  "into a group/other-writable dir)."),
        "no-modules": ({"AddApp": {"no_modules": True}},
                       "Record that the env needs no extra modules (drops recorded ones)."),
    }
    aliases = {**target_aliases, "module": "AddApp.modules"}
    modules = List(Unicode(), help="Modules to load before activating, in order.").tag(config=True)
    dry_run = Bool(False, help="Show what would change without writing.").tag(config=True)
    force = Bool(False, help="Record unknown modules anyway.").tag(config=True)
    no_modules = Bool(False, help="Record that the env needs no modules.").tag(config=True)

    def run(self) -> None:
        """Record the env and sync; fail when it still has no kernel."""
        path = self.arguments(1, 1, "PATH (a venv or conda env dir)")[0]
        result = self.manager().add(path, list(self.modules), force=self.force,
                                    dry_run=self.dry_run, no_modules=self.no_modules)
        SyncApp(parent=self, json=self.json).report(result.sync, result.notes,
                                                    result.to_dict())
        row = result.row
        if row is not None and not row.kernel:
            msg = (f"{os.path.abspath(os.path.expanduser(path))} has no kernel: {row.status}"
                   + (f" ({row.detail})" if row.detail else "")
                   + (f"; fix: {row.fix}" if row.fix else ""))
            raise OzkernelsError(msg)


class RemoveApp(OzkernelsCommand):
    """Remove one of ozkernels' kernels and stop syncing it back."""

    description = """Remove a kernel ozkernels wrote (by kernel name, or by environment path),
    with the environment's Slurm kernels, and remember not to add them again; `ozkernels list`
    shows it as removed and `ozkernels add PATH` undoes it. A path that is no longer an env is
    forgotten."""
    usage = f"usage: ozkernels remove NAME|PATH [--dry-run] {TARGET_USAGE}"
    statuses = {
        "removed": "the kernels deleted; the env shows as 'removed' in list ('would remove')",
        "forgot": "a path that is no longer an env was dropped from what ozkernels records",
    }
    flags = {**target_flags,
             "dry-run": ({"RemoveApp": {"dry_run": True}}, "Show what would be removed.")}
    dry_run = Bool(False, help="Show what would be removed without removing.").tag(config=True)

    def run(self) -> None:
        """Remove the env's kernels and say how to bring them back."""
        arg = self.arguments(1, 1, "NAME|PATH (a kernel name or an env dir)")[0]
        result = self.manager().remove(arg, dry_run=self.dry_run)
        names, prefix = result.removed, result.prefix
        would = "would " if result.dry_run else ""
        if result.forgotten:
            text = f"{'would forget' if result.dry_run else 'forgot'} {shorten(prefix)}"
        elif names:
            it = "them" if names[1:] else "it"
            text = (f"{would}remove {', '.join(names)} ({shorten(prefix)}); 'ozkernels add "
                    f"{shorten(prefix)}' {'would bring' if would else 'brings'} {it} back")
            if not would:
                text = text.replace("remove ", "removed ", 1)
        else:
            text = (f"{would}{'hide' if would else 'hid'} {shorten(prefix)} (it had no kernel); "
                    f"'ozkernels add {shorten(prefix)}' brings it back")
        self.emit(result.to_dict(), text)


class CheckApp(OzkernelsCommand):
    """Start kernels through jupyter_client, probe them and report."""

    description = """Start each of ozkernels' kernels (all, or those named) through
    jupyter_client, ask its kernel_info, run a probe in the kernel's own language (Python, R,
    bash, Julia) to check from inside that the right environment and modules are active (and
    for a Slurm kernel that it runs in its job), shut it down, and print start-to-ready time,
    the Slurm job, node and queue wait, and pass/fail with the reason. Exits 1 if any failed."""
    usage = f"usage: ozkernels check [KERNEL ...] [--timeout S] {TARGET_USAGE}"
    statuses = {"pass": "the kernel started and runs in the right env and modules",
                "FAIL": "it did not (the reason is in ERROR); exit 1"}
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
        text = table(rows, headers) if rows else (
            f"no ozkernels kernels to check in {shorten(report.kernels_dir)}: run "
            f"'{fixes.sync(self.manager().target_flags())}' first")
        self.emit(report.to_dict(), text)
        if not report.ok:
            self.exit(1)


class DemoApp(OzkernelsCommand):
    """Build a small demo site in a temporary dir, sync it, and start every kernel."""

    description = """Build a throw-away HPC-like site (Lmod module Pythons in a gcccore ->
    python hierarchy, venvs on them, conda-layout envs, hostile names), then run `ozkernels
    list`, `sync`, `list` and `check` against it with a temporary Jupyter data dir, and end
    with a one-line summary. Your real kernels are not touched. It needs ipykernel, Lmod and
    patchelf, and says how to install what is missing. With --modules tmod the site's modules
    are EasyBuild-style Tcl modulefiles for Environment Modules instead (which it then needs:
    installed, or MODULES_CMD set to its modulecmd.tcl)."""
    usage = "usage: ozkernels demo [--keep] [--json] [--modules lmod|tmod|none]"
    statuses = {
        "$ ozkernels ...": "each step's own output (see 'ozkernels list --help' for statuses)",
        "demo passed": "the summary: environments found, kernels written, kernels checked",
        "demo FAILED": "a step failed (named); exit 1",
    }
    flags = {
        "keep": ({"DemoApp": {"keep": True}},
                 "Keep the demo site and print the settings that use it."),
        "json": target_flags["json"],
        "debug": target_flags["debug"],
    }
    aliases: dict[str, Any] = {"modules": "DemoApp.modules"}
    # The steps run with the demo's own configuration: no class options to offer.
    classes: list[Any] = []
    keep = Bool(False, help="Keep the demo site instead of deleting it.").tag(config=True)
    modules = Enum(
        ["lmod", "tmod", "none"], default_value="lmod",
        help="Module system of the demo site: 'lmod' (Lua modulefiles), 'tmod' (EasyBuild-style "
        "Tcl modulefiles for Environment Modules, found from MODULES_CMD, MODULESHOME or its "
        "standard places) or 'none' (venvs and conda envs only).",
    ).tag(config=True)

    def parse_command_line(self, argv=None) -> None:
        """Refuse the kernels-dir and configuration options: the demo brings its own."""
        words = list(sys.argv[1:] if argv is None else argv)
        for word in words:
            name = word.lstrip("-").split("=", 1)[0]
            if word.startswith("--") and (name in target_aliases or name in target_flags
                                          or "." in name) and name not in self.flags \
                    and name not in self.aliases:
                self.usage_error(f"demo does not take {word.split('=', 1)[0]}: it uses a "
                                 "throw-away site and kernels dir of its own", words)
        super().parse_command_line(argv)

    def run(self) -> None:
        """Check what it needs, build, list, sync, list, check, summarise."""
        import shutil
        import subprocess
        import tempfile
        import time

        from .demo import STEPS, DemoRun, missing, requirements_error

        self.arguments(0, 0, "")
        needs = missing(self.modules)
        if needs:
            raise OzkernelsError(requirements_error(needs))
        started = time.monotonic()
        demo = DemoRun(tempfile.mkdtemp(prefix="ozkernels-demo-"), {}, modules=self.modules)
        say = (lambda text: None) if self.json else (lambda text: print(text, flush=True))
        listing: dict[str, Any] = {}
        try:
            say(f"Building a demo site in {demo.root} ...")
            demo.build()
            for step in STEPS:
                say(f"\n$ ozkernels {' '.join(step)}")
                argv = [sys.executable, "-m", "ozkernels", *step,
                        *(["--json"] if self.json else []),
                        *(["--debug"] if self.log_level == 10 else [])]
                proc = subprocess.run(argv, env=demo.environ, timeout=600, check=False,
                                      stdout=subprocess.PIPE if self.json else None, text=True)
                output = json.loads(proc.stdout or "null") if self.json else None
                demo.steps.append({"step": step[0], "exit_code": proc.returncode,
                                   "output": output})
            final = subprocess.run([sys.executable, "-m", "ozkernels", "list", "--json"],
                                   env=demo.environ, timeout=600, check=False,
                                   capture_output=True, text=True)
            listing = json.loads(final.stdout or "{}")
        finally:
            if not self.keep:
                shutil.rmtree(demo.root, ignore_errors=True)
        summary = demo.summary(listing, time.monotonic() - started, self.keep)
        if self.json:
            self.emit({"site": demo.root, "kept": self.keep, "steps": demo.steps,
                       "environ": {k: demo.environ.get(k, "") for k in
                                   ("HOME", "MODULEPATH", "JUPYTER_DATA_DIR")}
                       if self.keep else {}, "summary": summary}, "")
        else:
            if self.keep:
                print("\n" + "\n".join(demo.keep_lines()))
            print("\n" + summary)
        if any(s["exit_code"] for s in demo.steps):
            self.exit(1)


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

    description = """ozkernels finds module Pythons (Lmod or Environment Modules), venvs and
    conda envs without running them, and writes kernel specs whose launcher loads the right
    modules and activates the environment before starting ipykernel. Configuration:
    jupyter_ozkernels_config.py|json in the Jupyter config path (~/.jupyter for a user,
    /etc/jupyter for a site)."""
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
