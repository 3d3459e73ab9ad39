"""Print shell lines that set a conda env's variables, as `conda activate` would.

Copied into conda kernels' dirs; the launcher runs it with the env's own Python as
`PYTHON -I -S ozkernels-conda-env-vars.py PREFIX` and evals what it prints: `export NAME='value'`
(single-quoted for bash) or `unset NAME`, from etc/conda/env_vars.d/* in sorted order, then
conda-meta/state's env_vars, which win. Standard library only, and Python 3.5 syntax: it runs
in whatever Python the env has.
"""

import json
import os
import re
import sys

# No `typing` import at run time (a few ms a kernel start); mypy reads the type comments.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List  # noqa: F401 - used in type comments

QUOTE = "'"
NAME = re.compile(r"(?a)[A-Za-z_][A-Za-z0-9_]*\Z")
# Read-only or shell-internal in bash: assigning them fails or changes the shell itself.
SPECIAL = {"BASHOPTS", "BASHPID", "BASH_VERSINFO", "EUID", "PPID", "SHELLOPTS", "UID"}
UNSET = "***unset***"


def warn(message):
    # type: (str) -> None
    """One warning line on stderr (Jupyter's server log)."""
    print("ozkernels: warning: " + message, file=sys.stderr)


def load(path, warn=warn):
    # type: (str, Callable[[str], None]) -> Dict[Any, Any]
    """A JSON object from a file; {} (with a warning) for anything else."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        warn("ignoring %s: %s" % (path, e))
        return {}
    if not isinstance(data, dict):
        warn("ignoring %s: not a JSON object" % path)
        return {}
    return data


def env_vars(prefix, warn=warn):
    # type: (str, Callable[[str], None]) -> Dict[Any, Any]
    """The env's variables: env_vars.d files in sorted order, then conda-meta/state."""
    found = {}  # type: Dict[Any, Any]
    folder = os.path.join(prefix, "etc", "conda", "env_vars.d")
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        names = []
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            found.update(load(path, warn))
    state = os.path.join(prefix, "conda-meta", "state")
    if os.path.isfile(state):
        values = load(state, warn).get("env_vars", {})
        if isinstance(values, dict):
            found.update(values)
        else:
            warn("ignoring env_vars in %s: not a JSON object" % state)
    return found


def quote(value):
    # type: (str) -> str
    """value single-quoted for bash."""
    return QUOTE + value.replace(QUOTE, QUOTE + "\\" + QUOTE + QUOTE) + QUOTE


def shell_lines(variables, warn=warn):
    # type: (Dict[Any, Any], Callable[[str], None]) -> List[str]
    """`export NAME='value'` / `unset NAME` lines; unusable names and values are skipped."""
    lines = []
    for key, value in variables.items():
        name = str(key).upper()
        if not NAME.match(name) or name in SPECIAL:
            warn("skipping conda env var %r: not a usable variable name" % name)
            continue
        if value is None or isinstance(value, (dict, list)):
            warn("skipping conda env var %s: value is not a string" % name)
            continue
        value = str(value)
        if value == UNSET:
            lines.append("unset %s" % name)
            continue
        if "\0" in value:
            warn("skipping conda env var %s: value contains a NUL byte" % name)
            continue
        lines.append("export %s=%s" % (name, quote(value)))
    return lines


def main(argv):
    # type: (List[str]) -> int
    """Print the lines for the prefix in argv[0]."""
    if len(argv) != 1:
        print("usage: ozkernels-conda-env-vars.py PREFIX", file=sys.stderr)
        return 2
    for line in shell_lines(env_vars(argv[0])):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
