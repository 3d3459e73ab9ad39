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


def read_small(path: str) -> str:
    """A small file's text with one metadata call (open() would add two fstat calls)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def read_pyvenv_cfg(path: str) -> dict[str, str]:
    """The key = value pairs of a pyvenv.cfg (keys lower-cased, as venv reads them)."""
    text = read_small(path)
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip().lower()] = value.strip()
    return values


