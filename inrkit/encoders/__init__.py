"""Built-in parts of this kind register on import."""
from . import conv, pointset  # noqa: F401
