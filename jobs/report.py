"""``ser report OUT [--call ID]``: per-call summaries; a call's facts, timeline and PNG.

Reads only committed output: partitions of runs whose commit record
``OUT/_runs/<run_id>.json`` says ``state: applied`` (see :mod:`jobs.commit`), so a
report never shows a run that is being committed or was killed half-way.
"""
from __future__ import annotations

import os

import pandas as pd
import pyarrow.parquet as pq

from ser_lib.errors import SERError
from ser_lib.nulls import is_missing

from .commit import Store, applied_files

#: colours of the emotions in timeline plots; non-speech is drawn light grey
COLOURS = {"angry": "#d62728", "disgust": "#8c564b", "fear": "#9467bd", "happy": "#2ca02c", "neutral": "#7f7f7f",
           "sad": "#1f77b4", "surprise": "#ff7f0e"}


class ReportError(SERError):
    """``OUT`` or a file given to a report is missing or unusable."""


def check_output(out: str) -> None:
    """Raise :class:`ReportError` unless ``out`` is an output root of ``ser analyze`` (it has ``_runs/``)."""
    store = Store(out)
    if not store.exists(""):
        raise ReportError(f"{out} does not exist")
    if not store.exists("_runs"):
        raise ReportError(f"{out} is not an output of ser analyze (no _runs/ in it)")


def read_table(out: str, table: str, columns: list[str] | None = None) -> pd.DataFrame:
    """One table (``calls``, ``segments``, ``episodes``, ``manifest``, ``errors``) as pandas, with
    ``run_date`` and ``run_id`` columns, restricted to applied commits.

    Args:
        columns: read only these (those a partition has; Parquet column projection).
    """
    store = Store(out)
    frames = []
    for r, rel in applied_files(store, table):
        with store.fs.open_input_file(store.p(rel)) as f:
            pf = pq.ParquetFile(f)
            cols = None if columns is None else [c for c in columns if c in pf.schema_arrow.names]
            t = pf.read(columns=cols).to_pandas()
        t["run_date"], t["run_id"] = r["run_date"], r["run_id"]
        frames.append(t)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def read_rows(out: str, table: str, call_id: str, run_id: str | None = None) -> pd.DataFrame:
    """The rows of one call (of one run, if given) of ``table``, applied commits only.

    Reads with the filter pushed down (``pyarrow.dataset``: partition pruning on ``run_id``,
    Parquet row-group statistics on ``call_id``), so a report on one call does not load the
    table; partitions written with other columns (older versions) are unified by name.
    """
    import pyarrow.dataset as ds

    store = Store(out)
    parts = []
    for r, rel in applied_files(store, table, run_id):
        # one small dataset per file: schemas of partitions may differ (added columns)
        t = ds.dataset(store.p(rel), format="parquet", filesystem=store.fs).to_table(
            filter=ds.field("call_id") == call_id)
        if t.num_rows:
            parts.append(t.to_pandas().assign(run_date=r["run_date"], run_id=r["run_id"]))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def call_summaries(out: str) -> pd.DataFrame:
    calls = read_table(out, "calls")
    if calls.empty:
        return calls
    calls["source"] = [p if not isinstance(m, str) else f"{p}!{m}" for p, m in zip(calls["source_path"], calls["member"])]
    for c in ("n_channels", "sample_rate", "n_segments"):  # null for failed calls: keep them integers
        calls[c] = calls[c].astype("Int64")
    # per channel, as the web page and ser predict (ser_lib.timeline.channel_figures): a sum over
    # channels can exceed the duration, and an emotion "dominant" over both may be neither's
    from ser_lib.timeline import channel_figures, clock
    labels = [c[len("share_"):] for c in calls.columns if c.startswith("share_")]
    figs = [channel_figures(t, d, labels=labels) if s == "ok" else []
            for t, d, s in zip(calls["timeline"], calls["duration_s"], calls["status"])]
    calls["duration"] = [clock(d) for d in calls["duration_s"]]
    calls["speech_per_channel"] = [" ".join(f"{f['channel']} {clock(f['speech_s'])}" for f in fs) or None for fs in figs]
    calls["dominant_per_channel"] = [" ".join(f"{f['channel']} {f['dominant'] or '-'}" for f in fs) or None
                                     for fs in figs]
    cols = ["call_id", "source", "status", "duration", "n_channels", "speech_per_channel", "dominant_per_channel",
            "error", "model_version", "run_id"]
    if "warnings" in calls:  # partitions written before the column existed have none
        cols.insert(cols.index("error") + 1, "warnings")
    return calls[cols].sort_values("source").reset_index(drop=True)


