"""Teacher-student distillation targets (train.distill_teacher / distill_weight, training/distill.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ser_lib.errors import ConfigError
from ser_lib.labels import EMOTIONS
from training.config import DEFAULTS, distillation, load_conf
from training.dataset import WindowSet
from training.distill import load_teacher, soft_targets

K = len(EMOTIONS)


def _probs(rng) -> list[float]:
    p = rng.dirichlet(np.ones(K))
    return [float(v) for v in p]


def _teacher_file(tmp_path, runs: dict, labels=None):
    path = tmp_path / "teacher.json"
    path.write_text(json.dumps({"labels": list(labels or EMOTIONS), "method": "test", "runs": runs}))
    return path


def _windows(sources_and_labels: list[tuple[str, int]], windows_per_clip: list[int]) -> WindowSet:
    """Windows of clips ``[(clip_id, label)]``, ``windows_per_clip[i]`` windows of clip ``i``."""
    clip = np.repeat(np.arange(len(sources_and_labels)), windows_per_clip)
    labels = np.array([y for _, y in sources_and_labels])
    n, c = len(clip), len(sources_and_labels)
    return WindowSet(np.zeros((n, 4, 3), np.float32), labels[clip], clip, np.zeros(n, np.int64),
                     np.array([s for s, _ in sources_and_labels]), labels, np.array(["ravdess"] * c),
                     np.zeros(c, bool), np.array(windows_per_clip))


@pytest.fixture
def teacher(tmp_path):
    rng = np.random.default_rng(5)
    rows = {f"/c/{i}.flac": _probs(rng) for i in range(4)}
    path = _teacher_file(tmp_path, {"loco": rows, "loco-emovo": {"/c/0.flac": _probs(rng)}})
    return path, rows


def test_weight_zero_is_the_one_hot_label_and_weight_one_the_teacher(teacher):
    path, rows = teacher
    t = load_teacher(path)
    ws = _windows([("/c/0.flac", 2), ("/c/3.flac", 5)], [3, 2])
    assert np.array_equal(soft_targets(ws, t, "loco", 0.0), np.eye(K, dtype=np.float32)[[2, 2, 2, 5, 5]])
    one = soft_targets(ws, t, "loco", 1.0)
    want = np.array([rows["/c/0.flac"]] * 3 + [rows["/c/3.flac"]] * 2)
    assert np.allclose(one, want / want.sum(1, keepdims=True), atol=1e-6)
    half = soft_targets(ws, t, "loco", 0.3)
    assert np.allclose(half, 0.7 * np.eye(K)[[2, 2, 2, 5, 5]] + 0.3 * one, atol=1e-6)
    assert half.dtype == np.float32 and np.allclose(half.sum(1), 1.0, atol=1e-6)


def test_windows_of_a_clip_and_its_augmented_copies_share_the_source_clips_target(teacher):
    path, rows = teacher
    t = load_teacher(path)
    ws = _windows([("/c/1.flac", 0), ("/c/2.flac", 4), ("/c/1.flac#aug0", 0), ("/c/2.flac#aug0", 4)], [2, 3, 1, 2])
    got = soft_targets(ws, t, "loco", 0.5)
    for i, src in enumerate(["/c/1.flac", "/c/2.flac", "/c/1.flac", "/c/2.flac"]):
        rows_i = got[ws.clip == i]
        label = ws.clip_label[i]
        assert np.allclose(rows_i, 0.5 * np.eye(K)[label] + 0.5 * np.asarray(rows[src]), atol=1e-5)
    # copies use their source clip's row, not another clip's: clips 1 and 2 differ
    assert not np.allclose(got[ws.clip == 2][0], got[ws.clip == 1][0])
    assert np.array_equal(got[ws.clip == 0][0], got[ws.clip == 2][0])


def test_a_run_missing_from_the_teacher_or_a_clip_missing_from_its_run_is_an_error(teacher):
    path, _ = teacher
    t = load_teacher(path)
    ws = _windows([("/c/0.flac", 1), ("/c/9.flac", 1)], [1, 1])
    with pytest.raises(ConfigError, match="run 'final'"):
        soft_targets(ws, t, "final", 0.5)
    with pytest.raises(ConfigError, match="run '0'"):
        soft_targets(ws, t, 0, 0.5)
    with pytest.raises(ConfigError, match=r"'loco'.*1 training clip.*/c/9\.flac"):
        soft_targets(ws, t, "loco", 0.5)
    with pytest.raises(ConfigError, match=r"'loco-emovo'.*/c/9\.flac"):
        soft_targets(ws, t, "loco-emovo", 0.0)  # even with weight 0: never a silent fallback


@pytest.mark.parametrize("content, match", [
    ("not json", "cannot read it as JSON"),
    (json.dumps({"labels": list(reversed(EMOTIONS)), "runs": {"loco": {}}}), "'labels' must be"),
    (json.dumps({"labels": list(EMOTIONS)}), "no 'runs' mapping"),
    (json.dumps({"labels": list(EMOTIONS), "runs": {"loco": {"/a.flac": [0.5, 0.5]}}}), r"run 'loco', clip '/a\.flac'"),
    (json.dumps({"labels": list(EMOTIONS), "runs": {"loco": {"/a.flac": [0.2] * 7}}}), "summing to 1"),
    (json.dumps({"labels": list(EMOTIONS), "runs": {"loco": {"/a.flac": [1.5, -0.5, 0, 0, 0, 0, 0]}}}),
     "non-negative"),
])
def test_malformed_teacher_files_are_refused(tmp_path, content, match):
    p = tmp_path / "t.json"
    p.write_text(content)
    with pytest.raises(ConfigError, match=match):
        load_teacher(p)


def test_distillation_is_auto_by_default_and_its_settings_are_checked(tmp_path, teacher):
    # the default teacher is the one the recipe builds: nothing to resolve before it does
    assert DEFAULTS["train"]["distill_teacher"] == "auto" and distillation(load_conf(None), resolve=False) == (None, 0.5)
    with pytest.raises(ConfigError, match="built by the cross-validated recipe"):
        distillation(load_conf(None))
    conf_file = tmp_path / "train.yaml"
    conf_file.write_text("train:\n  distill_teacher: null\n")
    assert distillation(load_conf(conf_file)) == (None, 0.5)
    path, _ = teacher
    conf_file.write_text(f"train:\n  distill_teacher: {path}\n  distill_weight: 0.25\n")
    assert distillation(load_conf(conf_file)) == (path, 0.25)
    for text, match in [
        ("train:\n  distill_weight: 1.5\n", r"distill_weight must be a number in \[0, 1\]"),
        ("train:\n  distill_weight: -0.1\n", "distill_weight"),
        ("train:\n  distill_weight: true\n", "distill_weight"),
        ("train:\n  distill_weight: half\n", "distill_weight"),
        (f"train:\n  distill_teacher: {tmp_path / 'nowhere.json'}\n", "distill_teacher: no such file"),
        ("train:\n  distill_teacher: [a]\n", "distill_teacher must be null, 'auto' or the path"),
        ("train:\n  distill_teachr: x\n", "'train.distill_teachr'"),
    ]:
        conf_file.write_text(text)
        with pytest.raises(ConfigError, match=match) as err:
            load_conf(conf_file)
        assert str(conf_file) in str(err.value), text


def test_the_single_split_pipeline_refuses_a_teacher(teacher, tmp_path):
    import training.train as train

    conf = load_conf(None)
    conf["train"]["distill_teacher"] = str(teacher[0])
    with pytest.raises(ConfigError, match="only used by the cross-validated recipe"):
        train.run([tmp_path], conf, tmp_path / "out", families=["cnn1d"], epochs=1, processes=1, progress=False,
                  bench=False, echo=lambda *a: None)


def test_soft_targets_reach_the_batches_and_mixup_keeps_them_distributions(monkeypatch):
    """fit() trains on the given targets (not the one-hot labels); mixup mixes them like one-hot ones."""
    import training.fit as fit_module

    rng = np.random.default_rng(0)
    ws = _windows([(f"/c/{i}.flac", i % K) for i in range(12)], [2] * 12)
    x = rng.normal(size=(len(ws), 16, 5)).astype(np.float32)
    targets = rng.dirichlet(np.ones(K), len(ws)).astype(np.float32)
    seen = {}
    real = fit_module._make_batches

    def spy(x_, y_, w_, bs, tc, seed):
        seen["y"] = y_
        seen["batches"] = real(x_, y_, w_, bs, tc, seed)
        return seen["batches"]

    monkeypatch.setattr(fit_module, "_make_batches", spy)
    conf = load_conf(None)
    conf["train"].update(batch_size=8, warmup_epochs=0, mixup_alpha=0.4)
    conf["models"]["cnn1d"] = {"filters": [4, 4, 4, 4], "dense": 4}
    fit_module.fit("cnn1d", ws, None, x, None, conf, 1, progress=False, echo=lambda *a: None, targets=targets)
    assert np.array_equal(seen["y"], targets)
    _, yb, _ = seen["batches"][0]
    assert yb.shape == (8, K) and np.allclose(yb.sum(1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="training targets of shape"):
        fit_module.fit("cnn1d", ws, None, x, None, conf, 1, progress=False, echo=lambda *a: None,
                       targets=targets[:-1])


def test_tiny_loco_recipe_trains_on_the_teachers_targets_and_names_a_missing_run(tmp_path, monkeypatch):
    """End to end through training/cv.py: each LOCO run's training windows get the mixed targets
    of that run's teacher entry; a teacher without one of the runs stops the recipe naming it."""
    import training.cv as cv
    import training.fit as fit_module
    from tests.test_recipe import _tiny_recipe
    from training.corpora import discover

    roots, conf, out, kw = _tiny_recipe(tmp_path, monkeypatch)
    folds = cv.load_folds(kw["folds_path"])
    clips = discover([roots]).clips
    rng = np.random.default_rng(1)
    runs = {run: {c.path: _probs(rng) for c in clips if cv.assign(c, folds, run) == "train"}
            for run in cv.loco_runs(folds)}
    path = _teacher_file(tmp_path, runs)
    conf["train"].update(distill_teacher=str(path), distill_weight=0.5)
    seen = []
    real = fit_module.fit
    monkeypatch.setattr(fit_module, "fit", lambda family, train_ws, *a, **k: (
        seen.append((train_ws, k.get("targets"))), real(family, train_ws, *a, **k))[1])
    cv.run_recipe([roots], conf, out, only=["loco"], **kw)
    assert len(seen) == 2  # loco, loco-emovo
    for run, (train_ws, targets) in zip(cv.loco_runs(folds), seen):
        assert targets is not None and targets.shape == (len(train_ws), K)
        assert any("#aug" in c for c in train_ws.clip_id)
        for i, cid in enumerate(train_ws.clip_id):
            want = 0.5 * np.eye(K)[train_ws.clip_label[i]] + 0.5 * np.asarray(runs[run][cid.split("#")[0]])
            assert np.allclose(targets[train_ws.clip == i], want, atol=1e-5), (run, cid)
    # resuming compares the teacher's contents, not its path: the same file keeps the run, the
    # file rewritten in place (another teacher under the same name) retrains it
    from ser_lib.features import FeatureConfig
    from ser_lib.speech import SpeechConfig
    fc, sc = FeatureConfig(), SpeechConfig()
    assert cv.finished_run(out / "cv" / "loco", "loco", conf, fc, sc) is not None
    assert cv.finished_run(out / "cv" / "loco", "loco", {**conf, "train": {**conf["train"], "distill_teacher": None}},
                           fc, sc) is None
    # another field of the file (what it says it was built from) is not a target: kept
    path.write_text(json.dumps({**json.loads(path.read_text()), "built_from": {"encoder_sha256": "x"}}))
    assert cv.finished_run(out / "cv" / "loco", "loco", conf, fc, sc) is not None
    runs["loco"] = {p: _probs(rng) for p in runs["loco"]}
    assert _teacher_file(tmp_path, runs) == path
    assert cv.finished_run(out / "cv" / "loco", "loco", conf, fc, sc) is None
    del runs["loco"]
    conf["train"]["distill_teacher"] = str(_teacher_file(tmp_path, runs))
    with pytest.raises(ConfigError, match=r"no probabilities for run 'loco' \(it has: \['loco-emovo'\]\)"):
        cv.run_recipe([roots], conf, tmp_path / "again", only=["loco"], resume=False, **kw)


