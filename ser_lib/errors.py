"""Exceptions shared by the library, the job and the training code."""


class SERError(Exception):
    """Base class of every error this package raises on purpose."""


class AudioError(SERError):
    """A recording could not be turned into samples.

    ``reason`` is a short machine-readable code (``empty``, ``corrupt``,
    ``unsupported``, ``no_samples``, ``non_finite``, ``unreadable``,
    ``sample_rate``); ``str(err)`` is the human text.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason

    def __str__(self) -> str:  # "reason: message" is what lands in error columns
        return f"{self.reason}: {self.args[0]}"


class ConfigError(SERError):
    """A configuration value is missing, out of range or inconsistent."""


class ArtifactError(SERError):
    """A model artifact is missing, malformed, or incompatible with this code."""
