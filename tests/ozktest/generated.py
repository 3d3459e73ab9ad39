"""Hypothesis strategies for hostile input, and how many examples each property tries."""

from __future__ import annotations

import os

from hypothesis import strategies as st

# Words something along the way may treat as code: jupyter_client's {placeholders} (and the
# launch arguments it may be handed), shell syntax, our own %-encoding, option-looking words.
TRICKY = [
    "{connection_file}", "{prefix}", "{resource_dir}", "{kernel_id}", "{cwd}", "{env}",
    "{kernel_name}", "{}", "{0}", "{x", "}", "${HOME}", "$HOME", "%7B", "%25", "%", "%%7B",
    "$(touch PWNED)", "`touch PWNED`", "'", '"', "\\", " ", "\t", "\n", "\r", ";", "&", "|",
    "*", "?", "[", "~", "-", "--", "-f", "=", "é", "δοκιμή", "😀", "\u200b", "\x7f", "\x01",
    "\x1b[31m", ":", ".", "..",
]


def examples(n: int) -> int:
    """n scaled by OZK_EXAMPLES_SCALE (e.g. 10 for one long local run)."""
    return max(1, int(n * float(os.environ.get("OZK_EXAMPLES_SCALE", "1"))))


def _fs_ok(name: str) -> bool:
    """Whether a Linux filesystem takes name as one directory entry."""
    return name not in ("", ".", "..") and "/" not in name and "\0" not in name and \
        len(os.fsencode(name)) <= 255


_piece = st.one_of(
    st.sampled_from(TRICKY),
    st.text(st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)),
            min_size=1, max_size=8),
)
_text_names = st.lists(_piece, min_size=1, max_size=6).map("".join)
# Bytes that are not UTF-8 are valid names too; Python sees them as surrogate escapes.
_byte_names = st.binary(min_size=1, max_size=24).map(os.fsdecode)

dir_names = st.one_of(_text_names, _text_names, _byte_names).filter(_fs_ok)
