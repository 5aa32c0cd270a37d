"""Step 2 of the chain of concept: the agents and their subjectivities.

Each persona looks at an emotion through a different lens. The lens is the
system prompt of an LLM agent; the family weights are how the builtin agent
with the same persona leans across EmoSet's attribute families (a painter
cares about colour and light, a child about things and faces, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidInputError


ASPECT_FAMILY = {"setting": "scene", "objects": "object", "colour": "colour", "light": "lighting",
                 "weather": "weather", "framing": "composition", "scale": "composition", "time": "lighting"}


@dataclass(frozen=True)
class Persona:
    key: str
    title: str
    lens: str
    family_weights: dict[str, float]

    def weight(self, family: str) -> float:
        """Lean toward ``family``; families a persona does not name weigh 1."""
        return self.family_weights.get(family, 1.0)

    def aspect_weight(self, aspect: str) -> float:
        """Lean toward an appraisal aspect: the weight of the family that draws it."""
        if aspect == "people":
            return max(self.weight("facial_expression"), self.weight("human_action"))
        return self.weight(ASPECT_FAMILY.get(aspect, ""))


PERSONAS: tuple[Persona, ...] = (
    Persona("painter", "a painter",
            "You think in colour, brightness, light and brushwork; you express feelings through palette and light.",
            dict(colour=3.0, lighting=2.5, composition=1.5, object=0.7, human_action=0.6)),
    Persona("photographer", "a photographer",
            "You think in framing, lens choice, timing, natural light and weather.",
            dict(composition=3.0, lighting=2.5, weather=2.0, colour=1.2, object=0.6)),
    Persona("child", "a child",
            "You notice concrete things, faces and what people are doing, and you say it simply.",
            dict(object=3.0, facial_expression=2.5, human_action=2.5, colour=1.2, composition=0.4)),
    Persona("psychologist", "a psychologist",
            "You know how emotions show in faces, bodies and actions, and which situations trigger them.",
            dict(facial_expression=3.0, human_action=3.0, scene=1.5, colour=0.6, composition=0.5)),
    Persona("film_director", "a film director",
            "You stage moods with sets, weather, lighting and camera angles.",
            dict(scene=2.5, weather=2.5, lighting=2.0, composition=2.0, object=0.8)),
    Persona("poet", "a poet",
            "You find the emotion in small symbolic objects, seasons and the quality of the sky.",
            dict(object=2.5, weather=2.5, scene=1.5, lighting=1.2, composition=0.6)),
    Persona("set_designer", "a set designer",
            "You build the place: props, surfaces, colours and how the space is lit.",
            dict(scene=3.0, object=2.5, colour=1.5, lighting=1.2, facial_expression=0.6)),
    Persona("photojournalist", "a photojournalist",
            "You look for real people in real moments: gestures, expressions, the weather of the day.",
            dict(human_action=3.0, facial_expression=2.0, weather=1.5, composition=1.5, colour=0.6)),
)
MAX_AGENTS = len(PERSONAS)


def select_personas(count: int) -> tuple[Persona, ...]:
    """The first ``count`` personas: the paper's five first, then three more."""
    if not isinstance(count, int) or not 1 <= count <= MAX_AGENTS:
        raise InvalidInputError(f"number of agents must be between 1 and {MAX_AGENTS}, got {count!r}")
    return PERSONAS[:count]
