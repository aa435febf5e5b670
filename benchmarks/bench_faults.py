"""Fallback under faults: 1,000 tool-calling requests at concurrency 64 through `RoutedChatModel.ainvoke`.

The pool is three local models on the package's OpenAI-compatible test server (run in a child
process, so its threads do not compete with the client for the GIL), reached through LiteLLM
over real HTTP on 127.0.0.1:

* the model the router ranks first most often is **down** (every request: 503);
* the one ranked second most often fails **30 %** of its calls at random with mixed faults
  (500, 502, 503, 429 + Retry-After, a hang past the timeout, a closed connection, malformed JSON);
* the third is healthy.

Each request is a small agent turn: the routed model must call a tool (``tool_choice="any"``),
the tool is executed for every tool call returned, and the tool result goes back through the
router for the final answer. In the same run, direct LiteLLM calls to the healthy model (no
routing, no fallback) give the baseline latency. The router is a kNN router fitted on the real
MMLU-Pro outcome table (``../shared/data/mmlu_pro``) with the fast static embedder.

Run: ``python benchmarks/bench_faults.py [--requests 1000] [--concurrency 64]``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mmlu_pro"
POOL = ("Meta-Llama-3.1-70B-Instruct", "Mixtral-8x7B-Instruct-v0.1", "Phi-3-mini-4k-instruct")
FLAKY_KINDS = ("500", "502", "503", "429:0.5", "hang:30", "close", "malformed")
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a fact up in the course notes.",
        "parameters": {
            "type": "object",
            "properties": {"topic": {"type": "string"}, "page": {"type": "integer"}},
            "required": ["topic", "page"],
        },
    },
}


# ---- the server, in a child process ------------------------------------------------------------


def _serve(conn: Any, models: list[str], latency: float) -> None:
    from routed_llm.testing import _handler
    from routed_llm.testing.server import Behavior, LocalOpenAIServer

    # socketserver's default listen backlog (5) drops SYNs at concurrency 64, and every dropped
    # SYN costs the client a 1 s retransmit: measure routing, not the test server's accept queue.
    _handler.HTTPServer.request_queue_size = 512

    with LocalOpenAIServer(models=models) as server:
        for m in models:
            server.set_behavior(m, Behavior(latency=latency))
        conn.send(server.base_url)
        while True:
            cmd, *args = conn.recv()
            if cmd == "stop":
                conn.send(None)
                return
            if cmd == "down":
                server.set_down(args[0])
            elif cmd == "rate":
                server.set_fault_rate(args[0], args[1], list(args[2]), seed=args[3])
            conn.send(server.count(args[0]) if cmd == "count" else None)


class ServerProcess:
    """The local server in a spawned child process, driven over a pipe."""

    def __init__(self, models: list[str], latency: float) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, models, latency), daemon=True)
        self._proc.start()
        self.base_url: str = self._conn.recv()

    def ask(self, *cmd: Any) -> Any:
        self._conn.send(cmd)
        return self._conn.recv()

    def stop(self) -> None:
        self.ask("stop")
        self._proc.join(timeout=10)


# ---- setup ---------------------------------------------------------------------------------------


def fit_router(n_train: int, n_probe: int, seed: int) -> tuple[Any, list[str]]:
    """A kNN router on MMLU-Pro restricted to POOL; returns it and the held-out prompts."""
    from routed_llm.data import load_dataset
    from routed_llm.routers import make_router

    data = load_dataset(DATA).subset(models=list(POOL))
    rng = np.random.default_rng(seed)
    order = rng.permutation(data.n_prompts)
    train, held = order[: n_train + n_probe], order[n_train + n_probe :]
    fit_data = data.subset(rows=train)
    probes = list(fit_data.prompt_ids[n_train:])
    router = make_router("knn", k=20, embedder="static").fit(fit_data, probe_ids=probes)
    return router, [data.prompts[i] for i in held]


def model_list(base_url: str, local: dict[str, str]) -> list[dict[str, Any]]:
    info = {
        "supports_function_calling": True,
        "max_input_tokens": 128_000,
        "max_output_tokens": 4096,
        "input_cost_per_token": 5e-7,
        "output_cost_per_token": 1.5e-6,
    }
    return [
        {
            "model_name": name,
            "litellm_params": {"model": f"openai/{local[name]}", "api_base": base_url, "api_key": "sk-test"},
            "model_info": info,
        }
        for name in POOL
    ]


def assign_roles(llm: Any, prompts: list[str]) -> dict[str, str]:
    """dead = the most frequent first choice, flaky = the next, healthy = the rest."""
    tops = collections.Counter(
        llm.engine.plan([{"role": "user", "content": p}], {"tools": [TOOL]}).targets[0].name for p in prompts
    )
    ranked = [m for m, _ in tops.most_common()] + [m for m in POOL if m not in tops]
    return {"dead": ranked[0], "flaky": ranked[1], "healthy": ranked[2]}


# ---- one request -------------------------------------------------------------------------------


class Stats:
    def __init__(self) -> None:
        self.routed: list[float] = []
        self.routed_final: list[float] = []
        self.routed_first_try: list[float] = []
        self.routed_recovered: list[float] = []
        self.direct: list[float] = []
        self.direct_failed: collections.Counter[str] = collections.Counter()
        self.answered = 0
        self.lost: collections.Counter[str] = collections.Counter()
        self.executions: collections.Counter[int] = collections.Counter()
        self.attempts: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self.fallback_requests = 0
        self.served: collections.Counter[str] = collections.Counter()
        self.cpu_s = 0.0
        self.sequential = (float("nan"), float("nan"))


async def one_request(
    i: int, prompt: str, bound: Any, healthy: str, base_url: str, timeout: float, stats: Stats
) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage

    from routed_llm import transport

    async def direct() -> None:
        t0 = time.perf_counter()
        try:
            await transport.acomplete(
                f"openai/{healthy}",
                [{"role": "user", "content": prompt}],
                tools=[TOOL],
                tool_choice="required",
                api_base=base_url,
                api_key="sk-test",
                timeout=timeout,
            )
        except Exception as exc:  # a direct call has no fallback: count its failures
            stats.direct_failed[type(exc).__name__] += 1
            return
        stats.direct.append(time.perf_counter() - t0)

    async def routed() -> None:
        msgs: list[Any] = [HumanMessage(prompt)]
        try:
            t0 = time.perf_counter()
            ai = await bound.ainvoke(msgs)
            elapsed = time.perf_counter() - t0
            stats.routed.append(elapsed)
            calls = [a for a in ai.response_metadata["routing"]["attempts"] if a["action"] != "skip"]
            (stats.routed_first_try if len(calls) == 1 else stats.routed_recovered).append(elapsed)
            record(ai.response_metadata["routing"]["attempts"])
            tool_msgs = []
            for call in ai.tool_calls:
                stats.executions[i] += 1  # "executing" the tool: count it
                tool_msgs.append(
                    ToolMessage(
                        f"page {call['args'].get('page')} of {call['args'].get('topic')}", tool_call_id=call["id"]
                    )
                )
            t0 = time.perf_counter()
            final = await bound.ainvoke([*msgs, ai, *tool_msgs])
            stats.routed_final.append(time.perf_counter() - t0)
            record(final.response_metadata["routing"]["attempts"])
            if isinstance(final.content, str) and final.content and not final.tool_calls:
                stats.answered += 1
                stats.served[final.response_metadata["model_name"]] += 1
        except Exception as exc:
            stats.lost[type(exc).__name__] += 1

    def record(attempts: list[dict[str, Any]]) -> None:
        if len([a for a in attempts if a["action"] != "skip"]) > 1:
            stats.fallback_requests += 1
        for a in attempts:
            stats.attempts[(a["model"], a["action"], a["error"] or "-")] += 1

    first, second = (direct, routed) if i % 2 else (routed, direct)
    await first()
    await second()


async def sequential_overhead(bound: Any, prompts: list[str], healthy: str, base_url: str) -> tuple[float, float]:
    """p50 latency (s) of routed tool-call steps and of direct calls, one request at a time, no faults."""
    from langchain_core.messages import HumanMessage

    from routed_llm import transport

    routed, direct = [], []
    for prompt in prompts:
        t0 = time.perf_counter()
        await bound.ainvoke([HumanMessage(prompt)])
        routed.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        await transport.acomplete(
            f"openai/{healthy}",
            [{"role": "user", "content": prompt}],
            tools=[TOOL],
            tool_choice="required",
            api_base=base_url,
            api_key="sk-test",
            timeout=30,
        )
        direct.append(time.perf_counter() - t0)
    return float(np.median(routed[2:])), float(np.median(direct[2:]))  # the first calls warm clients up


# ---- main --------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000 if values else float("nan")


async def run(args: argparse.Namespace) -> int:
    from routed_llm.chat_model import RoutedChatModel
    from routed_llm.circuit import CircuitBreaker
    from routed_llm.fallback import FallbackPolicy

    t_setup = time.perf_counter()
    router, prompts = fit_router(args.train, args.probes, args.seed)
    prompts = prompts[: args.requests]
    local = {name: f"m{i}" for i, name in enumerate(POOL)}
    server = ServerProcess(list(local.values()), args.latency)
    opened: dict[str, tuple[float, int]] = {}

    def on_change(model: str, old: str, new: str) -> None:
        transitions[(model, old, new)] += 1
        if new == "open" and model not in opened:
            opened[model] = (time.perf_counter(), server.ask("count", local[model]))

    transitions: collections.Counter[tuple[str, str, str]] = collections.Counter()
    granted_after_open: collections.Counter[str] = collections.Counter()

    class CountingBreaker(CircuitBreaker):
        """Counts the calls it lets through to a model after that model's circuit first opened."""

        def allow(self, model: str) -> bool:
            ok = super().allow(model)
            if ok and model in opened:
                granted_after_open[model] += 1
            return ok

    breaker = CountingBreaker(failure_threshold=args.threshold, cooldown_s=args.cooldown, on_change=on_change)
    policy = FallbackPolicy(retries_per_model=2)
    llm = RoutedChatModel(
        model_list=model_list(server.base_url, local),
        router=router,
        timeout=args.timeout,
        fallback=policy,
        circuit_breaker=breaker,
    )
    roles = assign_roles(llm, prompts)
    bound = llm.bind_tools([TOOL], tool_choice="any")
    setup_s = time.perf_counter() - t_setup
    # before any fault: one call at a time, routed vs direct, to isolate the routing overhead
    seq = await sequential_overhead(bound, prompts[-args.sequential :], local[roles["healthy"]], server.base_url)
    breaker.reset()
    before = {role: server.ask("count", local[name]) for role, name in roles.items()}  # the fault phase starts here
    server.ask("down", local[roles["dead"]])
    server.ask("rate", local[roles["flaky"]], args.fault_rate, FLAKY_KINDS, args.seed)
    cpu0 = time.process_time()
    stats = Stats()
    sem = asyncio.Semaphore(args.concurrency)

    async def guarded(i: int, prompt: str) -> None:
        async with sem:
            await one_request(i, prompt, bound, local[roles["healthy"]], server.base_url, args.timeout, stats)

    t0 = time.perf_counter()
    await asyncio.gather(*(guarded(i, p) for i, p in enumerate(prompts)))
    wall = time.perf_counter() - t0
    stats.cpu_s = time.process_time() - cpu0
    stats.sequential = seq
    counts = {role: server.ask("count", local[name]) - before[role] for role, name in roles.items()}
    opened = {m: (t, c - before[next(r for r, n in roles.items() if n == m)]) for m, (t, c) in opened.items()}
    server.stop()
    report(args, roles, stats, counts, opened, granted_after_open, transitions, wall, setup_s, len(prompts))
    return 0 if stats.answered == len(prompts) and not stats.lost else 1


