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


def synthetic_router(kind: str, n_models: int):
    """The default router's probe set with `n_models` synthetic profiles added (no refit)."""
    from routed_llm import ModelProfile, default_router
    from routed_llm.routers import make_router

    base = default_router()
    if kind != "knn":
        from routed_llm.default import build_default_router  # noqa: F401 - documented path

    rng = np.random.default_rng(0)
    router = base if kind == "knn" else make_router(kind)
    if kind != "knn":
        return None
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

    print("\n## Scoring one prompt against N models (embedding excluded), knn router, 500 probes")
    print(f"{'models':>7} {'scores p50 ms':>14} {'scores p99 ms':>14} {'decision p50 ms':>16} {'ref argmax p50 ms':>18} {'ratio':>7}")
    e = np.random.default_rng(1).standard_normal((1, 384)).astype(np.float32)
    e /= np.linalg.norm(e)
    for n in (10, 100, 1000, 10000):
        router = synthetic_router("knn", n)
        costs = router.expected_costs_

        def score(router=router, costs=costs) -> int:
            return int(choose(router.predict_proba_embedded(e), costs, 0.5)[0])

        p50, p99 = timeit(score, reps)
        row = router.predict_proba_embedded(e)[0]
        d50, _ = timeit(lambda router=router, row=row: router.decide(row, cost_weight=0.5), max(20, reps // 5))
        ref = np.random.default_rng(2).random(n)
        r50, _ = timeit(lambda ref=ref, costs=costs: int(np.argmax(ref - 0.5 * costs / costs.max())), reps)
        print(f"{n:>7} {p50:>14.3f} {p99:>14.3f} {d50:>16.3f} {r50:>18.4f} {p50 / r50:>7.0f}x")


def bench_route(reps: int, embedders: list[str]) -> None:
    from routed_llm import default_router
    from routed_llm.embeddings import CachedEmbedder, SentenceTransformerEmbedder

    print("\n## route(): one short prompt, embedding + scoring, 14-model default router")
    print(f"{'embedder':<10} {'cold ms':>9} {'warm p50 ms':>12} {'warm p99 ms':>12} {'repeat p50 ms':>14} {'embed-only p50 ms':>18}")
    for name in embedders:
        router = default_router()
        if name == "static":
            from routed_llm.fast_embedder import StaticEmbedder

            inner = StaticEmbedder()
        else:
            inner = SentenceTransformerEmbedder()
        router._embedder = CachedEmbedder(inner, cache_dir=None)  # in-process LRU only
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
    print("\n## Peak resident memory of a process that routes one prompt (VmHWM)")
    code = (
        "import sys\nfrom routed_llm import default_router\nr = default_router()\n"
        "from routed_llm.embeddings import CachedEmbedder, SentenceTransformerEmbedder\n"
        "if sys.argv[1] == 'static':\n    from routed_llm.fast_embedder import StaticEmbedder\n    inner = StaticEmbedder()\n"
        "else:\n    inner = SentenceTransformerEmbedder()\n"
        "r._embedder = CachedEmbedder(inner, cache_dir=None)  # no disk cache: the model must load\n"
        "r.route('What is the capital of France?')\n"
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    )
    for name in embedders:
        out = subprocess.run([sys.executable, "-c", code, name], capture_output=True, text=True, check=True).stdout
        print(f"{name:<10} peak RSS {int(out.strip().splitlines()[-1]) / 1024:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--embedders", default="minilm,static", help="comma-separated: minilm,static")
    args = parser.parse_args()
    reps = 50 if args.quick else 300
    embedders = [e for e in args.embedders.split(",") if e]
    bench_import()
    bench_scoring(reps)
    bench_route(reps, embedders)
    bench_memory(embedders)


if __name__ == "__main__":
    main()
