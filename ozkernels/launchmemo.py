"""The launcher's launch memos seen from Python: their dir, a kernel dir's file names, removal.

The names mirror `_ozk_memo_init` in kernel_files/launcher.sh (tests check that they agree).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

# A memo's name is ID@HOST.KIND; the launcher's temporary files are ID@HOST.PID.t0|tmp|err.
_NAME = re.compile(rb"@[^@/]*\.(?:purge|load|vars|[0-9]+\.(?:t0|tmp|err))")
# Ids longer than this (in bytes) are cut to "LENGTH-" and their last TAIL bytes.
ID_MAX, ID_TAIL = 180, 170


def cache_dir(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The memo dir the launcher uses in this environment; None where it would use none."""
    env = os.environ if environ is None else environ
    home = env.get("HOME", "")
    base = env.get("XDG_CACHE_HOME") or (f"{home}/.cache" if home else "")
    return os.fsencode(base) + b"/ozkernels/launch" if base.startswith("/") else None


def memo_id(kernel_dir: str) -> bytes:
    """The id in the names of a kernel dir's memos (the launcher counts bytes, as here)."""
    raw = os.fsencode(kernel_dir).replace(b"%", b"%25").replace(b"/", b"%2F")
    return raw if len(raw) <= ID_MAX else b"%d-%s" % (len(raw), raw[-ID_TAIL:])


def is_memo_name(name: bytes, ids: Iterable[bytes] | None = None) -> bool:
    """Whether a file name in the memo dir is a memo (of one of ids, when given)."""
    at = name.rfind(b"@")
    if at <= 0 or not _NAME.fullmatch(name, at):
        return False
    return ids is None or name[:at] in ids


def forget(kernel_dirs: Iterable[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """Remove the memos (every host's) of these kernel dirs; return the names removed."""
    where = cache_dir(environ)
    ids = {memo_id(os.path.abspath(d)) for d in kernel_dirs}
    if where is None or not ids:
        return []
    try:
        names = os.listdir(where)
    except OSError:
        return []
    removed = []
    for name in names:
        if is_memo_name(name, ids):
            try:
                os.unlink(os.path.join(where, name))
            except OSError:
                continue  # gone already, or not ours to remove: it only misses
            removed.append(os.fsdecode(name))
    return removed