def test_auto_teacher_is_built_once_into_the_output_folder_and_kept_out_of_records(tmp_path, monkeypatch):
    import training.cv as cv
    import training.teacher as teacher_mod

    conf_file = tmp_path / "train.yaml"
    conf_file.write_text("train:\n  distill_teacher: auto\n")
    conf = load_conf(conf_file)                           # accepted before anything is built ...
    with pytest.raises(ConfigError, match="built by the cross-validated recipe"):
        distillation(conf)                                # ... but there is no file to train on yet
    built = []

    def fake_build(out, roots, conf_, folds_path=None, progress=True):
        built.append((out, list(roots)))
        out.parent.mkdir(parents=True, exist_ok=True)
        return _teacher_file(tmp_path, {"final": {}}).replace(out)

    monkeypatch.setattr(teacher_mod, "build_teacher", fake_build)
    stale = [None]
    monkeypatch.setattr(teacher_mod, "stale_reason", lambda *a, **k: stale[0])
    out = tmp_path / "model"
    got = cv.with_teacher(["/corpora"], conf, out, echo=lambda *a: None)
    assert built == [(out / cv.TEACHER_FILE, ["/corpora"])] and (out / cv.TEACHER_FILE).is_file()
    assert distillation(got) == (out / cv.TEACHER_FILE, 0.5) and "_teacher" not in conf
    # a second call (an ensemble member, a resumed ser train) finds it and does not rebuild
    assert cv.with_teacher(["/corpora"], got, out, echo=lambda *a: None) is got
    assert cv.with_teacher(["/corpora"], conf, out, echo=lambda *a: None)["_teacher"] == str(out / cv.TEACHER_FILE)
    assert len(built) == 1
    # a teacher built from other data is never reused silently
    stale[0] = "its clips_sha256 differ from now"
    with pytest.raises(ConfigError, match="built for other training data .its clips_sha256 differ"):
        cv.with_teacher(["/corpora"], conf, out, echo=lambda *a: None)
    assert len(built) == 1
    # other settings pass through untouched
    plain = load_conf(None)
    plain["train"]["distill_teacher"] = None
    assert cv.with_teacher(["/corpora"], plain, out, echo=lambda *a: None) is plain
