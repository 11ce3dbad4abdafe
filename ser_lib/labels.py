"""The product's emotion label set and each training corpus's mapping onto it.

The product reports seven emotions, the union of the acted corpora's categories
once RAVDESS *calm* is merged into *neutral* (calm and neutral are both
low-arousal, neutral-valence renditions of the same sentences; most
RAVDESS work merges or drops calm, see Livingstone & Russo 2018, PLoS ONE
13(5): e0196391). Corpora with fewer categories contribute what they have.

=========  =====================  ========  ===========  =========  ==========  =========
product    RAVDESS (code)         CREMA-D   TESS         SAVEE      TurEV-DB    EMOVO
=========  =====================  ========  ===========  =========  ==========  =========
angry      05 angry               ANG       angry        a          kz          rab
disgust    07 disgust             DIS       disgust      d          --          dis
fear       06 fearful             FEA       fear         f          --          pau
happy      03 happy               HAP       happy        h          mt          gio (joy)
neutral    01 neutral, 02 calm    NEU       neutral      n          sk (calm)   neu
sad        04 sad                 SAD       sad          sa         hl          tri
surprise   08 surprised           --        ps           su         --          sor
=========  =====================  ========  ===========  =========  ==========  =========
"""
from __future__ import annotations

#: Ordered product labels. The model's output units follow this order.
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")

#: Emotions counted as negative in "share of negative speech" analytics.
NEGATIVE_EMOTIONS: frozenset[str] = frozenset({"angry", "disgust", "fear", "sad"})

RAVDESS_EMOTIONS: dict[str, str] = {
    "01": "neutral", "02": "neutral", "03": "happy", "04": "sad",
    "05": "angry", "06": "fear", "07": "disgust", "08": "surprise",
}
CREMAD_EMOTIONS: dict[str, str] = {
    "ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad",
}
TESS_EMOTIONS: dict[str, str] = {
    "angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
    "neutral": "neutral", "ps": "surprise", "sad": "sad",
}
#: TurEV-DB (Turkish) emotion codes; calm is neutral, as RAVDESS calm.
TUREV_EMOTIONS: dict[str, str] = {"kz": "angry", "sk": "neutral", "mt": "happy", "hl": "sad"}
#: EMOVO (Italian; Costantini et al. 2014, LREC, pp. 3501-3504) emotion codes: rabbia, disgusto,
#: paura, gioia, neutrale, tristezza, sorpresa.
EMOVO_EMOTIONS: dict[str, str] = {
    "rab": "angry", "dis": "disgust", "pau": "fear", "gio": "happy", "neu": "neutral", "tri": "sad", "sor": "surprise",
}
SAVEE_EMOTIONS: dict[str, str] = {
    "a": "angry", "d": "disgust", "f": "fear", "h": "happy", "n": "neutral", "sa": "sad", "su": "surprise",
}


def label_index(emotion: str) -> int:
    """Return the model output index of a product emotion.

    Raises:
        ValueError: if ``emotion`` is not one of :data:`EMOTIONS`.
    """
    try:
        return EMOTIONS.index(emotion)
    except ValueError:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {EMOTIONS}") from None


def probability_column(emotion: str) -> str:
    """Name of the per-segment probability column for ``emotion`` (``p_<emotion>``)."""
    return f"p_{emotion}"


def is_probability_column(name: str) -> bool:
    """Whether ``name`` is a :func:`probability_column` (``p_<label>``, any model's labels)."""
    return name.startswith("p_") and len(name) > 2