def report(
    args: argparse.Namespace,
    roles: dict[str, str],
    s: Stats,
    counts: dict[str, int],
    opened: dict[str, tuple[float, int]],
    granted: collections.Counter[str],
    transitions: collections.Counter[tuple[str, str, str]],
    wall: float,
    setup_s: float,
    n: int,
) -> None:
    dead = roles["dead"]
    dup = sum(c - 1 for c in s.executions.values() if c > 1)
    lines = [
        f"requests: {n} agent turns (tool call -> tool result -> answer) at concurrency {args.concurrency}; "
        f"{len(s.routed) + len(s.routed_final)} routed ainvoke calls + {len(s.direct)} direct calls in {wall:.1f} s "
        f"(setup {setup_s:.1f} s)",
        f"pool: dead={dead} (every call 503), flaky={roles['flaky']} ({args.fault_rate:.0%} random faults: "
        f"{', '.join(FLAKY_KINDS)}), healthy={roles['healthy']}; server latency {args.latency * 1000:.0f} ms, "
        f"call timeout {args.timeout} s",
        f"policy: retries_per_model=2, backoff 0.25 s x 2^n + jitter (max 8 s), Retry-After honoured <= 20 s; "
        f"circuit: {args.threshold} failures in 60 s -> open for {args.cooldown:.0f} s",
        "",
        f"requests answered:        {s.answered} / {n}",
        f"requests lost:            {sum(s.lost.values())}" + (f" {dict(s.lost)}" if s.lost else ""),
        f"tool executions:          {sum(s.executions.values())} for {len(s.executions)} requests; "
        f"duplicate executions: {dup}",
        f"direct calls to the healthy model that failed (no fallback): {sum(s.direct_failed.values())}"
        + (f" {dict(s.direct_failed)}" if s.direct_failed else ""),
        f"routed calls that needed a retry or fallback: {s.fallback_requests} of {len(s.routed) + len(s.routed_final)}",
        f"served the final answer:  {dict(s.served)}",
        "",
        f"sequential, before any fault ({args.sequential} calls each, one at a time): routed tool-call step p50 "
        f"{s.sequential[0] * 1000:.1f} ms, direct p50 {s.sequential[1] * 1000:.1f} ms -> routing overhead "
        f"{(s.sequential[0] - s.sequential[1]) * 1000:+.1f} ms per call",
        f"under load (client CPU {s.cpu_s:.0f} s over {wall:.0f} s wall; 1 min load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs):",
        "latency (ms)               p50      p99",
        f"direct (healthy model)  {pct(s.direct, 50):7.1f}  {pct(s.direct, 99):7.1f}",
        f"routed, tool-call step  {pct(s.routed, 50):7.1f}  {pct(s.routed, 99):7.1f}",
        f"  of which first try    {pct(s.routed_first_try, 50):7.1f}  {pct(s.routed_first_try, 99):7.1f}"
        f"   ({len(s.routed_first_try)} calls: routing overhead only)",
        f"  of which recovered    {pct(s.routed_recovered, 50):7.1f}  {pct(s.routed_recovered, 99):7.1f}"
        f"   ({len(s.routed_recovered)} calls after a retry or fallback)",
        f"routed, answer step     {pct(s.routed_final, 50):7.1f}  {pct(s.routed_final, 99):7.1f}",
        f"added by routing+fallback {pct(s.routed, 50) - pct(s.direct, 50):+6.1f}  "
        f"{pct(s.routed, 99) - pct(s.direct, 99):+7.1f}   (tool-call step percentile minus direct percentile)",
        "",
    ]
    if dead in opened:
        _, count_at_open = opened[dead]
        lines.append(
            f"dead model: {count_at_open} calls had reached it when its circuit opened; calls that reached it "
            f"after that: {counts['dead'] - count_at_open} ({granted[dead]} let through as half-open probes, at most "
            f"one per {args.cooldown:.0f} s cooldown; any others were already in flight or a last resort when every "
            f"circuit was open); total {counts['dead']} of {len(s.routed) + len(s.routed_final)} routed calls "
            f"(the first wave of {args.concurrency} concurrent requests is in flight before {args.threshold} failures "
            "can open the circuit)"
        )
    else:
        lines.append(f"dead model: {counts['dead']} calls; its circuit never opened")
    lines.append(
        f"calls received by the server: dead={counts['dead']}, flaky={counts['flaky']}, healthy={counts['healthy']} "
        "(fault phase only; direct baseline calls included under healthy)"
    )
    lines.append(
        "circuit transitions: " + ", ".join(f"{m} {a}->{b} x{c}" for (m, a, b), c in sorted(transitions.items()))
    )
    lines.append("attempts by (model, action, error):")
    for (model, action, error), c in sorted(s.attempts.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {c:6d}  {model:30s} {action:8s} {error}")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--fault-rate", type=float, default=0.3)
    p.add_argument("--latency", type=float, default=0.05, help="simulated model latency on the server (s)")
    p.add_argument("--timeout", type=float, default=10.0, help="per-call timeout (s); hang faults (30 s) exceed it")
    p.add_argument("--threshold", type=int, default=5, help="circuit failure_threshold")
    p.add_argument("--cooldown", type=float, default=30.0, help="circuit cooldown_s")
    p.add_argument("--train", type=int, default=1500)
    p.add_argument("--probes", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sequential", type=int, default=40, help="calls in the no-fault sequential phase")
    args = p.parse_args(argv)
    if not DATA.is_dir():
        print(f"needs the MMLU-Pro table at {DATA} (../shared/data beside the checkout)", file=sys.stderr)
        return 2
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
