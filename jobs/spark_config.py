"""How the Spark job runs: the ``spark:`` section of ``conf/job.yaml`` (Spark-only settings
kept out of the Spark-free library's :class:`ser_lib.config.JobConfig`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ser_lib.config import merge, read_yaml
from ser_lib.errors import ConfigError


@dataclass(frozen=True)
class SparkConfig:
    """The ``spark:`` section (see ``conf/job.yaml`` for each key).

    Attributes:
        master, app_name: used unless spark-submit (or ``--master``) sets them.
        tasks_per_core: analysis tasks per core (>= 1).
        settings: Spark properties (``spark.*`` → value as a string; booleans lower case).
    """

    master: str = "local[*]"
    app_name: str = "speech-emotion-calls"
    tasks_per_core: int = 1
    settings: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: dict | None = None) -> "SparkConfig":
        """The ``spark:`` section of ``path`` (``None``: ``conf/job.yaml`` if present) over the
        defaults, then ``overrides`` (a ``spark:`` section's keys).

        Raises:
            ConfigError: unreadable file, unknown key, or invalid value.
        """
        d = merge(asdict(cls()), read_yaml(path).get("spark") or {}, "spark.")
        d = merge(d, overrides or {}, "spark.")
        try:
            cfg = cls(master=str(d["master"]), app_name=str(d["app_name"]), tasks_per_core=int(d["tasks_per_core"]),
                      settings={k: str(v).lower() if isinstance(v, bool) else str(v)
                                for k, v in (d["settings"] or {}).items()})
        except (TypeError, ValueError, AttributeError) as err:
            raise ConfigError(f"invalid job configuration: {err}") from err
        if cfg.tasks_per_core < 1:
            raise ConfigError("spark.tasks_per_core must be >= 1")
        return cfg
