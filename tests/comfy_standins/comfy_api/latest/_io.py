"""Stand-in for ``comfy_api.latest._io`` with the real constructor signatures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..internal import shallow_clone_class


class Input:
    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None, extra_dict=None):
        self.id, self.display_name, self.optional, self.tooltip, self.lazy = id, display_name, optional, tooltip, lazy
        self.extra_dict = extra_dict or {}


class WidgetInput(Input):
    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                 default: Any = None, socketless: bool = None, widget_type: str = None, force_input: bool = None, extra_dict=None):
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict)
        self.default, self.socketless, self.widget_type, self.force_input = default, socketless, widget_type, force_input


class Output:
    def __init__(self, id: str = None, display_name: str = None, tooltip: str = None, is_output_list=False):
        self.id, self.display_name, self.tooltip, self.is_output_list = id, display_name, tooltip, is_output_list


def _io_type(io_type: str, input_cls=Input):
    """A ComfyType with nested Input/Output classes bound to ``io_type``."""
    ns = {"io_type": io_type}
    parent = type(io_type, (), ns)
    parent.Input = type("Input", (input_cls,), {"Parent": parent, "io_type": io_type})
    parent.Output = type("Output", (Output,), {"Parent": parent, "io_type": io_type})
    return parent


class Boolean:
    io_type = "BOOLEAN"

    class Input(WidgetInput):
        io_type = "BOOLEAN"

        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                     default: bool = None, label_on: str = None, label_off: str = None, socketless: bool = None, force_input: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)

    Output = _io_type("BOOLEAN").Output


class Int:
    io_type = "INT"

    class Input(WidgetInput):
        io_type = "INT"

        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                     default: int = None, min: int = None, max: int = None, step: int = None, control_after_generate: bool = None,
                     display_mode=None, socketless: bool = None, force_input: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
            self.min, self.max, self.step, self.control_after_generate = min, max, step, control_after_generate

    Output = _io_type("INT").Output


class Float:
    io_type = "FLOAT"

    class Input(WidgetInput):
        io_type = "FLOAT"

        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                     default: float = None, min: float = None, max: float = None, step: float = None, round: float = None,
                     display_mode=None, socketless: bool = None, force_input: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
            self.min, self.max, self.step, self.round = min, max, step, round

    Output = _io_type("FLOAT").Output


class String:
    io_type = "STRING"

    class Input(WidgetInput):
        io_type = "STRING"

        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                     multiline=False, placeholder: str = None, default: str = None, dynamic_prompts: bool = None,
                     socketless: bool = None, force_input: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
            self.multiline, self.placeholder = multiline, placeholder

    Output = _io_type("STRING").Output


class Combo:
    io_type = "COMBO"

    class Input(WidgetInput):
        io_type = "COMBO"

        def __init__(self, id: str, options=None, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                     default=None, control_after_generate: bool = None, upload=None, image_folder=None, remote=None, socketless: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless)
            self.options = options

    Output = _io_type("COMBO").Output


Image = _io_type("IMAGE")
Mask = _io_type("MASK")
Latent = _io_type("LATENT")
Conditioning = _io_type("CONDITIONING")
Clip = _io_type("CLIP")
ClipVision = _io_type("CLIP_VISION")
Vae = _io_type("VAE")
Model = _io_type("MODEL")
Guider = _io_type("GUIDER")
Sampler = _io_type("SAMPLER")
Sigmas = _io_type("SIGMAS")
Noise = _io_type("NOISE")


def Custom(io_type: str):
    return _io_type(io_type)


class Hidden:
    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"


class HiddenHolder:
    """The hidden values of one execution; a value not requested reads as None."""

    def __init__(self, unique_id=None, prompt=None, extra_pnginfo=None, **kwargs):
        self.unique_id, self.prompt, self.extra_pnginfo = unique_id, prompt, extra_pnginfo

    def __getattr__(self, key: str):
        return None

    @classmethod
    def from_dict(cls, d: dict | None):
        d = d or {}
        return cls(d.get(Hidden.unique_id), d.get(Hidden.prompt), d.get(Hidden.extra_pnginfo))


@dataclass
class Schema:
    node_id: str
    display_name: str = None
    category: str = "sd"
    inputs: list = None
    outputs: list = None
    hidden: list = None
    description: str = ""
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_api_node: bool = False
    not_idempotent: bool = False
    enable_expand: bool = False

    def validate(self):
        """As in ComfyUI: input and output ids must be unique, also across the two lists."""
        inputs = [i.id for i in self.inputs or []]
        outputs = [o.id for o in self.outputs or []]
        problems = []
        if len(set(inputs)) != len(inputs):
            problems.append(f"Input ids must be unique, but {inputs} are not.")
        if len(set(outputs)) != len(outputs):
            problems.append(f"Output ids must be unique, but {outputs} are not.")
        if set(inputs) & set(outputs):
            problems.append(f"Ids must be unique between inputs and outputs, but {set(inputs) & set(outputs)} are not.")
        if problems:
            raise ValueError("\n".join(problems))


class ComfyNode:
    hidden: HiddenHolder = None

    @classmethod
    def PREPARE_CLASS_CLONE(cls, hidden_inputs: dict) -> type:
        """As in ComfyUI: a shallow clone of the class per execution, carrying the hidden inputs."""
        clone = shallow_clone_class(cls if isinstance(cls, type) else type(cls))
        clone.hidden = HiddenHolder.from_dict(hidden_inputs)
        return clone

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs):
        raise NotImplementedError

    @classmethod
    def GET_SCHEMA(cls) -> Schema:
        schema = cls.define_schema()
        schema.validate()
        return schema


class NodeOutput:
    def __init__(self, *args: Any, ui=None, expand: dict = None, block_execution: str = None):
        self.args, self.ui, self.expand, self.block_execution = args, ui, expand, block_execution

    @property
    def result(self):
        return self.args if len(self.args) > 0 else None

    def __getitem__(self, index):
        return self.args[index]
