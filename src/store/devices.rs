//! Devices and sites in PostGIS: loading them at start, and importing them from GeoJSON.
