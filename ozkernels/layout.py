"""Facts about a Python prefix read from its files, never by running its interpreter."""

from __future__ import annotations

import os
import re

_PYDIR = re.compile(r"^python(\d+\.\d+)t?$")


def site_packages(prefix: str, version: str) -> str:
    """The purelib dir of a POSIX prefix for a 'X.Y' version."""
    return os.path.join(prefix, "lib", f"python{version}", "site-packages")


def has_ipykernel(prefix: str, version: str) -> bool:
    """Whether ipykernel's launcher module is installed in the prefix (one stat)."""
    return bool(version) and os.path.exists(
        os.path.join(site_packages(prefix, version), "ipykernel_launcher.py")
    )


def has_pip(prefix: str, version: str) -> bool:
    """Whether pip is installed in the prefix (one stat)."""
    return bool(version) and os.path.isdir(os.path.join(site_packages(prefix, version), "pip"))


def version_from_lib(prefix: str) -> str:
    """'X.Y' of the newest lib/pythonX.Y dir, or '' (one directory read)."""
    try:
        names = [m.group(1) for e in os.scandir(os.path.join(prefix, "lib"))
                 if (m := _PYDIR.match(e.name))]
    except OSError:
        return ""
    return max(names, key=lambda v: tuple(map(int, v.split("."))), default="")


def version_from_python_link(python: str) -> str:
    """'X.Y' from a bin/python -> python3.X symlink, or '' (one readlink)."""
    try:
        target = os.path.basename(os.readlink(python))
    except OSError:
        return ""
    m = _PYDIR.match(target)
    return m.group(1) if m else ""


# Files ozkernels reads (pyvenv.cfg, environments.txt, condarc, kernel.json, its registry) are
# small; one bigger than this is damaged, and reading it whole would cost the sync its memory.
MAX_READ = 4 << 20
PATH_MAX = 4096


class DamagedFileError(ValueError):
    """A file's content is not what it should be (too big, or not the expected format)."""


def read_small(path: str, limit: int = MAX_READ) -> str:
    """A small file's text with one metadata call (open() would add two fstat calls).

    Bytes that are not UTF-8 come back as surrogate escapes, so paths keep their exact bytes.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 16):
            size += len(chunk)
            if size > limit:
                msg = f"{path} is larger than {limit >> 20} MiB"
                raise DamagedFileError(msg)
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "surrogateescape")


def path_problem(path: str) -> str:
    """Why a path read from a file can be no path on Linux, or '' when it can be one."""
    if "\0" in path:
        return "it contains a NUL byte"
    if len(os.fsencode(path)) >= PATH_MAX:
        return f"it is longer than {PATH_MAX} bytes"
    return ""


def text_lines(text: str) -> list[str]:
    """Lines split at LF only (CRLF ends too): str.splitlines() also splits at \\x1c, \\x85..."""
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def read_pyvenv_cfg(path: str) -> dict[str, str]:
    """The key = value pairs of a pyvenv.cfg (keys lower-cased, as venv reads them)."""
    text = read_small(path)
    values = {}
    for line in text_lines(text):
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip().lower()] = value.strip()
    return values


