"""The rewrite benchmark's own data, held out from the rewriter's knowledge base.

Subjects here are not the ones the concept graph and scene lexicon were tuned
on (``TUNING_SUBJECTS``, kept only so a test can check the two never meet), and
the emotion descriptions are written apart from the graph's own descriptions
(which the builtin agents use to judge phrases), so the benchmark does not
score the rewriter with its own yardstick. Each subject carries an
annotation of where it is, read by the clash judge below, which has its own
place words and never consults the graph's slots.
"""

from __future__ import annotations

import re

# Subjects used while building the knowledge base: never benchmark subjects.
TUNING_SUBJECTS = (
    "a dog in a park", "an old man reading a newspaper", "a red car on a street", "a lighthouse on a cliff",
    "a woman in a kitchen", "children playing in a schoolyard", "a cup of coffee on a table", "a city skyline",
    "a cat sleeping on a sofa", "a mountain lake", "a bicycle leaning against a wall", "a teenager with a guitar",
    "a bowl of ramen on a wooden table", "a red car on a street at night", "an old man reading a newspaper on a bench",
)

# (prompt, where: indoor | outdoor | any, setting: interior | nature | water | urban | any)
SUBJECTS = (
    ("a teapot on a kitchen counter", "indoor", "interior"),
    ("a vase of tulips on a windowsill", "indoor", "interior"),
    ("a grand piano in a living room", "indoor", "interior"),
    ("a stack of books in a library", "indoor", "interior"),
    ("a violinist on a concert stage", "indoor", "interior"),
    ("a sleeping baby in a crib", "indoor", "interior"),
    ("a horse grazing in a meadow", "outdoor", "nature"),
    ("a wooden cabin in a snowy forest", "outdoor", "nature"),
    ("a girl flying a kite on a hill", "outdoor", "nature"),
    ("a fishing boat in a harbour", "outdoor", "water"),
    ("a sailboat on a calm sea", "outdoor", "water"),
    ("a tram crossing a city square", "outdoor", "urban"),
    ("a bus stop on a rainy street", "outdoor", "urban"),
    ("an owl on a branch", "outdoor", "any"),
    ("a birthday cake on a plate", "any", "any"),
    ("a firefighter next to a truck", "any", "any"),
)

DESCRIPTIONS = {
    "amusement": "Finding something funny: a comical, goofy or ridiculous sight, a prank or a joke, playful fun "
                 "that makes you giggle and laugh out loud.",
    "awe": "Standing before something so enormous, powerful or magnificent, a vast landscape, a towering "
           "structure or an endless night sky, that you feel tiny and amazed.",
    "contentment": "A peaceful, comfortable feeling of being at ease and satisfied: a cosy home, warm soft light, "
                   "a quiet afternoon with nothing to worry about.",
    "excitement": "An energetic rush of thrill and anticipation: speed, loud crowds, bright flashing lights, "
                  "celebrations and adventure that get your heart racing.",
    "anger": "Hot fury and aggression at injustice or provocation: shouting, clenched fists, smashing and "
             "burning things, violent confrontation.",
    "disgust": "A strong urge to turn away from something dirty, rotten, slimy or contaminated: garbage, decay, "
               "vermin, foul smells and grime.",
    "fear": "A sense of threat and danger: darkness, something lurking unseen, eerie silence or a menacing "
            "shadow that makes your heart pound and makes you want to run.",
    "sadness": "Sorrow over loss and loneliness: tears, grey rainy days, empty rooms, faded memories and "
               "someone left alone.",
}

# Words that name an emotion, masked before a phrase is scored on its own.
EMOTION_WORDS = re.compile(
    r"\b(?:amus\w*|funny|awe\w*|wonder\w*|content\w*|happ\w*|excit\w*|thrill\w*|ang\w*|furious|fury|rage\w*|"
    r"disgust\w*|revolt\w*|fear\w*|afraid|scar\w*|terrif\w*|sad\w*|sorrow\w*|grief|melanchol\w*|emotion\w*|evok\w*)\b",
    re.IGNORECASE)

# The clash judge's own place words: a phrase naming one of these puts the scene there.
OUTDOOR_PLACES = frozenset("""forest woods mountain mountains peaks summit valley canyon desert meadow field fields
beach ocean sea shore waterfall cliff sky skies horizon clouds street road alley highway stadium garden graveyard
cemetery swamp landfill riverbank park playground platform""".split())
INDOOR_PLACES = frozenset("""room bedroom kitchen corridor hallway attic restroom nave ceiling arcade shop café cafe
library theatre nook armchair""".split())
URBAN_PLACES = frozenset("street road alley highway stadium platform dumpsters riot traffic gridlock".split())
WILD_PLACES = frozenset("forest woods canyon desert meadow waterfall swamp summit".split())


def mask(phrase: str) -> str:
    return " ".join(EMOTION_WORDS.sub(" ", phrase).split())


def clash(phrase: str, where: str, setting: str) -> str:
    """The place word of ``phrase`` that contradicts the annotated subject, or ""."""
    words = set(re.findall(r"[a-zé]+", phrase.lower()))
    checks = []
    if where == "indoor":
        checks.append(OUTDOOR_PLACES)
    if where == "outdoor":
        checks.append(INDOOR_PLACES)
    if setting in ("nature", "water"):
        checks.append(URBAN_PLACES)
    if setting == "urban":
        checks.append(WILD_PLACES)
    found = sorted(w for places in checks for w in words & places)
    return found[0] if found else ""
