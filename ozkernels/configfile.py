"""Config files that do not load: one line naming the file and the error, never a traceback."""

from __future__ import annotations

import logging

# What traitlets logs (with the traceback) for a config file that raised while loading.
TRAITLETS_MESSAGE = "Exception while loading config file %s"


def describe(error: BaseException) -> str:
    """An exception as one line: its type, message and, for Python syntax, where."""
    text = str(error)
    if isinstance(error, SyntaxError) and error.lineno:
        text = f"{error.msg} (line {error.lineno})"
    text = " ".join(text.split()) or "no message"
    return f"{type(error).__name__}: {text}"


class ConfigErrorFilter(logging.Filter):
    """Turns traitlets' config-file traceback into one line, and remembers each such line."""

    def __init__(self, keep: bool = True, suffix: str = ""):
        super().__init__()
        self.keep = keep
        self.suffix = suffix
        self.errors: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite (or drop, when not keep) the record of a config file that did not load."""
        if record.msg != TRAITLETS_MESSAGE or not record.exc_info or not record.args:
            return True
        filename = record.args[0] if isinstance(record.args, tuple) else record.args
        error = record.exc_info[1]
        line = f"cannot load config file {filename}: {describe(error) if error else '?'}"
        self.errors.append(line)
        record.msg, record.args = line + self.suffix, ()
        record.exc_info, record.exc_text = None, None
        return self.keep
