"""A checkpoint that runs code when unpickled, as a hostile download would."""

import os
import shlex

import torch


class RunsCode:
    """Unpickling this runs a shell command, as a hostile checkpoint would."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(self.marker)}",)


def write_malicious(path, marker):
    """A torch checkpoint at ``path`` whose unpickling creates the file ``marker``."""
    torch.save({"fc.weight": torch.zeros(8, 4), "payload": RunsCode(marker)}, path)
    return path
