#!/usr/bin/env node
// Checks docs/asyncapi.yaml, and what kuzet really sends against it.
//
// 1. Parses the document with the AsyncAPI parser (@asyncapi/parser, the reference
//    implementation): any diagnostic of severity error fails the check.
// 2. Validates, with the JSON Schemas the parser gives for each channel's messages (ajv, as the
//    parser itself uses):
//    - every payload the tests recorded (tests/common/record.rs): JSON lines
//      {"topic", "payload" (text; "" for an empty payload), "retained", "qos"} in the folder
//      given (target/asyncapi-payloads/ by default). The topic picks the channel (its address,
//      each parameter matching its `x-pattern` or `enum`); the payload must match one of the
//      channel's messages, the retained flag and QoS those of an operation that sends that
//      message (its MQTT binding), and each parameter with a `location` must equal the payload
//      field it names.
//    - every example in docs/mqtt.md: a fenced ```json block belongs to the section (the
//      nearest heading of level 2 or 3) it is in, and is checked against the channels whose
//      `x-docs` names that section (`mqtt.md#<anchor>`). A block holds one JSON value, or one
//      per line. A block right after an HTML comment starting `<!-- not a payload` is skipped
//      (an example shortened on purpose, or with `...` in it).
// 3. Prints `asyncapi <channel address>: N checked` for every channel and a last line
//    `asyncapi: N passed, M failed`. It fails when a payload does not match, a topic matches no
//    channel, or a channel kuzet publishes on (a `send` operation) has no recorded payload.
//
// Usage: node check.mjs [--doc FILE] [--examples FILE] [--payloads DIR]
// (defaults: docs/asyncapi.yaml, docs/mqtt.md and target/asyncapi-payloads of the repository).

import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Parser } from '@asyncapi/parser';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = options(process.argv.slice(2), {
  doc: join(root, 'docs', 'asyncapi.yaml'),
  examples: join(root, 'docs', 'mqtt.md'),
  payloads: join(root, 'target', 'asyncapi-payloads'),
});
/** Failures shown in full; past this many only counted. */
const SHOW = 25;

let passed = 0;
let failed = 0;
let shown = 0;
function fail(what) {
  failed += 1;
  if (shown < SHOW) console.log(`asyncapi FAIL ${what}`);
  else if (shown === SHOW) console.log('asyncapi FAIL ... (further failures counted, not shown)');
  shown += 1;
}

const document = await parse(args.doc);
if (!document) finish();
const channels = channelTable(document);
checkDocs(channels, dirname(args.doc));
const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false, strictTuples: false, strictRequired: false, allowUnionTypes: true });
addFormats(ajv);
for (const c of channels) {
  for (const m of c.messages) m.validate = compile(m.schema, `${c.id}/${m.id}`);
}
checkExamples(channels, args.examples);
checkRecorded(channels, args.payloads);
report(channels);
finish();

function options(argv, defaults) {
  const out = { ...defaults };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in out) || argv[i + 1] === undefined) {
      console.error(`usage: node check.mjs [--doc FILE] [--examples FILE] [--payloads DIR] (not ${argv[i]})`);
      process.exit(2);
    }
    out[key] = resolve(argv[i + 1]);
  }
  return out;
}

async function parse(file) {
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(readFileSync(file, 'utf8'), { source: file });
  // Severity 0 is an error, 1 a warning; information and hints (2, 3) are left out.
  for (const d of diagnostics.filter((x) => x.severity <= 1)) {
    const where = d.path.length ? d.path.join('.') : '(document)';
    const line = `${file}: ${where}: ${d.message} (${d.code})`;
    if (d.severity === 0) fail(line);
    else console.log(`asyncapi warning ${line}`);
  }
  if (!document || diagnostics.some((d) => d.severity === 0)) return undefined;
  passed += 1;
  return document;
}

/** Each channel with what the check needs: a pattern for topics, its messages, and, for each
 * message, the retained flags and QoS the operations that carry it publish with. */
