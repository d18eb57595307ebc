"""itsm: a plugin-based IT Service Management platform."""

__version__ = "0.1.0"

from itsm.core.hookspecs import hookimpl  # noqa: E402
from itsm.core.plugins import Plugin  # noqa: E402

__all__ = ["Plugin", "__version__", "hookimpl"]
