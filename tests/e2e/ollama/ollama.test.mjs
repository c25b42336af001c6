// End-to-end tests of `moonhub serve`'s Ollama API through the official
// ollama npm client (ollama-js, pinned in package-lock.json). Layer: tests;
// run by tests/e2e/ollama.sh, which registers the shared smol model as
// "smol", starts the fake Hub and the server, and passes MOONHUB_BASE_URL /
// _API_KEY. The model has random weights: tests check shapes, counts and
// constraints, not text. The tests run in order (node:test runs a file's
// top-level tests one after another).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';

const host = process.env.MOONHUB_BASE_URL;
const apiKey = process.env.MOONHUB_API_KEY;
assert.ok(host && apiKey, 'run through tests/e2e/ollama.sh (MOONHUB_BASE_URL, MOONHUB_API_KEY)');

const ollama = new Ollama({ host, headers: { Authorization: `Bearer ${apiKey}` } });
const messages = [{ role: 'user', content: 'Hello, who are you?' }];
const DURATIONS = ['total_duration', 'load_duration', 'prompt_eval_duration', 'eval_duration'];

function timed(r, evalCount) {
  for (const k of DURATIONS) assert.ok(Number.isInteger(r[k]) && r[k] >= 0, `${k}: ${r[k]}`);
  assert.ok(r.total_duration >= r.load_duration, 'total covers load');
  assert.ok(r.prompt_eval_count > 0);
  assert.equal(r.eval_count, evalCount);
}

async function names(fn) {
  return (await fn()).models.map((m) => m.name).sort();
}

test('version, and the API key is checked', async () => {
  const v = await ollama.version();
  assert.match(v.version, /^\d+\.\d+\.\d+/);
  const anon = new Ollama({ host });
  await assert.rejects(anon.list(), (e) => e.status_code === 401 && /API key/.test(e.error));
});

test('list: the registry with Ollama details', async () => {
  const r = await ollama.list();
  const smol = r.models.find((m) => m.name === 'smol:Q8_0');
  assert.ok(smol, JSON.stringify(r));
  assert.equal(smol.model, 'smol:Q8_0');
  assert.match(smol.digest, /^[0-9a-f]{64}$/);
  assert.ok(smol.size > 0);
  assert.equal(smol.details.format, 'gguf');
  assert.equal(smol.details.family, 'llama');
  assert.equal(smol.details.quantization_level, 'Q8_0');
});

test('show: model_info, template and details', async () => {
  const r = await ollama.show({ model: 'smol' });
  assert.equal(r.model_info['general.architecture'], 'llama');
  assert.ok(r.model_info['llama.context_length'] > 0);
  assert.equal(typeof r.template, 'string');
  assert.match(r.modelfile, /^FROM /m);
  assert.equal(r.details.family, 'llama');
  assert.ok(r.capabilities.includes('completion'));
  await assert.rejects(ollama.show({ model: 'no-such-model' }), (e) => e.status_code === 404 && /not found/.test(e.error));
});

let chatText;
test('chat, not streamed: message, done_reason and timings in nanoseconds', async () => {
  const r = await ollama.chat({ model: 'smol', messages, options: { seed: 7, num_predict: 5 } });
  assert.equal(r.model, 'smol');
  assert.equal(r.message.role, 'assistant');
  assert.equal(typeof r.message.content, 'string');
  assert.equal(r.done, true);
  assert.equal(r.done_reason, 'length');
  timed(r, 5);
  chatText = r.message.content;
  const again = await ollama.chat({ model: 'smol', messages, options: { seed: 7, num_predict: 5 } });
  assert.equal(again.message.content, chatText);
});

test('chat, streamed over an async iterator: the same text, the counts on the last part', async () => {
  const parts = [];
  for await (const part of await ollama.chat({ model: 'smol', messages, stream: true,
    options: { seed: 7, num_predict: 5 } })) parts.push(part);
  const last = parts.at(-1);
  assert.equal(last.done, true);
  assert.equal(last.done_reason, 'length');
  timed(last, 5);
  for (const p of parts.slice(0, -1)) assert.equal(p.done, false);
  assert.ok(parts.length >= 2);
  assert.equal(parts.map((p) => p.message.content).join(''), chatText);
});

