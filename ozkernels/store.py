"""One kernels directory: read specs, write and remove ozkernels' own, atomically and locked."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from . import launchmemo
from .errors import LockError, SpecError
from .layout import read_small
from .specs import LAUNCHER_NAME, ownership

LOCK_NAME = ".ozkernels.lock"
# Where writes are prepared and removals finished: a dir without kernel.json, so no Jupyter
# lists what is in it, on the kernels dir's own filesystem, so a rename puts a spec in place
# (or takes it away) at once. What a killed sync left in it goes at the next sync.
STAGING = ".ozkernels-staging"
# Temporary names of earlier versions (files and dirs of their own at the top level).
OLD_DEBRIS = (".ozk-new-", ".ozk-")


@dataclass(frozen=True)
class SpecFile:
    """A kernel spec dir found on disk."""

    name: str
    path: str
    spec: dict[str, Any] | None

    @property
    def owner(self) -> dict[str, Any] | None:
        """ozkernels' metadata, or None for a spec someone else wrote."""
        return ownership(self.spec)


def launcher_dirs(spec: SpecFile) -> set[str]:
    """The kernel dir as its launcher sees it: the spec's own path and argv's launcher's dir."""
    argv = (spec.spec or {}).get("argv")
    words = argv if isinstance(argv, list) else []
    return {spec.path, *(os.path.dirname(w) for w in words if isinstance(w, str)
                         and os.path.basename(w) == LAUNCHER_NAME and w.startswith("/"))}


