"""Speech / non-speech flag per window, relative to the recording's own levels.

The flag uses only the frame features the model already gets (``rms_db`` and the
log-mel bands of :mod:`ser_lib.features`), and every threshold but one is *relative*,
so the same speech is found at any recording level (a call's level depends on the
handset, the line and the recorder's gain, not on the caller):

1. **Noise floor** of a window: the ``noise_percentile``-th percentile of its frames'
   ``rms_db`` (the quietest 10 % of a 2 s window are pauses, closures or the line's
   noise). This is a window-local form of the minimum-statistics noise estimate
   (Martin 2001, IEEE Trans. Speech Audio Process. 9(5)).
2. A frame is **active** when its level is at least ``margin_db`` above that floor and
   above the absolute ``floor_db`` (digital silence, dither and 16-bit quantisation
   noise sit at -95 to -100 dBFS; the quietest speech the product must find, peaks
   at -60 dBFS, has frames at -70 to -80 dBFS). The floor moves with the source's
   resolution: 48 dB lower for 24-bit and float files (:meth:`SpeechConfig.for_subtype`).
3. **Spectral change**: the median, over pairs of active frames, of the mean absolute
   change of the log-mel bands from ``flux_skip_bands`` up (above ~220 Hz), each frame
   relative to its strongest of those bands and floored ``flux_range_db`` below it and
   ``flux_total_range_db`` below its strongest band of all, for frames 10 ms and 40 ms
   apart. Speech changes its spectrum all the time (pitch, formants, voicing: a median of
   ~2 dB at 10 ms and ~4 dB at 40 ms on the training corpora); a tone or hum, steady or
   cadenced (dial, busy, ringback, DTMF, 50/60 Hz harmonics), does not (measured on
   synthetic tones: under 0.1 dB at 10 ms except beating dual tones, whose 0.4 dB at
   40 ms is caught by the 40 ms rule). The lowest bands are left out because rumble or
   hum below ~200 Hz can stand 30-55 dB above a quiet voice's formants: measured relative
   to it, every speech band was floored and 0.9 % of TurEV-DB's words (1.7 % at -30 dB)
   got no speech window; without them 0.06 % (0.12 %). The second floor keeps a pure
   low hum from being measured on its own leakage and noise.
4. A window is **speech** when at least ``min_active_ratio`` of its frames are
   active and its spectral changes reach ``min_change_10ms_db`` and ``min_change_40ms_db``.

Steady signals -- silence, low noise, hum, a continuous line tone -- never rise
``margin_db`` above their own floor, so they are not speech whatever their level;
cadenced tones rise and fall but keep their spectrum. Because only step 2's
absolute floor depends on the level, scaling a recording by any gain leaves the
flags unchanged as long as its speech frames stay above ``floor_db`` -- in a 16-bit
file, i.e. above its quantisation noise.
Limitation: music on hold changes its spectrum too and counts as speech.

Training keeps only the windows this rule flags (plus one fallback window per
clip, see :mod:`training.dataset`), so the model never learns from windows the
job would not score.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from .errors import ConfigError
from .features import FeatureConfig, row_percentile

_LAYOUT = FeatureConfig()
RMS_DB_COLUMN = 1  # position of rms_db in the feature vector (see ser_lib.features)
# first log-mel column (zcr, rms_db, MFCC, chroma come before it: 34) and the number of
# bands (40); the pitch columns of FeatureConfig(pitch=True) follow them
MEL_OFFSET = _LAYOUT.feature_names().index("mel_0")
N_MELS = _LAYOUT.n_mels
# SpeechConfig.floor_db shift by encoding (6.02 dB per bit of resolution over 16-bit PCM)
_FLOOR_SHIFT_DB = {"PCM_24": -48.0, "PCM_32": -48.0, "FLOAT": -48.0, "DOUBLE": -48.0,
                   "PCM_U8": 48.0, "PCM_S8": 48.0}


@dataclass(frozen=True)
class SpeechConfig:
    """Speech-detector settings (see the module docstring for the rule).

    Attributes:
        floor_db: absolute frame level below which nothing is active, dBFS (RMS of the
            frame, ``20 log10``), for 16-bit sources; :meth:`for_subtype` moves it with
            the source's resolution.
        margin_db: a frame is active this many dB above the window's noise floor.
        noise_percentile: percentile of the window's frame levels taken as its noise floor.
        min_active_ratio: fraction of active frames for a window to be speech (0.1 of a
            2 s window = 0.2 s: a short word between silences still gets its window).
        min_change_10ms_db, min_change_40ms_db: a speech window's median spectral change
            (step 3) between frames 10 ms apart and between frames 40 ms apart must reach
            both (dB). 10 ms catches cadenced tones with many on/off edges (DTMF: under
            0.01 dB), 40 ms beating dual tones (ringback 440 + 480 Hz: 0.4 dB); on the
            training corpora 0.3 % of speech windows fall below the first and under 0.1 %
            below the second.
        flux_range_db: log-mel bands are floored this far below the frame's strongest
            measured band before the change is measured (quiet bands are noise), dB.
        flux_total_range_db: ... and this far below the frame's strongest band of all
            (the skipped ones included), dB.
        flux_skip_bands: the lowest log-mel bands left out of the change (3 of the default
            40 bands from 60 Hz = below 223 Hz: rumble and hum, see step 3).
        flux_stride: one pair of frames is compared every ``flux_stride`` frames (a tone
            lasts far longer than 40 ms; a quarter of the cost of every frame).

    Raises:
        ConfigError: a value out of range.
    """

    floor_db: float = -90.0
    margin_db: float = 8.0
    noise_percentile: float = 10.0
    min_active_ratio: float = 0.1
    min_change_10ms_db: float = 0.25
    min_change_40ms_db: float = 0.5
    flux_range_db: float = 30.0
    flux_total_range_db: float = 40.0
    flux_skip_bands: int = 3
    flux_stride: int = 4

    def __post_init__(self):
        if not 0 < self.min_active_ratio <= 1:
            raise ConfigError("speech.min_active_ratio must be in (0, 1]")
        if not 0 <= self.noise_percentile < 100 or self.margin_db < 0:
            raise ConfigError("speech.noise_percentile must be in [0, 100) and margin_db >= 0")
        if min(self.min_change_10ms_db, self.min_change_40ms_db) < 0 or self.flux_range_db <= 0 \
                or self.flux_total_range_db <= 0 or self.flux_stride < 1 or self.flux_skip_bands < 0:
            raise ConfigError("speech.min_change_*_db must be >= 0, flux_range_db and flux_total_range_db > 0, "
                              "flux_stride >= 1 and flux_skip_bands >= 0")

    def for_subtype(self, subtype: str | None) -> "SpeechConfig":
        """These settings for a source encoded as ``subtype`` (soundfile's name, e.g. ``PCM_16``).

        ``floor_db`` is meant for 16-bit sources (their quantisation noise sits at about
        -101 dBFS). Sources with 8 more bits (``PCM_24``, ``PCM_32``, ``FLOAT``,
        ``DOUBLE``) get a floor 48 dB lower (6.02 dB per bit), 8-bit PCM one 48 dB
        higher; every other encoding (16-bit PCM, G.711 mu-law/A-law, MP3, Vorbis,
        Opus, unknown) keeps ``floor_db``. Without this, a 24-bit or float recording
        30 dB quieter than usual lost the speech flag of 22 % of its windows to a floor
        meant for 16-bit noise.
        """
        shift = _FLOOR_SHIFT_DB.get((subtype or "").upper(), 0.0)
        return self if shift == 0 else replace(self, floor_db=self.floor_db + shift)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SpeechConfig":
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: unknown keys (e.g. the ``threshold_db`` of the old absolute
                detector) or values out of range.
        """
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown speech config keys: {sorted(unknown)}")
        try:
            return cls(**{k: type(getattr(cls, k))(v) for k, v in d.items()})
        except (TypeError, ValueError) as err:
            raise ConfigError(f"invalid speech configuration: {err}") from err


def active_frames(window_feats: np.ndarray, cfg: SpeechConfig = SpeechConfig(),
                  margins_db: tuple[float, ...] | None = None) -> np.ndarray | list[np.ndarray]:
    """Active frames of each window (steps 1-2 of the module docstring).

    Args:
        window_feats: ``np.ndarray[shape=(n_windows, n_frames, n_features)]``.
        margins_db: if given, one decision per margin (dB over the window's noise floor)
            instead of ``cfg.margin_db``, the floor computed once.

    Returns:
        ``np.ndarray[shape=(n_windows, n_frames), dtype=bool]``; with ``margins_db`` a list
        of them, one per margin.
    """
    level = window_feats[:, :, RMS_DB_COLUMN]
    floor = row_percentile(level, cfg.noise_percentile) if len(level) else np.zeros(0, np.float32)
    out = [level > np.maximum(floor + m, cfg.floor_db)[:, None] for m in (margins_db or (cfg.margin_db,))]
    return out if margins_db is not None else out[0]


def spectral_change(window_feats: np.ndarray, active: np.ndarray, cfg: SpeechConfig = SpeechConfig(),
                    lag: int = 1) -> np.ndarray:
    """Median spectral change of each window over its active frames (step 3).

    The change of a pair of frames ``lag`` frames apart is the mean absolute difference
    of their log-mel bands from ``cfg.flux_skip_bands`` up, each frame relative to its
    strongest of those bands and floored ``cfg.flux_range_db`` below it and
    ``cfg.flux_total_range_db`` below its strongest band of all; one pair is taken every
    ``cfg.flux_stride`` frames.

    Args:
        window_feats: ``np.ndarray[shape=(n_windows, n_frames, n_features)]``.
        active: ``np.ndarray[shape=(n_windows, n_frames), dtype=bool]`` (:func:`active_frames`).
        lag: frames between the two frames of a pair (1 = 10 ms, 4 = 40 ms).

    Returns:
        ``np.ndarray[shape=(n_windows,), dtype=float32]``, dB; NaN where fewer than two
        pairs are both active.

    Raises:
        ConfigError: ``cfg.flux_skip_bands`` leaves no log-mel band to measure.
    """
    mel_end = min(MEL_OFFSET + N_MELS, window_feats.shape[-1])
    if cfg.flux_skip_bands >= mel_end - MEL_OFFSET:
        raise ConfigError(f"speech.flux_skip_bands {cfg.flux_skip_bands} leaves no log-mel band "
                          f"(the features have {mel_end - MEL_OFFSET})")
    mel_a = window_feats[:, 0:-lag:cfg.flux_stride, MEL_OFFSET:mel_end]
    mel_b = window_feats[:, lag::cfg.flux_stride, MEL_OFFSET:mel_end][:, :mel_a.shape[1]]

    def relative(mel):
        measured = mel[..., cfg.flux_skip_bands:]
        top = measured.max(axis=-1, keepdims=True)
        floor = np.maximum(top - cfg.flux_range_db, mel.max(axis=-1, keepdims=True) - cfg.flux_total_range_db)
        # a frame whose measured bands all lie under the floor is flat (0 everywhere)
        return np.maximum(measured, floor) - np.maximum(top, floor)

    ra, rb = relative(mel_a), relative(mel_b)
    change = np.abs(rb - ra).mean(axis=-1)                               # (n, pairs)
    both = active[:, 0:-lag:cfg.flux_stride] & active[:, lag::cfg.flux_stride][:, :mel_a.shape[1]]
    change = np.where(both, change, np.nan)
    out = np.full(len(change), np.nan, dtype=np.float32)
    enough = both.sum(axis=1) >= 2
    if enough.any():
        out[enough] = np.nanmedian(change[enough], axis=1)
    return out


def is_speech(window_feats: np.ndarray, cfg: SpeechConfig = SpeechConfig()) -> np.ndarray:
    """Flag windows as speech (module docstring).

    Args:
        window_feats: ``np.ndarray[shape=(n_windows, n_frames, n_features)]`` from
            :func:`ser_lib.features.window_features` (absolute, not level-normalised).
        cfg: detector settings.

    Returns:
        ``np.ndarray[shape=(n_windows,), dtype=bool]``.
    """
    return speech_decisions(window_feats, cfg)[0]


def speech_decisions(window_feats: np.ndarray, cfg: SpeechConfig = SpeechConfig(),
                     talk_margin_db: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`is_speech`'s window flags and the frame decisions behind them.

    Args:
        talk_margin_db: the margin over the window's noise floor of the frame decisions
            returned (step 2 with another margin: :mod:`ser_lib.talk`'s talk frames);
            None: ``cfg.margin_db``, the decisions the window flags use.

    Returns:
        ``(speech, active)``: ``bool (n_windows,)`` window flags (whatever
        ``talk_margin_db``) and ``bool (n_windows, n_frames)`` active frames
        (:func:`active_frames`), one per 10 ms frame hop. :mod:`ser_lib.talk` turns the
        active frames of speech windows into talk spurts.
    """
    if talk_margin_db is None or talk_margin_db == cfg.margin_db:
        active = talk = active_frames(window_feats, cfg)
    else:
        active, talk = active_frames(window_feats, cfg, (cfg.margin_db, talk_margin_db))
    speech = active.mean(axis=1) >= cfg.min_active_ratio if active.size else np.zeros(len(active), bool)
    if speech.any():
        cand = np.flatnonzero(speech)
        speech[cand[_steady(window_feats[cand], active[cand], cfg)]] = False
    return speech, talk


def _steady(feats: np.ndarray, active: np.ndarray, cfg: SpeechConfig) -> np.ndarray:
    """Step 3's verdict per window: ``bool (n_windows,)``, True where the active frames'
    spectrum changes too little (10 ms or 40 ms apart) to be speech. NaN (too few active
    pairs to measure, e.g. a short word) compares False: the level rule alone decides."""
    return ((spectral_change(feats, active, cfg, 1) < cfg.min_change_10ms_db)
            | (spectral_change(feats, active, cfg, 4) < cfg.min_change_40ms_db))


def talk_windows(window_feats: np.ndarray, speech: np.ndarray, talk_active: np.ndarray,
                 cfg: SpeechConfig = SpeechConfig()) -> np.ndarray:
    """Windows that may hold talk (:mod:`ser_lib.talk`): the speech windows, and windows
    the speech rule missed where at least ``cfg.min_active_ratio`` of the frames are active
    with the talk margin (``talk_active``) and those frames' spectrum changes like speech
    (step 3 over them). A quiet voice in line noise (10 dB SNR) rises 8 dB over its
    window's floor too rarely for step 2; with a lower margin, step 3 still tells it
    from tones and hum.

    Args:
        window_feats: ``(n_windows, n_frames, n_features)``.
        speech: ``bool (n_windows,)`` the speech flags (:func:`speech_decisions`).
        talk_active: ``bool (n_windows, n_frames)`` frames active with the talk margin.

    Returns:
        ``bool (n_windows,)``.
    """
    out = np.asarray(speech, dtype=bool).copy()
    if not talk_active.size:
        return out
    cand = np.flatnonzero(~out & (talk_active.mean(axis=1) >= cfg.min_active_ratio))
    if len(cand):
        out[cand[~_steady(window_feats[cand], talk_active[cand], cfg)]] = True
    return out
