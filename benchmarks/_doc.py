"""Write one marked section of docs/benchmarks.md, leaving the other sections alone."""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from collections.abc import Callable
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


def run_and_record(main: Callable[[], None], *, section: str, title: str, script: str) -> None:
    """Run a benchmark's `main`, echo its output, and record it as a section (unless --no-doc)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main()
    sys.stdout.write(buf.getvalue())
    if "--no-doc" in sys.argv:
        return
    args = " ".join(sys.argv[1:])
    load = os.getloadavg()[0]
    write_section(
        section,
        f"## {title}\n\nCommand: `.venv/bin/python benchmarks/{script} {args}`"
        f" (load average {load:.1f} on 2 cores when it finished).\n\n```text\n{buf.getvalue().strip()}\n```",
    )
