"""User-facing errors: the CLI prints them as one line and exits with code 2."""
from __future__ import annotations

import errno as _errno


class InrkitError(Exception):
    """Bad input from the user (file, config value, registry name...).

    The message must name the problem and where it is; it is shown without a traceback.
    """

    exit_code = 2


class ConfigError(InrkitError):
    """A configuration value failed validation."""


class FieldError(ConfigError):
    """A ConfigError whose message already starts with the config field it is about."""


class DataError(InrkitError):
    """A dataset file is missing, unreadable or holds invalid values."""


class CheckpointError(InrkitError):
    """A run directory or checkpoint is missing or corrupt."""


class OutputError(InrkitError):
    """An output could not be written (no space left on the device, no permission...), or would
    replace something inrkit did not write. ``path`` and ``reason``: what failed to be written and
    why, where the error is a failed write (:meth:`cannot_write`)."""

    def __init__(self, message: str, path=None, reason: str | None = None):
        super().__init__(message)
        self.path, self.reason = path, reason

    @classmethod
    def cannot_write(cls, path, err: OSError | str) -> "OutputError":
        reason = err if isinstance(err, str) else os_error_reason(err)
        return cls(f"cannot write {path}: {reason}", path=path, reason=reason)


class RunLockedError(InrkitError):
    """Another process is training in this run directory."""


class ProcessesFailed(InrkitError):
    """Training processes this one launched ended with ``exit_code``; each has said why (one line),
    so there is nothing more to print."""

    def __init__(self, exit_code: int):
        super().__init__("")
        self.exit_code = int(exit_code)


class Interrupted(InrkitError):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint; the exit code is 128 + signal."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + int(signum)


def os_error_reason(err: OSError) -> str:
    """What went wrong, in lower case ("no space left on device"...). Libraries writing through C
    (HDF5, zarr's stores) do not always set ``errno``; their text still says so."""
    if err.errno == _errno.ENOSPC or "no space left" in str(err).lower():
        return "no space left on device"
    return (err.strerror or str(err) or type(err).__name__).lower().splitlines()[0]


def os_error_message(err: OSError, path=None) -> str:
    """One line for an OSError: the path and what went wrong ("no space left on device"...)."""
    where = path if path is not None else (err.filename or "")
    what = os_error_reason(err)
    return f"{where}: {what}" if where else what


class InrkitWarning(UserWarning):
    """Something worth telling the user that is not an error (an output that could not be made);
    the CLI shows it as one ``warning:`` line."""


def from_worker(err: InrkitError) -> InrkitError:
    """torch re-raises an error of a DataLoader worker as ``type(err)("Caught X in DataLoader worker
    process 0.\nOriginal Traceback ...\nmodule.X: message")``: the error with its own one line back."""
    lines = str(err).strip().splitlines()
    if len(lines) < 2 or not (lines[0].startswith("Caught ") and "DataLoader worker" in lines[0]):
        return err
    head = f"{type(err).__module__}.{type(err).__name__}: "
    message = next((line[len(head):] for line in reversed(lines) if line.startswith(head)), None)
    try:
        return err if message is None else type(err)(message)
    except TypeError:  # an error class built from other arguments: as it came
        return err


class NonFiniteLoss(InrkitError):
    """Training produced NaN/inf: the run stops before any checkpoint could hold it."""

    def __init__(self, stage: str, step: int, weights: bool = False):
        what = "the weights became non-finite by" if weights else "the loss became non-finite at"
        super().__init__(f"stage '{stage}': {what} step {step}; no checkpoint holds it, the newest one is the last"
                         f" good state (continue with --resume and e.g. --set train.{stage}.lr=<lower> or"
                         f" --set train.precision=fp32)")
        self.stage, self.step = stage, step
