"""Start failures: the one line a launcher that gave up also leaves in a small file per kernel."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from jupyter_core.paths import jupyter_data_dir

ENV_VAR = "OZKERNELS_FAILURES_DIR"
MAX_RECORD = 8192


@dataclass(frozen=True)
class StartFailure:
    """The last failed start of one kernel, as its launcher recorded it."""

    kernel: str
    message: str
    connection_file: str
    time: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; time also as local ISO text."""
        data = asdict(self)
        data["when"] = datetime.fromtimestamp(self.time).astimezone().isoformat(
            timespec="seconds")
        return data


def failures_dir() -> str:
    """Where launchers record failures: $OZKERNELS_FAILURES_DIR, else in Jupyter's data dir.

    The launcher computes the same default in bash (JUPYTER_DATA_DIR, XDG_DATA_HOME, HOME); the
    server extension exports the variable so its kernels write where it reads.
    """
    return os.environ.get(ENV_VAR) or os.path.join(jupyter_data_dir(), "ozkernels", "failures")


def launcher_default() -> str:
    """The dir the launcher picks without OZKERNELS_FAILURES_DIR (the bash rule, in Python)."""
    data = os.environ.get("JUPYTER_DATA_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.join(os.environ.get("HOME", ""), ".local",
                                                        "share"), "jupyter")
    return os.path.join(data, "ozkernels", "failures")


def parse(kernel: str, text: str, mtime: float) -> StartFailure | None:
    """A record's two lines (the message, the connection file), or None when it has none."""
    lines = text.splitlines()
    message = lines[0].strip() if lines else ""
    if not message:
        return None
    return StartFailure(kernel, message, lines[1].strip() if len(lines) > 1 else "", mtime)


def read_failure(directory: str, kernel: str) -> StartFailure | None:
    """One kernel's record, or None."""
    path = os.path.join(directory, kernel)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        mtime = os.fstat(fd).st_mtime
        text = os.read(fd, MAX_RECORD).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)
    return parse(kernel, text, mtime)


def read_failures(directory: str | None = None) -> dict[str, StartFailure]:
    """Every kernel's last start failure by kernel name (a missing dir: none)."""
    directory = directory or failures_dir()
    try:
        with os.scandir(directory) as entries:
            names = [e.name for e in entries if not e.name.startswith(".")]
    except OSError:
        return {}
    found = {}
    for name in sorted(names):
        record = read_failure(directory, name)
        if record is not None:
            found[name] = record
    return found


def dir_stamp(directory: str) -> tuple[int, int]:
    """The dir's mtime and inode (a record written or removed changes it), or (-1, -1)."""
    try:
        st = os.stat(directory)
    except OSError:
        return -1, -1
    return st.st_mtime_ns, st.st_ino


class FailureWatch:
    """Tells which failures are new since the last look; one stat when nothing changed."""

    def __init__(self, directory: str, since: float):
        self.directory = directory
        self.since = since
        self.current: dict[str, StartFailure] = {}
        self._stamp: tuple[int, int] | None = None
        self._told: dict[str, tuple[str, str]] = {}

    def poll(self) -> list[StartFailure]:
        """Failures recorded since the previous poll (each start attempt's once)."""
        stamp = dir_stamp(self.directory)
        if stamp == self._stamp:
            return []
        self._stamp = stamp
        self.current = read_failures(self.directory)
        for name in set(self._told) - set(self.current):
            del self._told[name]  # it started since: its next failure is news again
        new = []
        for name, record in self.current.items():
            # Jupyter restarts a dying kernel up to 5 times with the same connection file:
            # one notice per start attempt, not per restart.
            key = (record.message, record.connection_file)
            if record.time >= self.since and self._told.get(name) != key:
                self._told[name] = key
                new.append(record)
        return new
