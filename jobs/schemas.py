"""Spark schemas of the job's intermediate rows and its output tables."""
from __future__ import annotations

from pyspark.sql import types as T

from ser_lib.labels import probability_column


def segment_rows(labels: list[str]) -> T.StructType:
    """Rows of the analysis pass: one per window and channel, or one error row per failed
    recording (``status='failed'``, ``error`` set, window columns null)."""
    return T.StructType([
        T.StructField("call_id", T.StringType(), False),
        T.StructField("source_path", T.StringType(), False),
        T.StructField("status", T.StringType(), False),          # ok | failed
        T.StructField("error", T.StringType(), True),
        T.StructField("duration_s", T.DoubleType(), True),
        T.StructField("sample_rate", T.IntegerType(), True),     # native rate of the file, Hz
        T.StructField("n_channels", T.IntegerType(), True),
        T.StructField("audio_format", T.StringType(), True),     # libsndfile format/subtype
        T.StructField("channel", T.StringType(), True),
        T.StructField("segment_index", T.IntegerType(), True),
        T.StructField("start_s", T.DoubleType(), True),
        T.StructField("end_s", T.DoubleType(), True),
        T.StructField("is_speech", T.BooleanType(), True),
        T.StructField("emotion", T.StringType(), True),          # null for non-speech
        T.StructField("confidence", T.FloatType(), True),
        T.StructField("emotion_smoothed", T.StringType(), True),  # timeline.smoothing's label; null for non-speech
        # ser_lib.dimensions: from the window's raw probabilities, in [0, 1]; null for non-speech
        T.StructField("arousal", T.FloatType(), True),
        T.StructField("valence", T.FloatType(), True),
        # ser_lib.vocal_level: the window's active level (dBFS) and that minus the channel's median (dB)
        T.StructField("level_db", T.FloatType(), True),
        T.StructField("level_rel_db", T.FloatType(), True),
    ] + [T.StructField(probability_column(lab), T.FloatType(), True) for lab in labels])


#: the ``segments`` table's columns before the probabilities (and ``model_version``, last)
SEGMENT_COLUMNS = ["call_id", "source_path", "channel", "segment_index", "start_s", "end_s", "is_speech",
                   "emotion", "confidence", "emotion_smoothed", "arousal", "valence", "level_db", "level_rel_db"]


def segments_columns(labels: list[str]) -> list[str]:
    """The ``segments`` table's columns from the analysis rows: :data:`SEGMENT_COLUMNS`,
    then ``p_<label>`` per label (``model_version`` is added when written)."""
    return SEGMENT_COLUMNS + [probability_column(lab) for lab in labels]


TIMELINE_ENTRY = T.StructType([
    T.StructField("channel", T.StringType(), True),
    T.StructField("start_s", T.DoubleType(), True),
    T.StructField("end_s", T.DoubleType(), True),
    T.StructField("emotion", T.StringType(), True),
    T.StructField("confidence", T.DoubleType(), True),
])


def quarter_entry(labels: list[str]) -> T.StructType:
    """One channel's speech in one quarter of a call (:func:`ser_lib.measures.quarter_shares`)."""
    return T.StructType([T.StructField("channel", T.StringType(), True),
                         T.StructField("quarter", T.IntegerType(), True),
                         T.StructField("start_s", T.DoubleType(), True),
                         T.StructField("end_s", T.DoubleType(), True),
                         T.StructField("speech_s", T.DoubleType(), True)]
                        + [T.StructField(f"share_{lab}", T.DoubleType(), True) for lab in labels]
                        # ser_lib.talk: this channel's talk spurts, and the call's non-talk and
                        # overtalk (all channels; null overlap for mono) in the quarter, s
                        + [T.StructField(c, T.DoubleType(), True) for c in ("talk_s", "non_talk_s", "overlap_s")]
                        # ser_lib.measures.arousal_measures: mean arousal of the channel's speech
                        # windows in the quarter; null without speech there
                        + [T.StructField("arousal", T.DoubleType(), True)]
                        # ser_lib.measures.raised_voice_measures: share of the channel's speech in the
                        # quarter at least 6 dB over its median level; null without speech there
                        + [T.StructField("raised_share", T.DoubleType(), True)])


#: per-channel call measures (:func:`ser_lib.measures.channel_measures`), maps channel -> value
CHANNEL_MEASURES = [("channel_negative_episodes", T.IntegerType()), ("channel_longest_negative_s", T.DoubleType()),
                    ("channel_first_negative_s", T.DoubleType()), ("channel_end_negative_share", T.DoubleType()),
                    ("channel_ends_negative", T.BooleanType()),
                    # ser_lib.measures.arousal_measures: mean and peak (90th percentile) of the
                    # channel's speech-window arousal; null for a channel without speech
                    ("channel_arousal_mean", T.DoubleType()), ("channel_arousal_peak", T.DoubleType()),
                    # ser_lib.measures.raised_voice_measures: share of the channel's speech windows
                    # at least 6 dB over its median level; null for a channel without speech
                    ("channel_raised_share", T.DoubleType())]

#: per-call arousal (:func:`ser_lib.measures.arousal_measures`, every channel's speech windows)
CALL_AROUSAL = ["arousal_mean", "arousal_peak"]


#: conversation measures (:func:`ser_lib.scoring.conversation_fields`, :mod:`ser_lib.talk`)
CONVERSATION_MEASURES = [("channel_talk_s", T.MapType(T.StringType(), T.DoubleType())),
                         ("non_talk_s", T.DoubleType()), ("longest_non_talk_s", T.DoubleType()),
                         ("overlap_s", T.DoubleType()),
                         ("channel_interruptions", T.MapType(T.StringType(), T.IntegerType())),
                         ("channel_loudness_lufs", T.MapType(T.StringType(), T.DoubleType()))]


