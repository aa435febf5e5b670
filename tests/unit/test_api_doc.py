"""docs/api.md is generated from the docstrings and must be current."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_api_reference_is_current():
    # a fresh interpreter, so what other tests imported cannot change the rendering
    out = subprocess.run([sys.executable, str(ROOT / "docs" / "gen_api.py")], capture_output=True, text=True, check=True)
    current = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert current == out.stdout, "docs/api.md is stale: run .venv/bin/python docs/gen_api.py > docs/api.md"
