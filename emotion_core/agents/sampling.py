"""Seeded choices shared by the builtin agents and the consolidation step.

Gumbel noise on log-scores turns "take the top k" into "sample k without
replacement" with a temperature: 0 gives the most-voted choice every time,
higher values let less common concepts through. Seeds are strings hashed by
``random.Random``, which is stable across processes (unlike ``hash``).
"""

from __future__ import annotations

import math
import random


def rng_for(*parts: object) -> random.Random:
    return random.Random(":".join(str(p) for p in parts))


def gumbel(rng: random.Random) -> float:
    return -math.log(-math.log(max(rng.random(), 1e-12)))
