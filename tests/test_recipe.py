"""The cross-validated training recipe (training/cv.py), TurEV-DB loading, balancing and calibration."""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_lib.labels import EMOTIONS
from ser_lib.synth import speech_like
from training.corpora import Clip, default_corpora_root, discover, load_turev
from training.cv import (FOLDS_PATH, assign, build_folds, cv_table, format_cv_table, load_folds, loco_runs,
                         subset_scores, transfer_aucs)
from training.dataset import WindowSet
from training.evaluate import calibration, ece_if_calibrated, fit_temperature
from training.fit import sample_weights

# --------------------------------------------------------------------------- TurEV-DB


def _touch_audio(path: Path, seconds: float = 0.6, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, speech_like(seconds, 16000, np.random.default_rng(seed)), 16000, subtype="PCM_16")
    return path


def test_turev_loader_reads_folder_and_code(tmp_path):
    root = tmp_path / "turev"
    _touch_audio(root / "Angry" / "1157_kz_acik.wav")
    _touch_audio(root / "Calm" / "1234_sk_beste.flac")
    _touch_audio(root / "Happy" / "6783_mt_cay.wav")
    _touch_audio(root / "Sad" / "7895_hl_algi.wav")
    _touch_audio(root / "Sad" / "7895_kz_yanlis.wav")      # code disagrees with its folder
    _touch_audio(root / "Sad" / "7895_xx_kelime.wav")      # unknown code
    _touch_audio(root / "Sad" / "readme_notes.wav")        # not the naming scheme
    res = load_turev(root)
    got = {(c.speaker, c.emotion, c.text, c.original_label) for c in res.clips}
    assert got == {("turev:1157", "angry", "acik", "kz"), ("turev:1234", "neutral", "beste", "sk"),
                   ("turev:6783", "happy", "cay", "mt"), ("turev:7895", "sad", "algi", "hl")}
    assert res.skipped == {"turev:label_conflict": 1, "turev:unknown_emotion": 1, "turev:bad_name": 1}
    # discover() recognises the folder by name, and by file names under another name
    assert len(discover(tmp_path).clips) == 4
    other = tmp_path / "renamed"
    root.rename(other)
    assert {c.corpus for c in discover(other).clips} == {"turev"}


CORPORA = default_corpora_root()


@pytest.mark.skipif(not (CORPORA / "turev").is_dir(),
                    reason=f"needs TurEV-DB at {CORPORA / 'turev'} (set SER_CORPORA); not shipped with the repo")
def test_real_turev_has_four_labels_and_named_speakers():
    res = load_turev(CORPORA / "turev")
    assert res.clips and not res.skipped
    assert {c.emotion for c in res.clips} == {"angry", "happy", "neutral", "sad"}
    assert all(c.speaker[len("turev:"):].isdigit() for c in res.clips)
    assert len({c.speaker for c in res.clips}) >= 2


# --------------------------------------------------------------------------- folds

def _clip(corpus, speaker, text="01", emotion="angry"):
    return Clip(f"/c/{corpus}/{speaker}/{text}-{emotion}.wav", corpus, f"{corpus}:{speaker}", emotion, text, "x")


def test_published_folds_are_the_built_ones_and_valid():
    folds = load_folds(FOLDS_PATH)
    built = build_folds(tess_val_words=folds["tess"]["val_words"])
    assert folds == json.loads(json.dumps(built))
    test = folds["ravdess"]["test"]
    assert sorted(a for f in test for a in f) == [f"{i:02d}" for i in range(1, 25)]
    for fold, val in zip(test, folds["ravdess"]["val"]):
        assert sum(int(a) % 2 for a in fold) == len(fold) // 2        # gender-balanced: half odd (male)
        assert not set(fold) & set(val) and len(val) == 2
        assert {int(a) % 2 for a in val} == {0, 1}                   # one male, one female validation actor


def test_every_run_keeps_test_validation_and_training_speakers_apart():
    folds = load_folds(FOLDS_PATH)
    clips = ([_clip("ravdess", f"{a:02d}") for a in range(1, 25)]
             + [_clip("tess", s, w) for s in ("OAF", "YAF") for w in ("bite", folds["tess"]["val_words"][0])]
             + [_clip("turev", s) for s in ("1157", "1234", "1984")]
             + [_clip("emovo", s) for s in ("f1", "m3")])
    assert loco_runs(folds) == {"loco": "turev", "loco-emovo": "emovo"}
    for run in [*range(6), "loco", "loco-emovo"]:
        parts = {}
        for c in clips:
            parts.setdefault(assign(c, folds, run), set()).add((c.corpus, c.speaker if c.corpus != "tess" else c.text))
        assert not parts.get("test", set()) & parts.get("train", set()), run
        assert not parts.get("val", set()) & parts.get("train", set()), run
        assert not parts.get("val", set()) & parts.get("test", set()), run
    # every RAVDESS actor is tested exactly once over the folds
    tested = [c.speaker for run in range(6) for c in clips if assign(c, folds, run) == "test"]
    assert sorted(tested) == sorted(c.speaker for c in clips if c.corpus == "ravdess")
    # leave-one-corpus-out tests on all of TurEV-DB and trains on none of it
    assert {assign(c, folds, "loco") for c in clips if c.corpus == "turev"} == {"test"}
    # ... and on all of EMOVO in its own run, where TurEV-DB is as in the folds; EMOVO trains elsewhere
    assert {assign(c, folds, "loco-emovo") for c in clips if c.corpus == "emovo"} == {"test"}
    assert {assign(c, folds, "loco-emovo") for c in clips if c.corpus == "turev"} == {"train", "val"}
    assert {assign(c, folds, run) for run in [*range(6), "loco"] for c in clips if c.corpus == "emovo"} == {"train"}
    assert not any(assign(c, folds, "loco-emovo") == "test" for c in clips if c.corpus != "emovo")
    with pytest.raises(KeyError):
        assign(clips[0], folds, "loco-nope")
    assert {assign(c, folds, "final") for c in clips} == {"train"}


