"""lens: measure how fast and how costly LLM APIs really are."""

from lens._version import __version__

__all__ = ["__version__"]
