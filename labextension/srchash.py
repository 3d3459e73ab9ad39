"""The hash of the labextension's sources, recorded in the shipped build and checked by the tests.

`python3 srchash.py --write` (run by `npm run build`) records it next to the built extension;
`python3 srchash.py` exits 1 when the shipped build was made from other sources.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD = HERE.parent / "share" / "jupyter" / "labextensions" / "@ozkernels" / "jupyterlab"
RECORD = BUILD / "ozkernels-build.json"
SOURCES = ("package.json", "package-lock.json", "tsconfig.json", "build.js", "src", "style")


def source_files() -> list[Path]:
    """Every file the build is made from, in a stable order."""
    files: list[Path] = []
    for name in SOURCES:
        path = HERE / name
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return files


def sources_hash() -> str:
    """sha256 over the sources' relative paths and bytes."""
    h = hashlib.sha256()
    for path in source_files():
        h.update(path.relative_to(HERE).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def recorded() -> str:
    """The hash the shipped build was made from ('' when there is no record)."""
    try:
        return str(json.loads(RECORD.read_text())["sources_sha256"])
    except (OSError, ValueError, KeyError):
        return ""


def main() -> int:
    """Write or check the record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="record the hash after a build")
    args = parser.parse_args()
    digest = sources_hash()
    if args.write:
        RECORD.write_text(json.dumps({"sources_sha256": digest,
                                      "files": [p.relative_to(HERE).as_posix()
                                                for p in source_files()]}, indent=1) + "\n")
        print(f"recorded {digest[:12]} in {RECORD}")
        return 0
    if recorded() != digest:
        print(f"the shipped labextension in {BUILD} was not built from these sources: run "
              "'cd labextension && npm ci && npm run build'", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
