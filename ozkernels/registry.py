"""What the user told ozkernels about environments: added paths, recorded modules, removals."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import OzkernelsError


@dataclass
class Record:
    """What is remembered for one environment prefix."""

    kind: str = ""
    modules: list[str] = field(default_factory=list)
    added: bool = False
    ignored: bool = False


class Registry:
    """A small JSON file of Records keyed by real prefix."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.records: dict[str, Record] = {}
        self._loaded = ""

    def load(self) -> Registry:
        """Read the file; a missing file is an empty registry."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return self
        except OSError as e:
            msg = f"cannot read {self.path}: {e.strerror}"
            raise OzkernelsError(msg) from e
        try:
            raw = json.loads(text).get("environments", {})
            self.records = {p: Record(**r) for p, r in raw.items()}
        except (ValueError, TypeError, AttributeError) as e:
            msg = f"{self.path} is not a valid ozkernels registry ({e}); move it aside and retry"
            raise OzkernelsError(msg) from e
        self._loaded = text
        return self

    def get(self, prefix: str) -> Record | None:
        """The record for a prefix, if any."""
        return self.records.get(prefix)

    def added(self, kind: str) -> list[str]:
        """Prefixes explicitly added with this kind."""
        return [p for p, r in self.records.items() if r.added and r.kind == kind]

    def update(self, prefix: str, **changes) -> Record:
        """Change (or create) a record; drop it again when it says nothing."""
        record = self.records.setdefault(prefix, Record())
        for key, value in changes.items():
            setattr(record, key, value)
        if not (record.modules or record.added or record.ignored):
            del self.records[prefix]
        return record

    def save(self) -> bool:
        """Write atomically when something changed; return whether it wrote."""
        data = {"environments": {p: vars(r) for p, r in sorted(self.records.items())}}
        text = json.dumps(data, indent=1, sort_keys=True) + "\n"
        if text == self._loaded or (not self.records and not self._loaded):
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(text)
            os.replace(tmp, self.path)
        except OSError as e:
            msg = f"cannot write {self.path}: {e.strerror}"
            raise OzkernelsError(msg) from e
        self._loaded = text
        return True
