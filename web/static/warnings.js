// Area warnings on the console: issue one (an area on the map, a message, an expiry), update
// it, cancel it. Each is an OASIS CAP 1.2 message for outside systems (docs/api.md, "Area
// warnings"); kuzet never issues one by itself.

import { $, h, api, toast, fmtWhen } from './common.js';

const L = window.L;
const SEVERITIES = ['extreme', 'severe', 'moderate', 'minor'];

/**
 * Sets up the panel `#warnings` and its map layer. `centre()` gives where a new warning is
 * placed until the dispatcher clicks the map (the selected incident, else the map's centre).
 */
export function setupWarnings(map, centre) {
  const layer = L.layerGroup().addTo(map);
  const list = $('#warnings');
  const err = h('div.error', { role: 'alert' });
  let warnings = [];
  let placing = null; // the form waiting for a click on the map
  let pin = null;

  const field = (label, el) => h('label.line', null, h('span.lbl', null, label), el);
  const form = () => {
    const headline = h('input', { name: 'headline', maxlength: 160, required: true, placeholder: 'Police operation at …' });
    const description = h('textarea', { name: 'description', maxlength: 2000, rows: 2, required: true, placeholder: 'What is happening' });
    const instruction = h('input', { name: 'instruction', maxlength: 1000, placeholder: 'What people should do (optional)' });
    const areaDesc = h('input', { name: 'area', maxlength: 500, required: true, placeholder: 'The area in words' });
    const radius = h('input', { name: 'radius_m', type: 'number', min: 10, max: 50000, step: 10, value: 500 });
    const minutes = h('input', { name: 'minutes', type: 'number', min: 5, max: 10080, step: 5, value: 120 });
    const severity = h('select', { name: 'severity' }, SEVERITIES.map((s) => h('option', { value: s, selected: s === 'severe' }, s)));
    const where = h('span.muted.where', null, '');
    const f = h('form.warning-form', { dataset: { form: 'warning' } },
      field('Headline', headline), field('Message', description), field('Instruction', instruction),
      field('Area', areaDesc), field('Radius m', radius), field('Severity', severity), field('For min', minutes),
      h('div.line', null, h('span.muted', null, 'Centre: click the map. '), where),
      h('div.line', null,
        h('button.btn.primary', { type: 'submit', dataset: { action: 'issue-warning' } }, 'Issue warning'),
        h('button.btn.ghost', { type: 'button', onclick: () => close() }, 'Close')));
    f.point = centre();
    const show = () => { where.textContent = `${f.point.lat.toFixed(5)}, ${f.point.lon.toFixed(5)}`; drawPin(f.point, Number(radius.value)); };
    radius.addEventListener('input', show);
    f.place = (p) => { f.point = p; show(); };
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.textContent = '';
      const body = {
        headline: headline.value, description: description.value, severity: severity.value,
        expires_at: new Date(Date.now() + Number(minutes.value) * 60000).toISOString(),
        area: { description: areaDesc.value, circle: { lat: f.point.lat, lon: f.point.lon, radius_m: Number(radius.value) } },
      };
      if (instruction.value.trim()) body.instruction = instruction.value;
      try {
        await api('/warnings', { method: 'POST', body });
        toast('Area warning issued (CAP Alert).');
        close();
        await refresh();
      } catch (ex) { err.textContent = ex.message; }
    });
    show();
    return f;
  };
  const close = () => {
    placing?.remove();
    placing = null;
    $('#warnings-panel').classList.remove('composing');
    if (pin) { pin.remove(); pin = null; }
  };
  const drawPin = (p, r) => {
    if (pin) pin.remove();
    pin = L.circle([p.lat, p.lon], { radius: r, color: '#b45309', dashArray: '4 4', fill: false }).addTo(map);
  };
  map.on('click', (e) => { if (placing) placing.place({ lat: e.latlng.lat, lon: e.latlng.lng }); });

  const newBtn = h('button.btn.small', { type: 'button', dataset: { action: 'new-warning' } }, 'New…');
  newBtn.addEventListener('click', () => {
    if (placing) return;
    placing = form();
    $('#warning-compose').append(placing);
    $('#warnings-panel').classList.add('composing');
    placing.querySelector('input[name=headline]').focus();
  });
  $('#warnings-panel h2 .right').append(newBtn);
  list.after(err);

  const row = (w) => {
    const state = w.msg_type === 'Cancel' ? 'cancelled' : w.in_force ? 'in force' : 'expired';
    const reason = h('input', { name: 'reason', maxlength: 500, placeholder: 'Why (optional)' });
    const cancel = h('button.btn.small.danger', { type: 'button', dataset: { action: 'cancel-warning' } }, 'Cancel warning');
    cancel.addEventListener('click', async () => {
      err.textContent = '';
      try {
        await api(`/warnings/${w.warning_id}/cancel`, { method: 'POST', body: reason.value.trim() ? { reason: reason.value } : {} });
        toast('Area warning cancelled (CAP Cancel).');
        await refresh();
      } catch (ex) { err.textContent = ex.message; }
    });
    const extend = h('button.btn.small', { type: 'button', dataset: { action: 'extend-warning' } }, '+1 h');
    extend.addEventListener('click', async () => {
      err.textContent = '';
      const at = new Date(Math.max(Date.now(), Date.parse(w.expires_at)) + 3600000).toISOString();
      try {
        await api(`/warnings/${w.warning_id}/update`, { method: 'POST', body: { expires_at: at } });
        toast('Area warning updated (CAP Update).');
        await refresh();
      } catch (ex) { err.textContent = ex.message; }
    });
    return h('div.warning', { dataset: { warningId: w.warning_id, state } },
      h('div.line', null, h('strong', null, w.headline), h('span.tag', null, state)),
      h('div.muted', null, `${w.area.description} · ${w.severity} · until ${fmtWhen(w.expires_at)} · ${w.messages} message(s)`),
      w.in_force ? h('div.line', null, extend, reason, cancel) : null);
  };

  async function refresh() {
    try {
      warnings = await api('/warnings');
    } catch (ex) {
      err.textContent = `Warnings unavailable: ${ex.message}`;
      return;
    }
    const rows = warnings.map(row);
    list.replaceChildren(...(rows.length ? rows : [h('div.empty', null, 'No area warnings this week.')]));
    $('#warnings-count').textContent = String(warnings.filter((w) => w.in_force).length);
    layer.clearLayers();
    for (const w of warnings.filter((x) => x.in_force)) {
      const a = w.area;
      const shape = a.circle
        ? L.circle([a.circle.lat, a.circle.lon], { radius: a.circle.radius_m, color: '#b45309', weight: 2, fillOpacity: 0.08 })
        : L.polygon(a.polygon, { color: '#b45309', weight: 2, fillOpacity: 0.08 });
      shape.bindTooltip(w.headline).addTo(layer);
    }
  }

  refresh();
  setInterval(refresh, 30000);
  return { refresh };
}
