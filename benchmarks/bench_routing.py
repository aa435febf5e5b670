"""Benchmark: routing decision latency, scoring cost vs pool size, import time and memory.

Run: ``.venv/bin/python benchmarks/bench_routing.py [--quick]``. Prints tables; every figure
is compared with a reference measured in the same run (ratios in the last column).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

PROMPTS = [f"Please summarize the main argument of section {i} in two sentences." for i in range(400)]


def timeit(fn: Callable[[], object], reps: int) -> tuple[float, float]:
    """p50 and p99 wall time of `fn` in milliseconds."""
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))]


def synthetic_router(n_models: int):
    """The default router (its probe set and fitted prompt side) with `n_models` synthetic profiles."""
    from routed_llm import ModelProfile, default_router

    rng = np.random.default_rng(0)
    router = default_router()
    for m in list(router.models_):
        router.remove_model(m)
    ids = router.probe_ids_
    profiles = []
    for j in range(n_models):
        scores = (rng.random(len(ids)) < rng.uniform(0.2, 0.9)).astype(float)
        profiles.append(ModelProfile(model=f"m{j}", probe_ids=ids, scores=scores, expected_cost=float(rng.uniform(1e-5, 1e-2))))
    router.add_models(profiles)
    return router


def bench_scoring(reps: int) -> None:
    from routed_llm.routers import choose

    print(f"\n## Scoring one prompt against N models (embedding excluded), default router ({synthetic_router(1).name}), 500 probes")
    print(f"{'models':>7} {'scores p50 ms':>14} {'scores p99 ms':>14} {'decision p50 ms':>16} {'ref argmax p50 ms':>18} {'ratio':>7}")
    e = np.random.default_rng(1).standard_normal((1, 384)).astype(np.float32)
    e /= np.linalg.norm(e)
    for n in (10, 100, 1000, 10000):
        router = synthetic_router(n)
        costs = router.expected_costs_

        def score(router=router, costs=costs) -> int:
            return int(choose(router.predict_proba_embedded(e), costs, 0.5)[0])

        p50, p99 = timeit(score, reps)
        row = router.predict_proba_embedded(e)[0]
        d50, _ = timeit(lambda router=router, row=row: router.decide(row, cost_weight=0.5), max(20, reps // 5))
        ref = np.random.default_rng(2).random(n)
        r50, _ = timeit(lambda ref=ref, costs=costs: int(np.argmax(ref - 0.5 * costs / costs.max())), reps)
        print(f"{n:>7} {p50:>14.3f} {p99:>14.3f} {d50:>16.3f} {r50:>18.4f} {p50 / r50:>7.0f}x")


def router_for(name: str):
    """A 14-model router whose embedder is `name` with an in-process LRU only (no disk cache).

    ``minilm``: the shipped default router. ``static``: the same router type and models fitted
    on the bundled MMLU-Pro sample with the static embedder (the default router's vectors are
    MiniLM's, 384-d, so it cannot take static ones).
    """
    from routed_llm import default_router, load_dataset
    from routed_llm.default import DEFAULT_KIND, served_models
    from routed_llm.embeddings import CachedEmbedder, SentenceTransformerEmbedder
    from routed_llm.evaluation.demo import sample_path
    from routed_llm.routers import make_router

    if name == "minilm":
        router = default_router()
        router._embedder = CachedEmbedder(SentenceTransformerEmbedder(), cache_dir=None)
        return router
    from routed_llm.fast_embedder import StaticEmbedder

    data = load_dataset(sample_path())
    names = served_models(data)
    data = data.subset(models=list(names)).rename_models(names)
    return make_router(DEFAULT_KIND, embedder=CachedEmbedder(StaticEmbedder(), cache_dir=None)).fit(data)


def bench_route(reps: int, embedders: list[str]) -> None:
    print("\n## route(): one short prompt, embedding + scoring, 14 models (in-process LRU, no disk cache)")
    print(f"{'embedder':<10} {'first ms':>9} {'warm p50 ms':>12} {'warm p99 ms':>12} {'repeat p50 ms':>14} {'embed-only p50 ms':>18}")
    for name in embedders:
        router = router_for(name)
        inner = router._embedder.inner
        t = time.perf_counter()
        router.route("What is the capital of France?")
        cold = (time.perf_counter() - t) * 1e3
        it = iter(PROMPTS * 10)
        p50, p99 = timeit(lambda router=router, it=it: router.route(next(it)), reps)
        r50, _ = timeit(lambda router=router: router.route(PROMPTS[0]), reps)
        it2 = iter([p + " again" for p in PROMPTS * 10])
        e50, _ = timeit(lambda inner=inner, it2=it2: inner.embed([next(it2)]), reps)
        print(f"{name:<10} {cold:>9.1f} {p50:>12.3f} {p99:>12.3f} {r50:>14.3f} {e50:>18.3f}")


def bench_import() -> None:
    print("\n## import routed_llm (fresh process, 5 runs) vs bare interpreter start")
    code = "import time; t=time.perf_counter(); import routed_llm; print(time.perf_counter()-t)"
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout) for _ in range(5)]
    base = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        base.append(time.perf_counter() - t)
    print(f"import routed_llm: median {statistics.median(runs) * 1e3:.1f} ms (interpreter start {statistics.median(base) * 1e3:.1f} ms)")


def bench_memory(embedders: list[str]) -> None:
    print("\n## Peak resident memory of a process that builds its router and routes one prompt (VmHWM)")
    code = (
        "import sys\nsys.path.insert(0, sys.argv[2])\nfrom bench_routing import router_for\n"
        "router_for(sys.argv[1]).route('What is the capital of France?')\n"
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    )
    here = str(__import__("pathlib").Path(__file__).resolve().parent)
    for name in embedders:
        out = subprocess.run([sys.executable, "-c", code, name, here], capture_output=True, text=True, check=True).stdout
        print(f"{name:<10} peak RSS {int(out.strip().splitlines()[-1]) / 1024:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--embedders", default="minilm,static", help="comma-separated: minilm,static")
    parser.add_argument("--no-doc", action="store_true", help="print only; do not rewrite docs/benchmarks.md")
    args = parser.parse_args()
    reps = 50 if args.quick else 300
    embedders = [e for e in args.embedders.split(",") if e]
    bench_import()
    bench_scoring(reps)
    bench_route(reps, embedders)
    bench_memory(embedders)


if __name__ == "__main__":
    from _doc import run_and_record

    run_and_record(main, section="speed", title="Routing speed, import time and memory", script="bench_routing.py")
