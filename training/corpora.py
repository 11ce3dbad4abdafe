"""Find and label the clips of the acted emotional-speech training corpora: the four the
product is specified for (RAVDESS, CREMA-D, TESS, SAVEE), TurEV-DB (Turkish) and EMOVO (Italian).

Every clip is described by a :class:`Clip` (absolute path, corpus, corpus-prefixed
speaker, product emotion, spoken text id and the corpus's own emotion code). Labels
and speakers come only from the official file and folder names; no audio is read
(a file is opened only to recognise an un-fetched git-lfs pointer, see below).

Loaders (one per corpus) and :func:`discover` return a :class:`LoadResult`: the
clips, sorted by path, and ``skipped``, a ``{"<corpus>:<reason>": count}`` dict of
the files that were passed over. Loaders never raise for a bad *file*; they raise
only for a bad *root* (missing or not a directory).

Skip reasons (the part after the colon):

``not_audio``         extension other than ``.wav`` / ``.flac`` (any case)
``hidden``            name starting with ``.`` (``.DS_Store``, macOS ``._x.wav`` forks)
``empty``             at most 44 bytes (a WAV header without samples, or nothing)
``lfs_pointer``       a git-lfs pointer text file (CREMA-D cloned without git-lfs)
``bad_name``          name does not follow the corpus's naming scheme
``unknown_emotion``   well-formed name with an emotion code outside the mapping
``song``              RAVDESS vocal channel 02 (sung, not spoken)
``video_modality``    RAVDESS modality 01/02 (audio of the audio-video / video-only
                      recordings, which duplicates the audio-only 03 takes)
``unknown_speaker``   SAVEE file whose speaker is not DC, JE, JK or KL (or unknown)
``label_conflict``    TESS file whose emotion disagrees with its ``<speaker>_<emotion>`` folder,
                      TurEV-DB file whose emotion code disagrees with its folder, or EMOVO file
                      whose speaker disagrees with its ``f1``..``m3`` folder
``unrecognized``      (corpus ``unknown``) audio that :func:`discover` could not attribute

Product labels come from :mod:`ser_lib.labels` (``RAVDESS_EMOTIONS`` etc.), so RAVDESS
*calm* becomes ``neutral`` and CREMA-D has no ``surprise``.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ser_lib.labels import (
    CREMAD_EMOTIONS,
    EMOTIONS,
    EMOVO_EMOTIONS,
    RAVDESS_EMOTIONS,
    SAVEE_EMOTIONS,
    TESS_EMOTIONS,
    TUREV_EMOTIONS,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "CORPORA",
    "CREMAD_SENTENCES",
    "Clip",
    "EMOVO_SPEAKERS",
    "LoadResult",
    "SAVEE_SPEAKERS",
    "default_corpora_root",
    "detect_corpus",
    "discover",
    "load_cremad",
    "load_emovo",
    "load_ravdess",
    "load_savee",
    "load_tess",
    "load_turev",
    "summarize",
]

#: Corpus identifiers, in report order.
CORPORA: tuple[str, ...] = ("ravdess", "cremad", "tess", "savee", "turev", "emovo")

#: Accepted audio file extensions (compared lower-cased).
AUDIO_EXTENSIONS: frozenset[str] = frozenset({".wav", ".flac"})

#: Folder names (lower-cased, ``-``/``_``/space removed) that identify a corpus.
_FOLDER_ALIASES: dict[str, str] = {
    "ravdess": "ravdess",
    "cremad": "cremad",
    "crema": "cremad",
    "tess": "tess",
    "savee": "savee",
    "turev": "turev",
    "turevdb": "turev",
    "emovo": "emovo",
}

_MAX_EMPTY_BYTES = 44  # canonical WAV header with no samples
_LFS_MAGIC = b"version https://git-lfs"


@dataclass(frozen=True)
class Clip:
    """One labelled recording.

    Attributes:
        path: absolute path of the audio file.
        corpus: ``"ravdess"``, ``"cremad"``, ``"tess"``, ``"savee"``, ``"turev"`` or ``"emovo"``.
        speaker: corpus-prefixed speaker id, e.g. ``"ravdess:01"``, ``"cremad:1001"``,
            ``"tess:OAF"``, ``"savee:DC"``.
        emotion: product label, one of :data:`ser_lib.labels.EMOTIONS`.
        text: id of what is said: RAVDESS statement ``"01"``/``"02"``, CREMA-D sentence
            code (``"DFA"``), TESS word (``"bite"``), SAVEE sentence id (``"a01"``; SAVEE
            numbers sentences per emotion, so equal ids across emotions are not equal texts).
        original_label: the corpus's own emotion code (``"02"`` for RAVDESS calm,
            ``"ps"`` for TESS pleasant surprise, ``"sa"`` for SAVEE sadness).
    """

    path: str
    corpus: str
    speaker: str
    emotion: str
    text: str
    original_label: str


@dataclass
class LoadResult:
    """What a loader found.

    Attributes:
        clips: the parsed clips, sorted by path, without duplicate paths.
        skipped: ``{"<corpus>:<reason>": number of files}`` for every file passed
            over (reasons are listed in the module docstring). Only non-zero counts
            are present.
    """

    clips: list[Clip] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips)

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def n_skipped(self) -> int:
        """Total number of skipped files."""
        return sum(self.skipped.values())

    def merge(self, other: "LoadResult") -> "LoadResult":
        """Return a new result with both results' clips (deduplicated by path) and summed skips."""
        by_path = {c.path: c for c in self.clips}
        for c in other.clips:
            by_path.setdefault(c.path, c)
        skipped = Counter(self.skipped)
        skipped.update(other.skipped)
        return LoadResult(sorted(by_path.values(), key=lambda c: c.path), dict(sorted(skipped.items())))