def test_bad_fold_files_are_refused(tmp_path):
    folds = build_folds(tess_val_words=["bite"])
    folds["ravdess"]["val"][0] = [folds["ravdess"]["test"][0][0], "05"]
    p = tmp_path / "folds.json"
    p.write_text(json.dumps(folds))
    with pytest.raises(ValueError, match="own test actors"):
        load_folds(p)
    with pytest.raises(ValueError):
        build_folds(k=5)


# --------------------------------------------------------------------------- balancing and scores

def _windowset(corpus: list[str], y: list[int]) -> WindowSet:
    n = len(y)
    y = np.asarray(y)
    return WindowSet(x=np.zeros((n, 1, 1), np.float32), y=y, clip=np.arange(n), start=np.zeros(n, np.int64),
                     clip_id=np.array([f"/c/{i}.wav" for i in range(n)]), clip_label=y,
                     clip_corpus=np.array(corpus), clip_fallback=np.zeros(n, bool), clip_windows=np.ones(n, np.int64))


def test_corpus_class_weights_give_every_group_the_same_total():
    ws = _windowset(["tess"] * 6 + ["turev"] * 3, [0, 0, 0, 0, 1, 1, 0, 1, 1])
    w = sample_weights(ws, "corpus_class")
    groups = {}
    for c, y, wi in zip(ws.corpus, ws.y, w):
        groups[(c, y)] = groups.get((c, y), 0.0) + wi
    totals = np.array(list(groups.values()))
    np.testing.assert_allclose(totals, totals[0])
    assert w.mean() == pytest.approx(1.0)
    # plain class weights ignore the corpus: tess's 4 angry windows and turev's 1 share a weight
    wc = sample_weights(ws, "class")
    assert wc[0] == wc[6]
    assert (sample_weights(ws, False) == 1).all()


def test_four_class_scores_ignore_the_other_emotions():
    # clip 0 angry: mostly "disgust" (not a TurEV class) then angry -> angry among the four
    probs = np.zeros((3, len(EMOTIONS)), np.float32)
    probs[0, EMOTIONS.index("disgust")], probs[0, EMOTIONS.index("angry")] = 0.7, 0.3
    probs[1, EMOTIONS.index("sad")] = 1.0       # true neutral, predicted sad
    probs[2, EMOTIONS.index("happy")] = 1.0     # true happy
    ws = _windowset(["turev"] * 3, [EMOTIONS.index(e) for e in ("angry", "neutral", "happy")])
    s = subset_scores(ws, probs, ("angry", "happy", "neutral", "sad"))
    assert s["n"] == 3 and s["wa"] == pytest.approx(2 / 3) and s["ua"] == pytest.approx(2 / 3)


def test_temperature_scaling_fixes_overconfidence_and_ece_measures_it():
    rng = np.random.default_rng(0)
    n, k = 4000, 4
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.0                     # informative, but ...
    sharp = np.exp(3 * logits)                          # ... made 3x over-confident
    probs = sharp / sharp.sum(1, keepdims=True)
    t = fit_temperature(probs, y)
    assert 2.0 < t < 4.5
    from ser_lib.runtime import calibrate
    before, after = calibration(probs, y)["ece"], calibration(calibrate(probs, t), y)["ece"]
    assert after < 0.03 < before
    assert np.argmax(calibrate(probs, t), 1).tolist() == np.argmax(probs, 1).tolist()  # argmax unchanged


def test_calibration_bins_count_every_sample():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.55, 0.45]])
    cal = calibration(probs, np.array([0, 1, 1, 0]), n_bins=10)
    assert sum(b["n"] for b in cal["bins"]) == 4
    # bins (0.8, 0.9]: 0.9 right; (0.7, 0.8]: 0.8 right; (0.5, 0.6]: 0.6 wrong and 0.55 right
    expect = 1 / 4 * abs(1 - 0.9) + 1 / 4 * abs(1 - 0.8) + 2 / 4 * abs(0.5 - (0.6 + 0.55) / 2)
    assert cal["ece"] == pytest.approx(expect)
    assert [b["n"] for b in cal["bins"]][5:9] == [2, 0, 1, 1]


