"""``--json`` output is standard JSON, one object per line."""

import json

from emotion_core.cli.output import emit


def test_json_lines_have_no_nan_or_infinity(capsys):
    assert emit([{"esmi": float("nan"), "nested": {"s": [1.5, float("inf")]}}, {"ok": 2}], as_json=True) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == '{"esmi": null, "nested": {"s": [1.5, null]}}'
    assert [json.loads(line, parse_constant=lambda name: 1 / 0) for line in lines][1] == {"ok": 2}
