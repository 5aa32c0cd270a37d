"""ComfyUI workflow files: the UI format users load and share (LiteGraph, version 0.4), its
API-format twin (what ``/prompt`` accepts), and the checks that keep both true to the node
schemas.

A node's schema is reduced to a ``NodeSpec``: its inputs in the order ComfyUI lists them
(required, then optional) and its output types. Widgets are the inputs of a value type
(INT, FLOAT, STRING, BOOLEAN, a combo); the UI stores their values in ``widgets_values`` in
that order, with one extra value after a widget that has a "control after generate" (seeds)
or an upload button (LoadImage), exactly as ComfyUI's frontend serialises them.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

VALUE_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload")


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: str  # "COMBO" for combos
    widget: bool
    optional: bool = False
    options: tuple | None = None  # combo values; None when the list is a core node's folder listing
    folder: str | None = None  # model/input folder a file combo lists
    min: float | None = None
    max: float | None = None
    control: bool = False
    upload: bool = False

    def extra_slots(self) -> int:
        return int(self.control) + int(self.upload)


@dataclass
class NodeSpec:
    type: str
    inputs: list[InputSpec]
    outputs: list[str]
    output_names: list[str] = field(default_factory=list)

    def input(self, name: str) -> InputSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.type} has no input {name!r}")

    @property
    def widgets(self) -> list[InputSpec]:
        return [spec for spec in self.inputs if spec.widget]


def _input_from_v1(name: str, entry: Any, optional: bool, folders: Mapping[str, str]) -> InputSpec:
    kind, opts = (entry[0], entry[1] if len(entry) > 1 else {}) if isinstance(entry, (list, tuple)) else (entry, {})
    opts = opts or {}
    options = None
    if isinstance(kind, (list, tuple)):
        options, kind = tuple(kind), "COMBO"
    elif kind == "COMBO":
        options = tuple(opts.get("options", ()))
    folder = folders.get(name)
    if folder is not None:
        options = None
    widget = kind in VALUE_TYPES and not opts.get("forceInput")
    control = bool(opts.get("control_after_generate")) or (kind == "INT" and name in ("seed", "noise_seed"))
    return InputSpec(name, kind, widget, optional, options, folder, opts.get("min"), opts.get("max"),
                     control and widget, any(opts.get(flag) for flag in UPLOAD_FLAGS))


def spec_from_v1(node_type: str, info: Mapping, folders: Mapping[str, str] | None = None) -> NodeSpec:
    """From an ``/object_info`` entry (or a V1 node's ``INPUT_TYPES()`` + ``RETURN_TYPES``)."""
    folders = folders or {}
    inputs = []
    for group in ("required", "optional"):
        order = (info.get("input_order") or {}).get(group) or list((info["input"].get(group) or {}))
        for name in order:
            inputs.append(_input_from_v1(name, info["input"][group][name], group == "optional", folders))
    outputs = list(info.get("output", []))
    return NodeSpec(node_type, inputs, outputs, list(info.get("output_name") or outputs))


def spec_from_schema(schema, folders: Mapping[str, str] | None = None) -> NodeSpec:
    """From a V3 ``io.Schema`` (ComfyUI's or the test stand-in's): the same reduction as
    ComfyUI's ``get_v1_info`` + the frontend's widget rules."""
    folders = folders or {}
    inputs = []
    for group_optional in (False, True):
        for inp in schema.inputs or []:
            if bool(inp.optional) != group_optional:
                continue
            kind = inp.io_type
            options = tuple(inp.options) if kind == "COMBO" and inp.options is not None else None
            widget = kind in VALUE_TYPES and not getattr(inp, "force_input", None)
            control = bool(getattr(inp, "control_after_generate", None))
            upload = getattr(inp, "upload", None) is not None
            # a pack model combo (nodes/model_folders.model_combo) names its folder: its files are
            # checked against the test assets, its fixed entries ("none") against its options
            folder = folders.get(inp.id) or getattr(inp, "model_folder", None)
            options = None if inp.id in folders else options
            inputs.append(InputSpec(inp.id, kind, widget, group_optional, options, folder,
                                    getattr(inp, "min", None), getattr(inp, "max", None), control, upload))
    outputs = [out.io_type for out in schema.outputs or []]
    names = [out.display_name or out.io_type for out in schema.outputs or []]
    return NodeSpec(schema.node_id, inputs, outputs, names)


def _types_match(output_type: str, input_type: str) -> bool:
    if "*" in (output_type, input_type):
        return True
    return bool(set(output_type.split(",")) & set(input_type.split(",")))


def widget_values(spec: NodeSpec, values: Mapping[str, Any], linked: Iterable[str] = ()) -> list:
    """``widgets_values`` for a node: every widget in order (linked ones keep a placeholder value
    as the frontend does), with "fixed" after seeds and "image" after upload combos."""
    linked = set(linked)
    out = []
    for spec_in in spec.widgets:
        if spec_in.name in values:
            out.append(values[spec_in.name])
        elif spec_in.name in linked:
            out.append(_placeholder(spec_in))
        else:
            raise KeyError(f"{spec.type}: no value for widget {spec_in.name!r}")
        if spec_in.control:
            out.append("fixed")
        if spec_in.upload:
            out.append("image")
    return out


def _placeholder(spec: InputSpec) -> Any:
    return {"INT": 0, "FLOAT": 0.0, "BOOLEAN": False}.get(spec.type, "")


def read_widget_values(spec: NodeSpec, values: list) -> dict[str, Any]:
    """Widget name -> value from ``widgets_values`` (extras dropped); raises on a count mismatch."""
    expected = sum(1 + w.extra_slots() for w in spec.widgets)
    if len(values) != expected:
        raise ValueError(f"{spec.type}: {len(values)} widget values, expected {expected} "
                         f"({[w.name for w in spec.widgets]})")
    result, position = {}, 0
    for spec_in in spec.widgets:
        result[spec_in.name] = values[position]
        if spec_in.control and values[position + 1] not in CONTROL_VALUES:
            raise ValueError(f"{spec.type}.{spec_in.name}: control value {values[position + 1]!r} "
                             f"is not one of {CONTROL_VALUES}")
        position += 1 + spec_in.extra_slots()
    return result


def ui_to_api(ui: Mapping, specs: Mapping[str, NodeSpec]) -> dict[str, dict]:
    """The API prompt the frontend would queue for this UI workflow (active nodes only)."""
    links = {link[0]: link for link in ui["links"]}
    prompt = {}
    for node in ui["nodes"]:
        if node.get("mode", 0) != 0:
            continue
        spec = specs[node["type"]]
        inputs: dict[str, Any] = {}
        linked = {}
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                link = links[slot["link"]]
                linked[slot["name"]] = [str(link[1]), link[2]]
        for name, value in read_widget_values(spec, node.get("widgets_values", [])).items():
            if name not in linked:
                inputs[name] = value
        inputs.update(linked)
        entry = {"class_type": node["type"], "inputs": inputs}
        if node.get("title"):
            entry["_meta"] = {"title": node["title"]}
        prompt[str(node["id"])] = entry
    return prompt


def check_ui(ui: Mapping, specs: Mapping[str, NodeSpec], files: Mapping[str, set[str]]) -> list[str]:
    """Everything wrong with a UI workflow, as readable lines (empty when it is right).

    ``files`` maps a folder name (``checkpoints``, ``input``, ...) to the file names a
    workflow may reference there (the test assets).
    """
    problems = []
    nodes = {node["id"]: node for node in ui["nodes"]}
    if len(nodes) != len(ui["nodes"]):
        problems.append("node ids are not unique")
    for key in ("last_node_id", "last_link_id"):
        ids = [n["id"] for n in ui["nodes"]] if key == "last_node_id" else [link[0] for link in ui["links"]]
        if ids and ui.get(key, -1) < max(ids):
            problems.append(f"{key}={ui.get(key)} is below the largest id {max(ids)}")
    for node in ui["nodes"]:
        where = f"node {node['id']} ({node['type']})"
        spec = specs.get(node["type"])
        if spec is None:
            problems.append(f"{where}: unknown node type")
            continue
        try:
            values = read_widget_values(spec, node.get("widgets_values", []))
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        linked = {slot["name"] for slot in node.get("inputs", []) if slot.get("link") is not None}
        for spec_in in spec.inputs:
            if not spec_in.widget and not spec_in.optional and spec_in.name not in linked:
                problems.append(f"{where}: required input {spec_in.name!r} is not connected")
            if spec_in.widget and spec_in.name not in linked:
                problem = _check_value(spec_in, values[spec_in.name], files)
                if problem:
                    problems.append(f"{where}.{spec_in.name}: {problem}")
        for slot in node.get("inputs", []):
            try:
                spec.input(slot["name"])
            except KeyError as exc:
                problems.append(f"{where}: {exc.args[0]}")
        if len(node.get("outputs", [])) != len(spec.outputs):
            problems.append(f"{where}: {len(node.get('outputs', []))} outputs, the node has {len(spec.outputs)}")
    problems += _check_links(ui, nodes, specs)
    return problems


def _check_value(spec: InputSpec, value: Any, files: Mapping[str, set[str]]) -> str | None:
    if spec.folder is not None:
        allowed = files.get(spec.folder, set()) | set(spec.options or ())
        return None if isinstance(value, str) and value in allowed else f"{value!r} is not a file the test assets provide in {spec.folder}/"
    if spec.type == "COMBO":
        return None if spec.options is None or value in spec.options else f"{value!r} is not one of {list(spec.options)}"
    if spec.type in ("INT", "FLOAT"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"{value!r} is not a number"
        if spec.type == "INT" and not float(value).is_integer():
            return f"{value!r} is not an integer"
        if spec.min is not None and value < spec.min or spec.max is not None and value > spec.max:
            return f"{value} is outside [{spec.min}, {spec.max}]"
    if spec.type == "STRING" and not isinstance(value, str):
        return f"{value!r} is not a string"
    if spec.type == "BOOLEAN" and not isinstance(value, bool):
        return f"{value!r} is not a boolean"
    return None


def _check_links(ui: Mapping, nodes: Mapping[int, dict], specs: Mapping[str, NodeSpec]) -> list[str]:
    problems = []
    seen_targets = set()
    for link_id, origin, origin_slot, target, target_slot, link_type in ui["links"]:
        where = f"link {link_id}"
        if origin not in nodes or target not in nodes:
            problems.append(f"{where}: joins a missing node")
            continue
        source, dest = nodes[origin], nodes[target]
        source_spec, dest_spec = specs.get(source["type"]), specs.get(dest["type"])
        if source_spec is None or dest_spec is None:
            continue
        outputs = source.get("outputs") or []
        if not isinstance(origin_slot, int) or not 0 <= origin_slot < min(len(source_spec.outputs), len(outputs)):
            problems.append(f"{where}: {source['type']} has no output {origin_slot}")
            continue
        if not isinstance(target_slot, int) or target_slot < 0:
            problems.append(f"{where}: {dest['type']} has no input slot {target_slot}")
            continue
        if target_slot >= len(dest.get("inputs", [])):
            problems.append(f"{where}: {dest['type']} has no input slot {target_slot}")
            continue
        slot = dest["inputs"][target_slot]
        if slot.get("link") != link_id:
            problems.append(f"{where}: {dest['type']} input {slot['name']!r} does not point back at it")
        if link_id not in (outputs[origin_slot].get("links") or []):
            problems.append(f"{where}: {source['type']} output {origin_slot} does not list it")
        output_type = source_spec.outputs[origin_slot]
        try:
            input_type = dest_spec.input(slot["name"]).type
        except KeyError:
            continue
        if not isinstance(link_type, str) or not _types_match(output_type, input_type) \
                or not _types_match(output_type, link_type):
            problems.append(f"{where}: {source['type']} gives {output_type} but {dest['type']}.{slot['name']} "
                            f"takes {input_type} (link says {link_type})")
        if (target, target_slot) in seen_targets:
            problems.append(f"{where}: a second link into {dest['type']}.{slot['name']}")
        seen_targets.add((target, target_slot))
    return problems


def _depths(api: Mapping[str, dict]) -> dict[str, int]:
    """Column of each node: one more than the deepest node feeding it."""
    depth: dict[str, int] = {}

    def visit(node_id: str, trail: tuple = ()) -> int:
        if node_id in trail:
            raise ValueError(f"the graph has a cycle through node {node_id}")
        if node_id not in depth:
            sources = [v[0] for v in api[node_id]["inputs"].values() if isinstance(v, list)]
            depth[node_id] = 1 + max((visit(s, trail + (node_id,)) for s in sources), default=-1)
        return depth[node_id]

    for node_id in api:
        visit(node_id)
    return depth


def build_ui(api: Mapping[str, dict], specs: Mapping[str, NodeSpec], notes: Mapping[str, str] | None = None,
             extra_height: Mapping[str, float] | None = None) -> dict:
    """A tidy UI workflow for an API prompt: columns by depth, links in input order, each
    note above the column of the node it explains. ``extra_height`` reserves room for
    node types whose web extension draws more than their widgets (the emotion wheel).

    Node ids must be integers as strings. Used to write the example workflows; the
    tests then check the written files in both directions.
    """
    depth = _depths(api)
    columns: dict[int, list[str]] = defaultdict(list)
    for node_id in sorted(api, key=int):
        columns[depth[node_id]].append(node_id)
    order = [node_id for d in sorted(columns) for node_id in columns[d]]
    nodes: dict[str, dict] = {}
    for d, members in columns.items():
        y = 80.0
        for node_id in members:
            entry = api[node_id]
            spec = specs[entry["class_type"]]
            rows = len(spec.widgets) + sum(w.extra_slots() for w in spec.widgets) + max(
                len([i for i in spec.inputs if not i.widget]), len(spec.outputs))
            multiline = sum(1 for w in spec.widgets if w.type == "STRING") * 40
            height = 50 + 24 * rows + multiline + (extra_height or {}).get(entry["class_type"], 0)
            node = {
                "id": int(node_id), "type": entry["class_type"], "pos": [60.0 + 360.0 * d, y],
                "size": [320.0, float(height)], "flags": {}, "order": order.index(node_id), "mode": 0,
                "inputs": [], "outputs": [{"name": name, "type": kind, "links": []}
                                          for name, kind in zip(spec.output_names, spec.outputs)],
                "properties": {"Node name for S&R": entry["class_type"]},
            }
            title = entry.get("_meta", {}).get("title")
            if title:
                node["title"] = title
            y += height + 60.0
            nodes[node_id] = node
    links = []
    for node_id in sorted(api, key=int):
        entry, node = api[node_id], nodes[node_id]
        spec = specs[entry["class_type"]]
        linked = {name for name, value in entry["inputs"].items() if isinstance(value, list)}
        for spec_in in spec.inputs:
            if spec_in.name not in linked and (spec_in.widget or spec_in.name not in entry["inputs"]):
                if not spec_in.widget and not spec_in.optional:
                    node["inputs"].append({"name": spec_in.name, "type": spec_in.type, "link": None})
                continue
            origin, origin_slot = entry["inputs"][spec_in.name]
            link_id = len(links) + 1
            link_type = specs[api[origin]["class_type"]].outputs[origin_slot]
            slot = {"name": spec_in.name, "type": spec_in.type if not spec_in.widget else link_type, "link": link_id}
            if spec_in.widget:
                slot["widget"] = {"name": spec_in.name}
            node["inputs"].append(slot)
            nodes[origin]["outputs"][origin_slot]["links"].append(link_id)
            links.append([link_id, int(origin), origin_slot, int(node_id), len(node["inputs"]) - 1, link_type])
        values = {k: v for k, v in entry["inputs"].items() if not isinstance(v, list)}
        node["widgets_values"] = widget_values(spec, values, linked)
    ui_nodes = [nodes[node_id] for node_id in sorted(api, key=int)]
    for note_id, (anchor, text) in enumerate((notes or {}).items(), start=max(map(int, api)) + 1):
        x = nodes[anchor]["pos"][0]
        ui_nodes.append({"id": note_id, "type": "Note", "pos": [x, -140.0], "size": [320.0, 160.0], "flags": {},
                         "order": len(ui_nodes), "mode": 0, "inputs": [], "outputs": [], "properties": {},
                         "widgets_values": [text]})
    return {
        "id": "", "revision": 0, "last_node_id": max(n["id"] for n in ui_nodes), "last_link_id": len(links),
        "nodes": ui_nodes, "links": links, "groups": [], "config": {},
        "extra": {"ds": {"scale": 0.8, "offset": [0.0, 0.0]}}, "version": 0.4,
    }


def without_notes(ui: Mapping) -> dict:
    """The workflow without its Note nodes (frontend-only, no schema, never queued)."""
    ui = copy.deepcopy(dict(ui))
    ui["nodes"] = [node for node in ui["nodes"] if node["type"] not in ("Note", "MarkdownNote")]
    return ui
