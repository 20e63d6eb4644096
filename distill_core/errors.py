"""User-facing errors: each carries one clear sentence that the CLI and the app show as-is."""


class DistillError(Exception):
    """Base of every error whose message is meant for the user (no traceback needed)."""


class UnknownNameError(DistillError, KeyError):
    """An unknown dataset, method, model or protocol name."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class DatasetUnavailableError(DistillError):
    """A dataset whose files are missing (and cannot be downloaded)."""


class InvalidInputError(DistillError, ValueError):
    """A setting or an input file that cannot be used."""


class RunFormatError(DistillError):
    """A run folder that is missing, corrupt, or of an unsupported format."""


class RunWriteError(DistillError, OSError):
    """A run folder that cannot be written (no permission, not a folder, disk full); still an OSError."""
