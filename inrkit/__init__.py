"""inrkit: generative models over implicit neural representations."""
from .errors import CheckpointError, ConfigError, DataError, InrkitError
# ``inrkit.registry`` is the module (Registry, PartConfig, one registry per kind); ``get_registry(kind)``
# returns one registry by its kind.
from .registry import REGISTRIES, build, get_registry, list_parts, load_plugins, spec_of

# Built-in parts register on import (eagerly: an unknown name then always means a missing plugin).
from . import inrs, hypernets, encoders, decoders, priors, likelihoods  # noqa: E402,F401
from .runs import Run, load_run  # noqa: E402

__all__ = [
    "REGISTRIES", "build", "get_registry", "list_parts", "spec_of", "load_plugins",
    "InrkitError", "ConfigError", "DataError", "CheckpointError",
    "Run", "load_run",
]
__version__ = "0.1.0"
