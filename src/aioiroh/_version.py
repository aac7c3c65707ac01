"""The package version, in one place (pyproject reads it; ``aioiroh.__version__`` re-exports it)."""

__version__ = "0.2.0"
