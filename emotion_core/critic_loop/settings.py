"""Settings of the Iterative Emotion Inference loop, checked once up front.

Acceptance rule (``rule``), per candidate:
- ``"and"`` (default): SSIM to the source inside ``[ssim_low, ssim_high]`` *and* the
  critic's top-1 emotion is the target. An edit must keep the scene and evoke the
  target; EmoEditor's ``or`` also accepts a wrecked scene the critic likes, or an
  untouched image whose SSIM happens to fall in the window.
- ``"or"``: either condition (EmoEditor's test.py).
``ssim_open`` makes the window open, ``(ssim_low, ssim_high)``, as test.py's strict
comparisons. Without a source image (generation) there is no SSIM, and only the
emotion condition counts under either rule.

A pass *succeeds* when an accepted candidate also has target probability
``>= confidence``; the loop stops at the first success, after ``max_iterations``
passes (every pass counts, accepted or not), or, with ``keep_limit``, once that many
images are kept: the source and each accepted pass's image (EmoEditor's ``num_loop``,
which counts only kept images, so a run that is never accepted never ends there).

The direction of a pass (``direction_from``):
- ``"edited"`` (default): re-estimated from the image the pass edits, the last kept
  image (the source at first);
- ``"first_edit"``: test.py's: the first pass uses the source's distribution, every
  later pass the first pass's result's, accepted or not.

The final pick (``pick``): ``"best"``, this project's (``judge.pick_best`` over every
candidate); ``"emoeditor"``, test.py's (``judge.pick_emoeditor``), which returns the
source when nothing was accepted.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..errors import InvalidInputError

RULES = ("and", "or")
DEFAULT_RULE = "and"
DIRECTION_SOURCES = ("edited", "first_edit")
PICKS = ("best", "emoeditor")
MAX_ITERATIONS_LIMIT = 1000
MAX_CANDIDATES_LIMIT = 64
DENOISE_QUANTUM = 1000  # denoise is drawn on a 1/1000 grid, like EmoEditor's integer timesteps


def _unit(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InvalidInputError(f"{name} must be between 0 and 1, got {value}")
    return value


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    value = str(value).strip().lower()
    if value not in choices:
        raise InvalidInputError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _count(name: str, value: int, limit: int) -> int:
    if isinstance(value, bool) or int(value) != value or not 1 <= int(value) <= limit:
        raise InvalidInputError(f"{name} must be a whole number from 1 to {limit}, got {value}")
    return int(value)


@dataclass(frozen=True)
class LoopSettings:
    ssim_low: float = 0.5
    ssim_high: float = 0.8
    confidence: float = 0.6
    rule: str = DEFAULT_RULE
    max_iterations: int = 8
    candidates: int = 1
    denoise_low: float = 0.55
    denoise_high: float = 0.85
    seed: int = 0
    chain: bool = True  # each pass edits the last accepted image (EmoEditor); False: always the source
    ssim_open: bool = False
    keep_limit: int | None = None
    direction_from: str = "edited"
    pick: str = "best"

    def __post_init__(self) -> None:
        for name in ("ssim_low", "ssim_high", "confidence", "denoise_low", "denoise_high"):
            object.__setattr__(self, name, _unit(name, getattr(self, name)))
        if self.ssim_low > self.ssim_high:
            raise InvalidInputError(f"ssim_low ({self.ssim_low}) must not be above ssim_high ({self.ssim_high})")
        if self.denoise_low > self.denoise_high:
            raise InvalidInputError(
                f"denoise_low ({self.denoise_low}) must not be above denoise_high ({self.denoise_high})")
        if self.denoise_high <= 0.0:
            raise InvalidInputError("denoise_high must be above 0: a pass with denoise 0 changes nothing")
        object.__setattr__(self, "rule", _choice("rule", self.rule, RULES))
        object.__setattr__(self, "direction_from", _choice("direction_from", self.direction_from, DIRECTION_SOURCES))
        object.__setattr__(self, "pick", _choice("pick", self.pick, PICKS))
        if self.keep_limit is not None:
            object.__setattr__(self, "keep_limit", _count("keep_limit", self.keep_limit, MAX_ITERATIONS_LIMIT))
        object.__setattr__(self, "max_iterations", _count("max_iterations", self.max_iterations, MAX_ITERATIONS_LIMIT))
        object.__setattr__(self, "candidates", _count("candidates", self.candidates, MAX_CANDIDATES_LIMIT))
        if isinstance(self.seed, bool) or int(self.seed) != self.seed or self.seed < 0:
            raise InvalidInputError(f"seed must be a whole number >= 0, got {self.seed}")
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "chain", bool(self.chain))
        object.__setattr__(self, "ssim_open", bool(self.ssim_open))

    def seeds(self, iteration: int) -> list[int]:
        """The seeds of one pass's candidates: distinct across the run, fixed by ``seed``."""
        first = self.seed + iteration * self.candidates
        return [(first + k) % 2**64 for k in range(self.candidates)]

    def to_json(self) -> dict:
        return asdict(self)


def pass_steps(steps: int, denoise: float, spread: bool) -> tuple[int, int]:
    """``(schedule_steps, start_step)`` of one pass; it runs ``schedule_steps - start_step`` model steps.

    ``spread=False`` (this project's default): ``steps`` is the full schedule and a pass
    runs only its last ``round(steps * denoise)`` steps (diffusers' img2img strength,
    ComfyUI's KSamplerAdvanced start step), so a light edit costs fewer evaluations.
    ``spread=True`` (EmoEditor, ComfyUI's KSampler ``denoise``): ``steps`` steps always,
    spread over the truncated schedule.
    """
    if int(steps) < 1:
        raise InvalidInputError(f"steps must be at least 1, got {steps}")
    steps = int(steps)
    if spread:
        return steps, 0
    run = min(steps, max(1, round(steps * denoise)))
    return steps, steps - run
