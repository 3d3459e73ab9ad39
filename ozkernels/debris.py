"""Leftovers of writes a killed process did not finish: temporary files named by their pid."""

from __future__ import annotations

import contextlib
import os
import re

# The registry's and the spider cache's temporary files: NAME.PID.tmp (atomic replace).
_TEMP = re.compile(r"\.(\d+)\.tmp$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's: not ours to judge
    return True


def remove_dead_temps(directory: str) -> list[str]:
    """Remove NAME.PID.tmp files in directory whose writer is gone; return their names."""
    try:
        names = [e.name for e in os.scandir(directory) if _TEMP.search(e.name)]
    except OSError:
        return []
    removed = []
    for name in names:
        m = _TEMP.search(name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))
                removed.append(name)
    return removed
