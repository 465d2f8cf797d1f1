"""Built-in parts of this kind register on import."""
from . import diffusion, gaussian  # noqa: F401
