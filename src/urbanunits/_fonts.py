"""The CJK font for maps and QGIS labels: a system font when there is one, else the bundled one.

Kept apart from :mod:`urbanunits.maps` so that the GeoPackage writer can name the font in its
QGIS styles without importing the map code (and matplotlib's pyplot machinery) it does not need.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

from matplotlib import font_manager

__all__ = ["cjk_font_family", "cjk_font_path"]

logger = logging.getLogger(__name__)

# System fonts tried first, by family name; the bundled Noto Sans CJK is the fallback.
_CJK_FAMILIES = ("Noto Sans CJK SC", "Source Han Sans SC", "Source Han Sans CN",
                 "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Microsoft YaHei", "PingFang SC",
                 "SimHei", "Heiti SC")


@cache
def cjk_font_path() -> Path | None:
    """Path of the CJK font used on maps, registering the bundled one if no system font has it."""
    for fe in font_manager.fontManager.ttflist:
        if fe.name in _CJK_FAMILIES:
            return Path(fe.fname)
    try:
        from noto_cjk_sans_otc import FONT_PATH
    except ImportError:  # pragma: no cover - dependency of the package
        logger.warning("no CJK font found; Chinese labels will not render. "
                       "Install fonts-noto-cjk or `pip install noto-cjk-sans-otc`.")
        return None
    path = Path(str(FONT_PATH))
    font_manager.fontManager.addfont(str(path))
    return path


@cache
def cjk_font_family() -> str:
    """Family name of the CJK font (Simplified Chinese face preferred)."""
    path = cjk_font_path()
    if path is None:
        return "DejaVu Sans"
    names = [fe.name for fe in font_manager.fontManager.ttflist if Path(fe.fname) == path]
    for pref in _CJK_FAMILIES:
        if pref in names:
            return pref
    return names[0] if names else "DejaVu Sans"
