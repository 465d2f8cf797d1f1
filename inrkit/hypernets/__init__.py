"""Built-in parts of this kind register on import."""
from . import hd, mlp, mixture, modulation  # noqa: F401
