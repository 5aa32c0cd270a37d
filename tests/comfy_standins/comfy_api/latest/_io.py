"""Stand-in for ``comfy_api.latest._io`` with the real constructor signatures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..internal import copy_class, shallow_clone_class


class _IO_V3:
    """Base of inputs and outputs: the io type is the parent ComfyType's."""

    Parent = None

    def __init__(self):
        pass

    @property
    def io_type(self):
        return self.Parent.io_type


class Input(_IO_V3):
    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                 extra_dict=None):
        super().__init__()
        self.id, self.display_name, self.optional, self.tooltip, self.lazy = id, display_name, optional, tooltip, lazy
        self.extra_dict = extra_dict if extra_dict is not None else {}


class WidgetInput(Input):
    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                 default: Any = None, socketless: bool = None, widget_type: str = None, force_input: bool = None,
                 extra_dict=None):
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict)
        self.default, self.socketless, self.widget_type, self.force_input = default, socketless, widget_type, force_input


class Output(_IO_V3):
    def __init__(self, id: str = None, display_name: str = None, tooltip: str = None, is_output_list=False):
        self.id, self.display_name, self.tooltip, self.is_output_list = id, display_name, tooltip, is_output_list


class _ComfyType:
    io_type: str = None


class ComfyTypeI(_ComfyType):
    class Input(Input):
        pass


class ComfyTypeIO(ComfyTypeI):
    class Output(Output):
        pass


def comfytype(io_type: str, **kwargs):
    """As in ComfyUI: binds ``io_type`` to a ComfyType and gives it its own copies of the
    Input and Output classes, whose ``Parent`` is the ComfyType."""

    def decorator(cls):
        for name in ("Input", "Output"):
            if getattr(cls, name, None) is not None:
                setattr(cls, name, copy_class(getattr(cls, name)))
                getattr(cls, name).Parent = cls
        cls.io_type = io_type
        return cls

    return decorator


@comfytype(io_type="BOOLEAN")
class Boolean(ComfyTypeIO):
    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                     default: bool = None, label_on: str = None, label_off: str = None, socketless: bool = None,
                     force_input: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
            self.label_on, self.label_off = label_on, label_off


@comfytype(io_type="INT")
class Int(ComfyTypeIO):
    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                     default: int = None, min: int = None, max: int = None, step: int = None,
                     control_after_generate: bool = None, display_mode=None, socketless: bool = None,
                     force_input: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
            self.min, self.max, self.step, self.control_after_generate = min, max, step, control_after_generate


@comfytype(io_type="FLOAT")
class Float(ComfyTypeIO):
    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                     default: float = None, min: float = None, max: float = None, step: float = None,
                     round: float = None, display_mode=None, socketless: bool = None, force_input: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
            self.min, self.max, self.step, self.round = min, max, step, round


@comfytype(io_type="STRING")
class String(ComfyTypeIO):
    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                     multiline=False, placeholder: str = None, default: str = None, dynamic_prompts: bool = None,
                     socketless: bool = None, force_input: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
            self.multiline, self.placeholder = multiline, placeholder


@comfytype(io_type="COMBO")
class Combo(ComfyTypeIO):
    class Input(WidgetInput):
        def __init__(self, id: str, options=None, display_name: str = None, optional=False, tooltip: str = None,
                     lazy: bool = None, default=None, control_after_generate: bool = None, upload=None,
                     image_folder=None, remote=None, socketless: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless)
            self.options = options

    class Output(Output):
        def __init__(self, id: str = None, display_name: str = None, options: list = None, tooltip: str = None,
                     is_output_list=False):
            super().__init__(id, display_name, tooltip, is_output_list)
            self.options = options if options is not None else []


def Custom(io_type: str):
    """A ComfyType for a custom io type."""

    @comfytype(io_type=io_type)
    class CustomComfyType(ComfyTypeIO):
        pass

    return CustomComfyType


# The socket types the nodes use, each ``@comfytype(io_type=...) class <Name>(ComfyTypeIO)`` in ComfyUI.
Image = comfytype("IMAGE")(type("Image", (ComfyTypeIO,), {}))
Mask = comfytype("MASK")(type("Mask", (ComfyTypeIO,), {}))
Latent = comfytype("LATENT")(type("Latent", (ComfyTypeIO,), {}))
Conditioning = comfytype("CONDITIONING")(type("Conditioning", (ComfyTypeIO,), {}))
Clip = comfytype("CLIP")(type("Clip", (ComfyTypeIO,), {}))
ClipVision = comfytype("CLIP_VISION")(type("ClipVision", (ComfyTypeIO,), {}))
ClipVisionOutput = comfytype("CLIP_VISION_OUTPUT")(type("ClipVisionOutput", (ComfyTypeIO,), {}))
StyleModel = comfytype("STYLE_MODEL")(type("StyleModel", (ComfyTypeIO,), {}))
Vae = comfytype("VAE")(type("Vae", (ComfyTypeIO,), {}))
Model = comfytype("MODEL")(type("Model", (ComfyTypeIO,), {}))
Guider = comfytype("GUIDER")(type("Guider", (ComfyTypeIO,), {}))
Sampler = comfytype("SAMPLER")(type("Sampler", (ComfyTypeIO,), {}))
Sigmas = comfytype("SIGMAS")(type("Sigmas", (ComfyTypeIO,), {}))
Noise = comfytype("NOISE")(type("Noise", (ComfyTypeIO,), {}))


class Hidden:
    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"


class HiddenHolder:
    """The hidden values of one execution; any other attribute reads as None."""

    def __init__(self, unique_id: str, prompt: Any, extra_pnginfo: Any, dynprompt: Any, auth_token_comfy_org: str,
                 api_key_comfy_org: str, **kwargs):
        self.unique_id, self.prompt, self.extra_pnginfo, self.dynprompt = unique_id, prompt, extra_pnginfo, dynprompt
        self.auth_token_comfy_org, self.api_key_comfy_org = auth_token_comfy_org, api_key_comfy_org

    def __getattr__(self, key: str):
        return None

    @classmethod
    def from_dict(cls, d: dict | None):
        d = d or {}
        return cls(**{name: d.get(getattr(Hidden, name)) for name in (
            "unique_id", "prompt", "extra_pnginfo", "dynprompt", "auth_token_comfy_org", "api_key_comfy_org")})


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
