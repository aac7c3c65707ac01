"""The ``aioiroh`` command line."""