def _calibrated_sample(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of 4 classes and labels drawn from them: calibrated by construction."""
    probs = rng.dirichlet(np.full(4, 0.7), size=n)
    y = np.array([rng.choice(4, p=p) for p in probs])
    return probs, y


def test_ece_if_calibrated_is_the_sampling_floor_of_a_calibrated_model():
    rng = np.random.default_rng(5)
    small, large = [], []
    for _ in range(40):
        small.append(calibration(*_calibrated_sample(300, rng)))
        large.append(calibration(*_calibrated_sample(3000, rng)))
    # a calibrated model's measured ECE is not 0: its mean over test sets is the floor the
    # function predicts from one of them, and the floor falls about as 1 / sqrt(n)
    for cals in (small, large):
        measured = np.mean([c["ece"] for c in cals])
        predicted = np.mean([ece_if_calibrated(c, draws=400) for c in cals])
        assert predicted == pytest.approx(measured, rel=0.25)
    ratio = np.mean([ece_if_calibrated(c, 400) for c in small]) / np.mean([ece_if_calibrated(c, 400) for c in large])
    assert 2.3 < ratio < 4.3                                  # sqrt(10) = 3.16
    # an over-confident model sits far above its floor
    probs, y = _calibrated_sample(3000, rng)
    sharp = probs ** 3 / (probs ** 3).sum(1, keepdims=True)
    cal = calibration(sharp, y)
    assert cal["ece"] > 4 * ece_if_calibrated(cal)
    assert ece_if_calibrated(cal, seed=1) == ece_if_calibrated(cal, seed=1)
    assert ece_if_calibrated(calibration(np.zeros((0, 3)), np.zeros(0, int))) == 0.0


def test_cv_table_pools_the_folds_test_windows():
    rng = np.random.default_rng(6)
    folds, all_p, all_y = [], [], []
    for i, n in enumerate((200, 500, 350)):
        probs, y = _calibrated_sample(n, rng)
        probs = probs ** (1 + i) / (probs ** (1 + i)).sum(1, keepdims=True)    # folds differ
        all_p.append(probs), all_y.append(y)
        clip = {"ua": 0.5 + i / 10, "wa": 0.5, "macro_f1": 0.5, "n": 10}
        folds.append({"run": i, "scores": {"test": {"ravdess": {"clip": clip}},
                                           "test_telephone": {"ravdess": {"clip": clip}},
                                           "calibration": calibration(probs, y)}})
    table = cv_table(folds)
    whole = calibration(np.concatenate(all_p), np.concatenate(all_y))
    assert table["pooled"]["windows"] == 1050
    assert table["pooled"]["ece"] == pytest.approx(whole["ece"])
    assert table["mean"]["ua"] == pytest.approx(0.6)
    assert table["pooled"]["fold_ece_if_calibrated"] > table["pooled"]["ece_if_calibrated"]
    assert f"**{whole['ece']:.3f}**" in format_cv_table(table)


# --------------------------------------------------------------------------- end to end

def _write_corpora(root: Path) -> None:
    rng = np.random.default_rng(3)
    emo = {"01": "neutral", "03": "happy", "04": "sad", "05": "angry"}
    for actor in range(1, 25):
        for code in emo:
            p = root / "ravdess" / f"Actor_{actor:02d}" / f"03-01-{code}-01-01-01-{actor:02d}.wav"
            _touch_audio(p, 1.2, int(rng.integers(1 << 30)))
    for spk in ("OAF", "YAF"):
        for word in ("bite", "chalk"):
            for e in ("angry", "sad"):
                _touch_audio(root / "tess" / f"{spk}_{e}" / f"{spk}_{word}_{e}.wav", 0.8, int(rng.integers(1 << 30)))
    for spk in ("1157", "1234"):
        for code, folder in (("kz", "Angry"), ("hl", "Sad")):
            _touch_audio(root / "turev" / folder / f"{spk}_{code}_kelime.wav", 0.6, int(rng.integers(1 << 30)))
    for spk in ("f1", "m1"):
        for code in ("rab", "gio", "neu", "tri", "pau"):
            _touch_audio(root / "emovo" / spk / f"{code}-{spk}-b1.wav", 0.8, int(rng.integers(1 << 30)))


def _tiny_recipe(tmp_path, monkeypatch, ensemble_seeds=None):
    """Tiny corpora, a 1-epoch recipe of a tiny cnn1d, 2 folds: ``(roots, conf, out, kw)``."""
    import training.cv as cv
    import training.dataset as dataset
    from training.config import load_conf

    monkeypatch.setattr(dataset, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(cv, "CACHE_DIR", tmp_path / "cache")
    roots = tmp_path / "corpora"
    _write_corpora(roots)
    conf = load_conf(None)
    # EMOVO as a training corpus too (the shipped conf leaves it out): exercises its LOCO run
    conf["corpora"] = conf["corpora"] + ["emovo"]
    # no distillation teacher (its encoder head is tests/test_teacher.py's): the recipe's own steps
    conf["train"]["distill_teacher"] = None
    conf["ensemble_seeds"] = ensemble_seeds
    conf["augment"]["copies"] = 1
    conf["train"].update(epochs=1, batch_size=32, warmup_epochs=0)
    conf["models"]["cnn1d"] = {"filters": [8, 8, 8, 8], "dense": 8}
    folds_file = tmp_path / "folds.json"  # 2 folds of 12 actors: the published file's rules, fewer fits
    folds_file.write_text(json.dumps(build_folds(k=2, tess_val_words=["chalk"])))
    kw = dict(folds_path=folds_file, processes=1, progress=False, echo=lambda *a: None)
    return roots, conf, tmp_path / "model", kw


def _unheard_temperature(out, roots, conf) -> float:
    """The unheard_corpora temperature computed here from the pieces: each LOCO run's artifact,
    uncalibrated, on all of its left-out corpus (TurEV-DB, EMOVO), pooled, NLL-fitted."""
    from ser_lib.features import FeatureConfig
    from ser_lib.runtime import Predictor
    from ser_lib.speech import SpeechConfig
    from training.corpora import discover
    from training.dataset import build_windows
    from training.evaluate import fit_temperature

    probs, ys = [], []
    for run, corpus in (("loco", "turev"), ("loco-emovo", "emovo")):
        pred = Predictor.from_path(out / "cv" / run)
        pred.meta.temperature = 1.0
        ws = build_windows([c for c in discover([roots]).clips if c.corpus == corpus], FeatureConfig(),
                           SpeechConfig(), float(conf["hop_s"]), cache_dir=None, processes=1, progress=False)
        probs.append(pred.predict(ws.x))
        ys.append(ws.y)
    return fit_temperature(np.vstack(probs), np.concatenate(ys))


def test_tiny_recipe_writes_fold_artifacts_and_evaluate_reproduces_its_table(tmp_path, monkeypatch):
    import training.cv as cv
    from ser_lib.runtime import Predictor

    roots, conf, out, kw = _tiny_recipe(tmp_path, monkeypatch)
    record = cv.run_recipe([roots], conf, out, **kw)

    assert "ensemble" not in record and not (out / "members").exists()
    for i in range(2):
        meta = json.loads((out / "cv" / f"fold-{i}" / "artifact.json").read_text())
        assert meta["training"]["run"] == i and meta["calibration"]["temperature"] > 0
    assert (out / "cv" / "loco" / "artifact.json").is_file()
    assert (out / "reliability.png").is_file() and (out / "confusion.png").is_file()
    table = record["cv"]["table"]
    assert [r["fold"] for r in table["folds"]] == list(range(2))
    assert all(r["clips"] == 48 for r in table["folds"])               # 12 actors x 4 clips per fold
    assert table["mean"]["ua"] == pytest.approx(np.mean([r["ua"] for r in table["folds"]]))
    assert record["loco"]["turev_4class"]["n"] == 4                     # all of TurEV-DB, 4 clips
    # EMOVO left out in a run of its own: 7-class (5 emotions present) and 4-class scores, transfer AUCs
    emo = record["loco_emovo"]
    assert (out / "cv" / "loco-emovo" / "artifact.json").is_file() and emo["run"] == "loco-emovo"
    assert emo["emovo_7class"]["n"] == 10 and emo["emovo_4class"]["n"] == 8   # fear is not one of the 4
    assert 0 <= emo["transfer"]["arousal"] <= 1 and emo["transfer"]["n"] == 10
    assert "Leave-one-corpus-out, EMOVO (not trained on): 7 classes" in cv.format_record(record)
    # the shipped artifact: trained on everything, with the folds' median epoch; its temperature
    # (calibration: unheard_corpora, the default) is fitted on the LOCO runs' test windows,
    # scored uncalibrated by the models that never trained on them, and every fold carries it;
    # the LOCO runs keep the folds' validation median
    final = json.loads((out / "artifact.json").read_text())
    fitted = [r["temperature_fitted"] for r in record["cv"]["runs"]]
    t_unheard = _unheard_temperature(out, roots, conf)
    cal = record["calibration"]
    assert cal["rule"] == "unheard_corpora" and cal["temperature"] == pytest.approx(t_unheard)
    assert cal["validation_temperature"] == pytest.approx(float(np.median(fitted)))
    assert set(cal["fitted_on_windows"]) == {"turev", "emovo"} and min(cal["fitted_on_windows"].values()) > 0
    assert final["calibration"]["temperature"] == pytest.approx(t_unheard)
    assert final["training"]["temperature_rule"] == "unheard_corpora"
    for i, r in enumerate(record["cv"]["runs"]):
        assert r["temperature"] == pytest.approx(t_unheard)
        meta = json.loads((out / "cv" / f"fold-{i}" / "artifact.json").read_text())
        assert meta["calibration"]["temperature"] == pytest.approx(t_unheard)
    for run in ("loco", "loco-emovo"):
        meta = json.loads((out / "cv" / run / "artifact.json").read_text())
        assert meta["calibration"]["temperature"] == pytest.approx(float(np.median(fitted)))
    assert 0 <= record["loco"]["ece"] <= 1 and record["loco"]["ece"] == pytest.approx(record["loco"]["scores"]["ece"])
    assert final["training"]["run"] == "final" and final["metrics"]["cv"]["mean"] == table["mean"]
    Predictor.from_path(out)
    # the shipped artifact carries the LiteRT flatbuffer the job runs, as every fold artifact does
    from ser_lib.artifact import read_bytes
    assert read_bytes(out).runtime_bytes and read_bytes(out / "cv" / "fold-0").runtime_bytes
    assert table["pooled"]["windows"] > 0 and 0 <= table["pooled"]["ece"] <= 1

    again = cv.evaluate_cv(out, [roots], **kw)
    for got, want in zip(again["table"]["folds"], table["folds"]):
        for k in ("ua", "wa", "macro_f1", "telephone_ua", "ece", "clips"):
            assert got[k] == pytest.approx(want[k], abs=1e-9), (got["fold"], k)
    assert again["loco"]["ua"] == pytest.approx(record["loco"]["turev_4class"]["ua"])
    assert again["extra_loco"][0]["emovo_7class"]["ua"] == pytest.approx(emo["emovo_7class"]["ua"])
    assert final["metrics"]["loco_emovo"]["7class"]["ua"] == pytest.approx(emo["emovo_7class"]["ua"])
    # the transfer AUCs it re-scores are the recipe's, and ser evaluate --write stores them where ser train does
    t = again["transfer"]
    assert [f["arousal"] for f in t["folds"]] == pytest.approx(
        [r["scores"]["transfer"]["ravdess"]["arousal"] for r in record["cv"]["runs"]])
    assert t["loco"]["loco"]["transfer"] == pytest.approx(record["loco"]["transfer"])
    assert t["loco"]["loco-emovo"]["transfer"] == pytest.approx(emo["transfer"]) and t["unseen"] == {}
    bare = json.loads(json.dumps(record))
    for r in bare["cv"]["runs"]:
        del r["scores"]["transfer"]
    del bare["loco"]["transfer"], bare["loco_emovo"]["transfer"]
    assert cv.transfer_table(bare) == ""   # a record from before the AUCs: no table
    stored = cv.store_transfer(bare, t, "2026-12-07")
    assert stored["transfer_rescored"] == "2026-12-07" and cv.transfer_table(stored) == cv.transfer_table(record)
    rows = cv.transfer_table(record).splitlines()[2:]
    assert [r.split(" | ")[0] for r in rows] == ["| RAVDESS, actors held out (2-fold CV, mean ± std)",
                                                 "| TurEV-DB (Turkish, leave-one-corpus-out run)",
                                                 "| EMOVO (Italian, leave-one-corpus-out run)"]
    assert rows[2].split(" | ")[1:4] == [str(emo["transfer"]["n"]), f"{emo['transfer']['arousal']:.3f}",
                                         f"{emo['transfer']['anger']:.3f}"]
    # a corpus the shipped artifact never trained on is scored whole by it ("unseen")
    import shutil
    older = tmp_path / "older"
    shutil.copytree(out, older)
    rec = json.loads((older / "cv.json").read_text())
    del rec["corpora"]["emovo"]
    (older / "cv.json").write_text(json.dumps(rec))
    unseen = cv.evaluate_cv(older, [roots], **kw)["transfer"]["unseen"]
    assert list(unseen) == ["emovo"] and unseen["emovo"]["emovo_7class"]["n"] == 10
    assert unseen["emovo"]["transfer"]["n"] == 10 and 0 <= unseen["emovo"]["transfer"]["arousal"] <= 1

    # post-hoc recalibration from the recorded temperatures is idempotent, and refitting them
    # on the validation windows finds the temperatures the recipe fitted
    rec2 = cv.recalibrate(out, [roots], **kw)
    assert [f["ece"] for f in rec2["cv"]["table"]["folds"]] == pytest.approx([f["ece"] for f in table["folds"]])
    assert [f["ua"] for f in rec2["cv"]["table"]["folds"]] == pytest.approx([f["ua"] for f in table["folds"]])
    rec3 = cv.recalibrate(out, [roots], refit=True, **kw)
    assert [r["temperature_fitted"] for r in rec3["cv"]["runs"]] == pytest.approx(fitted, rel=1e-3)
    # the other rule (calibration: validation_speakers), post hoc: each fold gets the median of
    # the other folds' temperatures, the final artifact the median of all
    rec = json.loads((out / "cv.json").read_text())
    rec["conf"]["calibration"] = "validation_speakers"
    (out / "cv.json").write_text(json.dumps(rec))
    rec5 = cv.recalibrate(out, [roots], **kw)
    assert rec5["calibration"]["rule"] == "validation_speakers"
    assert json.loads((out / "artifact.json").read_text())["calibration"]["temperature"] == \
        pytest.approx(float(np.median(fitted)))
    for i, r in enumerate(rec5["cv"]["runs"]):
        loo = float(np.median([f for j, f in enumerate(fitted) if j != i]))
        assert r["temperature"] == pytest.approx(loo)
        meta = json.loads((out / "cv" / f"fold-{i}" / "artifact.json").read_text())
        assert meta["calibration"]["temperature"] == pytest.approx(loo)
    rec["conf"]["calibration"] = "unheard_corpora"
    (out / "cv.json").write_text(json.dumps(rec))
    cv.recalibrate(out, [roots], **kw)

    # an interrupted ser train resumes: the same command keeps every finished run (its weights
    # are not touched) and re-scores it; another seed or feature layout is not "finished"
    weights = {d: (d / "model.keras").read_bytes() for d in [out / "cv" / "fold-0", out / "cv" / "loco", out]}
    said = []
    rec4 = cv.run_recipe([roots], conf, out, **{**kw, "echo": said.append})
    assert sum("resumed" in line for line in said) == 5                 # 2 folds, 2 loco, final
    assert said[-1].strip() == cv.format_record(json.loads((out / "cv.json").read_text()))  # the stored table
    assert all((d / "model.keras").read_bytes() == w for d, w in weights.items())
    assert [f["ua"] for f in rec4["cv"]["table"]["folds"]] == pytest.approx([f["ua"] for f in table["folds"]])
    from ser_lib.features import FeatureConfig
    from ser_lib.speech import SpeechConfig
    fc, sc = FeatureConfig(), SpeechConfig()
    assert cv.finished_run(out / "cv" / "fold-0", 0, conf, fc, sc)["best_epoch"] == 1
    assert cv.finished_run(out / "cv" / "fold-0", 1, conf, fc, sc) is None          # another run's artifact
    assert cv.finished_run(out / "cv" / "fold-0", 0, {**conf, "seed": 5}, fc, sc) is None
    assert cv.finished_run(out / "cv" / "fold-0", 0, conf, FeatureConfig(pitch=not fc.pitch), sc) is None
    assert cv.finished_run(out / "cv" / "fold-9", 9, conf, fc, sc) is None          # nothing there
    # the temperature rule acts after training: a run is finished whatever it says
    assert cv.finished_run(out / "cv" / "fold-0", 0, {**conf, "calibration": "validation_speakers"}, fc, sc)


def test_tiny_recipe_only_loco_into_a_fresh_folder(tmp_path, monkeypatch):
    """`ser train --only loco` before any CV run: the LOCO run and its record, no CV table."""
    import training.cv as cv

    roots, conf, out, kw = _tiny_recipe(tmp_path, monkeypatch)
    said = []
    record = cv.run_recipe([roots], conf, out, only=["loco"], **{**kw, "echo": said.append})
    assert "cv" not in record and (out / "cv" / "loco" / "artifact.json").is_file()
    assert json.loads((out / "cv.json").read_text())["loco"]["turev_4class"]["n"] == 4
    assert said[-1].strip().startswith("Leave-one-corpus-out, TurEV-DB")
    assert format_cv_table(None, None) == ""


def test_tiny_ensemble_recipe_serves_the_mean_of_its_members(tmp_path, monkeypatch):
    import training.cv as cv
    from ser_lib.runtime import Predictor

    roots, conf, out, kw = _tiny_recipe(tmp_path, monkeypatch, ensemble_seeds=[3, 4])
    # as ser train runs it: each member in a spawned process of its own (which sees neither
    # this test's monkeypatched cache folder nor a lambda, hence no cache and print)
    kw.update(cache=False, echo=print)
    record = cv.run_recipe([roots], conf, out, only=["cv", "final"], **kw)

    members = [out / "members" / f"seed-{s}" for s in (3, 4)]
    assert record["ensemble"]["seeds"] == [3, 4]
    assert (out / "reliability.png").is_file() and (out / "confusion.png").is_file()
    rng = np.random.default_rng(0)
    from ser_lib.features import FeatureConfig
    fc = FeatureConfig()
    x = rng.normal(0, 10, size=(5, fc.frames_per_window, fc.n_features)).astype(np.float32)
    for sub in (Path("cv") / "fold-0", Path("cv") / "fold-1", Path(".")):
        metas = [json.loads((m / sub / "artifact.json").read_text()) for m in members]
        assert [m["training"]["seed"] for m in metas] == [3, 4]
        ens = Predictor.from_path(out / sub, runtime="keras")
        ens.meta.temperature = 1.0
        parts = []
        for m in members:
            p = Predictor.from_path(m / sub, runtime="keras")
            p.meta.temperature = 1.0
            parts.append(p.predict(x))
        np.testing.assert_allclose(ens.predict(x), np.mean(parts, axis=0), atol=2e-5)
    # the ensemble is calibrated and scored as a whole; ser evaluate reproduces its table
    final = json.loads((out / "artifact.json").read_text())
    fitted = [r["temperature_fitted"] for r in record["cv"]["runs"]]
    assert final["calibration"]["temperature"] == pytest.approx(float(np.median(fitted)))
    assert [m["seed"] for m in final["training"]["ensemble"]] == [3, 4]
    again = cv.evaluate_cv(out, [roots], **kw)
    for got, want in zip(again["table"]["folds"], record["cv"]["table"]["folds"]):
        assert got["ua"] == pytest.approx(want["ua"], abs=1e-9)
        assert got["ece"] == pytest.approx(want["ece"], abs=1e-9)


def test_bad_ensemble_seeds_are_refused():
    from ser_lib.errors import ConfigError
    from training.cv import ensemble_seeds

    assert ensemble_seeds({"ensemble_seeds": None}) == [] and ensemble_seeds({}) == []
    assert ensemble_seeds({"ensemble_seeds": [1, 2]}) == [1, 2]
    for bad in ([1], [1, 1], ["a", 2], 5, [True, 2]):
        with pytest.raises(ConfigError, match="ensemble_seeds"):
            ensemble_seeds({"ensemble_seeds": bad})


REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "ser-cnn"


def test_readme_model_card_and_artifact_agree():
    """The README's CV results block and the model card are rendered from the shipped
    artifact's own records (training/model_card.py); this keeps the three in agreement."""
    import re

    from training.model_card import render, results_table

    meta = json.loads((SHIPPED / "artifact.json").read_text())
    record = json.loads((SHIPPED / "cv.json").read_text())
    table = results_table(meta, record)
    readme = (REPO / "docs" / "model.md").read_text()
    block = re.search(r"<!-- cv-results:begin -->\n(.*?)\n<!-- cv-results:end -->", readme, flags=re.S)
    assert block, "docs/model.md has no cv-results block"
    assert table in block.group(1)
    assert (SHIPPED / "README.md").read_text() == render(SHIPPED)
    # the artifact's summary is the mean of cv.json's folds
    assert meta["metrics"]["cv"]["mean"]["ua"] == pytest.approx(record["cv"]["table"]["mean"]["ua"])
    assert [f["ua"] for f in meta["metrics"]["cv"]["folds"]] == [f["ua"] for f in record["cv"]["table"]["folds"]]
    for i in range(len(record["cv"]["table"]["folds"])):
        assert (SHIPPED / "cv" / f"fold-{i}" / "artifact.json").is_file()


def test_a_member_process_ends_when_ser_train_is_killed(tmp_path):
    """kill -9 of ser train must not leave an ensemble member training alone."""
    import os
    import signal
    import subprocess
    import sys
    import time

    def running(pid):  # a zombie (exited, not yet reaped by its new parent) has ended
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    pid_file = tmp_path / "member.pid"
    # the "ser train" process starts a member that watches it, then both would sleep a minute
    parent = subprocess.Popen([sys.executable, "-c", f"""
import os, subprocess, sys, time
code = ("import os, time; from training.cv import exit_with_parent; "
        "exit_with_parent({{ppid}}, poll_s=0.1); open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)")
subprocess.Popen([sys.executable, "-c", code.replace("{{ppid}}", str(os.getpid()))])
time.sleep(60)
"""], cwd=Path(__file__).resolve().parents[1])
    deadline = time.time() + 60
    while not pid_file.is_file() and time.time() < deadline:
        time.sleep(0.1)
    child = int(pid_file.read_text())
    assert running(child)                    # the member runs
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 20
    while time.time() < deadline and running(child):
        time.sleep(0.1)
    if running(child):
        os.kill(child, signal.SIGKILL)
        pytest.fail("the member process outlived its killed parent")


def test_ua_over_the_classes_present_does_not_warn_about_the_others():
    """TurEV-DB has 4 of the 7 emotions; predictions of the other 3 are misses, not a warning."""
    import warnings
    from training.evaluate import scores

    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 5, 1, 1])           # emotion 5 is not in y_true
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = scores(y_true, y_pred)
    assert s["ua"] == pytest.approx((0.5 + 1.0) / 2)


