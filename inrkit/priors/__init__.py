"""Built-in parts of this kind register on import."""
