"""Fine-tuning the speech encoder's last LSTM layer for emotion, against the frozen encoder.

Issue 30's one encoder lever not yet measured: "encoder fine-tuning off or last layer". The
shipped accurate head (``training.encoder_head``) reads the *frozen* GE2E encoder's last LSTM
layer (mean + std over a clip's 1.6 s partials, standardised per speaker, logistic
regression). Here that layer is trained further on the emotion labels of the protocol's
training corpora only, then frozen again, and the shipped head recipe is fitted on its
features exactly as on the frozen encoder's:

1. Every clip of RAVDESS, TESS, TurEV-DB and EMOVO (order of the encoder probe's
   ``meta-encoder.json``), on the job's 8 kHz path (``training.dataset.clip_samples`` at
   8 kHz, ``ser_lib.encoder_head.prepare``, ``ser_lib.encoder.partial_mels``): its partials'
   mel frames. The frozen first two LSTM layers (resemblyzer's weights, PyTorch) turn them
   into layer-2 input sequences, cached once (float16).
2. Per protocol (TurEV-DB out: train RAVDESS + TESS + EMOVO; EMOVO out: train RAVDESS + TESS +
   TurEV-DB) and seed: the last LSTM layer (initialised from resemblyzer) and a linear 7-class
   layer are trained with Adam (lr 1e-4 for the LSTM, 1e-3 for the linear layer), class- and
   corpus-balanced cross-entropy (``training.encoder_head.group_weights``). A batch is 4
   chunks of 32 clips, each chunk one speaker's, and each chunk's pooled states are
   standardised by the chunk's own mean and std: the speaker standardisation the head uses,
   inside training. An epoch sees every training clip once.
3. After epochs 1, 2 and 4 the layer is frozen and every clip re-encoded; the shipped head
   recipe (``standardize_by_speaker`` + ``fit_head``, C = 0.003) is fitted on the training
   corpora and scored on the left-out one, alone and as ``measure.py`` fuses it with the CNN
   (0.5 / 0.5 mean of probabilities, the CNN's clip probabilities of the encoder probe
   cache). Epoch 0 = the frozen encoder, through the same code (it must reproduce
   ``enc-8k.npy``: checked).

The lever is judged at the last epoch (4), fixed before looking; the other epochs are the
curve. Usage:

    PYTHONPATH=$PWD python models/runs/2026-12-07-encoder-finetune/finetune.py CACHE_DIR OUT_JSON [SEED ...]

CACHE_DIR: the encoder probe's cache (``meta-encoder.json``, ``meta-acoustic.json``,
``ac-wide.npz``, ``enc-8k.npy``); the layer-2 sequences go to ``CACHE_DIR/ft``.
"""
from __future__ import annotations

import importlib.util
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ser_lib.encoder import partial_mels
from ser_lib.encoder_head import SegmentSettings, prepare
from training.dataset import clip_samples
from training.encoder_head import fit_head, group_weights, standardize_by_speaker

warnings.filterwarnings("ignore")
_spec = importlib.util.spec_from_file_location(
    "probe", Path(__file__).resolve().parent.parent / "2026-12-07-encoder" / "probe.py")
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)

EPOCHS = 4
EVAL_AT = (1, 2, 4)
CHUNK, CHUNKS_PER_BATCH = 32, 4
torch.set_num_threads(2)


def voice_lstm() -> torch.nn.LSTM:
    from resemblyzer import VoiceEncoder

    return VoiceEncoder(device="cpu", verbose=False).lstm.eval()


def split_lstm(full: torch.nn.LSTM) -> tuple[torch.nn.LSTM, torch.nn.LSTM]:
    """resemblyzer's 3-layer LSTM as (layers 0-1, layer 2) with the same weights."""
    low, top = torch.nn.LSTM(40, 256, 2, batch_first=True), torch.nn.LSTM(256, 256, 1, batch_first=True)
    sd = full.state_dict()
    low.load_state_dict({k: v for k, v in sd.items() if k.endswith(("l0", "l1"))})
    top.load_state_dict({k.replace("l2", "l0"): v for k, v in sd.items() if k.endswith("l2")})
    return low.eval(), top


