"""Job configuration (``conf/job.yaml``): defaults, loading and validation.

The library reads every section but ``spark:`` (:data:`RUNNER_SECTIONS`): how the Spark
job runs (master, application name, tasks per core, Spark settings) is read by
:class:`jobs.spark_config.SparkConfig` from the same file.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from .archive import ArchiveLimits
from .episodes import EpisodeConfig
from .errors import ConfigError
from .smoothing import SmoothingConfig
from .speech import SpeechConfig
from .talk import TalkConfig

DEFAULT_JOB_CONF = Path(__file__).resolve().parent.parent / "conf" / "job.yaml"
#: sections of ``conf/job.yaml`` read by the Spark runner, not by this library
RUNNER_SECTIONS = ("spark",)

#: the library's job configuration defaults (conf/job.yaml documents them; a test keeps both equal)
DEFAULTS: dict[str, Any] = {
    "input": {"extensions": ["wav", "flac", "ogg", "opus", "mp3"], "chunk_s": 60.0},
    "archives": {"enabled": True, **asdict(ArchiveLimits())},
    "channels": {"1": ["mono"], "2": ["agent", "customer"]},
    "windows": {"window_s": 2.0, "hop_s": 1.0},
    "speech": SpeechConfig().to_dict(),
    "timeline": SmoothingConfig().to_dict(),
    "episodes": EpisodeConfig().to_dict(),
    "talk": TalkConfig().to_dict(),
    "model": {"path": "", "variant": "default", "encoder_path": "", "batch_size": 512},
}


def read_yaml(path: str | Path | None = None) -> dict:
    """The job configuration file as a dict (``None``: ``conf/job.yaml`` if present, else ``{}``).

    Raises:
        ConfigError: unreadable file or YAML, or the removed ``output`` section.
    """
    raw: dict = {}
    p = Path(path) if path else DEFAULT_JOB_CONF
    if path or p.is_file():
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read job configuration {p}: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"job configuration {p}: expected a YAML mapping")
    if "output" in raw:  # a key that did nothing: say so rather than ignore it
        raise ConfigError("output.partition_by was removed: every run writes OUT/<table>/run_date=D/run_id=R/ "
                          f"(the directory it commits atomically); delete the 'output' section of {p}")
    return raw


def merge(base: dict, over: dict, where: str = "") -> dict:
    """``over`` merged into a copy of ``base``; ``channels`` and ``settings`` are open maps.

    Raises:
        ConfigError: a key ``base`` does not have (named with its section, ``where``).
    """
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if k not in base:
            raise ConfigError(f"unknown configuration key {where}{k!r}")
        # channels and spark.settings are open maps; everything else is a fixed schema
        if isinstance(base[k], dict) and isinstance(v, dict) and k not in ("channels", "settings"):
            out[k] = merge(base[k], v, f"{where}{k}.")
        else:
            out[k] = v
    return out


@dataclass(frozen=True)
class JobConfig:
    """Validated job configuration. See ``conf/job.yaml`` for each key's meaning."""

    extensions: tuple[str, ...]
    chunk_s: float
    archives: bool
    archive_limits: "ArchiveLimits"
    channels: dict[int, tuple[str, ...]]
    window_s: float
    hop_s: float
    speech: SpeechConfig
    model_path: str
    batch_size: int
    timeline: SmoothingConfig = SmoothingConfig()
    episodes: EpisodeConfig = EpisodeConfig()
    talk: TalkConfig = TalkConfig()
    model_variant: str = "default"
    encoder_path: str = ""

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: dict | None = None) -> "JobConfig":
        """Read a YAML file over the defaults (``None``: ``conf/job.yaml`` if present).

        Raises:
            ConfigError: unreadable file, unknown key, or invalid value.
        """
        raw = read_yaml(path)
        d = merge(DEFAULTS, {k: v for k, v in raw.items() if k not in RUNNER_SECTIONS})
        d = merge(d, overrides or {})
        try:
            channels = {int(k): tuple(str(n) for n in v) for k, v in d["channels"].items()}
            cfg = cls(
                extensions=tuple(e.lower().lstrip(".") for e in d["input"]["extensions"]),
                chunk_s=float(d["input"]["chunk_s"]),
                archives=bool(d["archives"]["enabled"]),
                archive_limits=ArchiveLimits(int(d["archives"]["max_members"]), int(d["archives"]["max_member_bytes"]),
                                             int(d["archives"]["max_total_bytes"]), float(d["archives"]["max_ratio"])),
                channels=channels,
                window_s=float(d["windows"]["window_s"]), hop_s=float(d["windows"]["hop_s"]),
                speech=SpeechConfig.from_dict(d["speech"]),
                model_path=str(d["model"]["path"] or ""), batch_size=int(d["model"]["batch_size"]),
                timeline=SmoothingConfig.from_dict(d["timeline"]),
                episodes=EpisodeConfig.from_dict(d["episodes"]),
                talk=TalkConfig.from_dict(d["talk"]),
                model_variant=str(d["model"]["variant"]), encoder_path=str(d["model"]["encoder_path"] or ""),
            )
        except (TypeError, ValueError, AttributeError) as err:
            raise ConfigError(f"invalid job configuration: {err}") from err
        for n, names in cfg.channels.items():
            if len(names) != n or len(set(names)) != n:
                raise ConfigError(f"channels.{n} must list {n} distinct names, got {list(names)}")
        if cfg.chunk_s < cfg.window_s:
            raise ConfigError(f"input.chunk_s={cfg.chunk_s} must be at least windows.window_s={cfg.window_s}")
        lim = cfg.archive_limits
        if min(lim.max_members, lim.max_member_bytes, lim.max_total_bytes) < 1 or lim.max_ratio <= 1:
            raise ConfigError("archives.max_members, max_member_bytes, max_total_bytes must be >= 1 and max_ratio > 1")
        if cfg.batch_size < 1:
            raise ConfigError("model.batch_size must be >= 1")
        if cfg.model_variant not in ("default", "accurate"):
            raise ConfigError(f"model.variant must be default or accurate, got {cfg.model_variant!r}")
        return cfg

    def channel_names(self, n_channels: int) -> tuple[str, ...]:
        """Names of a recording's channels, in channel order."""
        return self.channels.get(n_channels) or tuple(f"ch{i}" for i in range(n_channels))
