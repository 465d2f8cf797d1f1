"""Built-in parts of this kind register on import."""
from . import diffusion, flow, gaussian  # noqa: F401