def build_cache(cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Layer-2 input sequences of every clip's partials (float16 ``(P, 160, 256)``) and the clip
    index of each partial ``(P,)``."""
    out = cache / "ft"
    if (out / "seq.npy").exists():
        return np.load(out / "seq.npy", mmap_mode="r"), np.load(out / "clip.npy")
    out.mkdir(exist_ok=True)
    clips = json.loads((cache / "meta-encoder.json").read_text())["clips"]
    settings = SegmentSettings()
    low, _ = split_lstm(voice_lstm())
    mels, owner, t0 = [], [], time.time()
    for i, (path, *_r) in enumerate(clips):
        m, _ = partial_mels(prepare(clip_samples(path, 8000), settings), 8000, settings.rate, settings.min_coverage)
        mels.append(m)
        owner += [i] * len(m)
        if i % 1000 == 0:
            print(f"  mels {i}/{len(clips)} {time.time() - t0:.0f} s", flush=True)
    mels = np.concatenate(mels)
    seq = np.lib.format.open_memmap(out / "seq.npy", "w+", np.float16, (len(mels), 160, 256))
    with torch.no_grad():
        for a in range(0, len(mels), 256):
            seq[a:a + 256] = low(torch.from_numpy(mels[a:a + 256]))[0].numpy().astype(np.float16)
    seq.flush()
    np.save(out / "clip.npy", np.array(owner))
    print(f"cache: {len(mels)} partials of {len(clips)} clips, {time.time() - t0:.0f} s", flush=True)
    return np.load(out / "seq.npy", mmap_mode="r"), np.array(owner)


def pooled(top: torch.nn.LSTM, seq, part_clip: np.ndarray, clip_ids: np.ndarray) -> torch.Tensor:
    """Mean + std over each clip's partials of the top layer's last hidden state,
    ``(len(clip_ids), 512)``; gradients flow when ``top`` trains."""
    rows = np.flatnonzero(np.isin(part_clip, clip_ids))
    _, (h, _) = top(torch.from_numpy(np.asarray(seq[rows], dtype=np.float32)))
    h = h[-1]
    idx = torch.from_numpy(np.searchsorted(clip_ids, part_clip[rows]))
    n = torch.bincount(idx, minlength=len(clip_ids)).clamp(min=1).unsqueeze(1).float()
    mean = torch.zeros(len(clip_ids), 256).index_add(0, idx, h) / n
    sq = torch.zeros(len(clip_ids), 256).index_add(0, idx, h * h) / n
    # clamp above 0: sqrt's gradient at 0 is infinite (a one-partial clip), clamp's there is 0
    return torch.cat([mean, (sq - mean * mean).clamp(min=1e-12).sqrt()], 1)


def features(top, seq, part_clip, n_clips) -> np.ndarray:
    with torch.no_grad():
        return np.vstack([pooled(top, seq, part_clip, np.arange(a, min(a + 400, n_clips))).numpy()
                          for a in range(0, n_clips, 400)])


def evaluate(x, protocol, corpus, speaker, y, cnn) -> dict:
    X = standardize_by_speaker(x, speaker)
    tr, te = np.isin(corpus, probe.PROTOCOLS[protocol]), corpus == protocol
    pe = fit_head(X[tr], y[tr], corpus[tr]).predict(X[te])
    cnn_p = (cnn["loco"] if protocol == "turev" else cnn["final"])[te]
    return {"head": probe.score(pe, y[te]), "fused": probe.score(0.5 * pe + 0.5 * cnn_p, y[te])}


def finetune(seed, protocol, seq, part_clip, corpus, speaker, y, cnn, log) -> dict:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    _, top = split_lstm(voice_lstm())
    clf = torch.nn.Linear(512, 7)
    opt = torch.optim.Adam([{"params": top.parameters(), "lr": 1e-4}, {"params": clf.parameters(), "lr": 1e-3}])
    train = np.flatnonzero(np.isin(corpus, probe.PROTOCOLS[protocol]))
    w = torch.from_numpy(group_weights(corpus[train], y[train])).float()
    wmap = dict(zip(train, w))
    curve = {}
    for epoch in range(1, EPOCHS + 1):
        top.train()
        chunks = []
        for s in np.unique(speaker[train]):
            ids = rng.permutation(train[speaker[train] == s])
            chunks += [np.sort(ids[a:a + CHUNK]) for a in range(0, len(ids), CHUNK) if len(ids[a:a + CHUNK]) >= 8]
        order = rng.permutation(len(chunks))
        t0, losses = time.time(), []
        for b in range(0, len(order), CHUNKS_PER_BATCH):
            logits, targets, weights = [], [], []
            for c in order[b:b + CHUNKS_PER_BATCH]:
                ids = chunks[c]
                z = pooled(top, seq, part_clip, ids)
                z = (z - z.mean(0)) / (z.std(0) + 1e-6)  # the head's speaker standardisation
                logits.append(clf(z))
                targets.append(torch.from_numpy(y[ids]))
                weights.append(torch.stack([wmap[i] for i in ids]))
            logits, targets, weights = torch.cat(logits), torch.cat(targets), torch.cat(weights)
            loss = (torch.nn.functional.cross_entropy(logits, targets, reduction="none") * weights).sum() / weights.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss))
        top.eval()
        if epoch in EVAL_AT:
            res = evaluate(features(top, seq, part_clip, len(y)), protocol, corpus, speaker, y, cnn)
            curve[epoch] = {"train_loss": float(np.mean(losses)), **res}
            log(f"  {protocol} seed {seed} epoch {epoch}: loss {np.mean(losses):.3f} ({time.time() - t0:.0f} s) "
                f"head ua4 {res['head']['ua4']:.3f} ua7 {res['head'].get('ua7') or 0:.3f} ar {res['head']['arousal_auc']:.3f} | "
                f"fused ua4 {res['fused']['ua4']:.3f} ua7 {res['fused'].get('ua7') or 0:.3f} ar {res['fused']['arousal_auc']:.3f}")
    return curve


def main(cache: str, out_json: str, seeds: list[int]) -> None:
    cache = Path(cache)
    corpus, speaker, y, _f, cnn_all = probe.load(cache)
    cnn = cnn_all["wide"]  # the CNN on the clean clips, as measure.py's 8k rows
    seq, part_clip = build_cache(cache)
    out = {"protocol": __doc__.split("\n\n")[1:4], "frozen": {}, "finetuned": {}}

    def log(msg):
        print(msg, flush=True)

    _, top = split_lstm(voice_lstm())
    x0 = features(top, seq, part_clip, len(y))
    ref = np.load(cache / "enc-8k.npy")
    cos = (x0 * ref).sum(1) / (np.linalg.norm(x0, axis=1) * np.linalg.norm(ref, axis=1) + 1e-12)
    out["frozen_vs_enc8k_cosine"] = {"min": float(cos.min()), "median": float(np.median(cos))}
    log(f"frozen (torch, float16 layer-2 cache) vs enc-8k.npy: cosine min {cos.min():.5f} median {np.median(cos):.6f}")
    for p in ("turev", "emovo"):
        out["frozen"][p] = evaluate(x0, p, corpus, speaker, y, cnn)
        r = out["frozen"][p]
        log(f"frozen {p}: head ua4 {r['head']['ua4']:.3f} ua7 {r['head'].get('ua7') or 0:.3f} "
            f"ar {r['head']['arousal_auc']:.3f} | fused ua4 {r['fused']['ua4']:.3f} ar {r['fused']['arousal_auc']:.3f}")
    Path(out_json).write_text(json.dumps(out, indent=1) + "\n")
    for seed in seeds:
        for p in ("turev", "emovo"):
            out["finetuned"].setdefault(p, {})[str(seed)] = finetune(seed, p, seq, part_clip, corpus, speaker, y, cnn, log)
            Path(out_json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3:]] or [20261122])
