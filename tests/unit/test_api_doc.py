"""docs/api.md is generated from the docstrings and must be current."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_api_reference_is_current():
    spec = importlib.util.spec_from_file_location("gen_api", ROOT / "docs" / "gen_api.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    current = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert current == gen.render(), "docs/api.md is stale: run .venv/bin/python docs/gen_api.py > docs/api.md"
