"""Draw the bundled MMLU-Pro sample (routed_llm/sample_data/mmlu_pro_sample/) from the shared dataset.

Usage (from the repository root)::

    .venv/bin/python benchmarks/make_sample.py ../shared/data/mmlu_pro routed_llm/sample_data/mmlu_pro_sample

The sample is deterministic: the same source files give byte-identical parquet tables.
Prompts are drawn uniformly without replacement with ``numpy.random.default_rng(SEED)``
over the rows of ``prompts.parquet`` sorted by ``prompt_id``; every outcome row of a drawn
prompt is kept (all 32 models, missing cells stay missing). ``models.csv`` is copied as is.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

N_PROMPTS = 1500
SEED = 20260522
PROMPT_COLUMNS = ["prompt_id", "task", "prompt", "reference"]
OUTCOME_COLUMNS = ["prompt_id", "model", "score", "output_chars"]


def make_sample(source: Path, out: Path, *, n_prompts: int = N_PROMPTS, seed: int = SEED) -> None:
    """Write ``prompts.parquet``, ``outcomes.parquet`` and ``models.csv`` of the sample to `out`."""
    prompts = pd.read_parquet(source / "prompts.parquet").sort_values("prompt_id").reset_index(drop=True)
    rows = np.sort(np.random.default_rng(seed).choice(len(prompts), size=n_prompts, replace=False))
    picked = prompts.iloc[rows][PROMPT_COLUMNS].reset_index(drop=True)
    outcomes = pd.read_parquet(source / "outcomes.parquet", columns=OUTCOME_COLUMNS)
    outcomes = outcomes[outcomes["prompt_id"].isin(set(picked["prompt_id"]))]
    outcomes = outcomes.sort_values(["prompt_id", "model"]).reset_index(drop=True)
    outcomes["score"] = outcomes["score"].astype("float32")
    outcomes["output_chars"] = outcomes["output_chars"].astype("float32")
    out.mkdir(parents=True, exist_ok=True)
    picked.to_parquet(out / "prompts.parquet", compression="zstd", compression_level=19, index=False)
    outcomes.to_parquet(out / "outcomes.parquet", compression="zstd", compression_level=19, index=False)
    shutil.copyfile(source / "models.csv", out / "models.csv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="the shared mmlu_pro dataset folder")
    parser.add_argument("out", type=Path, help="output folder (routed_llm/sample_data/mmlu_pro_sample)")
    parser.add_argument("--n-prompts", type=int, default=N_PROMPTS)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    make_sample(args.source, args.out, n_prompts=args.n_prompts, seed=args.seed)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
