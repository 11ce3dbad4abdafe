"""The shipped model's card (``models/ser-cnn/README.md``), rendered from its own records.

``python -m training.model_card [--model DIR] [--robustness FILE] [--check]`` writes the
card from ``artifact.json`` (version, training record, calibration, CV summary),
``cv.json`` (per-fold table, leave-one-corpus-out) and the latest
``bench/results/robustness-*.json`` (level invariance, detector coverage), so the card,
the artifact and the results table of docs/model.md (:func:`results_table`, tested against
that page) cannot disagree. ``--check`` exits 1 when the committed card differs.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ser_lib.features import FeatureConfig

from .config import AUTO_TEACHER
from .cv import CORPUS_NAMES, format_cv_table, transfer_table

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "models" / "ser-cnn"


def _latest_robustness() -> Path | None:
    found = sorted((REPO / "bench" / "results").glob("robustness-*.json"))
    return found[-1] if found else None


#: The line under the transfer table (what its columns mean and their chance levels).
TRANSFER_NOTE = ("Arousal AUC: high-arousal clips (angry, fear, happy, surprise) against low-arousal ones "
                 "(neutral, sad) ranked by `segments.arousal`; anger AUC: angry clips against all others by "
                 "`p_angry`; negative AUC: negative clips (angry, disgust, fear, sad) against the others by "
                 "`1 - segments.valence` (clip = mean over its windows; chance 0.5). UA: unweighted average "
                 "recall over the clip argmax (chance 0.25 for 4 classes: angry, happy, neutral, sad; "
                 "0.143 for 7)")


def results_table(meta: dict, cv_record: dict) -> str:
    """The markdown results: the transfer table first (:func:`training.cv.transfer_table`,
    what holds on voices and languages never trained on; omitted when the record has no
    transfer AUCs), then the CV table (per fold, mean ± std, LOCO line): the same text in
    the card and in docs/model.md."""
    cv_text = format_cv_table(meta["metrics"]["cv"], cv_record.get("loco", {}).get("turev_4class"))
    transfer = transfer_table(cv_record)
    return f"{transfer}\n\n{TRANSFER_NOTE}.\n\n{cv_text}" if transfer else cv_text


def _robustness_lines(rob: dict | None) -> str:
    if not rob:
        return "(not measured: run `python -m bench.robustness`)"
    cov = rob.get("coverage_share_of_clips_with_a_speech_window", {})
    lines = ["Share of clips that get at least one speech (scored) window, at the clip's own level and "
             "scaled down:", "",
             "| corpus | clips | with a speech window | at -20 dB | at -30 dB |", "|---|---|---|---|---|"]
    for corpus, d in cov.items():
        lines.append(f"| {corpus} | {d['clips']} | {d['0']:.2%} | {d['-20']:.2%} | {d['-30']:.2%} |")
    inv = rob.get("gain_invariance")
    if not inv:
        return "\n".join(lines)
    lines += ["", f"Windows whose speech flag or emotion changes when the recording is scaled "
                  f"({inv['calls']} call-like recordings of {inv['minutes_each']:.0f} min, "
                  "one per CV fold, scored by that fold's model):", "",
              "| file | gain | flag changed | emotion changed | either | either, windows peaking in range "
              "| smoothed emotion changed |",
              "|---|---|---|---|---|---|---|"]
    floor = None
    for subtype, per_gain in inv["per_format"].items():
        bits = _format_label(subtype)
        for g, d in per_gain.items():
            r = d.get("in_range")  # results written before the in-range share existed lack it
            floor = r["min_peak_dbfs"] if r else floor
            lines.append(f"| {bits} | {int(g):+d} dB | {d['flag_changed']:.2%} | {d['emotion_changed']:.2%} "
                         f"| {d['either_changed']:.2%} | "
                         + (f"{r['either_changed']:.2%} of {r['windows']}" if r else "not measured") + " | "
                         + (f"{d['smoothed_emotion_changed']:.2%}" if "smoothed_emotion_changed" in d
                            else "not measured") + " |")
    lv = inv.get("frame_rms_dbfs")
    where = (f"these calls' median frame (RMS {lv['p50']:.0f} dBFS at 0 dB) falls to {lv['p50'] - 30:.0f} dBFS "
             f"scaled 30 dB down, and their loudest tenth of frames ({lv['p90']:.0f} dBFS) to "
             f"{lv['p90'] - 30:.0f} dBFS" if lv else "these calls' speech comes within about 20 dB of it "
             "scaled 30 dB down")
    lines += ["", f"A 16-bit file's quantisation noise stays at -101 dBFS whatever the gain: {where}, so the "
                  "16-bit rows at -20 and -30 dB measure robustness to that noise as much as to the level."]
    if floor is not None:
        lines += ["", f"*Windows peaking in range*: the windows whose own peak after the gain is at least "
                      f"{floor:g} dBFS, the quietest speech the detector is specified for; the others are "
                      "utterances far under the call's peak that the gain pushes toward the quantisation noise."]
    if "PCM_16_rescaled" in inv["per_format"]:
        lines += ["", "*16-bit WAV, rescaled*: the gain applied to the 0 dB 16-bit file's own samples (a "
                      "recording turned up or down, its quantisation noise scaled with it); the other 16-bit "
                      "rows quantise each gain's copy afresh (a recording made at that level)."]
    if any("smoothed_emotion_changed" in d for per_gain in inv["per_format"].values() for d in per_gain.values()):
        lines += ["", "*Smoothed emotion*: the label the timeline, shares and episodes are built from "
                      "(`segments.emotion_smoothed`, the job's `timeline.smoothing`); *emotion* is the raw "
                      "per-window label (`segments.emotion`)."]
    return "\n".join(lines)


def _rescored_note(cv_record: dict) -> str:
    """A sentence saying when the transfer AUCs were added to ``cv.json`` by re-scoring
    (``ser evaluate --write``), for a record made before ``ser train`` wrote them."""
    when = cv_record.get("transfer_rescored")
    return (f" (The transfer AUCs and the never-trained-on rows come from re-scoring this model's fold and "
            f"leave-one-corpus-out artifacts, `ser evaluate --write`, on {when}; the model was not retrained.)"
            if when else "")


def _format_label(subtype: str) -> str:
    """``"PCM_16"`` -> ``"16-bit WAV"``; ``"PCM_16_rescaled"`` -> ``"16-bit WAV, rescaled"``."""
    parts = subtype.split("_")
    if parts[0] != "PCM" or len(parts) < 2:
        return subtype
    return f"{parts[1]}-bit WAV" + (f", {' '.join(parts[2:])}" if len(parts) > 2 else "")


def _augmentation_text(aug: dict) -> str:
    """The card's sentence on augmentation, from the artifact's training configuration."""
    copies = int(aug.get("copies", 0))
    if not copies:
        return "Clean clips only (no augmentation)"
    lo, hi = aug.get("gain_db", (None, None))
    gain = f"gain from {lo:+g} to {hi:+g} dB" if lo is not None else "gain"
    requant = (f", then rounded to {aug.get('requantize_bits')}-bit PCM as a quiet recording of that "
               "resolution is" if aug.get("p_requantize") else "")
    return (f"Clean clips plus {'one augmented copy' if copies == 1 else f'{copies} augmented copies'} each "
            f"(noise, time stretch, pitch shift, time shift, {gain}, G.711 telephone channel{requant}; "
            "`training/augment.py`, `conf/train.yaml`)")


def _distillation_text(train: dict) -> str:
    """The card's sentence on the training targets (``train.distill_teacher``), or ``""`` when
    the model was trained on the labels alone."""
    teacher = train.get("distill_teacher")
    if not teacher:
        return ""
    lam = float(train.get("distill_weight", 0.5))
    source = ("the accurate model's encoder head, fitted per recipe run on that run's training clips "
              "and scoring them out of fold by speaker (`training/teacher.py`)" if teacher == AUTO_TEACHER
              else f"the teacher file `{teacher}`")
    return (f"\nTargets: each training window's target is {1 - lam:g} x its label (one-hot) + {lam:g} x the "
            f"probabilities of its source clip under\n{source} (teacher-student distillation, Hinton et "
            "al. 2015; `train.distill_teacher` in `conf/train.yaml`); validation and test use the labels.")


def _calibration_text(meta: dict, cv_record: dict) -> tuple[str, str, str]:
    """The card's three calibration passages, by the record's rule (``calibration`` of
    ``conf/train.yaml``, :func:`training.cv.recalibrate`): what ``T`` is (model details), how
    it was fitted and estimated (protocol), and the ECEs of the shipped temperature (results)."""
    t = meta["calibration"]["temperature"]
    cal = cv_record.get("calibration") or {}
    loco = cv_record.get("loco") or {}
    held = [(CORPUS_NAMES.get(c, c), rec["ece"]) for c, rec in sorted(cv_record.get("unseen", {}).items())
            if rec.get("ece") is not None]
    unseen = "; ".join(f"{name} (never trained on, never fitted on) {e:.3f}" for name, e in held)
    if cal.get("rule") != "unheard_corpora":
        return (f"T = {t:.3f}, the median of the CV folds'\n  temperatures fitted on their validation speakers",
                "each fold fits a softmax temperature on its validation windows of unseen\n"
                "  speakers (RAVDESS actors, TurEV-DB speaker; not TESS, whose validation words are spoken by\n"
                "  its training speakers). The shipped model takes the median over the folds; each fold is\n"
                "  scored with the median of the *other* folds' temperatures, so the reported ECE estimates\n"
                "  that rule without touching the fold's test actors",
                f" Window ECE on voices never trained on: {unseen}." if unseen else "")
    corpora = ", ".join(f"{CORPUS_NAMES.get(c, c)} ({n:,} windows)" for c, n in cal.get("fitted_on_windows", {}).items())
    return (f"T = {t:.3f}, fitted on the windows of\n  a corpus the model never trained on: see *Calibration*",
            f"the shipped softmax temperature is fitted on the leave-one-corpus-out\n"
            f"  run's test windows, {corpora}, scored by the model trained without it: a language, speakers\n"
            f"  and recordings the model never heard, as every call is (`calibration: unheard_corpora` in\n"
            f"  `conf/train.yaml`). The CV folds are scored with the same T; a corpus neither trained nor\n"
            f"  fitted on estimates it on unheard voices. The folds' validation speakers (RAVDESS actors and\n"
            f"  a TurEV-DB speaker, of corpora the model trains on) would give T = {cal.get('validation_temperature', float('nan')):.3f},\n"
            f"  which leaves unheard voices over-confident (the TurEV-DB leave-one-corpus-out run, scored with\n"
            f"  it: window ECE {loco.get('ece', float('nan')):.3f})",
            (f" Window ECE of the shipped T on voices never trained on: {unseen}." if unseen else "")
            + " On the RAVDESS actors held out it is under-confident (their corpus and recordings were heard).")


# Longer than 80 lines on purpose: the body is the card's markdown template (one f-string,
# read top to bottom like the card it renders); the numbers come from the helpers above.
def render(model_dir: Path = DEFAULT_MODEL, robustness: Path | None = None) -> str:
    """The card's markdown text.

    Raises:
        FileNotFoundError: ``artifact.json`` or ``cv.json`` missing.
    """
    meta = json.loads((model_dir / "artifact.json").read_text())
    cv_record = json.loads((model_dir / "cv.json").read_text())
    rob_path = robustness or _latest_robustness()
    rob = json.loads(Path(rob_path).read_text()) if rob_path else None
    tr = meta["training"]
    m, s = meta["metrics"]["cv"]["mean"], meta["metrics"]["cv"]["std"]
    loco = cv_record.get("loco", {}).get("turev_4class") or {}
    pooled = meta["metrics"]["cv"].get("pooled")
    pooled_ece = f", {pooled['ece']:.3f} over all folds' windows pooled" if pooled else ""
    corpora = ", ".join(f"{k} ({v['total']} clips, {v['speakers']} speakers)"
                        for k, v in tr.get("corpora", {}).items() if k != "total")
    stats = tr.get("model", {})
    members = tr.get("ensemble") or []
    n = max(1, len(members))
    if members:
        model_line = (f"A **seed ensemble of {n} 1-D CNNs** (seeds {', '.join(str(m['seed']) for m in members)}:\n"
                      f"  the same recipe, data and epochs; augmentation draws and initial weights differ),\n"
                      f"  served as one model whose output is the mean of the members' probabilities\n"
                      f"  (`training/ensemble.py`), each")
        seed_text = f"seeds {', '.join(str(m['seed']) for m in members)}"
    else:
        model_line, seed_text = "A 1-D CNN", f"seed {tr.get('seed')}"
    hours = f"~{0.7 * n:.1f} h" if members else "~40 min"
    fc = FeatureConfig.from_dict(meta["feature_config"])
    cal_what, cal_how, cal_results = _calibration_text(meta, cv_record)
    feature_list = (f"ZCR, RMS,\n  {fc.n_mfcc} MFCC, {fc.n_chroma} chroma, {fc.n_mels} log-mel"
                    + (", voicing and F0 (absolute and relative to the window's median)" if fc.pitch else ""))
    return f"""---