def test_model_card_gain_table_reports_the_in_range_share():
    """The card's level-invariance table shows, per gain, the change share over the windows
    peaking in the detector's specified range and the smoothed-emotion change share when
    bench.robustness measured them, and says
    'not measured' for results written before it existed."""
    from training.model_card import _robustness_lines

    def per_gain(in_range):
        d = {"windows": 100, "flag_changed": 0.3, "emotion_changed": 0.1, "either_changed": 0.4}
        if in_range:
            d["smoothed_emotion_changed"] = 0.05
            d["in_range"] = {"min_peak_dbfs": -60.0, "windows": 40, "flag_changed": 0.0,
                             "emotion_changed": 0.025, "either_changed": 0.025}
        return {"-30": d}

    rob = {"gain_invariance": {"calls": 1, "minutes_each": 3.0,
                               "per_format": {"PCM_16": per_gain(True), "PCM_16_rescaled": per_gain(True)}}}
    text = _robustness_lines(rob)
    row = next(line for line in text.splitlines() if line.startswith("| 16-bit WAV | -30 dB"))
    assert row.split("|")[4:8] == [" 10.00% ", " 40.00% ", " 2.50% of 40 ", " 5.00% "]
    assert any(line.startswith("| 16-bit WAV, rescaled | -30 dB") for line in text.splitlines())
    assert "*16-bit WAV, rescaled*" in text
    assert "at least -60 dBFS" in text and "*Smoothed emotion*" in text
    old = _robustness_lines({"gain_invariance": {"calls": 1, "minutes_each": 3.0,
                                                 "per_format": {"PCM_16": per_gain(False)}}})
    assert "not measured | not measured |" in old and "peaking in range*" not in old
    assert "*Smoothed emotion*" not in old and "rescaled" not in old


