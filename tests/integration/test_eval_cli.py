"""``routed-llm eval`` and ``routed-llm demo`` as subprocesses, with real MiniLM embeddings.

They run on the MMLU-Pro sample bundled with the package (real outcomes, 1,500 questions),
so they need no shared data; the embeddings go through the on-disk cache, so only the
first run on a machine pays for embedding the 1,500 prompts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from routed_llm.evaluation.demo import sample_path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROUTERS = ("zero", "random", "oracle", "best-single", "knn")


def _cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "TQDM_DISABLE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "routed_llm", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_eval_help_explains_every_option() -> None:
    out = _cli("eval", "--help", timeout=120)
    assert out.returncode == 0, out.stderr
    for word in ("--routers", "--protocol", "--seeds", "--json", "--plot", "--embedder", "--max-prompts",
                 "--router-params", "area_50", "qnc", "max_quality_accuracy", "unseen", "oracle"):
        assert word in out.stdout, word


@pytest.mark.slow  # two subprocesses that load the sample
def test_eval_reports_clear_errors() -> None:
    bad = _cli("eval", str(sample_path()), "--routers", "zero,nope", "--seeds", "1", timeout=300)
    assert bad.returncode == 2
    assert "unknown router 'nope'" in bad.stderr and "Traceback" not in bad.stderr
    few = _cli("eval", str(sample_path()), "--routers", "zero", "--seeds", "1", "--max-prompts", "300", timeout=300)
    assert few.returncode == 2
    assert "need at least 100" in few.stderr and "Traceback" not in few.stderr


@pytest.mark.slow
def test_eval_writes_json_and_png(tmp_path: Path) -> None:
    out_json, out_png = tmp_path / "res.json", tmp_path / "curves.png"
    res = _cli(
        "eval", str(sample_path()), "--routers", ",".join(ROUTERS), "--seeds", "2", "--max-prompts", "1500",
        "--json", str(out_json), "--plot", str(out_png), "--quiet",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    for name in ROUTERS:
        assert f"\n{name} " in res.stdout
    doc = json.loads(out_json.read_text())
    assert doc["dataset"] == "mmlu_pro_sample" and doc["protocol"] == "unseen" and doc["seeds"] == 2
    assert doc["embedder"] == "st:all-MiniLM-L6-v2"
    assert set(doc["routers"]) == set(ROUTERS)
    for entry in doc["routers"].values():
        for metric in ("area", "area_50", "qnc", "max_quality_accuracy"):
            assert {"mean", "std", "per_seed"} <= set(entry[metric])
            assert len(entry[metric]["per_seed"]) == 2
        assert isinstance(entry["qnc_unreached"], int)
    for ref in ("best_single_accuracy", "oracle_accuracy"):
        assert len(doc["reference"][ref]["per_seed"]) == 2
    r = doc["routers"]
    # real data sanity: the oracle is far above every router, and K-NN is far above random
    assert r["oracle"]["area"]["mean"] > r["knn"]["area"]["mean"] + 0.1
    assert r["knn"]["area"]["mean"] > r["random"]["area"]["mean"] + 0.05
    assert out_png.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.slow
def test_demo_writes_plot_and_prints_table(tmp_path: Path) -> None:
    res = _cli("demo", "--seeds", "2", "--out", str(tmp_path), "--quiet")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "acc @ max budget" in res.stdout and "\nknn " in res.stdout
    assert (tmp_path / "routed-llm-demo.png").read_bytes()[:8] == PNG_MAGIC
    doc = json.loads((tmp_path / "routed-llm-demo.json").read_text())
    assert {"zero", "oracle", "knn"} <= set(doc["routers"])
