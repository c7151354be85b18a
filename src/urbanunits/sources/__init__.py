"""Readers for the run's inputs: OSM extracts, boundary files, inventories, facility lists."""

from urbanunits.sources.classify import classify_facilities
from urbanunits.sources.osm import OSMLayers, read_osm, study_area_polygon

__all__ = ["OSMLayers", "classify_facilities", "read_osm", "study_area_polygon"]
