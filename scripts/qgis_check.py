"""Open a run's GeoPackage in a real QGIS (PyQGIS, offscreen) and report what QGIS shows.

Run with the Python that has QGIS (e.g. Debian's ``/usr/bin/python3`` with ``python3-qgis``),
not the toolkit's venv:

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 scripts/qgis_check.py RUN.gpkg OUT.png

For every spatial layer it loads the default style QGIS finds in the GeoPackage's
``layer_styles`` table and prints, as JSON on stdout: the renderer, its categories (value,
legend label, fill colour), and the label font with its fallback families; then it renders the
styled layers to ``OUT.png``. ``tests/test_qgis.py`` compares that with the report maps.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # after QT_QPA_PLATFORM is set
    QgsApplication,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor


def main(gpkg: str, png: str) -> int:
    app = QgsApplication([], False)
    app.initQgis()
    report: dict[str, object] = {"qgis": app.applicationVersion() if hasattr(
        app, "applicationVersion") else "", "layers": {}}
    layers = []
    from qgis.core import QgsProviderRegistry

    md = QgsProviderRegistry.instance().providerMetadata("ogr")
    for sub in md.querySublayers(gpkg) if hasattr(md, "querySublayers") else []:
        name = sub.name()
        lyr = QgsVectorLayer(f"{gpkg}|layername={name}", name, "ogr")
        if not lyr.isValid() or not lyr.isSpatial():
            continue
        _, ok = lyr.loadDefaultStyle()
        info: dict[str, object] = {"style_loaded": bool(ok), "features": lyr.featureCount()}
        r = lyr.renderer()
        info["renderer"] = r.type() if r else None
        if r is not None and r.type() == "categorizedSymbol":
            info["attribute"] = r.classAttribute()
            info["categories"] = [
                {"value": str(c.value()), "label": c.label(),
                 "color": c.symbol().color().name(QColor.HexRgb)} for c in r.categories()]
        if lyr.labelsEnabled() and lyr.labeling() is not None:
            fmt = lyr.labeling().settings().format()
            info["label_font"] = fmt.font().family()
            info["label_families"] = list(fmt.families()) if hasattr(fmt, "families") else []
        report["layers"][name] = info  # type: ignore[index]
        layers.append(lyr)
    settings = QgsMapSettings()
    settings.setLayers(layers[::-1])
    settings.setDestinationCrs(layers[0].crs())
    extent = layers[0].extent()
    for lyr in layers[1:]:
        extent.combineExtentWith(lyr.extent())
    settings.setExtent(extent)
    settings.setOutputSize(QSize(1200, 1200))
    settings.setBackgroundColor(QColor("white"))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    job.renderedImage().save(png, "png")
    report["png"] = png
    print(json.dumps(report, ensure_ascii=False), flush=True)
    # QgsApplication.exitQgis() can crash while Python still holds the layers (a known PyQGIS
    # shutdown-order problem); everything is written, so leave without tearing down.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