language:
- en
- tr
license: cc-by-nc-sa-4.0
tags:
- audio-classification
- speech-emotion-recognition
metrics:
- unweighted average recall
- macro-f1
- expected calibration error
- roc auc
---

# Model card: `{meta['version']}` (speech emotion, call-center windows)

*Rendered by `python -m training.model_card` from `artifact.json`, `cv.json` and
`bench/results/robustness-*.json`; do not edit by hand.*

## Model details

- {model_line} over 2 s windows of {fc.n_features} acoustic features per 10 ms frame at 8 kHz ({feature_list}; `ser_lib/features.py`), {stats.get('params', '?'):,} parameters,
  {stats.get('flops', 0) / 1e6:.1f} MFLOPs per window (`training/models.py`){
  f"; {n * stats.get('params', 0):,} parameters and {n * stats.get('flops', 0) / 1e6:.1f} MFLOPs in all" if members else ""}.
- **Input is level-normalised**: RMS, log-mel and MFCC are taken relative to the window's
  own speech level (its 95th-percentile frame level), so the recording's gain does not
  change the output (`ser_lib.features.level_normalize`).
- **Output**: probabilities over angry, disgust, fear, happy, neutral, sad, surprise,
  temperature-calibrated ({cal_what}). The job also writes two regroupings of
  each window's probabilities (`ser_lib/dimensions.py`): `arousal` = p(angry) + p(fear) +
  p(happy) + p(surprise) and `valence` = 1 - (p(angry) + p(disgust) + p(fear) + p(sad)),
  both in [0, 1].
