"""What the blueprints share: the app's services, content negotiation, the call view model."""
from __future__ import annotations

import os

from flask import current_app, request

from jobs.report import COLOURS, channel_arousal
from ser_lib.labels import EMOTIONS, NEGATIVE_EMOTIONS
from ser_lib.nulls import is_missing
from ser_lib.timeline import channel_figures, clock

NON_SPEECH_COLOUR = "#e6e6e6"


def services() -> dict:
    """``results`` (:class:`~jobs.web.results.Results`), ``audio``, ``scorer`` and settings."""
    return current_app.extensions["ser"]


def wants_json() -> bool:
    """JSON when the client prefers it over HTML (``Accept: application/json``)."""
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def duration(s) -> str:
    """Seconds as ``m:ss`` (``h:mm:ss`` from an hour on); ``-`` for None."""
    return "-" if is_missing(s) else clock(s)


def source_name(row: dict) -> str:
    """Short display name: the file and its folder (``day/call.wav``), or ``archive!member``."""
    path = (row.get("source_path") or "").rstrip("/")
    parent = os.path.basename(os.path.dirname(path))
    base = f"{parent}/{os.path.basename(path)}" if parent else os.path.basename(path)
    return f"{base}!{row['member']}" if row.get("member") else base


def labels_of(row: dict) -> list[str]:
    """Emotion labels of a calls row or predict result (its ``share_<label>`` keys)."""
    found = [k[len("share_"):] for k in row if k.startswith("share_")]
    return found or list(EMOTIONS)


EPISODE_KEYS = ("channel", "episode_index", "emotion", "start_s", "end_s", "duration_s", "mean_confidence",
                "peak_confidence")


def view_model(row: dict, segments: list[dict], audio_url: str | None, episodes: list[dict] | None = None,
               turns: list[dict] | None = None) -> dict:
    """What the call page's script draws (timeline, episodes, talk spurts, segments, colours, audio URL).

    Args:
        row: a ``calls`` row (:meth:`Results.get_call`) or ``ser predict``'s dict.
        segments: segment rows (``channel, segment_index, start_s, end_s, is_speech,
            emotion, confidence, emotion_smoothed``): ``emotion`` is the window's own (raw)
            most probable emotion, ``emotion_smoothed`` what the timeline counts.
        audio_url: URL of the playable recording, or None.
        episodes: the call's ``episodes`` rows (:meth:`Results.episodes`); None: the row's
            own ``episodes`` (``ser predict``'s dict has them).
        turns: talk spurts (``channel, start_s, end_s``; :meth:`Results.turns`); None: the
            row's own ``turns`` (``ser predict``'s dict), if any.
    """
    if episodes is None:
        episodes = list(row.get("episodes") or [])
    timeline = [{k: e.get(k) for k in ("channel", "start_s", "end_s", "emotion", "confidence")}
                for e in (row.get("timeline") or [])]
    channels = list(dict.fromkeys([e["channel"] for e in timeline] + [s["channel"] for s in segments]))
    labels = labels_of(row)
    return {
        "call_id": row.get("call_id"),
        "duration_s": row.get("duration_s"),
        "channels": channels,
        "labels": labels,
        "colours": {**{lab: COLOURS.get(lab, "#333333") for lab in labels}, "": NON_SPEECH_COLOUR},
        "timeline": timeline,
        "turns": [{k: t.get(k) for k in ("channel", "start_s", "end_s")}
                  for t in (turns if turns is not None else row.get("turns") or [])],
        "segments": [{k: s.get(k) for k in ("channel", "segment_index", "start_s", "end_s", "is_speech", "emotion",
                                               "confidence", "emotion_smoothed")} for s in segments],
        "episodes": [{k: e.get(k) for k in EPISODE_KEYS} for e in episodes],
        "audio_url": audio_url,
    }


def summary_of(row: dict) -> dict:
    """The call page's headline figures, per channel (:func:`ser_lib.timeline.channel_figures`,
    the definition ``ser predict`` and ``ser report`` print): each channel's speech time and
    its share of the call, its dominant emotion and that emotion's share of its speech, its
    negative share; plus the share bar's per-emotion shares of all speech (``share_<label>``)."""
    labels = labels_of(row)
    shares = {lab: float(row.get(f"share_{lab}") or 0.0) for lab in labels}
    return {
        "channels": channel_figures(row.get("timeline"), row.get("duration_s"), NEGATIVE_EMOTIONS, labels),
        "shares": [(lab, shares[lab]) for lab in labels if shares[lab] > 0],
        # conversation measures (docs/output-tables.md); absent in calls written before them
        "talk": [{"name": ch, "talk_s": s, "interruptions": (row.get("channel_interruptions") or {}).get(ch),
                  "lufs": (row.get("channel_loudness_lufs") or {}).get(ch)}
                 for ch, s in (row.get("channel_talk_s") or {}).items()],
        "arousal": channel_arousal(row),
    }


def register_filters(app) -> None:
    app.jinja_env.filters["duration"] = duration
    app.jinja_env.filters["source_name"] = source_name
    app.jinja_env.globals["colours"] = {**COLOURS, "": NON_SPEECH_COLOUR}
