"""The circuit breaker's RedisStore against a real `redis-server` on 127.0.0.1 (see .ci/redis.sh).

Several processes share one view of which model is down: the tests start separate Python
processes that open, probe and count against the same keys.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

redis = pytest.importorskip("redis")

from routed_llm.circuit import CircuitBreaker, RedisStore  # noqa: E402

REDIS_SERVER = shutil.which("redis-server")
pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(
        REDIS_SERVER is None,
        reason="redis-server is not installed; run `bash .ci/redis.sh` (apt-get install redis-server)",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on a free loopback port, persistence off, stopped afterwards."""
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            str(REDIS_SERVER),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        for _ in range(100):
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            pytest.fail("redis-server did not answer PING within 5 s")
        yield url
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    return f"test:{request.node.name}:"


def test_state_is_shared_between_breakers_with_separate_clients(redis_url: str, prefix: str) -> None:
    t = [100.0]
    a = CircuitBreaker(
        failure_threshold=2, cooldown_s=10, store=RedisStore(url=redis_url, prefix=prefix), clock=lambda: t[0]
    )
    b = CircuitBreaker(
        failure_threshold=2, cooldown_s=10, store=RedisStore(url=redis_url, prefix=prefix), clock=lambda: t[0]
    )
    a.record_failure("m")
    b.record_failure("m")
    assert a.state("m") == b.state("m") == "open"
    assert not b.allow("m")
    t[0] += 11
    assert b.allow("m") and not a.allow("m")  # one probe across both
    a.record_success("m")
    assert b.state("m") == "closed" and b.allow("m")


def test_keys_carry_the_prefix_and_a_ttl(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    cb = CircuitBreaker(failure_threshold=3, window_s=5, cooldown_s=7, store=RedisStore(client, prefix=prefix))
    cb.record_failure("gpt-x")
    assert client.keys(prefix + "*") == [(prefix + "gpt-x").encode()]
    ttl = client.pttl(prefix + "gpt-x")
    assert 0 < ttl <= (5 + 7 + 7 + 60) * 1000
    assert json.loads(client.get(prefix + "gpt-x"))["failures"] == 1
    cb.record_success("gpt-x")
    assert client.exists(prefix + "gpt-x") == 0
    cb.record_failure("gpt-x")
    cb.reset()
    assert client.keys(prefix + "*") == []


def test_redis_store_needs_a_client_or_url() -> None:
    from routed_llm.errors import ConfigError

    with pytest.raises(ConfigError, match="url"):
        RedisStore()


_WORKER = textwrap.dedent(
    """
    import json, sys, time
    from routed_llm.circuit import CircuitBreaker, RedisStore
    url, prefix, op, start, n = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
    cb = CircuitBreaker(failure_threshold=int(sys.argv[6]), cooldown_s=float(sys.argv[7]), probe_timeout_s=30.0,
                        store=RedisStore(url=url, prefix=prefix))
    while time.time() < start:
        time.sleep(0.001)
    out = []
    for _ in range(n):
        if op == "fail":
            cb.record_failure("m")
        elif op == "allow":
            out.append(cb.allow("m"))
    print(json.dumps({"allowed": out, "state": cb.state("m")}))
    """
)


def _workers(
    tmp_path: Path, redis_url: str, prefix: str, op: str, *, procs: int, n: int, threshold: int, cooldown: float
) -> list[dict[str, object]]:
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    start = time.time() + 1.5  # every process is up and connected before the race begins
    running = [
        subprocess.Popen(
            [sys.executable, str(script), redis_url, prefix, op, str(start), str(n), str(threshold), str(cooldown)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(procs)
    ]
    results = []
    for p in running:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.mark.slow
def test_two_processes_share_the_open_state(tmp_path: Path, redis_url: str, prefix: str) -> None:
    (opener,) = _workers(tmp_path, redis_url, prefix, "fail", procs=1, n=3, threshold=3, cooldown=30)
    assert opener["state"] == "open"
    (other,) = _workers(tmp_path, redis_url, prefix, "allow", procs=1, n=2, threshold=3, cooldown=30)
    assert other["allowed"] == [False, False] and other["state"] == "open"
    here = CircuitBreaker(failure_threshold=3, cooldown_s=30, store=RedisStore(url=redis_url, prefix=prefix))
    assert here.state("m") == "open"


@pytest.mark.slow
def test_concurrent_processes_lose_no_failures(tmp_path: Path, redis_url: str, prefix: str) -> None:
    # 4 processes x 25 failures, threshold exactly 100: any lost update leaves the circuit closed
    results = _workers(tmp_path, redis_url, prefix, "fail", procs=4, n=25, threshold=100, cooldown=30)
    here = CircuitBreaker(failure_threshold=100, cooldown_s=30, store=RedisStore(url=redis_url, prefix=prefix))
    assert here.state("m") == "open"
    assert any(r["state"] == "open" for r in results)


@pytest.mark.slow
def test_exactly_one_process_gets_the_half_open_probe(tmp_path: Path, redis_url: str, prefix: str) -> None:
    here = CircuitBreaker(failure_threshold=1, cooldown_s=0.5, store=RedisStore(url=redis_url, prefix=prefix))
    here.record_failure("m")
    assert here.state("m") == "open"
    results = _workers(tmp_path, redis_url, prefix, "allow", procs=4, n=3, threshold=1, cooldown=0.5)
    granted = [a for r in results for a in r["allowed"]]  # type: ignore[attr-defined]
    assert granted.count(True) == 1 and len(granted) == 12


def test_unreachable_redis_fails_open() -> None:
    port = _free_port()  # nothing listens there
    cb = CircuitBreaker(failure_threshold=1, store=RedisStore(url=f"redis://127.0.0.1:{port}/0", timeout_s=0.2))
    cb.record_failure("m")
    assert cb.allow("m") and cb.state("m") == "closed"
