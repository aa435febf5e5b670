"""The public API is pinned, and importing routed_llm stays cheap."""

import subprocess
import sys

import routed_llm

EXPECTED_ALL = [
    "AllModelsFailedError",
    "ArtifactError",
    "Attempt",
    "ConfigError",
    "DataError",
    "ModelProfile",
    "NotFittedError",
    "RouteDecision",
    "RoutedChatModel",
    "RoutedLLMError",
    "Router",
    "RoutingDataset",
    "RoutingError",
    "__version__",
    "calibrate",
    "default_router",
    "load_dataset",
    "make_router",
]

HEAVY = ("torch", "litellm", "sentence_transformers", "transformers", "pandas", "matplotlib", "langchain_core")


def test_all_is_pinned():
    assert sorted(EXPECTED_ALL) == sorted(routed_llm.__all__)


def test_import_loads_no_heavy_module():
    code = (
        "import sys, routed_llm, routed_llm.routers, routed_llm.cli\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_unknown_attribute_is_an_attribute_error():
    try:
        routed_llm.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


def test_lazy_names_survive_submodule_imports():
    # a public function must not be shadowed by a submodule of the same name once that is imported
    code = (
        "import importlib, inspect, routed_llm\n"
        "for name, module in routed_llm._LAZY.items():\n"
        "    importlib.import_module(module)\n"
        "bad = [n for n in routed_llm.__all__ if inspect.ismodule(getattr(routed_llm, n))]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
