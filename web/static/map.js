// The base map shared by the console and the tablet: roads from GET /api/v1/map drawn on
// one canvas (never blank), tiles only when kuzet names a tile server, sites and cameras.

import { api } from './common.js';

const L = window.L;

/** Unit marker colours by display status. */
export const UNIT_COLOURS = {
  available: '#3fb950', offered: '#39c5cf', on_incident: '#58a6ff', busy: '#d29922',
  off_duty: '#6e7681', offline: '#6e7681', no_fix: '#6e7681',
};

export const PRIO_COLOURS = { 1: '#f85149', 2: '#f0883e', 3: '#d29922' };
export const prioColour = (p) => PRIO_COLOURS[p] || '#8b96a3';

/** An arrow (heading known) or a dot, as SVG. */
export function arrowSvg(colour, heading) {
  if (heading === null || heading === undefined || !Number.isFinite(heading)) {
    return `<svg viewBox="0 0 22 22"><circle cx="11" cy="11" r="6" fill="${colour}" stroke="#0f1419" stroke-width="2"/></svg>`;
  }
  return `<svg viewBox="0 0 22 22" style="transform:rotate(${Math.round(heading)}deg)">` +
    `<path d="M11 2 L18 19 L11 15 L4 19 Z" fill="${colour}" stroke="#0f1419" stroke-width="1.5" stroke-linejoin="round"/></svg>`;
}

/**
 * Creates the Leaflet map in `el` and loads the base layers. Resolves with
 * `{map, info, layers}`; `info` is the /map answer (null when it failed). `animate: false`
 * turns zoom animations off, so that every programmatic fit takes effect.
 */
export async function createMap(el, { sites = true, cameras = true, animate = true, onError, onResize } = {}) {
  const map = L.map(el, {
    zoomControl: true, attributionControl: true, preferCanvas: false, zoomSnap: 0.5,
    zoomAnimation: animate, fadeAnimation: animate, markerZoomAnimation: animate,
  });
  map.setView([0, 0], 2);
  // Panels beside the map change size (the tablet's card): keep Leaflet's idea of it right.
  let pending = null;
  new ResizeObserver(() => {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(() => { map.invalidateSize(false); onResize?.(); });
  }).observe(el);
  map.attributionControl.setPrefix('<a href="https://leafletjs.com" target="_blank" rel="noopener">Leaflet</a>');
  const renderer = L.canvas({ padding: 0.3 });
  const layers = { roads: null, tiles: null, sites: L.layerGroup(), cameras: L.layerGroup(), cameraMarkers: new Map() };
  let info = null;
  try {
    info = await api('/map');
  } catch (e) {
    if (onError) onError(e);
    return { map, info: null, layers };
  }
  const roads = (info.roads || []).map((flat) => {
    const line = [];
    for (let i = 0; i + 1 < flat.length; i += 2) line.push([flat[i], flat[i + 1]]);
    return line;
  }).filter((l) => l.length > 1);
  if (roads.length) {
    layers.roads = L.polyline(roads, {
      renderer, color: '#6b7785', weight: 1, opacity: 0.75, interactive: false, smoothFactor: 1.2,
    }).addTo(map);
  }
  if (!roads.length && !info.tile_url) {
    // Neither roads nor tiles: a faint grid, so the map still reads as a map.
    new GridBackdrop({ tileSize: 128, zIndex: 0 }).addTo(map);
  }
  if (info.tile_url) {
    layers.tiles = L.tileLayer(info.tile_url, { attribution: info.tile_attribution || '', maxZoom: 19 });
    layers.tiles.addTo(map);
    layers.tiles.bringToBack();
  }
  if (sites) {
    for (const s of info.sites || []) {
      L.marker([s.lat, s.lon], {
        icon: L.divIcon({ className: 'mk', html: `<div class="mk-site ${cls(s.kind)}"></div>`, iconSize: [10, 10] }),
        keyboard: false, zIndexOffset: -500,
      }).bindTooltip(`${esc(s.name)} <span class="muted">(${esc(s.kind)})</span>`, { direction: 'top', offset: [0, -6] })
        .addTo(layers.sites);
    }
    layers.sites.addTo(map);
  }
  if (cameras) {
    for (const c of info.cameras || []) {
      const m = L.marker([c.lat, c.lon], {
        icon: cameraIcon(c, false), keyboard: false, zIndexOffset: -400,
      }).bindTooltip(`camera ${esc(c.camera_id)}${c.custodial ? ' (custodial)' : ''}`, { direction: 'top', offset: [0, -5] });
      m.addTo(layers.cameras);
      layers.cameraMarkers.set(c.camera_id, { marker: m, camera: c });
    }
    layers.cameras.addTo(map);
  }
  const overlays = {};
  if (layers.roads) overlays.Roads = layers.roads;
  if (sites) overlays.Sites = layers.sites;
  if (cameras) overlays.Cameras = layers.cameras;
  if (layers.tiles) overlays.Tiles = layers.tiles;
  if (Object.keys(overlays).length > 1) L.control.layers(null, overlays, { collapsed: true }).addTo(map);
  fitInitial(map, info, roads);
  return { map, info, layers };
}

export function cameraIcon(c, alerting) {
  const k = `mk-cam${c.custodial ? ' custodial' : ''}${alerting ? ' alerting' : ''}`;
  return L.divIcon({ className: 'mk', html: `<div class="${k}"></div>`, iconSize: [8, 8] });
}

function fitInitial(map, info, roads) {
  if (info.bounds) {
    map.fitBounds(info.bounds, { padding: [10, 10], maxZoom: 16 });
    return;
  }
  const pts = [];
  for (const l of roads) { pts.push(l[0], l[l.length - 1]); }
  for (const s of info.sites || []) pts.push([s.lat, s.lon]);
  for (const c of info.cameras || []) pts.push([c.lat, c.lon]);
  if (pts.length) map.fitBounds(L.latLngBounds(pts), { padding: [20, 20], maxZoom: 16 });
}

const GridBackdrop = L.GridLayer.extend({
  createTile() {
    const size = this.getTileSize();
    const tile = document.createElement('canvas');
    tile.width = size.x;
    tile.height = size.y;
    const ctx = tile.getContext('2d');
    ctx.strokeStyle = 'rgba(139, 150, 163, 0.14)';
    ctx.strokeRect(0.5, 0.5, size.x, size.y);
    return tile;
  },
});

const cls = (s) => String(s || '').replace(/[^a-z0-9_-]/gi, '');

/** Escapes text for Leaflet's HTML tooltips. */
export function esc(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}