test('chat: options are checked (an unknown option is a 400 in Ollama\'s shape)', async () => {
  await assert.rejects(ollama.chat({ model: 'smol', messages, options: { temprature: 0.5 } }),
    (e) => e.status_code === 400 && /temprature/.test(e.error));
  await assert.rejects(ollama.chat({ model: 'nope', messages }), (e) => e.status_code === 404);
});

test('generate with a JSON schema format; context continues the conversation', async () => {
  const format = { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'],
    additionalProperties: false };
  const r = await ollama.generate({ model: 'smol', prompt: 'A number:', format,
    options: { temperature: 0, num_predict: 200 } });
  assert.equal(r.done_reason, 'stop', r.response);
  const v = JSON.parse(r.response);
  assert.ok(Number.isInteger(v.n), r.response);
  assert.deepEqual(Object.keys(v), ['n']);
  assert.ok(Array.isArray(r.context) && r.context.length >= r.prompt_eval_count);
  const next = await ollama.generate({ model: 'smol', prompt: ' and more', context: r.context, raw: true,
    options: { num_predict: 2 } });
  assert.equal(next.eval_count, 2);
  assert.ok(next.prompt_eval_count > r.context.length, 'the context is in the prompt');
});

test('generate, streamed and raw', async () => {
  const parts = [];
  for await (const p of await ollama.generate({ model: 'smol', prompt: 'Once upon a time', raw: true,
    stream: true, options: { num_predict: 4, seed: 3 } })) parts.push(p);
  assert.equal(parts.at(-1).done, true);
  assert.equal(parts.at(-1).eval_count, 4);
  assert.ok(parts.slice(0, -1).every((p) => typeof p.response === 'string' && !p.done));
});

test('embed (normalized) and the older embeddings', async () => {
  const r = await ollama.embed({ model: 'smol', input: ['hello world', 'goodbye'] });
  assert.equal(r.embeddings.length, 2);
  for (const v of r.embeddings) {
    const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    assert.ok(Math.abs(norm - 1) < 1e-6, `norm ${norm}`);
  }
  assert.ok(r.prompt_eval_count > 0);
  const old = await ollama.embeddings({ model: 'smol', prompt: 'hello world' });
  const n = Math.sqrt(old.embedding.reduce((s, x) => s + x * x, 0));
  assert.equal(old.embedding.length, r.embeddings[0].length);
  old.embedding.forEach((x, i) => assert.ok(Math.abs(x / n - r.embeddings[0][i]) < 1e-5));
  const cut = await ollama.embed({ model: 'smol', input: 'hello world', dimensions: 8 });
  assert.equal(cut.embeddings[0].length, 8);
});

test('chat with tools: a call with object arguments, streamed and not; its result goes back in', async () => {
  // random weights never choose a call alone: a format schema of the call's
  // own JSON makes the answer one, which the tool parser then reads
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
  const format = { type: 'object', required: ['name', 'arguments'], additionalProperties: false,
    properties: { name: { const: 'get_weather' }, arguments: { type: 'object', required: ['city'],
      additionalProperties: false, properties: { city: { type: 'string', maxLength: 8 } } } } };
  const ask = [{ role: 'user', content: 'Weather in Oslo?' }];
  const opts = { temperature: 0, num_predict: 200 };
  const r = await ollama.chat({ model: 'smol', messages: ask, tools, format, options: opts });
  assert.equal(r.message.tool_calls.length, 1, JSON.stringify(r.message));
  const call = r.message.tool_calls[0];
  assert.equal(call.function.name, 'get_weather');
  assert.equal(typeof call.function.arguments, 'object');
  assert.equal(typeof call.function.arguments.city, 'string');
  assert.equal(r.done_reason, 'stop');
  const parts = [];
  for await (const p of await ollama.chat({ model: 'smol', messages: ask, tools, format, options: opts,
    stream: true })) parts.push(p);
  const streamed = parts.filter((p) => p.message.tool_calls).flatMap((p) => p.message.tool_calls);
  assert.deepEqual(streamed, r.message.tool_calls);
  assert.equal(parts.at(-1).done, true);
  const next = await ollama.chat({ model: 'smol', tools, options: { num_predict: 2 }, messages: [...ask,
    r.message, { role: 'tool', tool_name: 'get_weather', content: '{"temp": 3}' }] });
  assert.equal(next.eval_count, 2);
  assert.ok(next.prompt_eval_count > r.prompt_eval_count, 'the call and its result are in the prompt');
});

