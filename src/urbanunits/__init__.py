"""urbanunits: update units, renewal packages and 15-minute life circles from open data.

Built for Ningbo's old-community renewal (老旧小区改造). Each stage is a module of pure functions
over GeoDataFrames and graphs; :mod:`urbanunits.pipeline` runs them from a config with caching.
"""

import logging
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("urbanunits")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

ATTRIBUTION = "© OpenStreetMap contributors, ODbL 1.0"

__all__ = ["ATTRIBUTION", "__version__"]
