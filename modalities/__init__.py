"""Coordinate domains and their data: image, sphere (ERA5) and occupancy (3D).

Registered through the ``inrkit.plugins`` entry point, exactly as a third-party plugin would be.
"""
import importlib

_MODULES = [
    "inrkit_modalities.image",
    "inrkit_modalities.sphere",
    "inrkit_modalities.occupancy",
    "inrkit_modalities.cache",
]


def register() -> None:
    for name in _MODULES:
        importlib.import_module(name)