def test_transfer_aucs_rank_clips_by_their_summed_probabilities():
    """Arousal / anger / negative AUCs against scikit-learn's, on clips built by hand."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    labels = [EMOTIONS.index(e) for e in ("angry", "happy", "sad", "neutral", "disgust", "fear", "sad", "surprise")]
    ws = _windowset(["emovo"] * len(labels), labels)
    probs = rng.dirichlet(np.ones(len(EMOTIONS)), size=len(labels))
    got = transfer_aucs(ws, probs)
    lab = np.array(labels)
    idx = lambda names: [EMOTIONS.index(e) for e in names]  # noqa: E731
    keep = lab != EMOTIONS.index("disgust")
    hi = idx(["angry", "happy", "fear", "surprise"])
    assert got["arousal"] == pytest.approx(roc_auc_score(np.isin(lab[keep], hi), probs[keep][:, hi].sum(1)))
    assert got["anger"] == pytest.approx(roc_auc_score(lab == 0, probs[:, 0]))
    neg = idx(["angry", "disgust", "fear", "sad"])
    assert got["negative"] == pytest.approx(roc_auc_score(np.isin(lab, neg), probs[:, neg].sum(1)))
    # a perfect ranking scores 1, one side missing gives None
    assert transfer_aucs(ws, np.eye(len(EMOTIONS))[labels])["anger"] == 1.0
    only_sad = _windowset(["emovo"] * 2, [EMOTIONS.index("sad")] * 2)
    assert transfer_aucs(only_sad, probs[:2]) == {"arousal": None, "anger": None, "negative": None, "n": 2}


@pytest.mark.parametrize("corpora", [None, ["ravdess", "turev"]])
def test_no_training_clips_is_a_clear_error_whatever_the_corpora_setting(tmp_path, corpora):
    """``corpora: null`` (every corpus found) or a list: a folder without clips of them says so."""
    from ser_lib.features import FeatureConfig
    from ser_lib.speech import SpeechConfig
    from training.config import load_conf
    from training.cv import extract

    from training.teacher import build_teacher

    conf = {**load_conf(None), "corpora": corpora}
    with pytest.raises(ValueError, match=f"no clips of the training corpora .*found under {tmp_path}"):
        extract([tmp_path], conf, FeatureConfig(), SpeechConfig(), progress=False, echo=lambda *a: None)
    # the distillation teacher, built first by ser train, says the same
    with pytest.raises(ValueError, match=f"no clips of the training corpora .*found under {tmp_path}"):
        build_teacher(tmp_path / "teacher.json", [tmp_path], conf, progress=False)


def test_model_card_says_how_the_targets_were_made():
    """A distilled model's card names the teacher and lambda; a model trained on labels alone says nothing."""
    from training.model_card import _distillation_text

    assert _distillation_text({}) == "" and _distillation_text({"distill_teacher": None}) == ""
    auto = _distillation_text({"distill_teacher": "auto", "distill_weight": 0.25})
    assert "0.75 x its label" in auto and "0.25 x the" in auto and "training/teacher.py" in auto
    assert "`/t/teacher.json`" in _distillation_text({"distill_teacher": "/t/teacher.json"})


