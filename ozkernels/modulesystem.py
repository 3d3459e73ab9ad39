"""Which module system a site runs (Lmod or Environment Modules), found without `module`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .envmodules import find_modules_cmd
from .lmod import find_lmod_cmd

LMOD, TMOD = "lmod", "tmod"
LABELS = {LMOD: "Lmod", TMOD: "Environment Modules"}
SYSTEMS = ("auto", LMOD, TMOD, "none")
PROFILE_SCRIPTS = {LMOD: "/etc/profile.d/lmod.sh", TMOD: "/etc/profile.d/modules.sh"}


@dataclass(frozen=True)
class ModuleSystem:
    """The module system in use: its id, its command and why it was chosen."""

    name: str = ""
    cmd: str = ""
    reason: str = ""

    @property
    def label(self) -> str:
        """'Lmod', 'Environment Modules', or '' when there is none."""
        return LABELS.get(self.name, "")

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready dict."""
        return {"name": self.name, "label": self.label, "cmd": self.cmd, "reason": self.reason}


def shell_choice(environ: Mapping[str, str]) -> str:
    """The system the user's shell initialised, by the variables its init left, or ''."""
    lmod = bool(environ.get("LMOD_CMD") or environ.get("LMOD_DIR") or environ.get("LMOD_PKG"))
    tmod = bool(environ.get("MODULES_CMD"))
    if lmod != tmod:
        return LMOD if lmod else TMOD
    if lmod and tmod:
        # Both initialised (one after the other): the `module` function the shell ended up with
        # is the one the user runs; bash exports it as BASH_FUNC_module%%.
        body = environ.get("BASH_FUNC_module%%", "")
        if "_module_raw" in body or "modulecmd" in body:
            return TMOD
        if "LMOD" in body or "lmod" in body:
            return LMOD
        loaded_by_tmod = any(k.startswith("__MODULES_LM") for k in environ)
        return TMOD if loaded_by_tmod and "_ModuleTable001_" not in environ else LMOD
    home = environ.get("MODULESHOME", "")
    if home and os.path.isfile(os.path.join(home, "libexec", "lmod")):
        return LMOD
    if home and os.path.isdir(os.path.join(home, "init")) and find_modules_cmd(
            {"MODULESHOME": home}, standard=()):
        return TMOD
    return ""


# Reasons that come from the user's own setup: worth recording for a later run that lacks it.
FIRST_HAND = ("Discovery.module_system", "configured command", "initialised in this shell")
RECORDED = "recorded at an earlier sync"


def detect(environ: Mapping[str, str] | None = None, *, override: str = "auto",
           lmod_cmd: str = "", modules_cmd: str = "",
           recorded: ModuleSystem | None = None) -> ModuleSystem:
    """The module system to use: the override, else the user's shell's, else the one recorded
    at an earlier sync (a server started without the shell's set-up), else what is installed."""
    env = os.environ if environ is None else environ
    finders = {
        LMOD: lambda: lmod_cmd or find_lmod_cmd(dict(env)),
        TMOD: lambda: modules_cmd or find_modules_cmd(env),
    }
    if override == "none":
        return ModuleSystem(reason="Discovery.module_system is 'none'")
    if override in finders:
        cmd = finders[override]()
        if cmd:
            return ModuleSystem(override, cmd, "Discovery.module_system")
        return ModuleSystem(reason=f"Discovery.module_system is {override!r} but "
                                   f"{LABELS[override]} was not found")
    if lmod_cmd or modules_cmd:
        # An explicitly configured command says which system the site runs.
        name = LMOD if lmod_cmd else TMOD
        return ModuleSystem(name, lmod_cmd or modules_cmd, "configured command")
    chosen = shell_choice(env)
    if chosen:
        cmd = finders[chosen]()
        if cmd:
            return ModuleSystem(chosen, cmd, "initialised in this shell")
    if recorded and recorded.name in finders and os.path.isfile(recorded.cmd):
        return ModuleSystem(recorded.name, recorded.cmd, RECORDED)
    found = {name: cmd for name, find in finders.items() if (cmd := find())}
    if len(found) > 1:
        # Both installed, neither initialised here: the login profile decides what users get.
        profiled = [n for n in found if os.path.exists(PROFILE_SCRIPTS[n])]
        name = profiled[0] if len(profiled) == 1 else LMOD
        return ModuleSystem(name, found[name], "installed (both are; the login profile's)")
    for name, cmd in found.items():
        return ModuleSystem(name, cmd, "installed")
    return ModuleSystem(reason="neither Lmod nor Environment Modules found (set LMOD_CMD or "
                               "MODULES_CMD, or Discovery.lmod_cmd / Discovery.modules_cmd)")