- Speech windows only: the job's speech detector (`ser_lib/speech.py`, relative to the
  recording's level) decides which windows are scored; the others get no emotion.
- Trained {tr.get('epochs')} epochs on every clip: the whole cosine learning-rate schedule, the
  model is the last epoch, as in every CV fold (`select.checkpoint: last` in `conf/train.yaml`),
  {seed_text}, Keras {tr.get('keras')}. Artifact format: `artifact.json` +
  `model.keras` + `model.tflite` (LiteRT, what the job runs; `ser_lib/artifact.py`).

## Intended use

Batch analytics over call-center recordings: where in a call a speaker sounds angry, sad or
happy, shares of negative speech per call and per channel, trends over many calls. The
output is an *estimate from acted speech*, useful in aggregate and for finding moments
worth listening to; it is **not** a judgement of a person, and not for decisions about
individual callers or agents (hiring, evaluation, credit, law enforcement).

## Training data and licences

{corpora}. Labels from the corpora's file names (`training/corpora.py`; RAVDESS and TurEV-DB
*calm* are `neutral`). {_augmentation_text(tr.get("conf", {}).get("augment", {}))}, sample weights
that give every (corpus, emotion) pair the same total weight.{_distillation_text(tr.get("conf", {}).get("train", {}))}
Licences: RAVDESS CC BY-NC-SA 4.0 (Livingstone & Russo 2018), TESS CC BY-NC-ND 4.0
(Pichora-Fuller & Dupuis 2020), TurEV-DB CC BY-NC-ND 4.0 (Canpolat et al. 2020).
**Non-commercial use only**, as the training corpora. CREMA-D and SAVEE loaders exist and
are used when their folders are present; they were not available for this model.

