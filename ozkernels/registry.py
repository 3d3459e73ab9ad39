"""What the user told ozkernels about environments: added paths, recorded modules, removals."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import OzkernelsError
from .layout import path_problem, read_small


@dataclass
class Record:
    """What is remembered for one environment prefix."""

    kind: str = ""
    modules: list[str] = field(default_factory=list)
    added: bool = False
    ignored: bool = False

    @classmethod
    def from_json(cls, data: Any) -> Record | None:
        """A record from its JSON form, or None when it is damaged."""
        if not isinstance(data, dict) or set(data) - {f.name for f in fields(cls)}:
            return None
        record = cls(**data)
        ok = isinstance(record.kind, str) and isinstance(record.added, bool) and \
            isinstance(record.ignored, bool) and isinstance(record.modules, list) and \
            all(isinstance(m, str) and m and "\0" not in m for m in record.modules)
        return record if ok else None


class Registry:
    """A small JSON file of Records keyed by real prefix."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.records: dict[str, Record] = {}
        self.warnings: list[str] = []
        self._loaded = ""
        # Damaged records are kept as they were and written back; a damaged file is kept whole.
        self._kept: dict[str, Any] = {}
        self._damaged = False

    def load(self) -> Registry:
        """Read the file: missing, it is empty; a damaged part is skipped with a warning."""
        try:
            text = read_small(str(self.path))
            raw = json.loads(text)
        except FileNotFoundError:
            return self
        except ValueError as e:  # DamagedFileError and JSON's errors
            self._damage(str(e).replace(str(self.path), "").strip(": ") or "unreadable")
            return self
        except OSError as e:
            msg = f"cannot read {self.path}: {e.strerror}"
            raise OzkernelsError(msg) from e
        envs = raw.get("environments", {}) if isinstance(raw, dict) else None
        if not isinstance(envs, dict):
            self._damage("not an ozkernels registry (no 'environments' object)")
            return self
        for prefix, data in envs.items():
            record = Record.from_json(data) if not path_problem(prefix) else None
            if record is None:
                self._kept[prefix] = data
            else:
                self.records[prefix] = record
        if self._kept:
            self.warnings.append(f"{self.path}: ignoring {len(self._kept)} damaged record(s) "
                                 f"(first: {next(iter(self._kept))!r}); they are kept as they are")
        self._loaded = text
        return self

    def _damage(self, why: str) -> None:
        self._damaged = True
        self.warnings.append(f"{self.path}: {why}; ignoring its records (the file is kept as it "
                             "is, and moved aside to .damaged-TIME before it is next written)")

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
        envs = {**self._kept, **{p: vars(r) for p, r in self.records.items()}}
        data = {"environments": dict(sorted(envs.items()))}
        text = json.dumps(data, indent=1, sort_keys=True) + "\n"
        if text == self._loaded or (not self.records and not self._loaded):
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self._damaged:
                os.replace(self.path, self.path.with_name(
                    f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"))
                self._damaged = False
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(text)
            os.replace(tmp, self.path)
        except OSError as e:
            msg = f"cannot write {self.path}: {e.strerror}"
            raise OzkernelsError(msg) from e
        self._loaded = text
        return True
