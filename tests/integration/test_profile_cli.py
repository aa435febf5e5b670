"""`routed-llm profile` and `routed-llm add-model` end to end.

The CLI runs in subprocesses against the package's local OpenAI-compatible server on
127.0.0.1 (real LiteLLM calls over real HTTP); routing uses the real MiniLM embedder. The
pure parts of routed_llm.profiling (probe selection, journal, profile building) are tested
at the top of the file.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from routed_llm.cli._add_model import _default_folder
from routed_llm.default import default_probe_set
from routed_llm.errors import ConfigError, DataError
from routed_llm.profiling import (
    ProbeItem,
    ProbeJournal,
    ProfileSettings,
    build_profile,
    journal_path_for,
    load_probe_set,
    select_probes,
)
from routed_llm.routers import Router
from routed_llm.testing.server import Behavior, Fault, LocalOpenAIServer, answer_key_for_accuracy, prompt_key
from routed_llm.types import ModelProfile

SECRET = "sk-profile-test-0123456789"


@pytest.fixture(scope="module")
def gold() -> dict[str, str]:
    """prompt_key -> reference letter for every default probe."""
    return {prompt_key(p["prompt"]): p["reference"] for p in default_probe_set()}


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m routed_llm ARGS`` in a subprocess."""
    full_env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **(env or {})}
    full_env.pop("OPENAI_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "routed_llm", *args],
        capture_output=True, text=True, timeout=timeout, env=full_env, check=False,
    )  # fmt: skip


def cli_here(*args: str) -> tuple[int, str, str]:
    """Run the CLI in this process (cheaper: LiteLLM is imported once); returns rc, stdout, stderr."""
    from routed_llm.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()


def journal_records(path: Path) -> list[dict]:
    lines = journal_path_for(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[1:]]


# ------------------------------------------------------------------------------- pure parts


def test_select_probes_spreads_a_limit_over_tasks() -> None:
    _, items = load_probe_set("default")
    tasks = {it.task for it in items}
    small = select_probes(items, limit=len(tasks))
    assert {it.task for it in small} == tasks  # one per subject
    larger = select_probes(items, limit=40)
    assert [it.prompt_id for it in larger[: len(small)]] == [it.prompt_id for it in small]  # a larger limit extends
    assert select_probes(items, limit=10_000) == items
    ids = [items[3].prompt_id, items[1].prompt_id]
    assert [it.prompt_id for it in select_probes(items, probe_ids=ids)] == ids
    with pytest.raises(DataError, match="lacks 1 of the router's 2 probe prompts"):
        select_probes(items, probe_ids=[items[0].prompt_id, "not-a-probe"])


def test_probe_set_files_are_validated(tmp_path: Path) -> None:
    good = tmp_path / "p.jsonl"
    good.write_text(
        json.dumps({"prompt_id": "q1", "prompt": "2+2?", "reference": "4", "grader": "numeric"}) + "\n\n"
        + json.dumps({"prompt_id": "q2", "prompt": "Capital of France?", "reference": "Paris", "grader": "exact"}),
        encoding="utf-8",
    )  # fmt: skip
    name, items = load_probe_set(good)
    assert name == "p.jsonl" and [it.grader for it in items] == ["numeric", "exact"]
    cases = {
        "missing.jsonl": None,
        "bad-json.jsonl": "{not json",
        "no-ref.jsonl": json.dumps({"prompt_id": "q", "prompt": "x"}),
        "bad-grader.jsonl": json.dumps({"prompt_id": "q", "prompt": "x", "reference": "y", "grader": "regex"}),
        "bad-ref.jsonl": json.dumps({"prompt_id": "q", "prompt": "x", "reference": "three", "grader": "choice"}),
        "dup.jsonl": "\n".join([json.dumps({"prompt_id": "q", "prompt": "x", "reference": "y"})] * 2),
    }
    for fname, text in cases.items():
        if text is not None:
            (tmp_path / fname).write_text(text, encoding="utf-8")
        with pytest.raises(DataError, match=r"probe set|grader"):
            load_probe_set(tmp_path / fname)