def as_float(v, default: float = 0.0) -> float:
    """A number from a table cell: null / NaN → ``default``."""
    return default if is_missing(v) else float(v)


def timeline_lines(timeline) -> list[str]:
    """One printable line per timeline entry: channel, bounds (s), emotion, confidence."""
    out = []
    for e in timeline if timeline is not None else []:
        emo = e["emotion"] or "-- non-speech --"
        conf = "" if is_missing(e["confidence"]) else f"{e['confidence']:.2f}"
        out.append(f"  {e['channel']:>10}  {e['start_s']:8.2f}-{e['end_s']:8.2f} s  {emo:<16} {conf}".rstrip())
    return out


def _as_map(v) -> dict:
    """A map cell as a dict: a dict, pairs (how pandas reads a Parquet map) or null → ``{}``."""
    return {} if is_missing(v) else dict(v)


def channel_arousal(row) -> list[dict]:
    """Per channel with speech: ``{name, mean, peak, raised, quarters: [Q1..Q4 mean or None]}`` from a
    call's ``channel_arousal_mean``, ``channel_arousal_peak``, ``channel_raised_share`` and ``quarters[].arousal`` (a
    ``calls`` row or a ``ser predict`` summary; :func:`ser_lib.measures.arousal_measures`);
    ``[]`` for a call written before those columns existed. Missing values are None."""
    mean, peak = _as_map(row.get("channel_arousal_mean")), _as_map(row.get("channel_arousal_peak"))
    raised = _as_map(row.get("channel_raised_share"))
    quarters = row.get("quarters")
    quarters = [] if is_missing(quarters) else [dict(q) for q in quarters]
    out = []
    for ch, m in mean.items():
        if is_missing(m):
            continue
        qs = {q["quarter"]: q.get("arousal") for q in quarters if q["channel"] == ch}
        out.append({"name": ch, "mean": m, "peak": None if is_missing(peak.get(ch)) else peak[ch],
                    "raised": None if is_missing(raised.get(ch)) else raised[ch],
                    "quarters": [None if is_missing(qs.get(k)) else qs[k] for k in range(1, 5)]})
    return out


def arousal_lines(row) -> list[str]:
    """One printable line per channel of :func:`channel_arousal`: its mean and peak arousal,
    its share of raised voice (when known) and its arousal per quarter (``-`` where it did not speak)::

        customer arousal: mean 0.42, peak 0.81, raised voice 12%; by quarter 0.20 0.35 - 0.80
    """
    return [f"  {c['name']} arousal: mean {c['mean']:.2f}, peak {as_float(c['peak']):.2f}"
            + ("" if c.get("raised") is None else f", raised voice {c['raised']:.0%}") + "; by quarter "
            + " ".join("-" if q is None else f"{q:.2f}" for q in c["quarters"])
            for c in channel_arousal(row)]


EPISODE_COLUMNS = ["call_id", "channel", "episode_index", "emotion", "start_s", "end_s", "duration_s",
                   "mean_confidence", "peak_confidence", "model_version", "run_date", "run_id"]


def call_episodes(out: str, call: pd.Series) -> pd.DataFrame:
    """The committed ``episodes`` rows of one call (from its own run), channel then time order;
    an empty frame when there are none (no speech, or a run written before the table existed)."""
    eps = read_rows(out, "episodes", call["call_id"], call["run_id"])
    if eps.empty:
        return pd.DataFrame(columns=EPISODE_COLUMNS)
    return eps.sort_values(["channel", "start_s"]).reset_index(drop=True)


def episode_lines(episodes: pd.DataFrame) -> list[str]:
    """One printable line per episode: channel, bounds (s), emotion, duration, mean and peak confidence."""
    return [f"  {e.channel:>10}  {e.start_s:8.2f}-{e.end_s:8.2f} s  {e.emotion:<10} {e.duration_s:7.1f} s  "
            f"confidence mean {e.mean_confidence:.2f} peak {e.peak_confidence:.2f}" for e in episodes.itertuples()]


