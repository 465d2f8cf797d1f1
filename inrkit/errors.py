"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class InrkitError(Exception):
    """Bad input from the user (file, config value, registry name...).

    The message must name the problem and where it is; it is shown without a traceback.
    """


class ConfigError(InrkitError):
    """A configuration value failed validation."""


class FieldError(ConfigError):
    """A ConfigError whose message already starts with the config field it is about."""


class DataError(InrkitError):
    """A dataset file is missing, unreadable or holds invalid values."""


class CheckpointError(InrkitError):
    """A run directory or checkpoint is missing or corrupt."""