class KernelStore:
    """A kernels directory (e.g. ~/.local/share/jupyter/kernels)."""

    def __init__(self, path: str, *, site: bool = False, root: str = ""):
        self.path = path
        self.site = site
        # Site kernels: the top dir (e.g. --prefix) from which every dir down to the kernels
        # dir must not be writable by group or others.
        self.root = root or path

    def scan(self) -> dict[str, SpecFile]:
        """Every spec dir by name; unreadable kernel.json files count as foreign."""
        found = {}
        try:
            entries = list(os.scandir(self.path))
        except FileNotFoundError:
            return {}
        except OSError as e:
            msg = f"cannot read kernels directory {self.path}: {e.strerror}"
            raise SpecError(msg) from e
        for entry in entries:
            if entry.name.startswith("."):
                continue
            spec: dict[str, Any] | None = None
            try:
                loaded = json.loads(read_small(os.path.join(entry.path, "kernel.json")))
                spec = loaded if isinstance(loaded, dict) else None
            except (OSError, ValueError):
                if not entry.is_dir():
                    continue
            found[entry.name.lower()] = SpecFile(entry.name, entry.path, spec)
        return found

    def _modes(self) -> tuple[int, int, int]:
        if self.site:
            # Site kernels are read by everyone and written by nobody else, whatever the umask
            # of the admin (or cron job) that runs the sync says.
            return 0o755, 0o644, 0o755
        umask = os.umask(0)
        os.umask(umask)
        return 0o777 & ~umask, 0o666 & ~umask, 0o777 & ~umask

    def _makedirs(self, path: str, mode: int) -> None:
        """Create path and its missing parents, each with exactly mode (the umask aside)."""
        missing = []
        while not os.path.isdir(path) and os.path.dirname(path) != path:
            missing.append(path)
            path = os.path.dirname(path)
        for d in reversed(missing):
            try:
                os.mkdir(d, mode)
            except FileExistsError:
                if not os.path.isdir(d):
                    raise
                continue
            os.chmod(d, mode)

    def _staging(self) -> str:
        """The staging dir, created when missing."""
        path = os.path.join(self.path, STAGING)
        self._makedirs(path, self._modes()[0])
        return path

    def _write_file(self, path: str, data: bytes, mode: int) -> None:
        fd, tmp = tempfile.mkstemp(prefix="file-", dir=self._staging())
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def clean(self) -> list[str]:
        """Remove what interrupted writes left (call under the lock); return what went."""
        removed = []
        try:
            entries = [e for e in os.scandir(self.path)
                       if e.name == STAGING or e.name.startswith(OLD_DEBRIS)]
        except OSError:
            return []
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed.append(entry.name)
            except OSError:
                continue  # debris that cannot go now (read-only, ...) goes next time
        return removed

    def drop_staging(self) -> None:
        """Remove the staging dir once a sync is done with it (it is empty then)."""
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(self.path, STAGING))

    def write(self, name: str, spec: dict[str, Any], files: dict[str, bytes]) -> str:
        """Create or replace one of ozkernels' specs and its executables; never a foreign one."""
        target = os.path.join(self.path, name)
        dmode, fmode, xmode = self._modes()
        body = (json.dumps(spec, indent=1) + "\n").encode()
        try:
            self._makedirs(self.path, dmode)
            if os.path.isdir(target):
                current = self.scan().get(name)
                if current is None or current.owner is None:
                    msg = f"{target} exists and was not written by ozkernels; left alone"
                    raise SpecError(msg)
                for filename, data in files.items():
                    self._write_file(os.path.join(target, filename), data,
                                     xmode if data[:2] == b"#!" else fmode)
                self._write_file(os.path.join(target, "kernel.json"), body, fmode)
                return target
            tmpdir = tempfile.mkdtemp(prefix="new-", dir=self._staging())
            try:
                os.chmod(tmpdir, dmode)
                for filename, data in files.items():
                    # Scripts are executable; data files (logos) are not.
                    self._write_file(os.path.join(tmpdir, filename), data,
                                     xmode if data[:2] == b"#!" else fmode)
                self._write_file(os.path.join(tmpdir, "kernel.json"), body, fmode)
                os.rename(tmpdir, target)
            except BaseException:
                shutil.rmtree(tmpdir, ignore_errors=True)
                raise
        except OSError as e:
            msg = f"cannot write kernel {name!r} in {self.path}: {e.strerror}"
            raise SpecError(msg) from e
        return target

    def remove(self, name: str) -> None:
        """Remove one of ozkernels' specs, leaving any file it did not write."""
        current = self.scan().get(name)
        if current is None:
            return
        if current.owner is None:
            msg = f"{current.path} was not written by ozkernels; left alone"
            raise SpecError(msg)
        written = current.owner.get("files") or [LAUNCHER_NAME]
        ours = {"kernel.json", *[os.path.basename(f) for f in written]}
        try:
            if set(os.listdir(current.path)) <= ours:
                # All ours: gone in one rename, so no half-removed spec is ever left.
                doomed = tempfile.mkdtemp(prefix="rm-", dir=self._staging())
                os.rename(current.path, os.path.join(doomed, name))
                shutil.rmtree(doomed)
            else:
                for filename in ours:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(current.path, filename))
                with contextlib.suppress(FileNotFoundError):
                    os.rmdir(current.path)
        except OSError as e:
            if e.errno != errno.ENOTEMPTY:
                msg = f"cannot remove kernel {name!r}: {e.strerror}"
                raise SpecError(msg) from e
        launchmemo.forget(launcher_dirs(current))

    def unsafe_reason(self) -> str:
        """Why a dir on the way down to the kernels dir is unsafe for site kernels, or ''."""
        path, below = self.path, []
        while path != self.root and os.path.dirname(path) != path:
            below.append(path)
            path = os.path.dirname(path)
        below.append(self.root)
        # Outermost first: the message names the dir whose mode gives the rest away. Its
        # nearest existing parent counts when the root itself is yet to be made.
        top = self.root
        while not os.path.exists(top) and os.path.dirname(top) != top:
            top = os.path.dirname(top)
        for d in [top, *reversed(below)]:
            try:
                st = os.stat(d)
            except OSError:
                continue
            if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                return f"{d} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
        return ""

    @contextlib.contextmanager
    def lock(self, timeout: float = 30.0):
        """Hold the directory's sync lock; concurrent syncs wait, then give up clearly."""
        dmode, fmode, _ = self._modes()
        try:
            self._makedirs(self.path, dmode)
            fd = os.open(os.path.join(self.path, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
            if self.site:
                os.fchmod(fd, fmode)
        except OSError as e:
            msg = f"cannot use kernels directory {self.path}: {e.strerror}"
            raise SpecError(msg) from e
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError as e:
                    if time.monotonic() > deadline:
                        msg = (f"another ozkernels sync has held {self.path} for over "
                               f"{timeout:.0f} s; try again later")
                        raise LockError(msg) from e
                    time.sleep(0.05)
            yield self
        finally:
            os.close(fd)