## Evaluation protocol

- **RAVDESS actor 6-fold cross-validation** (`training/folds.json`): each fold tests on 4
  actors (2 male, 2 female) never heard in training; 2 other actors, the TESS validation
  words and TurEV-DB speaker 1157 are held out for validation (logged every epoch; the model
  is the last epoch). Augmented copies never cross from training to test (selection by
  source clip). Clip level: mean window probability over a clip's speech windows, argmax.
- **Calibration**: {cal_how}. ECE: 15 bins over the window
  `confidence` on the test folds; reliability diagram `reliability.png`.
- **Telephone condition**: the same test clips through a G.711 channel (8 kHz, 300-3400 Hz,
  8-bit mu-law/A-law).
- **Leave-one-corpus-out**: trained without TurEV-DB (Turkish, other speakers, much louder
  recordings), tested on all of it; 4 classes (argmax over angry, happy, neutral, sad).
- **Corpora the model never trained on**: the shipped model on all of a corpus it was not
  trained on (EMOVO, Italian, 6 actors, all 7 emotions), 7 and 4 classes.
- **Transfer AUCs** on every held-out set (`training.cv.transfer_aucs`, scikit-learn ROC
  AUC over clips): arousal, anger against the rest, negative against the rest, scored by
  the very columns the job writes (`arousal`, `p_angry`, `1 - valence`).
- UA = unweighted average recall (balanced accuracy), WA = accuracy, macro-F1
  (scikit-learn). Reproduce the table: `ser evaluate` (re-scores the fold artifacts in `cv/`).

