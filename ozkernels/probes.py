"""Probes that a kernel runs in its own language to report, from inside, where it runs."""

from __future__ import annotations

import json
from typing import Any

MARKER = "OZK-PROBE"
# What every probe reports: field -> environment variable.
FIELDS = {"virtual_env": "VIRTUAL_ENV", "conda_prefix": "CONDA_PREFIX",
          "loaded": "LOADEDMODULES", "slurm_job_id": "SLURM_JOB_ID"}
# Each probe also computes 6 * 7 in the kernel's language: the kernel really executes code.
VALUE = "42"

_PYTHON = (
    "import json, os, sys\n"
    f"print({MARKER!r} + ' ' + json.dumps({{'prefix': sys.prefix, 'executable': sys.executable,"
    + "".join(f" {k!r}: os.environ.get({v!r}, '')," for k, v in FIELDS.items())
    + " 'value': 6 * 7, 'pid': os.getpid()}))\n"
)
_R = (
    "local({"
    f"f <- c({', '.join(repr(k) for k in FIELDS)}); "
    f"v <- Sys.getenv(c({', '.join(repr(v) for v in FIELDS.values())})); "
    f"cat({MARKER!r}, paste0(f, '=', v), paste0('value=', 6 * 7), "
    "paste0('pid=', Sys.getpid()), sep = '\\t'); cat('\\n')})"
)
_BASH = (
    f"printf '{MARKER}" + "".join(f"\\t{k}=%s" for k in FIELDS) + "\\tvalue=%s\\tpid=%s\\n' "
    + " ".join(f'"${{{v}:-}}"' for v in FIELDS.values()) + ' "$((6 * 7))" "$$"'
)
_JULIA = (
    f'println(join(["{MARKER}"; ['
    + ", ".join(f'"{k}=" * get(ENV, "{v}", "")' for k, v in FIELDS.items())
    + ']; "value=$(6 * 7)"; "pid=$(getpid())"], "\\t"))'
)
PROBES = {"python": _PYTHON, "r": _R, "bash": _BASH, "julia": _JULIA}


def probe_code(language: str) -> str:
    """The probe for a kernel language (case-insensitive), or '' when there is none."""
    return PROBES.get(language.lower(), "")


def parse_probe(text: str) -> dict[str, Any] | None:
    """The fields a probe printed (a JSON object or tab-separated name=value), or None."""
    for line in text.splitlines():
        if not line.startswith(MARKER):
            continue
        rest = line[len(MARKER):].strip(" \t")
        if rest.startswith("{"):
            try:
                data = json.loads(rest)
            except ValueError:
                return None
            return data if isinstance(data, dict) else None
        return dict(w.split("=", 1) for w in line.split("\t")[1:] if "=" in w)
    return None