def test_model_card_says_what_the_temperature_was_fitted_on():
    """The card's calibration passages follow the record's rule: the unheard-corpora rule names
    the corpus and windows it was fitted on, the validation rule's temperature and what that
    leaves on the LOCO corpus, and the ECE on a corpus neither trained nor fitted on."""
    from training.model_card import _calibration_text

    meta = {"calibration": {"temperature": 1.5}}
    record = {"calibration": {"rule": "unheard_corpora", "temperature": 1.5, "validation_temperature": 0.7,
                              "fitted_on_windows": {"turev": 1738}},
              "loco": {"ece": 0.247}, "unseen": {"emovo": {"ece": 0.04}}}
    what, how, results = _calibration_text(meta, record)
    assert "T = 1.500" in what and "never trained on" in what
    assert "TurEV-DB (1,738 windows)" in how and "T = 0.700" in how and "window ECE 0.247" in how
    assert "EMOVO (never trained on, never fitted on) 0.040" in results and "under-confident" in results
    # a record calibrated by the folds' validation speakers (or made before the rule existed)
    what, how, results = _calibration_text(meta, {"unseen": {"emovo": {"ece": 0.2}}})
    assert "validation speakers" in what and "median of the *other* folds'" in how
    assert "EMOVO (never trained on, never fitted on) 0.200" in results
    assert _calibration_text(meta, {})[2] == ""
