"""Write one marked section of docs/benchmarks.md, leaving the other sections alone."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Every figure on this page was printed by a script in `benchmarks/`; each section names its\n"
    "command. Sections are rewritten by their script (between the BEGIN/END markers).\n"
)


def write_section(name: str, body: str, *, doc: Path = DOC) -> Path:
    """Replace (or append) the section `name` of the benchmarks page with `body`."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else HEADER
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    doc.write_text(text, encoding="utf-8")
    return doc