def read_truth(path: str) -> pd.DataFrame:
    """The emotion rows of a ``truth.csv`` written by ``ser make-calls``.

    Raises:
        ReportError: the file cannot be parsed, lacks the columns ``file, channel,
            start_s, end_s, emotion``, or holds no emotion (synthetic demo calls).
    """
    need = ["file", "channel", "start_s", "end_s", "emotion"]
    try:
        truth = pd.read_csv(path, keep_default_na=False)
        missing = [c for c in need if c not in truth.columns]
        if missing:
            raise ReportError(f"{path} is not a truth file of ser make-calls: no column {', '.join(missing)}")
        truth["start_s"], truth["end_s"] = pd.to_numeric(truth["start_s"]), pd.to_numeric(truth["end_s"])
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ReportError(f"cannot read truth file {path}: {err}") from err
    truth = truth[truth["emotion"] != ""]
    if truth.empty:
        raise ReportError(f"{path} holds no emotion truth (synthetic demo calls carry none)")
    return truth


def render_timeline(call: pd.Series, png_path: str, episodes: pd.DataFrame | None = None) -> str:
    """Draw one call's timeline and episodes (:func:`draw_timeline`) into ``png_path``; returns ``png_path``."""
    fig = draw_timeline(call, episodes)
    import matplotlib.pyplot as plt
    os.makedirs(os.path.dirname(os.path.abspath(png_path)), exist_ok=True)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path


def draw_timeline(call: pd.Series, episodes: pd.DataFrame | None = None):
    """One call's timeline as a matplotlib Figure: a lane per channel, emotion runs coloured
    by class with colour strength showing confidence, non-speech hatched grey; with
    ``episodes`` (:func:`call_episodes`), a lane ``<channel> episodes`` under each channel
    with one outlined bar per episode (colour strength: its mean confidence).

    A call without a timeline (failed, or no windows) gives empty lanes.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    tl = pd.DataFrame(list(call["timeline"]) if call["timeline"] is not None else [],
                      columns=["channel", "start_s", "end_s", "emotion", "confidence"])
    channels = list(dict.fromkeys(tl["channel"])) or ["(none)"]
    eps = episodes if episodes is not None and len(episodes) else pd.DataFrame(columns=["channel", "emotion"])
    lanes = [(ch, kind) for ch in channels for kind in (("timeline", "episodes") if episodes is not None
                                                        else ("timeline",))]
    # constrained layout keeps the legend (placed outside, below) off the axis label
    fig, ax = plt.subplots(figsize=(12, 2.0 + 0.6 * len(lanes)), layout="constrained")
    for i, (ch, kind) in enumerate(lanes):
        if kind == "episodes":
            for e in eps[eps["channel"] == ch].itertuples():
                ax.barh(i, e.duration_s, left=e.start_s, height=0.5, color=COLOURS.get(e.emotion, "#333333"),
                        alpha=_alpha(e.mean_confidence), edgecolor="black", linewidth=0.8)
            continue
        for e in tl[tl["channel"] == ch].itertuples():
            speech = isinstance(e.emotion, str)
            ax.barh(i, e.end_s - e.start_s, left=e.start_s, height=0.6,
                    color=COLOURS.get(e.emotion, "#333333") if speech else "#e6e6e6",
                    alpha=_alpha(e.confidence) if speech else 1.0,
                    hatch=None if speech else "//", edgecolor="white" if speech else "#bbbbbb", linewidth=0.3)
    ax.set_yticks(range(len(lanes)), [ch if kind == "timeline" else f"{ch} episodes" for ch, kind in lanes])
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    ax.set_xlim(0, max(as_float(call["duration_s"]), as_float(tl["end_s"].max()) if len(tl) else 0.0) or 1.0)
    used = [e for e in COLOURS if e in set(tl["emotion"].dropna()) | set(eps["emotion"].dropna())]
    fig.legend(handles=[Patch(color=COLOURS[e], label=e) for e in used]
               + [Patch(facecolor="#e6e6e6", hatch="//", edgecolor="#bbbbbb", label="non-speech")],
               loc="outside lower center", ncol=8, frameon=False, fontsize=8, title_fontsize=8,
               title="colour: emotion; colour strength: its confidence (pale = 0, full = 1)")
    src = call["source_path"] + (f"!{call['member']}" if isinstance(call.get("member"), str) else "")
    ax.set_title(f"{call['call_id']}  {os.path.basename(src)}  (model {call['model_version']}, run {call['run_id']})",
                 fontsize=9)
    return fig


def _alpha(confidence) -> float:
    """Bar opacity for a confidence in [0, 1]: 0.4 (pale) to 1.0 (full); full when unknown."""
    return 1.0 if is_missing(confidence) else 0.4 + 0.6 * float(confidence)


def find_call(out: str, call_id: str) -> pd.Series:
    hit = read_rows(out, "calls", call_id)
    if hit.empty:
        raise KeyError(f"no committed call {call_id!r} under {out}")
    return hit.iloc[0]
