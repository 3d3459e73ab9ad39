"""Environment Modules (Tcl) without `module`: locate modulecmd.tcl, list and read modulefiles.

Environment Modules has no spider: `avail --json` lists what MODULEPATH holds now, `display`
shows what a modulefile does (its paths, the dirs it adds to MODULEPATH). A hierarchy is walked
here, level by level: one `avail` and one `display` per level, never a module's Python.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace

from .errors import ModulesError
from .moduleinfo import ModuleInfo

STANDARD_MODULES_CMDS = (
    "/usr/share/Modules/libexec/modulecmd.tcl",  # RHEL, Fedora, SUSE
    "/usr/lib/x86_64-linux-gnu/modulecmd.tcl",  # Debian, Ubuntu
    "/usr/lib/aarch64-linux-gnu/modulecmd.tcl",
    "/usr/share/modules/libexec/modulecmd.tcl",
    "/usr/local/Modules/libexec/modulecmd.tcl",  # upstream's default prefix
    "/opt/modules/libexec/modulecmd.tcl",
)
# Loaded-module state that must not colour a listing (a loaded module changes `is-loaded`).
STATE_VARS = ("LOADEDMODULES", "_LMFILES_")
STATE_PREFIXES = ("__MODULES_",)
DISPLAY_CHUNK = 400
_INIT_CMD = re.compile(r"'([^'\n]*/modulecmd\.tcl)'")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_RULE = re.compile(r"-{20,}\Z")


def find_modules_cmd(environ: Mapping[str, str] | None = None,
                     standard: Iterable[str] = STANDARD_MODULES_CMDS) -> str | None:
    """modulecmd.tcl from MODULES_CMD, MODULESHOME (or its init script) or standard places."""
    env = os.environ if environ is None else environ
    candidates = [env.get("MODULES_CMD", "")]
    home = env.get("MODULESHOME", "")
    if home:
        candidates.append(os.path.join(home, "libexec", "modulecmd.tcl"))
        candidates.append(_init_script_cmd(os.path.join(home, "init", "bash")))
    candidates.extend(standard)
    for cmd in candidates:
        if cmd and cmd.endswith("modulecmd.tcl") and os.path.isfile(cmd):
            return cmd
    return None


def _init_script_cmd(path: str) -> str:
    """The modulecmd.tcl an init script runs (distributions keep it outside MODULESHOME)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            m = _INIT_CMD.search(f.read(65536))
    except OSError:
        return ""
    return m.group(1) if m else ""


def modulecmd_argv(cmd: str) -> list[str]:
    """How to run modulecmd.tcl: itself (its #! names the tclsh) or through tclsh on PATH."""
    return [cmd] if os.access(cmd, os.X_OK) else ["tclsh", cmd]


def quarantined(environ: Mapping[str, str]) -> dict[str, str]:
    """environ with MODULES_RUN_QUARANTINE applied, as the `module` function does it."""
    env = dict(environ)
    names = [n for n in env.get("MODULES_RUN_QUARANTINE", "").split() if _NAME.match(n)]
    for name in names:
        if name in env:
            env[f"__MODULES_QUAR_{name}"] = env[name]
        env[name] = env.get(f"MODULES_RUNENV_{name}", "")
    if names:
        env["__MODULES_QUARANTINE_SET"] = "1"
    return env


def listing_environ(environ: Mapping[str, str], modulepath: str) -> dict[str, str]:
    """The environment a listing runs in: no loaded modules, the given MODULEPATH, no pager."""
    env = {k: v for k, v in environ.items()
           if k not in STATE_VARS and not k.startswith(STATE_PREFIXES)}
    env.update(MODULEPATH=modulepath, MODULES_PAGER="", MODULES_COLOR="never",
               MODULES_VERBOSITY="normal")
    return quarantined(env)


def run_modulecmd(cmd: str, args: list[str], modulepath: str, *,
                  environ: Mapping[str, str] | None = None, timeout: float = 120) -> str:
    """Run `modulecmd.tcl bash ARGS` for its report (Environment Modules prints it on stderr)."""
    # Imported here: a sync that hits the cache (the usual case) never runs a process.
    import subprocess

    argv = [*modulecmd_argv(cmd), "bash", *args]
    env = listing_environ(os.environ if environ is None else environ, modulepath)
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except (OSError, subprocess.SubprocessError) as e:
        msg = f"Environment Modules ({cmd}) failed: {e}"
        raise ModulesError(msg) from e
    if proc.returncode != 0:
        msg = f"Environment Modules ({cmd} {args[0]}) exited {proc.returncode}: " + \
            condense(proc.stderr)
        raise ModulesError(msg)
    return proc.stderr