def test_journal_survives_a_torn_line_and_refuses_another_model(tmp_path: Path) -> None:
    path = tmp_path / "m.json.partial.jsonl"
    journal = ProbeJournal(path, model="m")
    journal.append({"prompt_id": "a", "prompt_sha": "x", "ok": True, "response": "A"})
    journal.append({"prompt_id": "b", "prompt_sha": "x", "ok": False, "error": "boom"})
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"prompt_id": "c", "ok": tr')  # a crash mid-write
    again = ProbeJournal(path, model="m")
    assert set(again.answered()) == {"a"} and again.skipped_lines == 1
    again.append({"prompt_id": "b", "prompt_sha": "x", "ok": True, "response": "B"})
    third = ProbeJournal(path, model="m")
    assert set(third.answered()) == {"a", "b"} and third.latest()["b"]["ok"] is True
    with pytest.raises(ConfigError, match="holds answers of model 'm', not 'other'"):
        ProbeJournal(path, model="other")


def test_build_profile_counts_errors_as_missing_and_warns_without_price() -> None:
    items = [ProbeItem(prompt_id=f"p{i}", prompt=f"Q{i}\nA. x\nB. y", reference="B") for i in range(4)]
    records = {
        "p0": {"ok": True, "prompt_sha": items[0].prompt_sha, "response": "The answer is (B)", "cost": None,
               "input_tokens": 10, "output_tokens": 4, "latency_s": 0.5},
        "p1": {"ok": True, "prompt_sha": items[1].prompt_sha, "response": "The answer is (A)", "cost": None,
               "input_tokens": 20, "output_tokens": 6, "latency_s": 1.5},
        "p2": {"ok": False, "prompt_sha": items[2].prompt_sha, "error": "InternalServerError: 500"},
        "p3": {"ok": True, "prompt_sha": "stale", "response": "The answer is (B)"},  # another prompt text
    }  # fmt: skip
    profile, warnings = build_profile(items, records, ProfileSettings(model="openai/x"), probe_set="t")
    assert profile.scores[:2].tolist() == [1.0, 0.0] and np.isnan(profile.scores[2:]).all()
    assert profile.meta["n_errors"] == 2 and profile.meta["error_examples"] == ["p2: InternalServerError: 500"]
    assert profile.expected_cost == 0.0 and any("no price known" in w for w in warnings)
    assert profile.mean_input_tokens == 15 and profile.mean_latency_s == 1.0
    with pytest.raises(DataError, match="no probe prompt was answered"):
        build_profile(items, {"p2": records["p2"]}, ProfileSettings(model="openai/x"), probe_set="t")


def test_settings_never_show_the_key() -> None:
    settings = ProfileSettings(model="openai/x", api_key=SECRET)
    assert SECRET not in repr(settings)
    assert settings.redact(f"Incorrect API key provided: {SECRET}") == "Incorrect API key provided: ***"
    with pytest.raises(ConfigError, match="both --price-in and --price-out"):
        ProfileSettings(model="openai/x", price_in_per_1m=1.0)


