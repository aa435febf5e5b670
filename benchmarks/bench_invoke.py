"""Benchmark: latency RoutedChatModel.invoke adds over calling litellm.completion directly.

Run: ``.venv/bin/python benchmarks/bench_invoke.py [--calls 200]``. Both paths call the same
model on the package's local OpenAI-compatible server in the same process, interleaved, so
machine noise hits both alike. The routed path includes embedding (static or MiniLM, warm,
distinct prompts), scoring, gating, LangChain conversion and provenance.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--embedder", default="static", choices=["static", "minilm"])
    parser.add_argument("--no-doc", action="store_true", help="print only; do not rewrite docs/benchmarks.md")
    args = parser.parse_args()

    import litellm

    from bench_routing import router_for

    from routed_llm import RoutedChatModel
    from routed_llm.testing import LocalOpenAIServer

    with LocalOpenAIServer() as server:
        names = ["gpt-4o-2024-05-13", "deepseek/deepseek-chat", "deepinfra/meta-llama/Meta-Llama-3.1-8B-Instruct"]
        deploy = [{"model_name": n, "litellm_params": {"model": f"openai/m{i}", "api_base": server.base_url, "api_key": "sk-local"}}
                  for i, n in enumerate(names)]
        router = router_for(args.embedder)  # in-process LRU only: distinct prompts really embed
        llm = RoutedChatModel(model_list=deploy, router=router, cost_weight=0.0)
        llm.invoke("warm up the router and the HTTP client")
        litellm.completion(model="openai/m0", api_base=server.base_url, api_key="sk-local",
                           messages=[{"role": "user", "content": "warm up"}], max_retries=0)
        direct, routed = [], []
        for i in range(args.calls):
            prompt = f"Question {i}: what is {i} plus {i * 7}?"
            served = None
            t = time.perf_counter()
            msg = llm.invoke(prompt)
            routed.append((time.perf_counter() - t) * 1e3)
            served = msg.response_metadata["litellm_model"] if "litellm_model" in msg.response_metadata else "openai/m0"
            t = time.perf_counter()
            litellm.completion(model=served, api_base=server.base_url, api_key="sk-local",
                               messages=[{"role": "user", "content": prompt}], max_retries=0)
            direct.append((time.perf_counter() - t) * 1e3)
    added = [r - d for r, d in zip(routed, direct, strict=True)]
    print(f"## RoutedChatModel.invoke vs litellm.completion, {args.calls} calls each, local server, embedder={args.embedder}")
    print(f"{'path':<28} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
    for label, vals in (("litellm.completion (ref)", direct), ("RoutedChatModel.invoke", routed), ("added by routing (paired)", added)):
        print(f"{label:<28} {statistics.median(vals):>8.2f} {pct(vals, 0.9):>8.2f} {pct(vals, 0.99):>8.2f}")
    print(f"ratio routed/direct at p50: {statistics.median(routed) / statistics.median(direct):.2f}x")


if __name__ == "__main__":
    from _doc import run_and_record

    run_and_record(main, section="invoke", title="Overhead of RoutedChatModel.invoke over litellm.completion", script="bench_invoke.py")