def condense(report: str) -> str:
    """A report's ERROR lines (else its first line) as one line."""
    lines = [ln.strip() for ln in report.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    text = " ".join(errors or lines[:1]) or "no message from Environment Modules"
    return text if len(text) <= 400 else text[:400] + "..."


def parse_avail(report: str) -> list[tuple[str, str, str]]:
    """(dir, module name, modulefile path) for every modulefile in `avail --json` output."""
    start = report.find("{")
    if start < 0:
        return []
    try:
        data, _ = json.JSONDecoder().raw_decode(report[start:])
    except ValueError as e:
        msg = f"Environment Modules' avail printed something that is not its JSON: {e}"
        raise ModulesError(msg) from e
    found = []
    for directory, entries in data.items():
        if not isinstance(entries, dict):
            continue
        for name, entry in entries.items():
            if isinstance(entry, dict) and entry.get("type", "modulefile") in (
                    "modulefile", "virtual"):
                found.append((directory, entry.get("name") or name,
                              entry.get("pathname") or os.path.join(directory, name)))
    return found


def display_words(line: str) -> list[str]:
    """Split one line of `display` output into the command and its arguments.

    Environment Modules prints each argument raw, in braces when it is empty or holds
    whitespace (not as a Tcl list: nothing inside is escaped), joined by single spaces. So a
    braced value ends at the first '}' followed by a space or the end of the line: a path
    holding '} ' and more cannot be told from two words (and is not supported).
    """
    words: list[str] = []
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            break
        if line[i] == "{":
            j = i + 1
            while True:
                j = line.find("}", j)
                if j < 0 or j + 1 == n or line[j + 1] in " \t":
                    break
                j += 1
            # Tcl's idea of whitespace (\s) is wider than Python's: any {...} is braced.
            if j >= 0:
                words.append(line[i + 1:j])
                i = j + 1
                continue
        j = i
        while j < n and line[j] not in " \t":
            j += 1
        words.append(line[i:j])
        i = j
    return words


def parse_display(report: str) -> dict[str, list[list[str]]]:
    """The commands `display` shows, by modulefile path."""
    shown: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    expect_path = False
    for line in report.splitlines():
        if _RULE.match(line):
            expect_path, current = True, None
        elif expect_path and line.endswith(":"):
            current = shown.setdefault(line[:-1], [])
            expect_path = False
        elif current is not None and line.strip():
            current.append(display_words(line))
    return shown


def _path_values(words: list[str]) -> tuple[str, list[str]]:
    """(variable, values) of a prepend-path/append-path command's words."""
    args, delim, i = words[1:], ":", 0
    while i < len(args) and args[i].startswith("-"):
        if args[i] in ("--delim", "-d") and i + 1 < len(args):
            delim, i = args[i + 1], i + 2
            continue
        if args[i].startswith("--delim="):
            delim = args[i].split("=", 1)[1]
        i += 1
    if i >= len(args):
        return "", []
    values = [v for value in args[i + 1:] for v in (value.split(delim) if delim else [value])]
    return args[i], [v for v in values if v]


def info_from_display(name: str, path: str, mpath: str, parents: tuple[str, ...],
                      commands: list[list[str]]) -> ModuleInfo:
    """A ModuleInfo from what `display` showed for one modulefile."""
    dirs: dict[str, list[str]] = {"PATH": [], "LD_LIBRARY_PATH": [], "PYTHONPATH": [],
                                  "MODULEPATH": []}
    for words in commands:
        if not words:
            continue
        if words[0] in ("prepend-path", "append-path"):
            var, values = _path_values(words)
            if var in dirs:
                dirs[var] += values
        elif words[0] == "module" and len(words) > 1 and words[1] == "use":
            dirs["MODULEPATH"] += [w for w in words[2:] if not w.startswith("-")]
    return ModuleInfo(
        full_name=name, version=name.rsplit("/", 1)[-1] if "/" in name else "", path=path,
        bin_dirs=tuple(dict.fromkeys(dirs["PATH"])),
        lib_dirs=tuple(dict.fromkeys(dirs["LD_LIBRARY_PATH"])),
        python_dirs=tuple(dict.fromkeys(dirs["PYTHONPATH"])), parents=parents, mpath=mpath,
        uses=tuple(os.path.normpath(d) for d in dict.fromkeys(dirs["MODULEPATH"])),
    )


def walk(cmd: str, modulepath: str, max_depth: int = 3, *,
         environ: Mapping[str, str] | None = None) -> list[ModuleInfo]:
    """Every modulefile on MODULEPATH and, to max_depth levels, in the dirs modulefiles add."""
    level = list(dict.fromkeys(os.path.normpath(d) for d in modulepath.split(":") if d))
    parents_of: dict[str, tuple[str, ...]] = {d: () for d in level}
    seen = set(level)
    found: list[ModuleInfo] = []
    for depth in range(max_depth + 1):
        level = [d for d in level if os.path.isdir(d)]
        if not level:
            break
        mp = ":".join(level)
        listed = parse_avail(run_modulecmd(cmd, ["avail", "--json"], mp, environ=environ))
        shown: dict[str, list[list[str]]] = {}
        paths = [p for _, _, p in listed]
        for i in range(0, len(paths), DISPLAY_CHUNK):
            report = run_modulecmd(cmd, ["display", *paths[i:i + DISPLAY_CHUNK]], mp,
                                   environ=environ)
            shown.update(parse_display(report))
        next_level = []
        for directory, name, path in listed:
            mpath = os.path.normpath(directory)
            info = info_from_display(name, path, mpath, parents_of.get(mpath, ()),
                                     shown.get(path, []))
            found.append(info)
            for d in info.uses:
                if d not in seen and depth < max_depth:
                    seen.add(d)
                    parents_of[d] = info.chain
                    next_level.append(d)
        level = next_level
    return _adopt(found)


def _adopt(found: list[ModuleInfo]) -> list[ModuleInfo]:
    """Give modules in a dir that another module adds to MODULEPATH that module as parent.

    MODULEPATH may already hold such a dir (the server had the parent loaded); the module
    still needs its parent after a purge.
    """
    users: dict[str, ModuleInfo] = {}
    for m in found:
        for d in m.uses:
            if d != m.mpath:
                users.setdefault(d, m)
    out = []
    for m in found:
        parent = users.get(m.mpath)
        if parent and not m.parents:
            m = replace(m, parents=parent.chain)
        out.append(m)
    return sorted(out, key=lambda m: (m.full_name, m.path))


def base_modulepath(modulepath: str, modules: Iterable[ModuleInfo]) -> str:
    """MODULEPATH without the dirs that modules add (those come back with their parent)."""
    used = {d for m in modules for d in m.uses}
    return ":".join(d for d in modulepath.split(":") if d and os.path.normpath(d) not in used)
