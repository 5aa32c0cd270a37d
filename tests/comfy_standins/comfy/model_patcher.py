"""Stand-in for ``comfy.model_patcher``: the parts of ``ModelPatcher`` the nodes use, with the
real semantics (a clone shares the model and deep-copies ``model_options``; attn2 replace
patches are stored under ``transformer_options["patches_replace"]["attn2"]``)."""

import copy
import functools


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.model, self.load_device, self.offload_device = model, load_device, offload_device
        self.size, self.weight_inplace_update = size, weight_inplace_update
        self.model_options = {"transformer_options": {}}

    def clone(self):
        clone = ModelPatcher(self.model, self.load_device, self.offload_device, self.size, self.weight_inplace_update)
        clone.model_options = copy.deepcopy(self.model_options)
        return clone

    def get_model_object(self, name):
        return functools.reduce(getattr, name.split("."), self.model)

    def set_model_attn2_replace(self, patch, block_name, number, transformer_index=None):
        key = (block_name, number) if transformer_index is None else (block_name, number, transformer_index)
        self.model_options["transformer_options"].setdefault("patches_replace", {}).setdefault("attn2", {})[key] = patch
