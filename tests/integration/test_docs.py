"""Every code block in README.md and docs/ runs, or is a verbatim excerpt of an example.

- ```python blocks run in a fresh interpreter (they start any local server they need).
  A block whose first line is ``# from examples/NAME.py`` must appear verbatim in that file.
- ```bash blocks: each ``routed-llm ...`` command must parse with the real CLI parser.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from routed_llm.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(lang: str) -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for i, m in enumerate(FENCE.finditer(doc.read_text(encoding="utf-8"))):
            if m.group(1) == lang:
                out.append((f"{doc.name}#{i}", m.group(2)))
    return out


def normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


@pytest.mark.slow
@pytest.mark.parametrize(("where", "code"), blocks("python"), ids=[w for w, _ in blocks("python")])
def test_python_block(where, code, tmp_path):
    first = code.strip().splitlines()[0]
    if first.startswith("# from examples/"):
        source = (ROOT / first.removeprefix("# from ").strip()).read_text(encoding="utf-8")
        body = normalise(code.strip().split("\n", 1)[1] if "\n" in code.strip() else "")
        assert body in normalise(source), f"{where} is not a verbatim excerpt of {first}"
        return
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{where} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"


def cli_lines(code: str) -> list[list[str]]:
    cmds = []
    for raw in code.replace("\\\n", " ").splitlines():
        for part in raw.split("&&"):
            words = shlex.split(part.strip(), comments=True)
            if not words:
                continue
            if words[0].endswith("routed-llm"):
                cmds.append(words[1:])
            elif words[:3] == ["python", "-m", "routed_llm"] or (words[0].endswith("python") and words[1:3] == ["-m", "routed_llm"]):
                cmds.append(words[3:])
    return cmds


@pytest.mark.parametrize(("where", "code"), blocks("bash"), ids=[w for w, _ in blocks("bash")])
def test_bash_block_commands_parse(where, code):
    parser = build_parser()
    for argv in cli_lines(code):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:  # argparse exits on a bad command line
            pytest.fail(f"{where}: `routed-llm {' '.join(argv)}` does not parse (exit {exc.code})")
