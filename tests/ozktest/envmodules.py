"""Environment Modules for the tests: Debian's package unpacked, and Lmod hidden.

Debian's `environment-modules` and `lmod` packages conflict, so the tests unpack the .deb that
tests/run.sh downloads (`apt-get download`) into a temporary dir, point its hard-coded paths
there, and, while a Tcl site is in use, hide Lmod behind empty bind mounts in the test session's
own mount namespace (entered once at start-up: nothing the tests mount reaches the host).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

DEB_VAR = "OZK_ENVMODULES_DEB"
# Debian's paths compiled into modulecmd.tcl and its init scripts (and /usr/lib/<triplet>).
PACKAGE_PATHS = ("/usr/share/modules", "/etc/environment-modules")
# What makes a host an Lmod host to ozkernels (install dir, login profile script).
LMOD_PATHS = ("/usr/share/lmod", "/etc/profile.d/lmod.sh")
CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
MS_BIND, MS_REC, MS_PRIVATE, MNT_DETACH = 4096, 16384, 1 << 18, 2

_namespace = {"private": False, "why": "not tried"}


def cache_dir() -> Path:
    """Where tests/run.sh keeps downloaded packages."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ozkernels-tests" / "debs"


def find_deb() -> str:
    """The environment-modules .deb: $OZK_ENVMODULES_DEB, else the one in the cache dir."""
    given = os.environ.get(DEB_VAR, "")
    if given and os.path.isfile(given):
        return given
    found = sorted(glob.glob(str(cache_dir() / "environment-modules_*.deb")))
    if found:
        return found[-1]
    msg = (f"no environment-modules .deb: run tests/run.sh (it runs `apt-get download "
           f"environment-modules` into {cache_dir()}) or set {DEB_VAR}")
    raise RuntimeError(msg)


def unpack(deb: str, dest: Path) -> str:
    """Unpack the package into dest, repoint its compiled-in paths there; return modulecmd.tcl."""
    subprocess.run(["dpkg-deb", "-x", deb, str(dest)], check=True, timeout=60,
                   capture_output=True)
    cmds = sorted(dest.glob("usr/lib/*-linux-gnu*/modulecmd.tcl"))
    if not cmds or not shutil.which("tclsh8.6"):
        msg = f"{deb} did not give a usable modulecmd.tcl (is tcl8.6 installed?)"
        raise RuntimeError(msg)
    libdir = "/" + str(cmds[0].parent.relative_to(dest))
    old = [p.encode() for p in (*PACKAGE_PATHS, libdir)]
    for path in dest.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if any(o in data for o in old):
            for o in old:
                data = data.replace(o, str(dest).encode() + o)
            path.write_bytes(data)
    link = dest / "usr/share/modules/init/.modulespath"
    if link.is_symlink():
        link.unlink()
        link.symlink_to(dest / "etc/environment-modules/modulespath")
    return str(cmds[0])


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def enter_private_namespace() -> None:
    """Move this (still single-threaded) process into a mount namespace of its own."""
    if threading.active_count() != 1:
        _namespace["why"] = "the test process already runs threads"
        return
    libc = _libc()
    if libc.unshare(CLONE_NEWNS) != 0:
        # Not root: an unprivileged user namespace (same uid inside) gives the same power.
        uid, gid = os.getuid(), os.getgid()
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:
            _namespace["why"] = f"unshare failed: {os.strerror(ctypes.get_errno())}"
            return
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        _namespace["why"] = f"making / private failed: {os.strerror(ctypes.get_errno())}"
        return
    _namespace.update(private=True, why="")


@contextlib.contextmanager
def lmod_hidden(empty: Path) -> Iterator[None]:
    """Hide Lmod's install dir and profile script behind empty bind mounts, then restore."""
    if not _namespace["private"]:
        msg = f"cannot hide Lmod without a private mount namespace: {_namespace['why']}"
        raise RuntimeError(msg)
    libc = _libc()
    (empty / "dir").mkdir(parents=True, exist_ok=True)
    (empty / "file").touch()
    mounted = []
    try:
        for target in LMOD_PATHS:
            if not os.path.exists(target):
                continue
            source = empty / ("dir" if os.path.isdir(target) else "file")
            if libc.mount(str(source).encode(), target.encode(), None, MS_BIND, None) != 0:
                msg = f"bind mount over {target} failed: {os.strerror(ctypes.get_errno())}"
                raise RuntimeError(msg)
            mounted.append(target)
        yield
    finally:
        for target in reversed(mounted):
            libc.umount2(target.encode(), MNT_DETACH)


def lmod_visible() -> bool:
    """Whether Lmod's standard command is reachable from this process."""
    return os.path.exists("/usr/share/lmod/lmod/libexec/lmod")