function channelTable(doc) {
  const table = [];
  for (const ch of doc.channels().all()) {
    const params = new Map(ch.parameters().all().map((p) => [p.id(), p]));
    const names = [];
    let source = '^';
    for (const part of ch.address().split(/(\{[^}]+\})/)) {
      const name = part.match(/^\{([^}]+)\}$/)?.[1];
      if (name === undefined) {
        source += part.replace(/[.*+?^$()|[\]\\]/g, '\\$&');
        continue;
      }
      const p = params.get(name);
      if (!p) fail(`channel ${ch.id()}: address names {${name}}, which is not among its parameters`);
      names.push(name);
      source += `(${paramPattern(p)})`;
    }
    const ext = (k) => ch.extensions().get(k)?.value();
    const entry = {
      id: ch.id(),
      address: ch.address(),
      re: new RegExp(`${source}$`),
      names,
      locations: [...params.values()]
        .filter((p) => p.location())
        .map((p) => ({ name: p.id(), pointer: p.location().replace(/^\$message\.payload#/, '') })),
      docs: ext('x-docs'),
      publisher: ext('x-publisher'),
      acl: ext('x-acl'),
      sends: false,
      messages: ch.messages().all().map((m) => ({
        id: m.id(),
        schema: m.payload()?.json(),
        // JSON payloads are parsed before they are validated; others (CAP XML) are validated as text.
        json: /(^|[/+])json$/.test(m.contentType() ?? doc.defaultContentType() ?? 'application/json'),
        delivery: [],
      })),
      recorded: 0,
      examples: 0,
    };
    table.push(entry);
  }
  for (const op of doc.operations().all()) {
    const b = op.bindings().get('mqtt')?.value() ?? {};
    for (const ch of op.channels().all()) {
      const entry = table.find((c) => c.id === ch.id());
      if (op.action() === 'send') entry.sends = true;
      for (const m of op.messages().all()) {
        const msg = entry.messages.find((x) => x.id === m.id());
        if (!msg) {
          fail(`operation ${op.id()}: message ${m.id()} is not on channel ${ch.id()}`);
          continue;
        }
        msg.delivery.push({ op: op.id(), retain: b.retain ?? false, qos: b.qos ?? 0 });
      }
    }
  }
  for (const c of table) {
    for (const m of c.messages) {
      if (m.delivery.length === 0) fail(`channel ${c.id}: no operation carries message ${m.id}`);
    }
  }
  return table;
}

function paramPattern(p) {
  const pattern = p?.extensions().get('x-pattern')?.value();
  if (pattern) return pattern.replace(/^\^/, '').replace(/\$$/, '');
  const values = p?.enum();
  if (values?.length) return values.map((v) => String(v).replace(/[.*+?^$()|[\]\\]/g, '\\$&')).join('|');
  return '[^/]+';
}

/** Every channel says who publishes on it, under which ACL rule, and where its prose is. */
function checkDocs(table, docsDir) {
  const anchors = new Map();
  for (const c of table) {
    if (!c.publisher) fail(`channel ${c.id}: no x-publisher`);
    if (!c.acl?.publish || !c.acl?.read) fail(`channel ${c.id}: x-acl needs publish and read`);
    const [file, anchor] = String(c.docs ?? '').split('#');
    if (!file || !anchor) {
      fail(`channel ${c.id}: x-docs must be FILE#anchor (a file under docs/)`);
      continue;
    }
    if (!anchors.has(file)) {
      const path = join(docsDir, file);
      anchors.set(file, existsSync(path) ? sections(readFileSync(path, 'utf8'), 6).map((s) => s.anchor) : []);
    }
    if (!anchors.get(file).includes(anchor)) fail(`channel ${c.id}: x-docs ${c.docs} names no heading of docs/${file}`);
  }
}

/** GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped, spaces to `-`. */
function slug(text) {
  return text.trim().toLowerCase().replace(/[^\p{L}\p{M}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

/** The headings (outside code blocks) of level up to `depth`, with their line numbers. */
function sections(markdown, depth) {
  const out = [];
  let fence = false;
  markdown.split('\n').forEach((line, i) => {
    if (/^\s*```/.test(line)) fence = !fence;
    const h = !fence && line.match(/^(#{1,6})\s+(.*)$/);
    if (h && h[1].length <= depth) out.push({ line: i, level: h[1].length, anchor: slug(h[2]) });
  });
  return out;
}

function compile(schema, name) {
  if (schema === undefined) {
    fail(`${name}: the message has no payload schema`);
    return () => false;
  }
  addExtensionKeywords(schema);
  try {
    return ajv.compile(schema);
  } catch (e) {
    fail(`${name}: the payload schema does not compile: ${e.message}`);
    return () => false;
  }
}

/** The parser marks schemas with `x-parser-*`, and a document may carry `x-` extensions: known
 * to ajv as annotations, so that strict mode still refuses a misspelt keyword. */
function addExtensionKeywords(schema) {
  const seen = new Set();
  const walk = (v) => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (v === null || typeof v !== 'object' || seen.has(v)) return;
    seen.add(v);
    for (const [k, x] of Object.entries(v)) {
      if (k.startsWith('x-') && !ajv.getKeyword(k)) ajv.addKeyword({ keyword: k, schemaType: ['string', 'number', 'boolean', 'object', 'array', 'null'] });
      walk(x);
    }
  };
  walk(schema);
}

/** The messages of `channel` that `value` matches; else the errors against each. `value` is
 * parsed JSON (an example), or the payload's text (recorded): then each message reads it as its
 * content type says, an empty payload being null. */
function match(channel, value, { raw = false } = {}) {
  const valid = [];
  const errors = [];
  for (const m of channel.messages) {
    let v = value;
    if (raw && value === '') v = null;
    else if (raw && m.json) {
      try {
        v = JSON.parse(value);
      } catch (e) {
        errors.push(`${m.id}: the payload is not JSON (${e.message})`);
        continue;
      }
    }
    if (m.validate(v)) valid.push(m);
    else errors.push(`${m.id}: ${ajv.errorsText(m.validate.errors, { separator: '; ', dataVar: 'payload' })}`);
  }
  return { valid, errors };
}

function checkExamples(table, file) {
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n');
  const heads = sections(text, 3);
  let skipped = 0;
  for (let i = 0; i < lines.length; i++) {
    if (!/^```json\s*$/.test(lines[i])) continue;
    const start = i;
    const body = [];
    for (i += 1; i < lines.length && !/^```\s*$/.test(lines[i]); i++) body.push(lines[i]);
    let before = start - 1;
    while (before >= 0 && lines[before].trim() === '') before--;
    if (before >= 0 && /^<!--\s*not a payload/.test(lines[before].trim())) {
      skipped += 1;
      continue;
    }
    const where = `${file}:${start + 1}`;
    const section = heads.filter((h) => h.line < start).pop();
    const owners = table.filter((c) => section && c.docs === `${basename(file)}#${section.anchor}`);
    if (owners.length === 0) {
      fail(`${where}: an example in section #${section?.anchor ?? '(none)'}, which no channel's x-docs names`);
      continue;
    }
    let values;
    try {
      values = [JSON.parse(body.join('\n'))];
    } catch {
      try {
        values = body.filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
      } catch (e) {
        fail(`${where}: not JSON (${e.message}); mark an example that is not a payload with <!-- not a payload -->`);
        continue;
      }
    }
    for (const value of values) {
      const results = owners.map((c) => ({ c, ...match(c, value) }));
      const hit = results.find((r) => r.valid.length > 0);
      if (hit) {
        hit.c.examples += 1;
        passed += 1;
      } else {
        const why = results.flatMap((r) => r.errors.map((e) => `${r.c.address} ${e}`)).join(' | ');
        fail(`${where}: the example matches no message of ${owners.map((c) => c.address).join(' or ')}: ${why}`);
      }
    }
  }
  console.log(`asyncapi examples: ${skipped} marked not a payload, skipped`);
}

function checkRecorded(table, dir) {
  if (!existsSync(dir)) {
    console.log(`asyncapi: no recorded payloads in ${dir} (run the test suite first)`);
    return;
  }
  const files = readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort();
  let total = 0;
  for (const f of files) {
    const lines = readFileSync(join(dir, f), 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      total += 1;
      checkOne(table, `${f}:${i + 1}`, line);
    });
  }
  console.log(`asyncapi: ${total} recorded payloads in ${files.length} files of ${dir}`);
}

function checkOne(table, where, line) {
  let rec;
  try {
    rec = JSON.parse(line);
  } catch (e) {
    return fail(`${where}: not a JSON line (${e.message})`);
  }
  const { topic, payload, retained, qos } = rec;
  const channel = table.find((c) => c.re.test(topic));
  if (!channel) return fail(`${where}: ${topic}: no channel of the document has this topic`);
  const { valid, errors } = match(channel, payload, { raw: true });
  if (valid.length === 0) {
    return fail(`${where}: ${topic}: matches no message of ${channel.address}: ${errors.join(' | ')} -- payload: ${payload.slice(0, 300)}`);
  }
  const deliveries = valid.flatMap((m) => m.delivery.map((d) => ({ ...d, message: m.id })));
  if (!deliveries.some((d) => d.retain === retained)) {
    const want = deliveries.map((d) => `${d.op}: retain ${d.retain}`).join(', ');
    return fail(`${where}: ${topic}: ${valid.map((m) => m.id).join('/')} published with retain ${retained}, the document says ${want}`);
  }
  if (qos !== undefined && !deliveries.some((d) => d.qos === qos)) {
    return fail(`${where}: ${topic}: published with QoS ${qos}, the document says ${deliveries.map((d) => d.qos).join('/')}`);
  }
  const value = valid.every((m) => m.json) && payload !== '' ? JSON.parse(payload) : null;
  if (value !== null) {
    const parts = topic.match(channel.re).slice(1);
    for (const { name, pointer } of channel.locations) {
      const inTopic = parts[channel.names.indexOf(name)];
      const inPayload = pointer.split('/').slice(1).reduce((v, k) => v?.[k.replace(/~1/g, '/').replace(/~0/g, '~')], value);
      if (String(inPayload) !== inTopic) {
        return fail(`${where}: ${topic}: {${name}} is ${inTopic} but the payload's ${pointer} is ${inPayload}`);
      }
    }
  }
  channel.recorded += 1;
  for (const m of valid) m.recorded = (m.recorded ?? 0) + 1;
  passed += 1;
}

function report(table) {
  for (const c of table) {
    const n = c.recorded + c.examples;
    const each = c.messages.length > 1 ? ` [${c.messages.map((m) => `${m.id} ${m.recorded ?? 0}`).join(', ')}]` : '';
    console.log(`asyncapi ${c.address}: ${n} checked (${c.recorded} recorded${each}, ${c.examples} from docs/mqtt.md)`);
    if (c.sends && c.recorded === 0) {
      fail(`${c.address}: kuzet publishes here, and the tests recorded nothing on it to check`);
    }
  }
}

function finish() {
  console.log(`asyncapi: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}
