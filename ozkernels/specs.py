"""Pure builders: kernel names, display names, launcher argv and kernel.json dicts."""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from functools import lru_cache
from typing import Any

from .environment import Environment, WrappedSpec
from .errors import SpecError
from .kernel_files import ACTIVATIONS
from .kernel_files import LAUNCHER_NAME as LAUNCHER_NAME  # where callers look for it

SPEC_VERSION = 1
SITE_PREFIX = "site-"
_INVALID = re.compile(r"[^a-z0-9._-]+")
MAX_SLUG = 48
# What jupyter_client replaces in every argv word before it starts a kernel (and what it may
# be handed to replace: connection_file, prefix, resource_dir, and its launch arguments).
PLACEHOLDER = re.compile(r"\{[A-Za-z0-9_]+\}")
# The micro version and the modules besides the interpreter's tell same-version kernels apart.
DEFAULT_DISPLAY = "Python {full_version} ({kind}: {name}{plus_modules})"


def slug(text: str) -> str:
    """A kernel-name-safe rendering of any text ('' when nothing survives)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _INVALID.sub("-", ascii_text.lower()).strip("-._")[:MAX_SLUG].strip("-._")


def prefix_hash(prefix: str) -> str:
    """A short stable hash of a prefix, for names that would otherwise clash."""
    return hashlib.sha256(os.fsencode(prefix)).hexdigest()[:6]


def base_kernel_name(env: Environment, site: bool = False, wraps: str = "") -> str:
    """The preferred kernel name: kind and a slug of the env name (and of a wrapped spec's)."""
    body = slug(env.name.replace("/", "-")) or prefix_hash(env.prefix)
    tail = f"-{slug(wraps) or prefix_hash(wraps)}" if wraps else ""
    return f"{SITE_PREFIX if site else ''}{env.kind}-{body}{tail}"


def choose_kernel_name(env: Environment, taken: set[str], site: bool = False,
                       wraps: str = "") -> str:
    """The base name when free, else one made unique by the prefix's hash."""
    base = base_kernel_name(env, site, wraps)
    name = base
    if name in taken:
        name = f"{base}-{prefix_hash(env.prefix + wraps)}"
        n = 2
        while name in taken:
            name = f"{base}-{prefix_hash(env.prefix + wraps)}-{n}"
            n += 1
    return name


def display_name(env: Environment, template: str) -> str:
    """The display name from a str.format template over the env's fields."""
    fields = {
        "version": env.version or "3", "kind": env.kind, "name": env.name,
        "prefix": env.prefix, "modules": " ".join(env.modules),
        "full_version": env.full_version or env.version or "3",
        "extra_modules": " ".join(env.extra_modules),
        "plus_modules": "".join(f" + {m}" for m in env.extra_modules),
    }
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError):
        return DEFAULT_DISPLAY.format(**fields)


def argv_value(value: str) -> str:
    """A value as a kernel.json argv word that jupyter_client's {placeholder} pass leaves alone.

    '%' and '{' are percent-encoded (the launchers decode them), so a path such as
    '~/venvs/{prefix}' reaches the kernel as it is on disk.
    """
    return value.replace("%", "%25").replace("{", "%7B")


def kernel_file(kernel_dir: str, filename: str) -> str:
    """argv's path of a file in a kernel dir: absolute, unless jupyter_client would rewrite it."""
    path = os.path.join(os.path.abspath(kernel_dir), filename)
    # {resource_dir} is replaced in one pass, so the dir's own braces survive; only then, as
    # `jupyter kernelspec list --missing` cannot see through it.
    return f"{{resource_dir}}/{filename}" if PLACEHOLDER.search(path) else path


def launcher_argv(env: Environment, launcher: str, kernel_name: str, module_system: str = "",
                  module_cmd: str = "", modulepath: str = "", activation: str = "",
                  command: list[str] | None = None,
                  keep_env: list[str] | None = None) -> list[str]:
    """kernel.json argv: the launcher with every value as a separate, encoded word.

    With `command` (a wrapped kernelspec's argv, left for jupyter_client to fill in) the
    launcher execs it instead of ipykernel.
    """
    # The launcher's --kind is how it activates (kernel_files.ACTIVATIONS), not the env's kind.
    style = activation or env.kind
    if style not in ACTIVATIONS:
        msg = f"{env.kind} env {env.prefix}: activation {style!r} is not one of {list(ACTIVATIONS)}"
        raise SpecError(msg)
    options = [("--kind", style), ("--prefix", env.prefix),
               *([("--python", env.python)] if env.python else []),
               ("--name", env.name), *(("--module", m) for m in env.modules)]
    if env.modules and module_system:
        options.append(("--module-system", module_system))
    if env.modules and module_cmd:
        options.append(("--module-cmd", module_cmd))
    if env.modules and modulepath:
        options.append(("--modulepath", modulepath))
    options.append(("--kernel", kernel_name))
    argv = [launcher]
    for option, value in options:
        argv += [option, argv_value(value)]
    if command is not None:
        argv.append("--exec")
        for name in keep_env or ():
            argv += ["--keep-env", name]
        return [*argv, "--", *command]
    return [*argv, "--", "-f", "{connection_file}"]


