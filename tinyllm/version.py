"""The package's version, in a leaf module: modules inside tinyllm/ read it here, never from tinyllm/__init__."""
__version__ = "0.1.0"  # keep equal to pyproject.toml's version
