"""``ser report OUT [--call ID]``: per-call summaries, and a call's timeline as a PNG.

Reads only committed output: partitions of runs whose commit record
``OUT/_runs/<run_id>.json`` says ``state: applied`` (see :mod:`jobs.commit`), so a
report never shows a run that is being committed or was killed half-way.
"""
from __future__ import annotations

import os

import pandas as pd
import pyarrow.parquet as pq

from .commit import Store, records

#: colours of the emotions in timeline plots; non-speech is drawn light grey
COLOURS = {"angry": "#d62728", "disgust": "#8c564b", "fear": "#9467bd", "happy": "#2ca02c", "neutral": "#7f7f7f",
           "sad": "#1f77b4", "surprise": "#ff7f0e"}


def read_table(out: str, table: str, committed_only: bool = True) -> pd.DataFrame:
    """One table (``calls``, ``segments``, ``manifest``, ``errors``) as pandas, with
    ``run_date`` and ``run_id`` columns, restricted to applied commits."""
    store = Store(out)
    frames = []
    for r in records(store):
        if committed_only and r.get("state") != "applied":
            continue
        d = f"{table}/run_date={r['run_date']}/run_id={r['run_id']}"
        for name in store.listdir(d):
            if name.endswith(".parquet") and not name.startswith((".", "_")):
                with store.fs.open_input_file(store.p(f"{d}/{name}")) as f:
                    t = pq.read_table(f).to_pandas()
                t["run_date"], t["run_id"] = r["run_date"], r["run_id"]
                frames.append(t)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def call_summaries(out: str) -> pd.DataFrame:
    calls = read_table(out, "calls")
    if calls.empty:
        return calls
    calls["source"] = [p if not isinstance(m, str) else f"{p}!{m}" for p, m in zip(calls["source_path"], calls["member"])]
    cols = ["call_id", "source", "status", "duration_s", "n_channels", "speech_s", "dominant_emotion", "error",
            "model_version", "run_id"]
    return calls[cols].sort_values("source").reset_index(drop=True)


def render_timeline(call: pd.Series, png_path: str) -> str:
    """Draw one call's timeline: a lane per channel, emotion runs coloured, non-speech grey."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    tl = pd.DataFrame(list(call["timeline"]) if call["timeline"] is not None else [],
                      columns=["channel", "start_s", "end_s", "emotion", "confidence"])
    channels = list(dict.fromkeys(tl["channel"])) or ["(none)"]
    fig, ax = plt.subplots(figsize=(12, 1.2 + 0.8 * len(channels)))
    for i, ch in enumerate(channels):
        for e in tl[tl["channel"] == ch].itertuples():
            speech = isinstance(e.emotion, str)
            ax.barh(i, e.end_s - e.start_s, left=e.start_s, height=0.6,
                    color=COLOURS.get(e.emotion, "#333333") if speech else "#e6e6e6",
                    alpha=(0.4 + 0.6 * float(e.confidence)) if speech and e.confidence == e.confidence else 1.0,
                    hatch=None if speech else "//", edgecolor="white" if speech else "#bbbbbb", linewidth=0.3)
    ax.set_yticks(range(len(channels)), channels)
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    ax.set_xlim(0, max(float(call["duration_s"] or 0), float(tl["end_s"].max()) if len(tl) else 1.0))
    used = [e for e in COLOURS if e in set(tl["emotion"].dropna())]
    ax.legend(handles=[Patch(color=COLOURS[e], label=e) for e in used]
              + [Patch(facecolor="#e6e6e6", hatch="//", edgecolor="#bbbbbb", label="non-speech")],
              loc="upper center", bbox_to_anchor=(0.5, -0.35 if len(channels) < 3 else -0.2), ncol=8, frameon=False)
    src = call["source_path"] + (f"!{call['member']}" if isinstance(call.get("member"), str) else "")
    ax.set_title(f"{call['call_id']}  {os.path.basename(src)}  (model {call['model_version']}, run {call['run_id']})",
                 fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(png_path)), exist_ok=True)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path


def find_call(out: str, call_id: str) -> pd.Series:
    calls = read_table(out, "calls")
    hit = calls[calls["call_id"] == call_id] if not calls.empty else calls
    if hit.empty:
        raise KeyError(f"no committed call {call_id!r} under {out}")
    return hit.iloc[0]
