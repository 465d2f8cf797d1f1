"""Built-in parts of this kind register on import."""
from . import hd, mlp, mixture  # noqa: F401
