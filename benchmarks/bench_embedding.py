"""Benchmark: sentence-transformers MiniLM (the reference) vs the model2vec StaticEmbedder.

Every measurement runs in a fresh subprocess, so import and load costs and peak memory
are those of a process that uses only that one embedder:

* load cold: a fresh process imports the embedder's libraries, loads the model and
  embeds one prompt (OS file cache warm; the static model already distilled).
* load warm: in that same process, a second embedder instance loads and embeds one prompt.
* single short prompt latency: p50/p99 over repeated calls with one short prompt (warm).
* batch-1 / batch-64 throughput: real MMLU-Pro prompts, one per call or 64 per call.
* peak RSS: a separate process that only loads the embedder and embeds one prompt
  (``VmHWM`` from /proc/self/status, else ``ru_maxrss``).

The raw embedders are timed, not `CachedEmbedder`, so no vector cache hides work.

Usage::

    python benchmarks/bench_embedding.py [--prompts PATH] [--n-batch1 200] [--n-batch64 512]
        [--repeats 300] [--threads N] [--distill]

``--distill`` also times the one-off distillation into a temporary cache folder.
``--quality N`` instead runs an informational K-NN routing-quality check of both embedders
on N prompts of the dataset beside ``--prompts`` (see `quality`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SHORT = "What is the capital of France?"
DEFAULT_PROMPTS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mmlu_pro" / "prompts.parquet"


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _make(kind: str) -> Any:
    if kind == "st":
        from routed_llm.embeddings import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder()
    from routed_llm.fast_embedder import StaticEmbedder

    return StaticEmbedder()


def _load_prompts(path: Path, n: int) -> list[str]:
    import pyarrow.parquet as pq

    column = pq.read_table(path, columns=["prompt"]).column("prompt").to_pylist()
    return [str(p) for p in column[:n]]


def _child_rss(kind: str) -> dict[str, Any]:
    emb = _make(kind)
    emb.embed([SHORT])
    return {"peak_rss_mb": _peak_rss_mb(), "torch_loaded": "torch" in sys.modules}


def _child_speed(kind: str, prompts_path: Path, n_b1: int, n_b64: int, repeats: int) -> dict[str, Any]:
    import numpy as np

    t0 = time.perf_counter()
    emb = _make(kind)
    emb.embed([SHORT])
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    emb2 = _make(kind)
    emb2.embed([SHORT])
    warm = time.perf_counter() - t0

    for _ in range(10):
        emb.embed([SHORT])
    lat = []
    for _ in range(repeats):
        t = time.perf_counter()
        emb.embed([SHORT])
        lat.append(time.perf_counter() - t)
    lat_ms = np.asarray(lat) * 1000.0

    prompts = _load_prompts(prompts_path, max(n_b1, n_b64))
    b1 = prompts[:n_b1]
    t = time.perf_counter()
    for p in b1:
        emb.embed([p])
    b1_rate = len(b1) / (time.perf_counter() - t)

    b64 = prompts[:n_b64]
    t = time.perf_counter()
    for i in range(0, len(b64), 64):
        emb.embed(b64[i : i + 64])
    b64_rate = len(b64) / (time.perf_counter() - t)
    return {
        "load_cold_s": cold,
        "load_warm_s": warm,
        "p50_ms": float(np.percentile(lat_ms, 50)),
        "p99_ms": float(np.percentile(lat_ms, 99)),
        "batch1_per_s": b1_rate,
        "batch64_per_s": b64_rate,
        "dim": int(emb.embed([SHORT]).shape[1]),
    }


def _child_distill() -> dict[str, Any]:
    from routed_llm.fast_embedder import StaticEmbedder

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        StaticEmbedder(cache_dir=tmp).embed([SHORT])
        return {"distill_s": time.perf_counter() - t, "peak_rss_mb": _peak_rss_mb()}


def _run_child(args: list[str], threads: int = 0) -> dict[str, Any]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TQDM_DISABLE="1")
    if threads > 0:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, env=env, timeout=3600, check=False
    )
    if out.returncode != 0:
        msg = f"benchmark child {args} failed:\n{out.stderr[-3000:]}"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _row(name: str, st: float, static: float, fmt: str, better: str) -> str:
    if better == "lower":
        ratio = st / static if static > 0 else float("inf")
        note = f"{ratio:,.1f}x less" if "MB" in name else f"{ratio:,.1f}x faster"
    else:
        ratio = static / st if st > 0 else float("inf")
        note = f"{ratio:,.1f}x more"
    return f"| {name:<34} | {st:>{12}{fmt}} | {static:>{12}{fmt}} | {note:>16} |"


def _auc(score: Any, label: Any) -> float:
    """Rank AUC of `score` for binary `label` (NaN labels ignored; NaN when one class only)."""
    import numpy as np
    import pandas as pd

    ok = ~np.isnan(label) & ~np.isnan(score)
    s, pos_mask = score[ok], label[ok] > 0.5
    pos, neg = int(pos_mask.sum()), int((~pos_mask).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = pd.Series(s).rank().to_numpy()
    return float((ranks[pos_mask].sum() - pos * (pos + 1) / 2) / (pos * neg))


def quality(data_dir: Path, n: int, seeds: int = 5, ks: tuple[int, ...] = (10, 40, 100)) -> None:
    """Informational K-NN routing-quality check of both embedders (not the official eval).

    On `n` random prompts: 70/30 splits; for each test prompt and model, P(correct) is the
    mean outcome of the k nearest training prompts. Reports the per-model AUC of that
    prediction (mean over models), the accuracy of routing every prompt to the model with
    the highest P(correct), and its gain over the best single model in random 6-model
    pools; the task label (one-hot) is a no-embedding baseline.
    """
    import warnings

    import numpy as np
    import pandas as pd

    from routed_llm.embeddings import get_embedder

    warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of an all-missing neighbourhood
    prompts = pd.read_parquet(data_dir / "prompts.parquet")
    outcomes = pd.read_parquet(data_dir / "outcomes.parquet")
    rng = np.random.default_rng(0)
    sub = prompts.iloc[np.sort(rng.choice(len(prompts), min(n, len(prompts)), replace=False))]
    table = outcomes.pivot_table(index="prompt_id", columns="model", values="score").reindex(sub.prompt_id)
    table = table[table.columns[table.notna().mean() > 0.9]]
    y = table.to_numpy(dtype=float)
    texts = sub.prompt.astype(str).tolist()
    embs: dict[str, Any] = {}
    for name in ("minilm", "static"):
        t = time.perf_counter()
        embs[name] = get_embedder(name).embed(texts)
        print(f"embedded {len(texts)} prompts with {name} (disk-cached): {time.perf_counter() - t:.1f} s", flush=True)
    onehot = pd.get_dummies(sub.task).to_numpy(dtype=np.float32)
    embs["task label"] = onehot / np.linalg.norm(onehot, axis=1, keepdims=True)

    rows = []
    for seed in range(seeds):
        r = np.random.default_rng(seed)
        perm = r.permutation(len(texts))
        tr, te = perm[: int(0.7 * len(texts))], perm[int(0.7 * len(texts)) :]
        pools = [r.choice(y.shape[1], 6, replace=False) for _ in range(20)]
        full = ~np.isnan(y[te]).any(axis=1)
        for name, e in embs.items():
            sims = e[te] @ e[tr].T
            for k in ks:
                idx = np.argpartition(-sims, k, axis=1)[:, :k]
                pred = np.stack([np.nanmean(y[tr][idx, j], axis=1) for j in range(y.shape[1])], axis=1)
                auc = np.nanmean([_auc(pred[:, j], y[te, j]) for j in range(y.shape[1])])
                yf, pf = y[te][full], np.nan_to_num(pred[full], nan=-1.0)
                acc = yf[np.arange(len(yf)), pf.argmax(axis=1)].mean()
                gains = []
                for pool in pools:
                    yp, pp = yf[:, pool], pf[:, pool]
                    gains.append(yp[np.arange(len(yp)), pp.argmax(axis=1)].mean() - yp.mean(axis=0).max())
                rows.append(
                    {
                        "seed": seed,
                        "embedder": name,
                        "k": k,
                        "auc": auc,
                        "route_acc": acc,
                        "gain_pool6": float(np.mean(gains)),
                    }
                )
    df = pd.DataFrame(rows)
    print(f"\n{len(texts)} prompts, {y.shape[1]} models, 70/30 split x {seeds} seeds")
    print(df.groupby(["embedder", "k"])[["auc", "route_acc", "gain_pool6"]].agg(["mean", "std"]).round(4).to_string())
    diff = df.pivot_table(index=["seed", "k"], columns="embedder", values="auc")
    d = diff["static"] - diff["minilm"]
    print(
        f"\nAUC static - minilm (paired seeds x k): mean {d.mean():+.4f}, range [{d.min():+.4f}, {d.max():+.4f}], "
        f"static higher in {int((d > 0).sum())}/{len(d)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=Path, default=DEFAULT_PROMPTS)
    parser.add_argument("--n-batch1", type=int, default=200)
    parser.add_argument("--n-batch64", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--distill", action="store_true", help="also time a one-off distillation")
    parser.add_argument("--threads", type=int, default=0, help="cap torch/BLAS threads in the children (0: default)")
    parser.add_argument("--quality", type=int, default=0, metavar="N", help="only run the K-NN check on N prompts")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.quality:
        quality(args.prompts.parent, args.quality)
        return 0

    if args.child:
        mode, *rest = args.child
        if mode == "rss":
            child = _child_rss(rest[0])
        elif mode == "speed":
            child = _child_speed(rest[0], args.prompts, args.n_batch1, args.n_batch64, args.repeats)
        else:
            child = _child_distill()
        print(json.dumps(child))
        return 0

    common = ["--prompts", str(args.prompts), "--n-batch1", str(args.n_batch1)]
    common += ["--n-batch64", str(args.n_batch64), "--repeats", str(args.repeats)]
    _run_child([*common, "--child", "rss", "static"], args.threads)  # makes sure the static model is distilled
    load_before = os.getloadavg()[0]
    res: dict[str, dict[str, Any]] = {}
    for kind in ("st", "static"):
        res[kind] = _run_child([*common, "--child", "speed", kind], args.threads)
        res[kind].update(_run_child(["--child", "rss", kind], args.threads))
    st, sm = res["st"], res["static"]

    load = f"load avg {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    threads = args.threads or "default"
    print(f"Embedding benchmark ({os.cpu_count()} CPUs, {load}, threads {threads}, python {sys.version.split()[0]})")
    print(f"prompts: {args.prompts.name} (batch-1: {args.n_batch1}, batch-64: {args.n_batch64}); short: {SHORT!r}")
    print(f"dims: sentence-transformers {st['dim']}, static {sm['dim']}; torch in static process: {sm['torch_loaded']}")
    print()
    print(f"| {'metric':<34} | {'ST MiniLM':>12} | {'static m2v':>12} | {'ratio':>16} |")
    print(f"|{'-' * 36}|{'-' * 14}|{'-' * 14}|{'-' * 18}|")
    print(_row("short prompt latency p50 (ms)", st["p50_ms"], sm["p50_ms"], ",.3f", "lower"))
    print(_row("short prompt latency p99 (ms)", st["p99_ms"], sm["p99_ms"], ",.3f", "lower"))
    print(_row("batch-1 throughput (prompts/s)", st["batch1_per_s"], sm["batch1_per_s"], ",.1f", "higher"))
    print(_row("batch-64 throughput (prompts/s)", st["batch64_per_s"], sm["batch64_per_s"], ",.1f", "higher"))
    print(_row("load cold, fresh process (s)", st["load_cold_s"], sm["load_cold_s"], ",.3f", "lower"))
    print(_row("load warm, 2nd instance (s)", st["load_warm_s"], sm["load_warm_s"], ",.3f", "lower"))
    print(_row("peak RSS, load + 1 embed (MB)", st["peak_rss_mb"], sm["peak_rss_mb"], ",.0f", "lower"))
    if args.distill:
        d = _run_child(["--child", "distill"], args.threads)
        print()
        print(f"one-off distillation (needs torch): {d['distill_s']:.1f} s, peak RSS {d['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
