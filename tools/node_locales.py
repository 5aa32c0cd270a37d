"""Build ``locales/en/nodeDefs.json`` (ComfyUI's i18n for custom nodes) from the node schemas.

ComfyUI's ``/i18n`` serves ``custom_nodes/<pack>/locales/<lang>/nodeDefs.json`` under
``nodeDefs``; the frontend looks up ``nodeDefs.<NodeId>.display_name``, ``.description``,
``.inputs.<input>.name|tooltip`` and ``.outputs.<index>.name|tooltip``. Strings go through
vue-i18n's message compiler, so its special characters are escaped as literals.

Regenerate after changing a schema: ``python tools/node_locales.py``
(``tests/test_locales.py`` fails while the file and the schemas disagree).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

LOCALE_FILE = Path(__file__).resolve().parents[1] / "locales" / "en" / "nodeDefs.json"
_VUE_I18N_SPECIAL = re.compile(r"[{}@|]")


def i18n_literal(text: str) -> str:
    """vue-i18n message text that renders as ``text``: ``{ } @ |`` become literal interpolations."""
    return _VUE_I18N_SPECIAL.sub(lambda m: "{'" + m.group(0) + "'}", text)


def node_def(schema) -> dict:
    entry = {"display_name": i18n_literal(schema.display_name or schema.node_id)}
    if schema.description:
        entry["description"] = i18n_literal(schema.description)
    inputs = {}
    for inp in schema.inputs:
        inputs[inp.id] = {"name": i18n_literal(inp.display_name or inp.id)}
        if inp.tooltip:
            inputs[inp.id]["tooltip"] = i18n_literal(inp.tooltip)
    if inputs:
        entry["inputs"] = inputs
    outputs = {}
    for index, out in enumerate(schema.outputs):
        outputs[str(index)] = {"name": i18n_literal(out.display_name or out.io_type)}
        if out.tooltip:
            outputs[str(index)]["tooltip"] = i18n_literal(out.tooltip)
    if outputs:
        entry["outputs"] = outputs
    return entry


def node_defs(classes) -> dict:
    """``{NodeId: entry}`` for every registered node, sorted by id so the file diffs cleanly."""
    schemas = sorted((cls.define_schema() for cls in classes), key=lambda s: s.node_id)
    return {schema.node_id: node_def(schema) for schema in schemas}


def render(defs: dict) -> str:
    return json.dumps(defs, indent=2, ensure_ascii=False) + "\n"


def registered_classes() -> list:
    """The node classes the pack registers, imported the way ComfyUI (or the stand-ins) does."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # conftest: the pack's import set-up
    from conftest import load_pack

    load_pack()
    from emotion_director_pack.nodes import EmotionDirectorExtension

    return asyncio.run(EmotionDirectorExtension().get_node_list())


def main() -> None:
    LOCALE_FILE.parent.mkdir(parents=True, exist_ok=True)
    LOCALE_FILE.write_text(render(node_defs(registered_classes())), encoding="utf-8")
    print(f"wrote {LOCALE_FILE}")


if __name__ == "__main__":
    main()
