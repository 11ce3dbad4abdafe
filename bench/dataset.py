"""The benchmark's audio: call-like recordings built once and cached between runs.

A *unit* is what :func:`jobs.demo_calls.build_calls` writes for ``UNIT_CALLS`` calls of
``UNIT_MINUTES`` minutes: that many mono 16 kHz PCM WAV files and as many stereo 8 kHz
mu-law WAV files (~18-19 min of audio), from the held-out test clips of
``../shared/corpora`` or, when the corpora are absent, synthetic speech-like audio.
Scale ``k`` is units ``0 .. k-1`` (different seeds, so different audio), i.e. ``k``
times the audio in ``k`` times the files.

Everything lives under ``<repo>/.cache/bench/`` (git-ignored): ``units/<source>-uNN/``
holds the built files, ``sets/<source>-xK/`` hard links to them (no copies), which is the
directory the job is pointed at. Corpus audio itself is never copied into the repository.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "bench"
UNIT_CALLS = 3         # calls per format and unit
UNIT_MINUTES = 3.0     # target minutes per call
UNIT_SEED0 = 1000      # unit k is built with seed UNIT_SEED0 + k
EXTENSIONS = (".wav",)
_MANIFEST = "manifest.json"


def corpora_root(corpora: str | None = None) -> Path:
    """The corpus root used (``$SER_CORPORA`` or ``../shared/corpora`` unless given)."""
    if corpora:
        return Path(corpora)
    try:
        from training.corpora import default_corpora_root
        return default_corpora_root()
    except ImportError:
        return REPO.parent / "shared" / "corpora"


def source_tag(corpora: str | None = None) -> str:
    """``"corpora"`` when the corpus root exists, else ``"synthetic"`` (part of the cache key)."""
    return "corpora" if corpora_root(corpora).is_dir() else "synthetic"


def _audio_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS and not p.name.startswith("."))


def _describe(root: Path) -> dict:
    files = []
    for p in _audio_files(root):
        info = sf.info(str(p))
        files.append({"path": str(p.relative_to(root)), "duration_s": info.frames / info.samplerate,
                      "sample_rate": info.samplerate, "channels": info.channels, "subtype": info.subtype,
                      "bytes": p.stat().st_size})
    return {"files": files, "n_files": len(files), "audio_s": round(sum(f["duration_s"] for f in files), 3),
            "channel_s": round(sum(f["duration_s"] * f["channels"] for f in files), 3),
            "bytes": sum(f["bytes"] for f in files)}


def unit(k: int, corpora: str | None = None, log=print) -> Path:
    """Directory of unit ``k``, built on first use (then cached)."""
    tag = source_tag(corpora)
    d = CACHE / "units" / f"{tag}-u{k:02d}"
    if (d / _MANIFEST).is_file():
        return d
    from jobs.demo_calls import build_calls
    if d.exists():
        shutil.rmtree(d)  # a half-built unit from an interrupted run
    log(f"[dataset] building unit {k} ({UNIT_CALLS}+{UNIT_CALLS} calls x {UNIT_MINUTES:g} min, {tag}) in {d}")
    res = build_calls(str(d), str(corpora_root(corpora)), n_calls=UNIT_CALLS, minutes=UNIT_MINUTES,
                      seed=UNIT_SEED0 + k)
    meta = _describe(d)
    meta.update({"unit": k, "source": res["source"], "seed": UNIT_SEED0 + k, "calls_per_format": UNIT_CALLS,
                 "minutes": UNIT_MINUTES})
    (d / _MANIFEST).write_text(json.dumps(meta, indent=1))
    return d


def scale_set(scale: int, corpora: str | None = None, log=print) -> dict:
    """The recordings of scale ``scale`` (units ``0 .. scale-1``), built/cached as needed.

    Returns:
        ``{"scale", "dir", "source", "files": [abs paths], "n_files", "audio_s", "channel_s",
        "bytes", "formats": {"mono16k": {...}, "stereo8k": {...}}}``.
    """
    if scale < 1:
        raise ValueError("scale must be >= 1")
    tag = source_tag(corpora)
    units = [unit(k, corpora, log) for k in range(scale)]
    d = CACHE / "sets" / f"{tag}-x{scale}"
    want = {(u.name, p.relative_to(u)) for u in units for p in _audio_files(u)}
    have = {(p.relative_to(d).parts[0], Path(*p.relative_to(d).parts[1:])) for p in _audio_files(d)} if d.exists() else set()
    if want != have:
        if d.exists():
            shutil.rmtree(d)
        for uname, rel in sorted(want):
            dst = d / uname / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(CACHE / "units" / uname / rel, dst)  # hard link: no second copy of the audio
            except OSError:
                shutil.copy2(CACHE / "units" / uname / rel, dst)
    metas = [json.loads((u / _MANIFEST).read_text()) for u in units]
    files = [str(d / m_dir / f["path"]) for m_dir, m in zip([u.name for u in units], metas) for f in m["files"]]
    formats: dict[str, dict] = {}
    for m in metas:
        for f in m["files"]:
            fmt = f["path"].split("/")[0]
            x = formats.setdefault(fmt, {"n_files": 0, "audio_s": 0.0})
            x["n_files"] += 1
            x["audio_s"] = round(x["audio_s"] + f["duration_s"], 3)
    return {"scale": scale, "dir": str(d), "source": metas[0]["source"], "files": sorted(files),
            "n_files": len(files), "audio_s": round(sum(m["audio_s"] for m in metas), 3),
            "channel_s": round(sum(m["channel_s"] for m in metas), 3), "bytes": sum(m["bytes"] for m in metas),
            "formats": formats}


if __name__ == "__main__":  # python -m bench.dataset [SCALE]: build (or show) a scale's set
    import sys
    s = scale_set(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    print(json.dumps({k: v for k, v in s.items() if k != "files"}, indent=1))