# --------------------------------------------------------------------------- walking


def _walk_files(root: Path) -> Iterator[Path]:
    """Yield every file under ``root`` in sorted order, following directory symlinks once."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # symlink cycle or a folder linked twice
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def _check_root(root: str | os.PathLike) -> Path:
    path = Path(root).expanduser().absolute()
    if not path.exists():
        raise FileNotFoundError(f"corpus root does not exist: {path}")
    if not path.is_dir():
        raise NotADirectoryError(f"corpus root is not a directory: {path}")
    return path


def _precheck(path: Path) -> str | None:
    """Return a skip reason for files that are not usable audio by name/size, else None."""
    name = path.name
    if name.startswith("."):
        return "hidden"
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        return "not_audio"
    try:
        size = path.stat().st_size
    except OSError:
        return "empty"  # dangling symlink or unreadable entry
    if size <= _MAX_EMPTY_BYTES:
        return "empty"
    if size < 1024:
        try:
            with open(path, "rb") as fh:
                if fh.read(len(_LFS_MAGIC)) == _LFS_MAGIC:
                    return "lfs_pointer"
        except OSError:
            return "empty"
    return None


# A parser takes an audio path and returns (speaker id without prefix, emotion, text,
# original label) or a skip reason string.
_Parsed = tuple[str, str, str, str]
_Parser = Callable[[Path], "_Parsed | str"]


def _load(root: str | os.PathLike, corpus: str, parser: _Parser) -> LoadResult:
    base = _check_root(root)
    clips: list[Clip] = []
    skipped: Counter[str] = Counter()
    for path in _walk_files(base):
        reason = _precheck(path)
        if reason is None:
            parsed = parser(path)
            if isinstance(parsed, str):
                reason = parsed
            else:
                speaker, emotion, text, original = parsed
                clips.append(Clip(str(path), corpus, f"{corpus}:{speaker}", emotion, text, original))
                continue
        skipped[f"{corpus}:{reason}"] += 1
    clips.sort(key=lambda c: c.path)
    return LoadResult(clips, dict(sorted(skipped.items())))


# --------------------------------------------------------------------------- RAVDESS

_RAVDESS_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")


def _parse_ravdess(path: Path) -> _Parsed | str:
    m = _RAVDESS_RE.match(path.stem)
    if not m:
        return "bad_name"
    modality, channel, emotion, intensity, statement, repetition, actor = m.groups()
    if modality in ("01", "02"):
        return "video_modality"
    if modality != "03":
        return "bad_name"
    if channel == "02":
        return "song"
    if channel != "01":
        return "bad_name"
    if emotion not in RAVDESS_EMOTIONS:
        return "unknown_emotion"
    if intensity not in ("01", "02") or statement not in ("01", "02") or repetition not in ("01", "02"):
        return "bad_name"
    if not 1 <= int(actor) <= 24:
        return "bad_name"
    return actor, RAVDESS_EMOTIONS[emotion], statement, emotion


def load_ravdess(root: str | os.PathLike) -> LoadResult:
    """Load the RAVDESS speech clips under ``root`` (searched recursively).

    Naming scheme (Livingstone & Russo 2018, PLoS ONE 13(5): e0196391):
    ``MM-VV-EE-II-SS-RR-AA.wav`` with modality MM (01 audio-video, 02 video-only,
    03 audio-only), vocal channel VV (01 speech, 02 song), emotion EE (01 neutral,
    02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised),
    intensity II (01 normal, 02 strong), statement SS (01 "Kids are talking by the
    door", 02 "Dogs are sitting by the door"), repetition RR and actor AA (01-24, odd
    male, even female). The folder (``Actor_NN``) is ignored; the actor comes from AA.

    Only audio-only speech (``03-01-…``) is kept. Song files (``…-02-…``) are skipped
    as ``ravdess:song`` and modality 01/02 files (audio extracted from the videos,
    duplicates of the audio-only takes) as ``ravdess:video_modality``.

    Returns:
        :class:`LoadResult` whose clips have speaker ``"ravdess:AA"``, text ``SS`` and
        original_label ``EE`` (calm ``02`` maps to product ``neutral``).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is not a directory.
    """
    return _load(root, "ravdess", _parse_ravdess)


# --------------------------------------------------------------------------- CREMA-D

_CREMAD_RE = re.compile(r"^(\d{4})_([A-Za-z]{3})_([A-Za-z]{3})_([A-Za-z]{1,2})$")
#: The twelve CREMA-D sentences (Cao et al. 2014).
CREMAD_SENTENCES: frozenset[str] = frozenset(
    {"IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI"}
)
_CREMAD_LEVELS = frozenset({"LO", "MD", "HI", "XX", "X"})  # "X": 1040_ITH_SAD_X in old copies


def _parse_cremad(path: Path) -> _Parsed | str:
    m = _CREMAD_RE.match(path.stem)
    if not m:
        return "bad_name"
    actor, sentence, emotion, level = m.groups()
    sentence, emotion, level = sentence.upper(), emotion.upper(), level.upper()
    if sentence not in CREMAD_SENTENCES or level not in _CREMAD_LEVELS:
        return "bad_name"
    if emotion not in CREMAD_EMOTIONS:
        return "unknown_emotion"
    return actor, CREMAD_EMOTIONS[emotion], sentence, emotion


def load_cremad(root: str | os.PathLike) -> LoadResult:
    """Load the CREMA-D clips under ``root`` (searched recursively, e.g. ``AudioWAV/``).

    Naming scheme (Cao et al. 2014, IEEE Trans. Affective Computing 5(4): 377-390):
    ``AAAA_SSS_EEE_LL.wav`` with actor AAAA (1001-1091), sentence SSS (one of the
    twelve codes IEO, TIE, IOM, IWW, TAI, MTI, IWL, ITH, DFA, ITS, TSI, WSI), emotion
    EEE (ANG, DIS, FEA, HAP, NEU, SAD) and level LL (LO, MD, HI, or XX unspecified;
    the single-letter ``X`` of an old misnamed file is accepted too). Codes are read
    case-insensitively. git-lfs pointer files of an incomplete clone are skipped as
    ``cremad:lfs_pointer``.

    Returns:
        :class:`LoadResult` whose clips have speaker ``"cremad:AAAA"``, text ``SSS``
        and original_label ``EEE``.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is not a directory.
    """
    return _load(root, "cremad", _parse_cremad)


# --------------------------------------------------------------------------- TESS

_TESS_FOLDER_RE = re.compile(r"^(OAF|YAF)_(.+)$", re.IGNORECASE)
_TESS_FILE_RE = re.compile(r"^(OAF|YAF|OA|YA)_([A-Za-z]+)_(.+)$", re.IGNORECASE)
#: Spellings of the TESS emotion codes seen in file and folder names -> TESS code.
_TESS_ALIASES: dict[str, str] = {
    **{code: code for code in TESS_EMOTIONS},
    "pleasant_surprise": "ps",
    "pleasant_surprised": "ps",
    "surprise": "ps",
    "surprised": "ps",
    "fearful": "fear",
}


def _tess_code(text: str) -> str | None:
    return _TESS_ALIASES.get(text.lower())


def _parse_tess(path: Path) -> _Parsed | str:
    m = _TESS_FILE_RE.match(path.stem)
    if not m:
        return "bad_name"
    prefix, word, emotion_text = m.groups()
    code = _tess_code(emotion_text)
    if code is None:
        return "unknown_emotion"
    speaker = prefix.upper()
    speaker = {"OA": "OAF", "YA": "YAF"}.get(speaker, speaker)
    folder = _TESS_FOLDER_RE.match(path.parent.name)
    if folder:
        speaker = folder.group(1).upper()
        folder_code = _tess_code(folder.group(2))
        if folder_code is not None and folder_code != code:
            return "label_conflict"
    return speaker, TESS_EMOTIONS[code], word.lower(), code


def load_tess(root: str | os.PathLike) -> LoadResult:
    """Load the TESS clips under ``root`` (searched recursively).

    Naming scheme (Pichora-Fuller & Dupuis 2020, Toronto emotional speech set, U of
    Toronto Dataverse, doi:10.5683/SP2/E8H2MF): folders ``<speaker>_<emotion>`` holding
    ``<speaker>_<word>_<emotion>.wav``; speakers OAF (older) and YAF (younger adult
    female), 200 words said in the carrier "Say the word ___", emotions angry, disgust,
    fear, happy, neutral, ps (pleasant surprise), sad.

    Quirks handled: the speaker is taken from the enclosing ``OAF_*``/``YAF_*`` folder
    when there is one, else from the file prefix with the misspelled ``OA``/``YA``
    prefixes (``OA_bite_neutral``) read as OAF/YAF; folders spelled
    ``OAF_pleasant_surprise`` hold files coded ``ps``; codes are read case-insensitively.
    A file whose emotion disagrees with its folder's is skipped as ``tess:label_conflict``.

    Returns:
        :class:`LoadResult` whose clips have speaker ``"tess:OAF"``/``"tess:YAF"``,
        text the lower-cased word and original_label the TESS code (``"ps"`` …).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is not a directory.
    """
    return _load(root, "tess", _parse_tess)


# --------------------------------------------------------------------------- SAVEE

SAVEE_SPEAKERS: frozenset[str] = frozenset({"DC", "JE", "JK", "KL"})
_SAVEE_ID = r"(sa|su|a|d|f|h|n)(\d{2})"
_SAVEE_FLAT_RE = re.compile(rf"^([A-Za-z]{{2}})_{_SAVEE_ID}$", re.IGNORECASE)
_SAVEE_BARE_RE = re.compile(rf"^{_SAVEE_ID}$", re.IGNORECASE)


def _parse_savee(path: Path) -> _Parsed | str:
    stem = path.stem
    m = _SAVEE_FLAT_RE.match(stem)
    if m:
        speaker, code, number = m.group(1).upper(), m.group(2).lower(), m.group(3)
    else:
        m = _SAVEE_BARE_RE.match(stem)
        if not m:
            return "bad_name"
        speaker, code, number = path.parent.name.upper(), m.group(1).lower(), m.group(2)
    if speaker not in SAVEE_SPEAKERS:
        return "unknown_speaker"
    return speaker, SAVEE_EMOTIONS[code], f"{code}{number}", code


def load_savee(root: str | os.PathLike) -> LoadResult:
    """Load the SAVEE clips under ``root`` (searched recursively).

    Naming scheme (Haq & Jackson 2009, Proc. AVSP; Surrey Audio-Visual Expressed
    Emotion database): speakers DC, JE, JK, KL (male); sentence ids ``<code><NN>``
    with code a anger, d disgust, f fear, h happiness, n neutral, sa sadness,
    su surprise (15 sentences each, 30 neutral). Both layouts are read: the official
    ``AudioData/DC/a01.wav`` (or any ``DC/a01.wav``; speaker = folder) and the flat
    ``DC_a01.wav`` (speaker = prefix). Names are read case-insensitively. A file
    without one of the four speakers is skipped as ``savee:unknown_speaker``.

    Returns:
        :class:`LoadResult` whose clips have speaker ``"savee:DC"``, text the sentence
        id (``"a01"``) and original_label the emotion code (``"a"``, ``"sa"``, …).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is not a directory.
    """
    return _load(root, "savee", _parse_savee)


# --------------------------------------------------------------------------- TurEV-DB

_TUREV_RE = re.compile(r"^(\d{4})_([a-z]{2})_(\w+)$", re.IGNORECASE)


def _parse_turev(path: Path) -> _Parsed | str:
    m = _TUREV_RE.match(path.stem)
    if not m:
        return "bad_name"
    speaker, code, word = m.group(1), m.group(2).lower(), m.group(3).lower()
    if code not in TUREV_EMOTIONS:
        return "unknown_emotion"
    folder = path.parent.name.lower()
    folder_code = next((c for c, name in _TUREV_FOLDERS.items() if name == folder), None)
    if folder_code is not None and folder_code != code:
        return "label_conflict"
    return speaker, TUREV_EMOTIONS[code], word, code


_TUREV_FOLDERS = {"kz": "angry", "sk": "calm", "mt": "happy", "hl": "sad"}


def load_turev(root: str | os.PathLike) -> LoadResult:
    """Load the TurEV-DB clips under ``root`` (searched recursively).

    Naming scheme (Canpolat, Ormanoglu & Zeyrek 2020, "Turkish Emotion Voice Database
    (TurEV-DB)", Proc. SLTU-CCURL, pp. 368-375): folders ``Angry``, ``Calm``, ``Happy``,
    ``Sad`` holding ``<speaker>_<code>_<word>.wav``: six speakers (4-digit ids), single
    Turkish words, codes kz angry, sk calm, mt happy, hl sad. Calm maps to the product's
    ``neutral`` as RAVDESS calm does. A file whose code disagrees with its folder is
    skipped as ``turev:label_conflict``.

    Returns:
        :class:`LoadResult` whose clips have speaker ``"turev:<id>"``, text the
        lower-cased word and original_label the code (``"sk"`` ...).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is not a directory.
    """
    return _load(root, "turev", _parse_turev)


# --------------------------------------------------------------------------- EMOVO

#: The six EMOVO actors (3 female, 3 male).
EMOVO_SPEAKERS: frozenset[str] = frozenset({"f1", "f2", "f3", "m1", "m2", "m3"})
#: The fourteen EMOVO sentences: b1-b3 (short), l1-l4 (long), n1-n5 (nonsense), d1-d2 (questions).
EMOVO_SENTENCES: frozenset[str] = frozenset(
    {"b1", "b2", "b3", "l1", "l2", "l3", "l4", "n1", "n2", "n3", "n4", "n5", "d1", "d2"})
_EMOVO_RE = re.compile(r"^([a-z]{3})-([a-z]\d)-([a-z]\d)$", re.IGNORECASE)


def _parse_emovo(path: Path) -> _Parsed | str:
    m = _EMOVO_RE.match(path.stem)
    if not m:
        return "bad_name"
    code, speaker, sentence = (g.lower() for g in m.groups())
    if speaker not in EMOVO_SPEAKERS or sentence not in EMOVO_SENTENCES:
        return "bad_name"
    if code not in EMOVO_EMOTIONS:
        return "unknown_emotion"
    folder = path.parent.name.lower()
    if folder in EMOVO_SPEAKERS and folder != speaker:
        return "label_conflict"
    return speaker, EMOVO_EMOTIONS[code], sentence, code


def load_emovo(root: str | os.PathLike) -> LoadResult:
    """Load the EMOVO clips under ``root`` (searched recursively).

    Naming scheme (Costantini, Iaderola, Paoloni & Todisco 2014, "EMOVO Corpus: an Italian
    Emotional Speech Database", Proc. LREC, pp. 3501-3504): folders ``f1`` … ``m3`` (the six
    actors, 3 female, 3 male) holding ``<emotion>-<speaker>-<sentence>.wav``: emotion codes
    dis disgust, gio joy (``happy``), neu neutral, pau fear, rab anger, sor surprise,
    tri sadness; sentences b1-b3, l1-l4, n1-n5, d1-d2 (14 per actor and emotion). Names are
    read case-insensitively. A file whose speaker disagrees with its actor folder is skipped
    as ``emovo:label_conflict``.

    Returns:
        :class:`LoadResult` whose clips have speaker ``"emovo:<f1..m3>"``, text the sentence
        id (``"b1"``) and original_label the code (``"gio"`` …).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is not a directory.
    """
    return _load(root, "emovo", _parse_emovo)


# --------------------------------------------------------------------------- discovery

_LOADERS: dict[str, Callable[[str | os.PathLike], LoadResult]] = {
    "ravdess": load_ravdess,
    "cremad": load_cremad,
    "tess": load_tess,
    "savee": load_savee,
    "turev": load_turev,
    "emovo": load_emovo,
}
_PARSERS: dict[str, _Parser] = {
    "ravdess": _parse_ravdess,
    "cremad": _parse_cremad,
    "tess": _parse_tess,
    "savee": _parse_savee,
    "turev": _parse_turev,
    "emovo": _parse_emovo,
}


def _corpus_from_name(name: str) -> str | None:
    key = re.sub(r"[-_\s]", "", name.lower())
    return _FOLDER_ALIASES.get(key)


def _sniff_counts(root: Path) -> tuple[Counter[str], int]:
    """Per-corpus number of audio files under ``root`` whose name that corpus's parser accepts,
    and the number of audio files none accepts."""
    counts: Counter[str] = Counter()
    unknown = 0
    for path in _walk_files(root):
        if _precheck(path) is not None:
            continue
        hits = [c for c, parse in _PARSERS.items() if not isinstance(parse(path), str)]
        if hits:
            counts.update(hits)
        else:
            unknown += 1
    return counts, unknown


def detect_corpus(root: str | os.PathLike) -> str | None:
    """Guess which corpus directory ``root`` holds.

    By folder name first (``ravdess``, ``cremad``, ``crema-d``, ``crema_d``, ``tess``,
    ``savee``, ``turev``, ``emovo``, any case), else by file names: the corpus whose parser accepts the
    audio files under ``root`` if exactly one corpus matches.

    Returns:
        the corpus id, or None when the name is not a corpus's and the files match
        no corpus or more than one (a parent of several corpora).

    Raises:
        FileNotFoundError, NotADirectoryError: ``root`` is missing or not a directory.
    """
    path = _check_root(root)
    by_name = _corpus_from_name(path.name)
    if by_name:
        return by_name
    counts, _ = _sniff_counts(path)
    return next(iter(counts)) if len(counts) == 1 else None


def _discover_one(path: Path) -> LoadResult:
    corpus = _corpus_from_name(path.name)
    if corpus:
        return _LOADERS[corpus](path)
    counts, unknown = _sniff_counts(path)
    if len(counts) == 1:
        return _LOADERS[next(iter(counts))](path)
    result = LoadResult()
    if not counts and not unknown:
        return result
    # Several corpora (or none) below: a parent folder. Recurse into sub-folders and
    # count the loose audio files at this level that no corpus claims.
    loose = 0
    for child in sorted(path.iterdir()):
        if child.is_dir():
            result = result.merge(_discover_one(child))
        elif _precheck(child) is None:
            loose += 1
    if loose:
        result = result.merge(LoadResult([], {"unknown:unrecognized": loose}))
    return result


def discover(roots: Iterable[str | os.PathLike] | str | os.PathLike) -> LoadResult:
    """Find and load every corpus in ``roots``.

    Each root may be a corpus folder (recognised by its name — ``ravdess``, ``cremad``,
    ``crema-d``, ``tess``, ``savee``, any case — or else by its file names) or a parent
    folder holding several corpora (e.g. ``/work/shared/corpora``); a parent is searched
    folder by folder. A single path is accepted as well as an iterable. Clips reached
    through several roots are kept once.

    Returns:
        the merged :class:`LoadResult`; audio files that no corpus claims are counted
        as ``unknown:unrecognized`` (only those directly inside a parent folder, or
        everything in a sub-folder where no corpus matched).

    Raises:
        FileNotFoundError: a root does not exist.
        NotADirectoryError: a root is not a directory.
    """
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    result = LoadResult()
    for root in roots:
        result = result.merge(_discover_one(_check_root(root)))
    return result


def default_corpora_root() -> Path:
    """The shared corpora folder: ``$SER_CORPORA`` if set, else ``<repo>/../shared/corpora``.

    The path is returned whether or not it exists.
    """
    env = os.environ.get("SER_CORPORA")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


# --------------------------------------------------------------------------- reporting


def summarize(clips: Iterable[Clip] | LoadResult):
    """Count clips per corpus and product emotion, for the ``ser train`` report.

    Returns:
        a ``pandas.DataFrame`` indexed by corpus (in :data:`CORPORA` order, only those
        present) plus a final ``"total"`` row, with one integer column per product
        emotion (in :data:`ser_lib.labels.EMOTIONS` order, zeros included), a ``"total"``
        column and a ``"speakers"`` column (distinct speakers). Empty input gives just
        the ``"total"`` row of zeros.
    """
    import pandas as pd

    clips = list(clips)
    columns = [*EMOTIONS, "total", "speakers"]
    present = [c for c in CORPORA if any(clip.corpus == c for clip in clips)]
    present += sorted({clip.corpus for clip in clips} - set(CORPORA))
    rows = {}
    for name, group in [(c, [x for x in clips if x.corpus == c]) for c in present] + [("total", clips)]:
        counts = Counter(x.emotion for x in group)
        rows[name] = [counts.get(e, 0) for e in EMOTIONS] + [len(group), len({x.speaker for x in group})]
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=columns).astype("int64")
    frame.index.name = "corpus"
    return frame
