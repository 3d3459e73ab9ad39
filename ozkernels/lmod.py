"""Lmod without the `module` function: locate it, read its spider JSON, cache the result."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from .errors import LmodError
from .moduleinfo import ModuleInfo

STANDARD_LMOD_CMDS = (
    "/usr/share/lmod/lmod/libexec/lmod",
    "/opt/apps/lmod/lmod/libexec/lmod",
    "/usr/local/lmod/lmod/libexec/lmod",
    "/apps/lmod/lmod/libexec/lmod",
)
CACHE_VERSION = 2


def find_lmod_cmd(environ: dict[str, str] | None = None) -> str | None:
    """Lmod's `lmod` command from LMOD_CMD, LMOD_DIR, LMOD_PKG or standard places."""
    env = os.environ if environ is None else environ
    candidates = [env.get("LMOD_CMD", "")]
    if env.get("LMOD_DIR"):
        candidates.append(os.path.join(env["LMOD_DIR"], "lmod"))
    if env.get("LMOD_PKG"):
        candidates.append(os.path.join(env["LMOD_PKG"], "libexec", "lmod"))
    candidates.extend(STANDARD_LMOD_CMDS)
    for cmd in candidates:
        if cmd and os.access(cmd, os.X_OK):
            return cmd
    return None


def parse_spider(data: dict | list) -> list[ModuleInfo]:
    """ModuleInfo for every modulefile in `spider -o spider-json` output."""
    if not data:
        return []  # an empty tree prints [] rather than {}
    found = []
    for entries in data.values():  # type: ignore[union-attr]
        for path, entry in entries.items():
            chains = [tuple(c) for c in entry.get("parentAA") or [] if c]
            found.append(
                ModuleInfo(
                    full_name=entry.get("fullName", ""),
                    version=str(entry.get("Version", "")),
                    path=path,
                    bin_dirs=tuple(entry.get("pathA") or {}),
                    lib_dirs=tuple(entry.get("lpathA") or {}),
                    parents=min(chains, key=len) if chains else (),
                    mpath=entry.get("mpath", ""),
                    hidden=bool(entry.get("hidden", False)),
                )
            )
    return sorted(found, key=lambda m: (m.full_name, m.path))


def run_spider(lmod_cmd: str, modulepath: str, timeout: float = 120) -> list[ModuleInfo]:
    """Walk the module tree with Lmod's spider."""
    # Imported here: a sync that hits the spider cache (the usual case) never runs a process.
    import subprocess

    spider = os.path.join(os.path.dirname(lmod_cmd), "spider")
    try:
        out = subprocess.run(
            [spider, "-o", "spider-json", modulepath],
            capture_output=True, timeout=timeout, check=True,
        ).stdout.decode("utf-8", "surrogateescape")
    except (OSError, subprocess.SubprocessError) as e:
        msg = f"Lmod's spider ({spider}) failed: {e}"
        raise LmodError(msg) from e
    try:
        # strict=False: a modulefile's control bytes (NUL included) reach spider's JSON raw;
        # one such module must not cost every other module.
        return parse_spider(json.loads(out or "{}", strict=False))
    except (ValueError, AttributeError, TypeError) as e:
        msg = f"Lmod's spider printed something that is not its JSON: {e}"
        raise LmodError(msg) from e


def _stamp(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


class SpiderCache:
    """A module tree's walk kept on disk, reused while no module dir or watched file changed.

    The walk is Lmod's spider by default; Environment Modules passes its own (`walk`).
    """

    def __init__(self, cache_dir: str, lmod_cmd: str, modulepath: str, watch=None, walk=None):
        key = hashlib.sha256(f"{lmod_cmd}\0{modulepath}".encode()).hexdigest()[:16]
        self.path = Path(cache_dir) / f"spider-{key}.json"
        self.lmod_cmd = lmod_cmd
        self.modulepath = modulepath
        self.watch = watch or (lambda m: False)
        self.walk = walk or (lambda: run_spider(lmod_cmd, modulepath))

    def _stamps(self, modules: list[ModuleInfo]) -> dict[str, int]:
        # New versions change a package dir's mtime, new packages a tree dir's; watched
        # modulefiles are the ones whose contents (prefix, parents) ozkernels relies on.
        paths = set(filter(None, self.modulepath.split(":")))
        for m in modules:
            paths.add(os.path.dirname(m.path))
            if m.mpath:
                paths.add(m.mpath)
            # A modulefile that extends MODULEPATH decides which dirs a walk reads.
            if self.watch(m) or m.uses:
                paths.add(m.path)
            paths.update(m.uses)
        return {p: _stamp(p) for p in sorted(paths)}

    def load(self) -> list[ModuleInfo] | None:
        """Cached modules, or None when the cache is missing or stale."""
        try:
            data = json.loads(self.path.read_text())
            if data.get("version") != CACHE_VERSION:
                return None
            if any(_stamp(p) != s for p, s in data["stamps"].items()):
                return None
            return [ModuleInfo(**{**m, **_tuples(m)}) for m in data["modules"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # missing or damaged: spider runs again and the cache is rewritten

    def store(self, modules: list[ModuleInfo]) -> None:
        """Write the cache atomically; a cache that cannot be written is only slower."""
        data = {
            "version": CACHE_VERSION,
            "stamps": self._stamps(modules),
            "modules": [asdict(m) for m in modules],
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.path)
        except OSError:
            pass

    def modules(self) -> list[ModuleInfo]:
        """Modules from the cache when fresh, else from a walk."""
        cached = self.load()
        if cached is not None:
            return cached
        found = self.walk()
        self.store(found)
        return found


def _tuples(entry: dict) -> dict:
    return {k: tuple(entry.get(k, ())) for k in
            ("bin_dirs", "lib_dirs", "parents", "python_dirs", "uses")}