test('ps lists the loaded model; keep_alive 0 unloads it', async () => {
  await ollama.generate({ model: 'smol', prompt: 'hi', options: { num_predict: 1 }, keep_alive: '10m' });
  const ps = await ollama.ps();
  const m = ps.models.find((x) => x.name.startsWith('smol'));
  assert.ok(m, JSON.stringify(ps));
  assert.ok(m.size > 0);
  assert.ok(!Number.isNaN(Date.parse(m.expires_at)));
  const r = await ollama.generate({ model: 'smol', prompt: '', keep_alive: 0 });
  assert.equal(r.done_reason, 'unload');
  assert.deepEqual(await names(() => ollama.ps()), []);
  const load = await ollama.chat({ model: 'smol', messages: [], keep_alive: -1 });
  assert.equal(load.done_reason, 'load');
  assert.equal((await ollama.ps()).models.length, 1);
  await ollama.chat({ model: 'smol', messages, keep_alive: 0, options: { num_predict: 1 } });
  assert.deepEqual(await names(() => ollama.ps()), []);
});

test('pull from the Hub with progress events, then use the model', async () => {
  const events = [];
  for await (const e of await ollama.pull({ model: 'hf.co/mh/stories-GGUF:Q8_0', stream: true })) events.push(e);
  assert.equal(events[0].status, 'pulling manifest');
  assert.equal(events.at(-1).status, 'success');
  const progress = events.filter((e) => e.digest);
  assert.ok(progress.length >= 1, JSON.stringify(events));
  for (const e of progress) assert.match(e.digest, /^sha256:[0-9a-f]{64}$/);
  assert.equal(progress.at(-1).completed, progress.at(-1).total);
  assert.ok(progress.at(-1).total > 0);
  const listed = await names(() => ollama.list());
  assert.ok(listed.includes('stories260K:Q8_0'), listed.join(' '));
  const r = await ollama.generate({ model: 'stories260K', prompt: 'Once', options: { num_predict: 2 } });
  assert.equal(r.eval_count, 2);
  await assert.rejects(ollama.pull({ model: 'llama3.2' }), (e) => e.status_code === 400 && /Hugging Face/.test(e.error));
});

test('copy, create (system + parameters), delete', async () => {
  await ollama.copy({ source: 'smol', destination: 'smol-copy' });
  assert.ok((await names(() => ollama.list())).includes('smol-copy:Q8_0'));
  const c = await ollama.chat({ model: 'smol-copy', messages, options: { num_predict: 2 } });
  assert.equal(c.eval_count, 2);
  const made = await ollama.create({ model: 'terse', from: 'smol', system: 'Answer briefly.',
    parameters: { num_predict: 3, temperature: 0 } });
  assert.equal(made.status, 'success');
  const shown = await ollama.show({ model: 'terse' });
  assert.equal(shown.system, 'Answer briefly.');
  assert.match(shown.parameters, /num_predict\s+3/);
  const t = await ollama.chat({ model: 'terse', messages });
  assert.equal(t.eval_count, 3, 'the created parameters apply');
  const plain = await ollama.chat({ model: 'smol', messages, options: { num_predict: 3, temperature: 0 } });
  assert.ok(t.prompt_eval_count > plain.prompt_eval_count, 'the created system prompt is in the prompt');
  await ollama.delete({ model: 'smol-copy' });
  await ollama.delete({ model: 'terse' });
  const left = await names(() => ollama.list());
  assert.ok(!left.includes('smol-copy:Q8_0') && left.includes('smol:Q8_0'), left.join(' '));
  await assert.rejects(ollama.delete({ model: 'smol-copy' }), (e) => e.status_code === 404);
});
