"""Benchmark: routing quality of every router on MMLU-Pro, unseen and seen protocols.

Run: ``.venv/bin/python benchmarks/bench_quality.py [--data ../shared/data/mmlu_pro] [--seeds 20]``.
Prints the tables and rewrites the "quality" section of docs/benchmarks.md, with the
cost/quality plot of seed 0 in docs/img/. The first run embeds the 12,032 prompts once
(cached on disk); later runs take minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from _doc import write_section

ROUTERS = ["zero", "random", "oracle", "best-single", "knn", "cluster", "learned-map", "capability", "aptitude"]
ROOT = Path(__file__).resolve().parents[1]


def fmt(summary: dict) -> str:
    mean, std = summary["mean"], summary["std"]
    if mean is None or (isinstance(mean, float) and not math.isfinite(mean)):
        return "n/a"
    return f"{mean:.4f} ± {std:.4f}"


def table(doc: dict, routers: list[str]) -> str:
    rows = ["| router | area | area_50 | qnc (unreached) | max_quality_accuracy | area vs knn: wins/losses, p | qnc vs knn: wins/losses, p |",
            "|---|---|---|---|---|---|---|"]
    for name in routers:
        r = doc["routers"][name]
        st = r.get("vs_knn", {}).get("area")
        sq = r.get("vs_knn", {}).get("qnc")
        sign = f"{st['wins']}/{st['losses']}, p={st['p_value']:.3g}" if st else "–"
        signq = f"{sq['wins']}/{sq['losses']}, p={sq['p_value']:.3g}" if sq else "–"
        rows.append(f"| {name} | {fmt(r['area'])} | {fmt(r['area_50'])} | {fmt(r['qnc'])} ({r.get('qnc_unreached', 0)}) "
                    f"| {fmt(r['max_quality_accuracy'])} | {sign} | {signq} |")
    ref = doc["reference"]
    rows.append(f"\nReference: best single test-pool model accuracy {fmt(ref['best_single_accuracy'])}, "
                f"oracle accuracy {fmt(ref['oracle_accuracy'])}.")
    return "\n".join(rows)


def scoring_speed(routers: list[str], data, reps: int = 200) -> str:
    """Scoring one prompt (embedding excluded) against 10/100/1000 models, per router."""
    from routed_llm import ModelProfile
    from routed_llm.routers import choose, make_router

    rng = np.random.default_rng(0)
    rows = ["| router | 10 models (ms) | 100 models (ms) | 1,000 models (ms) |", "|---|---|---|---|"]
    sub = data.subset(rows=np.arange(3000))
    for name in [r for r in routers if r not in ("zero", "oracle")]:
        router = make_router(name).fit(sub)
        base_ids = router.probe_ids_
        e = router.probe_embeddings_[:1]
        cells = []
        for n in (10, 100, 1000):
            for m in list(router.models_):
                router.remove_model(m)
            router.add_models([ModelProfile(model=f"m{j}", probe_ids=base_ids, scores=(rng.random(len(base_ids)) < 0.6).astype(float),
                                            expected_cost=float(rng.uniform(1e-5, 1e-2))) for j in range(n)])
            costs = router.expected_costs_
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                choose(router.predict_proba_embedded(e), costs, 0.5)
                times.append((time.perf_counter() - t) * 1e3)
            cells.append(f"{np.median(times):.3f}")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mmlu_pro"))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--routers", default=",".join(ROUTERS))
    parser.add_argument("--no-doc", action="store_true", help="print only; do not rewrite docs/benchmarks.md")
    args = parser.parse_args()

    from routed_llm import load_dataset
    from routed_llm.evaluation import evaluate
    from routed_llm.evaluation.plot import plot_report

    routers = [r for r in args.routers.split(",") if r]
    data = load_dataset(args.data)
    parts = []
    for protocol in ("unseen", "seen"):
        t = time.perf_counter()
        report = evaluate(data, routers, protocol=protocol, seeds=args.seeds)
        doc = report.to_dict()
        elapsed = time.perf_counter() - t
        img = ROOT / "docs" / "img" / f"quality_{protocol}.png"
        img.parent.mkdir(parents=True, exist_ok=True)
        plot_report(report, img)
        (ROOT / "docs" / "img" / f"quality_{protocol}.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
        text = (f"### {protocol} protocol, {args.seeds} seeds ({elapsed / 60:.1f} min)\n\n{table(doc, routers)}\n\n"
                f"![cost/quality curves, seed 0](img/quality_{protocol}.png)\n")
        print(text)
        parts.append(text)
    speed = scoring_speed(routers, data)
    print(speed)
    body = (
        "## Routing quality on MMLU-Pro\n\n"
        f"Command: `.venv/bin/python benchmarks/bench_quality.py --seeds {args.seeds}` "
        "(MiniLM embeddings; protocol and metrics in [evaluation](evaluation.md); "
        "sign test: exact two-sided binomial test of the per-seed area against `knn`).\n\n"
        + "\n".join(parts)
        + "\n### Scoring speed: one prompt, embedding excluded\n\n" + speed + "\n"
    )
    if not args.no_doc:
        write_section("quality", body)


if __name__ == "__main__":
    main()