# ------------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_profile_scores_what_the_server_answers(
    openai_server: LocalOpenAIServer, gold: dict[str, str], tmp_path: Path
) -> None:
    model = "prof-half"
    key = answer_key_for_accuracy(gold, 0.5, seed=3, letters="ABCDEFGHIJ")
    openai_server.set_behavior(model, Behavior(answer_key=key))
    openai_server.set_faults(model, [Fault.http(500)] * 5)  # sequential: 2 prompts fail twice, 1 recovers
    out = tmp_path / "half.json"
    res = cli(
        "profile", "--model", f"openai/{model}", "--api-base", openai_server.base_url,
        "--api-key-env", "PROFILE_TEST_KEY", "--limit", "40", "--concurrency", "1", "--retries", "1",
        "--price-in", "0.5", "--price-out", "1.5", "--name", "half", "--out", str(out),
        env={"PROFILE_TEST_KEY": SECRET},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "2 probe calls failed" in res.stderr
    profile = ModelProfile.load(out)
    assert profile.model == "half" and len(profile.probe_ids) == 40
    by_id = {p["prompt_id"]: p for p in default_probe_set()}
    expected = [float(key[prompt_key(by_id[p]["prompt"])] == by_id[p]["reference"]) for p in profile.probe_ids]
    got = profile.scores.tolist()
    assert sum(math.isnan(s) for s in got) == 2  # errors are missing, not 0
    assert all(g == e for g, e in zip(got, expected, strict=True) if not math.isnan(g))
    assert 0.2 < profile.accuracy < 0.8
    assert profile.meta["n_errors"] == 2 and profile.meta["probe_set"] == "default"
    assert openai_server.count(model) == 40 + 3  # 3 retries: fail+fail, fail+fail, fail+ok
    records = [r for r in journal_records(out) if r["ok"]]
    assert profile.expected_cost == pytest.approx(np.mean([r["cost"] for r in records]))
    assert records[0]["cost"] == pytest.approx(
        (records[0]["input_tokens"] * 0.5 + records[0]["output_tokens"] * 1.5) / 1e6
    )
    assert (profile.price_in_per_1m, profile.price_out_per_1m) == (0.5, 1.5)
    for path in (out, journal_path_for(out)):
        assert SECRET not in path.read_text(encoding="utf-8")
    assert SECRET not in res.stdout + res.stderr


@pytest.mark.slow
def test_profile_resumes_without_asking_again_then_add_model_routes_to_it(
    openai_server: LocalOpenAIServer, gold: dict[str, str], tmp_path: Path
) -> None:
    model = "prof-perfect"
    openai_server.set_behavior(model, Behavior(answer_key=gold))
    openai_server.set_faults(model, [Fault.http(503)] * 15)  # an outage: 15 of 40 calls fail
    out = tmp_path / "perfect.json"
    args = ["profile", "--model", f"openai/{model}", "--api-base", openai_server.base_url, "--limit", "40",
            "--retries", "0", "--price-in", "0.01", "--price-out", "0.01", "--out", str(out)]  # fmt: skip

    first = cli(*args)
    assert first.returncode == 1, first.stderr
    assert "15 of 40 probe calls failed" in first.stderr and "rerun the same command" in first.stderr
    assert not out.exists()
    assert sum(r["ok"] for r in journal_records(out)) == 25
    assert openai_server.count(model) == 40

    second = cli(*args)  # the outage is over: only the 15 failed prompts are asked
    assert second.returncode == 0, second.stderr
    assert openai_server.count(model) == 40 + 15
    assert "15 asked now, 25 resumed" in second.stdout
    profile = ModelProfile.load(out)
    assert profile.accuracy == 1.0 and profile.meta["n_errors"] == 0 and len(profile.probe_ids) == 40

    rc, stdout, _ = cli_here(*args[0:])  # nothing left to ask
    assert rc == 0 and openai_server.count(model) == 55 and "0 asked now, 40 resumed" in stdout

    router_dir = tmp_path / "router"
    added = cli("add-model", "default", str(out), "--out", str(router_dir))
    assert added.returncode == 0, added.stderr
    assert f"added openai/{model}" in added.stdout and "ranks 1 of 15" in added.stdout
    assert (router_dir / "probes.jsonl").is_file()

    from routed_llm.default import default_router
    from routed_llm.routers import Router

    assert f"openai/{model}" not in default_router().models_  # the shipped router is untouched
    router = Router.load(router_dir)
    assert router.models_[-1] == f"openai/{model}"
    prompt = "Which planet is known as the red planet?\nOptions:\nA. Venus\nB. Mars\nC. Jupiter\nD. Saturn"
    decision = router.route(prompt, cost_weight=0.5)
    assert decision.model == f"openai/{model}", decision.reason
    before = default_router().route(prompt, cost_weight=0.5)
    assert before.model != f"openai/{model}"


@pytest.mark.slow
def test_interrupted_profile_resumes(openai_server: LocalOpenAIServer, gold: dict[str, str], tmp_path: Path) -> None:
    model = "prof-slow"
    openai_server.set_behavior(model, Behavior(answer_key=gold, latency=0.2))
    out = tmp_path / "slow.json"
    args = [sys.executable, "-m", "routed_llm", "profile", "--model", f"openai/{model}", "--api-base",
            openai_server.base_url, "--limit", "30", "--concurrency", "2", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    journal = journal_path_for(out)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and len(journal.read_text(encoding="utf-8").splitlines()) >= 1 + 6:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "rerun the same command to resume" in err
    done = sum(r["ok"] for r in journal_records(out))
    assert 6 <= done < 30
    asked_before = openai_server.count(model)

    rc, _, err = cli_here(*args[3:])
    assert rc == 0, err
    assert openai_server.count(model) - asked_before == 30 - done  # answered prompts are not asked again
    assert ModelProfile.load(out).accuracy == 1.0


@pytest.mark.slow
def test_bad_key_stops_at_once(openai_server: LocalOpenAIServer, tmp_path: Path) -> None:
    model = "prof-denied"
    openai_server.set_faults(model, [Fault.http(401)] * 100)
    rc, _, err = cli_here("profile", "--model", f"openai/{model}", "--api-base", openai_server.base_url,
                          "--limit", "40", "--concurrency", "1", "--out", str(tmp_path / "denied.json"))  # fmt: skip
    assert rc == 2
    assert "AuthenticationError" in err and "error:" in err
    assert openai_server.count(model) == 1


@pytest.mark.slow
def test_cli_errors_are_one_clear_line(tmp_path: Path) -> None:
    bad = ModelProfile(model="stranger", probe_ids=("not-a-probe",), scores=np.array([1.0]), expected_cost=0.0)
    bad.save(tmp_path / "bad.json")
    res = cli("add-model", "default", str(tmp_path / "bad.json"), "--out", str(tmp_path / "r"))
    assert res.returncode == 2
    assert "not this router's probes" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "r" / "router.json").exists()  # nothing written for a bad profile
    rc, _, err = cli_here("add-model", "default", str(tmp_path / "bad.json"))
    assert rc == 2 and "pass --out DIR" in err
    rc, _, err = cli_here("add-model", str(tmp_path / "nowhere"), str(tmp_path / "bad.json"))
    assert rc == 2 and "nowhere" in err
    rc, _, err = cli_here("add-model", "default", str(tmp_path / "missing.json"), "--out", str(tmp_path / "r2"))
    assert rc == 2 and "profile file not found" in err
    rc, _, err = cli_here("profile", "--model", "openai/x", "--api-key-env", "ROUTED_LLM_NO_SUCH_VAR",
                          "--out", str(tmp_path / "x.json"))  # fmt: skip
    assert rc == 2 and "ROUTED_LLM_NO_SUCH_VAR" in err
    probes = tmp_path / "other.jsonl"
    probes.write_text(json.dumps({"prompt_id": "q1", "prompt": "2+2?", "reference": "4", "grader": "numeric"}))
    rc, _, err = cli_here("profile", "--model", "openai/x", "--router", str(_default_folder()), "--probe-set",
                          str(probes), "--out", str(tmp_path / "x.json"))  # fmt: skip
    assert rc == 2 and "the probe set lacks 500 of the router's 500 probe prompts" in err


@pytest.mark.slow
def test_profile_with_router_asks_its_probes(openai_server: LocalOpenAIServer, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    rc, _, err = cli_here("profile", "--model", "openai/prof-router", "--api-base", openai_server.base_url,
                               "--router", str(_default_folder()), "--limit", "5", "--out", str(out))  # fmt: skip
    assert rc == 0, err
    profile = ModelProfile.load(out)
    assert profile.meta["probe_set"] == "probes.jsonl"  # the router's own probe set
    assert len(profile.probe_ids) == 5 and set(profile.probe_ids) <= set(Router.load(_default_folder()).probe_ids_)
    assert openai_server.count("prof-router") == 5 and "no price known" in err