## Results

**Read first what holds best.** On voices and languages the model never trained on, the
7 labels carry over poorly; arousal (`segments.arousal`, high- against low-arousal
emotions) and anger against the rest hold best. Rank calls, channels and quarters by
those and treat the 7-class label as a hint. An AUC of 0.5 is chance and 1 a perfect
ranking: where a held-out row stays near 0.6, no output of this model is reliable on that
kind of speech without listening.{_rescored_note(cv_record)}

{results_table(meta, cv_record)}

RAVDESS 7-class clip UA **{m['ua']:.3f} ± {s['ua']:.3f}** (mean ± std over 6 folds; chance 0.143),
telephone {m['telephone_ua']:.3f} ± {s['telephone_ua']:.3f}, window-level ECE {m['ece']:.3f} per fold{pooled_ece}.{cal_results}
TurEV-DB never trained on: 4-class UA **{loco.get('ua', float('nan')):.3f}** (chance 0.25).

### Level and speech detection

{_robustness_lines(rob)}

## Known failure modes

- **Acted, not spontaneous speech**: trained on acted corpora (read sentences and words);
  spontaneous call-center speech is subtler. Expect lower accuracy on real calls than above,
  and treat single windows as noisy: read shares and episodes, not seconds.
- **Languages**: trained on English and Turkish speakers; on Italian (EMOVO, never
  trained on) the 7 labels fall to the UA above while arousal and anger hold (AUCs above).
  Other languages are untested here.
- **Class confusions**: fear, surprise and happy (high arousal) and neutral / sad (low
  arousal) are the most confused pairs (`confusion.png`).
- **Music on hold, TV, background talk**: the speech detector rejects silence, noise, hum
  and line tones, not music or other voices: those windows get an emotion.
- **Very quiet 16-bit recordings**: the output does not depend on the gain as such (24-bit
  rows above), but a 16-bit file's quantisation noise is fixed at -101 dBFS: when speech
  sits within about 40 dB of it (speech level under -60 dBFS) the model hears that noise
  and the emotions and flags drift (16-bit rows above). Record quiet lines in 24-bit or
  raise the recorder's gain.
- **Noise-only files shorter than a window** (2 s): a window is padded with digital silence
  past the end of the recording, and that silence becomes its noise floor, so a file of
  0.5-1.5 s that holds only line noise is read as speech and gets an emotion (a 3 s one is
  not). Leave out calls with `duration_s` under 2 when reading shares.
- **Overlapping speakers** on one channel are scored as one voice.

## How to reproduce

```bash
ser train ../shared/corpora          # 6-fold CV, leave-one-corpus-out, this artifact ({hours} on 2 cores)
ser evaluate ../shared/corpora       # re-score the fold artifacts: the tables above (--write: store the transfer AUCs in cv.json)
python -m bench.robustness           # level invariance and detector coverage
python -m training.model_card        # this card
```

Each ensemble member trains in a process of its own. An interrupted `ser train` resumes:
run the same command again and the runs it finished are re-scored, not retrained
(`--no-resume` retrains everything).
"""


def update_readme(readme: Path, table: str) -> bool:
    """Replace the text between ``<!-- cv-results:begin -->`` and ``<!-- cv-results:end -->``
    in ``readme`` with ``table``. Returns whether the file changed.

    Raises:
        ValueError: the markers are missing.
    """
    import re

    text = readme.read_text()
    pat = re.compile(r"(<!-- cv-results:begin -->\n).*?(\n<!-- cv-results:end -->)", flags=re.S)
    if not pat.search(text):
        raise ValueError(f"{readme} has no cv-results markers")
    new = pat.sub(lambda m: m.group(1) + table + m.group(2), text)
    if new != text:
        readme.write_text(new)
    return new != text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.model_card", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--robustness", type=Path, default=None)
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed card differs")
    ap.add_argument("--readme", type=Path, default=None,
                    help="also write the results table into this README's cv-results block")
    args = ap.parse_args(argv)
    text = render(args.model, args.robustness)
    if args.readme and not args.check:
        meta = json.loads((args.model / "artifact.json").read_text())
        update_readme(args.readme, results_table(meta, json.loads((args.model / "cv.json").read_text())))
    card = args.model / "README.md"
    if args.check:
        same = card.is_file() and card.read_text() == text
        print(f"{card}: {'up to date' if same else 'differs from its records'}")
        return 0 if same else 1
    card.write_text(text)
    print(f"written {card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
