"""Judging candidates and the final pick.

``pick_best`` (this project's pick) follows EmoEditor's fallbacks, over accepted candidates:
1. the highest target probability among those at or above the confidence threshold;
2. else the most confident top-1 among those whose top-1 emotion has the target's
   valence (EmoEditor's "best same-valence" image);
3. else the highest target probability.
When no candidate was ever accepted, the highest target probability of all
candidates is returned and the report says so.

``pick_emoeditor`` is test.py's pick: the last kept image when the last pass's top-1
is the target; else ``pick_best`` over the accepted candidates (test.py's target-best
above 0.6, same-valence best, target best: its "above 0.6" case cannot arise there,
as such a candidate ends the loop and is the last pass); else, nothing accepted, the
source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from ..taxonomy import EMOTIONS, as_dict, valence
from .settings import LoopSettings


@dataclass(frozen=True)
class Judgement:
    """One candidate's scores and verdict; ``to_json`` is its report entry."""

    index: int
    iteration: int
    seed: int
    denoise: float
    ssim: float | None
    distribution: tuple[float, ...]
    target: str
    accepted: bool
    confident: bool
    why: str

    @property
    def target_probability(self) -> float:
        return self.distribution[EMOTIONS.index(self.target)]

    @property
    def top(self) -> str:
        return EMOTIONS[max(range(len(EMOTIONS)), key=lambda i: (self.distribution[i], -i))]

    @property
    def top_probability(self) -> float:
        return max(self.distribution)

    def to_json(self) -> dict:
        return {
            "index": self.index, "seed": self.seed, "denoise": self.denoise, "ssim": self.ssim,
            "distribution": as_dict(self.distribution), "top": self.top,
            "target_probability": self.target_probability, "accepted": self.accepted,
            "confident": self.confident, "why": self.why,
        }


def judge(index: int, iteration: int, seed: int, denoise: float, ssim: float | None,
          distribution: Sequence[float], target: str, settings: LoopSettings) -> Judgement:
    """Apply the acceptance rule (see ``settings``) to one candidate and say why."""
    distribution = tuple(float(p) for p in distribution)
    p_target = distribution[EMOTIONS.index(target)]
    top = EMOTIONS[max(range(len(EMOTIONS)), key=lambda i: (distribution[i], -i))]
    emotion_ok = top == target
    emotion_text = f"top-1 is {target}" if emotion_ok else f"top-1 is {top}, not {target}"
    if ssim is None:
        accepted, reasons = emotion_ok, [emotion_text, "no source: SSIM not judged"]
    else:
        low, high = settings.ssim_low, settings.ssim_high
        if ssim < low or (settings.ssim_open and ssim == low):
            structure_text, structure_ok = f"SSIM {ssim:.3f} {'not above' if ssim == low else 'below'} {low}", False
        elif ssim > high or (settings.ssim_open and ssim == high):
            structure_text, structure_ok = f"SSIM {ssim:.3f} {'not below' if ssim == high else 'above'} {high}", False
        else:
            window = f"({low}, {high})" if settings.ssim_open else f"[{low}, {high}]"
            structure_text, structure_ok = f"SSIM {ssim:.3f} in {window}", True
        combine = all if settings.rule == "and" else any
        accepted = combine((structure_ok, emotion_ok))
        reasons = [structure_text, f"{settings.rule.upper()} {emotion_text}"]
    confident = accepted and p_target >= settings.confidence
    verdict = "accepted" if accepted else "rejected"
    if accepted:
        comparison = ">=" if confident else "<"
        reasons.append(f"p({target}) {p_target:.3f} {comparison} {settings.confidence}")
    return Judgement(index, iteration, seed, float(denoise), None if ssim is None else float(ssim), distribution,
                     target, accepted, confident, f"{verdict}: " + "; ".join(reasons))


def pick_best(judgements: Sequence[Judgement]) -> tuple[Judgement, str]:
    """The final image and why it was chosen (see module docstring); ties go to the earlier one."""
    if not judgements:
        raise ValueError("pick_best needs at least one candidate")
    accepted = [j for j in judgements if j.accepted]
    confident = [j for j in accepted if j.confident]
    if confident:
        return _first_max(confident, lambda j: j.target_probability), "confident: highest target probability"
    if accepted:
        target_valence = valence(accepted[0].target)
        same = [j for j in accepted if valence(j.top) == target_valence]
        if same:
            return _first_max(same, lambda j: j.top_probability), "fallback: most confident same-valence image"
        return _first_max(accepted, lambda j: j.target_probability), "fallback: highest target probability"
    return (_first_max(judgements, lambda j: j.target_probability),
            "fallback: nothing accepted; highest target probability of all candidates")


def pick_emoeditor(judgements: Sequence[Judgement], kept: Sequence[int],
                   last_pass: Sequence[Judgement]) -> tuple[Optional[Judgement], str]:
    """test.py's final image (see module docstring); ``None`` is the source. ``kept``: the
    index of each kept candidate, in order; ``last_pass``: the last pass's candidates."""
    if not last_pass:
        raise ValueError("pick_emoeditor needs the last pass's candidates")
    by_index = {j.index: j for j in judgements}
    last = _first_max(last_pass, lambda j: j.target_probability)
    if last.top == last.target:
        if not kept:
            return None, "the last pass's top-1 is the target: the last kept image, the source"
        return by_index[kept[-1]], "the last pass's top-1 is the target: the last kept image"
    accepted = [j for j in judgements if j.accepted]
    if not accepted:
        return None, "fallback: nothing accepted; the source"
    return pick_best(accepted)


def _first_max(items: Sequence[Judgement], key) -> Judgement:
    best = items[0]
    for item in items[1:]:
        if key(item) > key(best):
            best = item
    return best
