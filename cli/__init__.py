"""The ``inrkit`` command: thin; it parses, builds configs and calls the Python API."""
