"""Dataset loading: the cost rule, and clear errors for bad datasets."""

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from routed_llm import DataError, RoutingDataset, load_dataset

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mmlu_pro"


def write(folder: Path, prompts, outcomes, models) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(prompts).to_parquet(folder / "prompts.parquet")
    pd.DataFrame(outcomes).to_parquet(folder / "outcomes.parquet")
    pd.DataFrame(models).to_csv(folder / "models.csv", index=False)
    return folder


def good(tmp_path: Path) -> tuple[list, list, list]:
    prompts = [
        {"prompt_id": "p1", "task": "math", "prompt": "x" * 10},
        {"prompt_id": "p2", "task": "law", "prompt": "y" * 7},
    ]
    outcomes = [
        {"prompt_id": "p1", "model": "a", "score": 1.0, "output_chars": 9},
        {"prompt_id": "p1", "model": "b", "score": 0.0, "output_chars": 4},
        {"prompt_id": "p2", "model": "a", "score": 0.0, "output_chars": 1},
    ]
    models = [
        {"model": "a", "price_in_per_1m": 1.0, "price_out_per_1m": 2.0},
        {"model": "b", "price_in_per_1m": 10.0, "price_out_per_1m": 20.0},
    ]
    return prompts, outcomes, models


def test_cost_rule_prices_times_token_estimates(tmp_path):
    data = load_dataset(write(tmp_path / "d", *good(tmp_path)))
    assert data.cost_unit == "usd"
    # p1 has 10 chars -> ceil(10/4) = 3 input tokens; a wrote 9 chars -> ceil(9/4) = 3 output tokens
    assert data.costs[0, 0] == pytest.approx((1.0 * 3 + 2.0 * 3) / 1e6)
    # b wrote 4 chars -> 1 output token
    assert data.costs[0, 1] == pytest.approx((10.0 * 3 + 20.0 * 1) / 1e6)
    # p2/b is missing: unknown, never 0
    assert math.isnan(data.scores[1, 1]) and math.isnan(data.costs[1, 1])


def test_cost_usd_wins_and_default_output_tokens(tmp_path):
    prompts, outcomes, models = good(tmp_path)
    outcomes = [{k: v for k, v in o.items() if k != "output_chars"} for o in outcomes]
    outcomes[0]["cost_usd"] = 0.5
    for o in outcomes[1:]:
        o["cost_usd"] = None
    data = load_dataset(write(tmp_path / "d", prompts, outcomes, models))
    assert data.costs[0, 0] == 0.5
    # no output_chars: 256 output tokens
    assert data.costs[0, 1] == pytest.approx((10.0 * 3 + 20.0 * 256) / 1e6)


def test_relative_cost_without_prices(tmp_path):
    prompts, outcomes, _ = good(tmp_path)
    models = [{"model": "a", "params_b": 7.0}, {"model": "b", "params_b": 70.0, "active_params_b": 13.0}]
    with pytest.warns(UserWarning, match="relative"):
        data = load_dataset(write(tmp_path / "d", prompts, outcomes, models))
    assert data.cost_unit == "relative"
    assert data.costs[0, 0] == 7.0 and data.costs[0, 1] == 13.0


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        pytest.param(lambda p, o, m: (p, [dict(x, score=1.5) for x in o], m), "outside", id="score-range"),
        pytest.param(lambda p, o, m: (p + [p[0]], o, m), "duplicate prompt_id", id="dup-prompt"),
        pytest.param(lambda p, o, m: (p, o + [o[0]], m), "duplicate outcome", id="dup-outcome"),
        pytest.param(lambda p, o, m: (p, o, m + [m[0]]), "duplicate model", id="dup-model"),
        pytest.param(lambda p, o, m: (p, o + [dict(o[0], model="zz")], m), "not listed in models.csv", id="unknown-model"),
        pytest.param(lambda p, o, m: (p, o + [dict(o[0], prompt_id="p9")], m), "not in prompts", id="unknown-prompt"),
        pytest.param(lambda p, o, m: ([{k: v for k, v in x.items() if k != "task"} for x in p], o, m), "missing column", id="missing-column"),
    ],
)
def test_bad_datasets_name_file_and_problem(tmp_path, mutate, match):
    folder = write(tmp_path / "d", *mutate(*good(tmp_path)))
    with pytest.raises(DataError, match=match) as err:
        load_dataset(folder)
    assert str(folder) in str(err.value)


def test_empty_table_and_missing_file(tmp_path):
    prompts, outcomes, models = good(tmp_path)
    folder = write(tmp_path / "d", prompts, outcomes, models)
    pd.DataFrame({"prompt_id": [], "model": [], "score": []}).to_parquet(folder / "outcomes.parquet")
    with pytest.raises(DataError, match="outcomes.parquet: the table is empty"):
        load_dataset(folder)
    write(folder, prompts, outcomes, models)
    (folder / "models.csv").unlink()
    with pytest.raises(DataError, match="models.csv: file not found"):
        load_dataset(folder)
    (folder / "prompts.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="prompts.parquet: cannot be read"):
        load_dataset(folder)
    with pytest.raises(DataError, match="not a dataset folder"):
        load_dataset(tmp_path / "nowhere")


def test_subset_and_rename(tmp_path):
    data = load_dataset(write(tmp_path / "d", *good(tmp_path)))
    sub = data.subset(rows=[1], models=["a"]).rename_models({"a": "openai/a"})
    assert sub.models == ("openai/a",) and sub.prompt_ids == ("p2",)
    assert sub.scores.shape == (1, 1) and sub.model_info["openai/a"]["dataset_model"] == "a"
    with pytest.raises(DataError, match="unknown models"):
        data.subset(models=["nope"])


def test_from_records_matches_shape():
    data = RoutingDataset.from_records(
        name="t",
        prompts=[{"prompt_id": "1", "task": "t", "prompt": "hello"}],
        outcomes=[{"prompt_id": "1", "model": "m", "score": 1}],
        models=[{"model": "m", "price_in_per_1m": 1, "price_out_per_1m": 1}],
    )
    assert data.scores.shape == (1, 1) and data.costs[0, 0] == pytest.approx((2 + 256) / 1e6)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/mmlu_pro is not beside the checkout")
def test_real_mmlu_pro_dataset():
    data = load_dataset(SHARED)
    assert (data.n_prompts, data.n_models) == (12032, 32)
    assert data.cost_unit == "usd"
    observed = ~np.isnan(data.scores)
    assert 0.99 < observed.mean() < 0.995  # the README says 99.3 % dense
    acc = dict(zip(data.models, np.nanmean(data.scores, axis=0), strict=True))
    assert acc["gemini-3.1-pro-preview"] == pytest.approx(0.8598, abs=1e-3)
    assert np.isnan(data.costs[~observed]).all() and (data.costs[observed] > 0).all()
