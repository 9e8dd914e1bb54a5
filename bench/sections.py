"""Write one harness's section of BENCHMARKS.md between its own two markers.

Several harnesses write that file; each replaces only the text between its markers
(appended at the end when they are missing), so a run never clobbers another's table.
"""

from __future__ import annotations

from pathlib import Path


def write_between(path: Path, begin: str, end: str, section: str) -> None:
    text = path.read_text() if path.exists() else ""
    block = f"{begin}\n{section.rstrip()}\n{end}"
    if begin in text and end in text and text.index(begin) < text.index(end):
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + block + "\n"
    path.write_text(text)
