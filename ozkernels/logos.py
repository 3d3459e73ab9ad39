"""Kernel logos: the files a kernel dir carries so the Launcher shows an icon, not a letter."""

from __future__ import annotations

import os
from functools import lru_cache
from importlib.resources import files

LOGO_NAMES = ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg")
REQUIRED = ("logo-32x32.png", "logo-64x64.png")
MAX_LOGO = 1 << 20  # a bigger "logo" is not one; never copy it into every kernel dir


def _read(path: str) -> bytes | None:
    """A small file's bytes, or None when unreadable or too big (one open, reads, close)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, MAX_LOGO + 1)
        while len(data) <= MAX_LOGO and (more := os.read(fd, MAX_LOGO + 1 - len(data))):
            data += more
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if 0 < len(data) <= MAX_LOGO else None


def logos_in(spec_dir: str) -> dict[str, bytes]:
    """The logo files a kernelspec dir holds (one directory read, then only logos are opened)."""
    try:
        with os.scandir(spec_dir) as entries:
            names = [e.name for e in entries if e.name in LOGO_NAMES]
    except OSError:
        return {}
    found = {}
    for name in sorted(names):
        data = _read(os.path.join(spec_dir, name))
        if data is not None:
            found[name] = data
    return found


@lru_cache(maxsize=1)
def shipped_logos() -> dict[str, bytes]:
    """ozkernels' own logos (drawn by scripts/draw_logos.py)."""
    folder = files("ozkernels").joinpath("logos")
    return {name: folder.joinpath(name).read_bytes() for name in LOGO_NAMES}


def complete(found: dict[str, bytes]) -> bool:
    """Whether a set of logos has both PNG sizes JupyterLab uses."""
    return all(name in found for name in REQUIRED)


def kernel_logos(*spec_dirs: str) -> dict[str, bytes]:
    """The logos of the first spec dir that has both PNGs, else ozkernels' own.

    Python kernels pass the env's own ipykernel spec dir; a wrapped kernelspec passes its dir.
    """
    for spec_dir in spec_dirs:
        found = logos_in(spec_dir)
        if complete(found):
            return found
    return dict(shipped_logos())


def ipykernel_spec_dir(prefix: str) -> str:
    """Where ipykernel's wheel puts its own spec (and logos) in an environment."""
    return os.path.join(prefix, "share", "jupyter", "kernels", "python3")
