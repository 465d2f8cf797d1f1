"""Coordinate domains and their data: image, sphere (ERA5) and occupancy (3D).

Registered through the ``inrkit.plugins`` entry point, exactly as a third-party plugin would be.
"""
import importlib

_MODULES = [
    "modalities.image",
    "modalities.sphere",
    "modalities.occupancy",
    "modalities.cache",
]


def register() -> None:
    for name in _MODULES:
        importlib.import_module(name)
