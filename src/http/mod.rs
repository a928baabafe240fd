//! The query API over HTTP: incidents, timelines, unit tracks and sites, as JSON and GeoJSON.
