"""Built-in parts of this kind register on import."""
from . import fourier_mlp, siren  # noqa: F401