# A sync seals hundreds of specs with the same launcher bytes: hash each content once.
@lru_cache(maxsize=256)
def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def fingerprint(spec: dict[str, Any], files: dict[str, bytes]) -> str:
    """A hash of everything that makes a spec what it is, its executable files included."""
    h = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    for name in sorted(files):
        h.update(name.encode() + b"\0" + _digest(files[name]))
    return h.hexdigest()[:16]


def build_spec(env: Environment, *, kernel_name: str, launcher: str, display: str,
               module_system: str = "", module_cmd: str = "", modulepath: str = "",
               site: bool = False, files: dict[str, bytes] | None = None,
               activation: str = "") -> dict[str, Any]:
    """The kernel.json dict for an environment."""
    argv = launcher_argv(env, launcher, kernel_name, module_system, module_cmd, modulepath,
                         activation)
    spec: dict[str, Any] = {
        "argv": argv,
        "display_name": display,
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {"debugger": True, "ozkernels": owner_metadata(env, argv, site, files)},
    }
    return seal(spec, files or {})


def owner_metadata(env: Environment, argv: list[str], site: bool,
                   files: dict[str, bytes] | None, **extra: str) -> dict[str, Any]:
    """The spec's `metadata.ozkernels`: what ozkernels wrote it for (extra: a wrapped spec's)."""
    owner: dict[str, Any] = {
        "spec_version": SPEC_VERSION,
        "kind": env.kind,
        "activation": argv[2],
        "prefix": env.prefix,
        "python": env.python,
        "env_name": env.name,
        "modules": list(env.modules),
        "site": site,
        "variant": "",
        **extra,
    }
    owner["files"] = sorted(files or {})
    return owner


def seal(spec: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
    """Set (or reset) the spec's fingerprint over its content and files."""
    owner = spec["metadata"]["ozkernels"]
    owner.pop("fingerprint", None)
    owner["files"] = sorted(files)
    owner["fingerprint"] = fingerprint(spec, files)
    return spec


def ownership(spec: Any) -> dict[str, Any] | None:
    """ozkernels' metadata when a spec dict is one ozkernels wrote, else None."""
    if not isinstance(spec, dict):
        return None
    meta = spec.get("metadata")
    owned = meta.get("ozkernels") if isinstance(meta, dict) else None
    if isinstance(owned, dict) and isinstance(owned.get("prefix"), str):
        return owned
    return None


def wrapped_display_name(env: Environment, ws: WrappedSpec, template: str) -> str:
    """A wrapped kernel's display name, e.g. 'R 4.2 (conda: rstats)', from a template."""
    fields = {
        "display_name": ws.display_name, "language": ws.language,
        "language_version": ws.language_version, "kernelspec": ws.name, "kind": env.kind,
        "name": env.name, "prefix": env.prefix, "modules": " ".join(env.modules),
    }
    try:
        text = template.format(**fields)
    except (KeyError, IndexError, ValueError):
        text = "{display_name} {language_version} ({kind}: {name})".format(**fields)
    # An empty field ('Bash  (venv: tools)') must not leave a gap.
    return " ".join(text.split())


def wrapped_command(ws: WrappedSpec) -> list[str]:
    """The wrapped spec's argv, its {resource_dir} pointing at the env's own spec dir."""
    # jupyter_client would put the wrapping kernel's dir there, which lacks the spec's files.
    return [a.replace("{resource_dir}", ws.resource_dir) for a in ws.spec["argv"]]


def build_wrapped_spec(env: Environment, ws: WrappedSpec, *, kernel_name: str, launcher: str,
                       display: str, module_system: str = "", module_cmd: str = "",
                       modulepath: str = "", site: bool = False,
                       files: dict[str, bytes] | None = None,
                       activation: str = "") -> dict[str, Any]:
    """The kernel.json dict that runs a kernelspec the env ships, inside the activated env."""
    wrapped = ws.spec
    env_vars = wrapped.get("env") or {}
    # PATH stays the activation's (the env's bin first); the spec's own PATH is the base it
    # extends, as jupyter_client sets it before the launcher runs.
    keep = [name for name in sorted(env_vars) if name != "PATH"]
    # Only KernelSpec's own fields: jupyter_client warns about any other key (bash_kernel's
    # 'codemirror_mode'), in every client that lists the kernel.
    spec: dict[str, Any] = {"env": dict(env_vars)} if env_vars else {}
    argv = launcher_argv(env, launcher, kernel_name, module_system, module_cmd, modulepath,
                         activation, command=wrapped_command(ws), keep_env=keep)
    spec.update(
        argv=argv,
        display_name=display,
        language=wrapped.get("language", ""),
        interrupt_mode=wrapped.get("interrupt_mode", "signal"),
    )
    metadata = dict(wrapped.get("metadata") or {})
    metadata["ozkernels"] = owner_metadata(env, argv, site, files, wraps=ws.name,
                                           wrapped_dir=ws.resource_dir)
    spec["metadata"] = metadata
    return seal(spec, files or {})