def call_summary_schema(labels: list[str]) -> T.StructType:
    """Per-call fields computed from a call's windows by :func:`ser_lib.scoring.summarize`."""
    return T.StructType(
        [T.StructField("call_id", T.StringType(), False),
         T.StructField("n_segments", T.IntegerType(), True),
         T.StructField("speech_s", T.DoubleType(), True),
         T.StructField("channel_speech_s", T.MapType(T.StringType(), T.DoubleType()), True),
         T.StructField("dominant_emotion", T.StringType(), True),
         T.StructField("channel_dominant_emotion", T.MapType(T.StringType(), T.StringType()), True)]
        + [T.StructField(f"share_{lab}", T.DoubleType(), True) for lab in labels]
        + [T.StructField(name, T.MapType(T.StringType(), t), True) for name, t in CHANNEL_MEASURES]
        + [T.StructField(name, t, True) for name, t in CONVERSATION_MEASURES]
        + [T.StructField(name, T.DoubleType(), True) for name in CALL_AROUSAL]
        + [T.StructField("quarters", T.ArrayType(quarter_entry(labels)), True),
           T.StructField("timeline", T.ArrayType(TIMELINE_ENTRY), True)])


EPISODE_ENTRY = T.StructType([
    T.StructField("channel", T.StringType(), True),
    T.StructField("episode_index", T.IntegerType(), True),
    T.StructField("emotion", T.StringType(), True),
    T.StructField("start_s", T.DoubleType(), True),
    T.StructField("end_s", T.DoubleType(), True),
    T.StructField("duration_s", T.DoubleType(), True),
    T.StructField("mean_confidence", T.DoubleType(), True),
    T.StructField("peak_confidence", T.DoubleType(), True),
])


def episodes_table() -> T.StructType:
    """The ``episodes`` table: one row per emotion episode of a channel (:mod:`ser_lib.episodes`)."""
    return T.StructType([T.StructField("call_id", T.StringType(), False)] + EPISODE_ENTRY.fields
                        + [T.StructField("model_version", T.StringType(), False)])


TURN_ENTRY = T.StructType([
    T.StructField("channel", T.StringType(), True),
    T.StructField("turn_index", T.IntegerType(), True),
    T.StructField("start_s", T.DoubleType(), True),
    T.StructField("end_s", T.DoubleType(), True),
])


def turns_table() -> T.StructType:
    """The ``turns`` table: one row per talk spurt of a channel (:mod:`ser_lib.talk`)."""
    return T.StructType([T.StructField("call_id", T.StringType(), False)] + TURN_ENTRY.fields
                        + [T.StructField("model_version", T.StringType(), False)])


def analysis_rows(labels: list[str]) -> T.StructType:
    """Rows of the fused analysis pass (``jobs.analyze_calls.analyze_udf``).

    ``row_kind='segment'``: one per window and channel (:func:`segment_rows` fields).
    ``row_kind='input'``: one per input the task saw (file, archive, archive member) with
    its manifest facts (``status`` ok / failed / skipped, ``error``, ``warnings`` of an
    analysed recording (:attr:`ser_lib.audio.AudioInfo.warnings`), sizes, mtimes as
    microseconds since the epoch, sha256, and for skipped inputs the run holding its rows),
    and for analysed recordings the call summary (:func:`call_summary_schema`), computed in
    the same pass from the call's windows, which one task holds whole (no shuffle).
    """
    base = segment_rows(labels)
    fields = [T.StructField(f.name, f.dataType, True) for f in base.fields]  # input rows of archives: no call_id
    summary = [f for f in call_summary_schema(labels).fields if f.name != "call_id"]
    return T.StructType([T.StructField("row_kind", T.StringType(), False)] + fields + summary + [
        T.StructField("episodes", T.ArrayType(EPISODE_ENTRY), True),  # the call's episodes: the episodes table
        T.StructField("turns", T.ArrayType(TURN_ENTRY), True),        # the call's talk spurts: the turns table
        T.StructField("warnings", T.StringType(), True),             # analysed, but: "truncated: ..."
        T.StructField("kind", T.StringType(), True),                 # file | archive | member
        T.StructField("member", T.StringType(), True),
        T.StructField("size_bytes", T.LongType(), True),
        T.StructField("modified_us", T.LongType(), True),
        T.StructField("source_size", T.LongType(), True),
        T.StructField("source_modified_us", T.LongType(), True),
        T.StructField("content_sha256", T.StringType(), True),
        T.StructField("output_run_id", T.StringType(), True),
        T.StructField("output_run_date", T.StringType(), True),
        T.StructField("output_model_version", T.StringType(), True),
    ])


CALL_FACTS = ["call_id", "source_path", "member", "status", "error", "warnings", "duration_s", "sample_rate",
              "n_channels", "audio_format"]


def calls_table(labels: list[str]) -> T.StructType:
    """The ``calls`` table: one row per analysed or failed recording, :data:`CALL_FACTS`,
    then the summary (:func:`call_summary_schema`, ``timeline`` last) and ``model_version``.
    Summary fields are null for failed recordings."""
    rows = {f.name: f for f in analysis_rows(labels).fields}
    summary = [f for f in call_summary_schema(labels).fields if f.name not in ("call_id", "timeline")]
    return T.StructType([T.StructField(c, rows[c].dataType, c != "call_id") for c in CALL_FACTS] + summary
                        + [rows["timeline"], T.StructField("model_version", T.StringType(), False)])
