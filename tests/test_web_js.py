"""The web extension's pure logic (wheel geometry, blend text, ui-output parsing, drawing)
under Node's built-in test runner, so ``python -m pytest`` covers the JS too."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import ROOT

NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_web_js_unit_tests():
    result = subprocess.run([NODE, "--test", "web/tests/"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"node --test web/tests/ failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"


@pytest.mark.skipif(NODE is None, reason="node is not installed")
@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "web" / "js").glob("*.js")))
def test_web_js_parses_as_a_module(script):
    """The extension entry imports ComfyUI's app, so it cannot run here; it must at least parse."""
    result = subprocess.run([NODE, "--check", f"web/js/{script}"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
