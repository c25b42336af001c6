// End-to-end tests of `moonhub serve`'s /v1/messages through the official
// Anthropic Node SDK (@anthropic-ai/sdk, pinned in package-lock.json).
// Layer: tests; run by tests/e2e/run.sh (MOONHUB_BASE_URL / _API_KEY). The
// model has random weights: tests check shapes, event order and constraints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';

const base = process.env.MOONHUB_BASE_URL;
const apiKey = process.env.MOONHUB_API_KEY;
assert.ok(base && apiKey, 'run through tests/e2e/run.sh (MOONHUB_BASE_URL, MOONHUB_API_KEY)');

// The SDK appends /v1/messages itself and sends the key as x-api-key.
const baseURL = base.replace(/\/v1\/?$/, '');
const client = new Anthropic({ baseURL, apiKey, maxRetries: 0, timeout: 30_000 });
const messages = [{ role: 'user', content: 'Hello, who are you?' }];
const tools = [{
  name: 'get_weather', description: 'Current weather in a city',
  input_schema: { type: 'object', properties: { city: { enum: ['Paris', 'Rome'] } }, required: ['city'] },
}];
let model;

async function modelId() {
  if (!model) {
    const r = await fetch(`${base}/models`, { headers: { Authorization: `Bearer ${apiKey}` } });
    model = (await r.json()).data[0].id;
  }
  return model;
}

test('messages.create: system, max_tokens -> max_tokens stop, usage', async () => {
  await modelId();
  const r = await client.messages.create({ model, system: 'Answer briefly.', messages, max_tokens: 5,
    temperature: 0 });
  assert.equal(r.type, 'message');
  assert.match(r.id, /^msg_/);
  assert.equal(r.role, 'assistant');
  assert.equal(r.model, model);
  assert.equal(r.content.length, 1);
  assert.equal(r.content[0].type, 'text');
  assert.equal(typeof r.content[0].text, 'string');
  assert.equal(r.stop_reason, 'max_tokens');
  assert.equal(r.stop_sequence, null);
  assert.equal(r.usage.output_tokens, 5);
  assert.ok(r.usage.input_tokens > 0);
  // system as text blocks and content as text blocks: the same prompt
  const blocks = await client.messages.create({ model, max_tokens: 5, temperature: 0,
    system: [{ type: 'text', text: 'Answer briefly.' }],
    messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello, who are you?' }] }] });
  assert.equal(blocks.content[0].text, r.content[0].text);
  assert.equal(blocks.usage.input_tokens, r.usage.input_tokens);
});

test('stop_sequences: generation ends before the sequence, named in stop_sequence', async () => {
  const long = await client.messages.create({ model, messages, max_tokens: 12, temperature: 0 });
  const text = long.content[0].text;
  // a piece of the greedy answer that starts after its first character
  const at = text.indexOf(' ', 2) > 0 ? text.indexOf(' ', 2) : 3;
  const seq = text.slice(at, at + 3);
  assert.ok(seq.length === 3 && text.indexOf(seq) === at, `no usable stop sequence in ${JSON.stringify(text)}`);
  const r = await client.messages.create({ model, messages, max_tokens: 12, temperature: 0, stop_sequences: [seq] });
  assert.equal(r.stop_reason, 'stop_sequence');
  assert.equal(r.stop_sequence, seq);
  assert.equal(r.content[0].text, text.slice(0, at));
});

test('messages.stream: events in order, text and usage as non-streamed', async () => {
  const body = { model, messages, max_tokens: 6, temperature: 0 };
  const plain = await client.messages.create(body);
  const stream = client.messages.stream(body);
  const types = [];
  let text = '';
  stream.on('streamEvent', (ev) => types.push(ev.type));
  stream.on('text', (t) => { text += t; });
  const final = await stream.finalMessage();
  const deltas = types.filter((t) => t === 'content_block_delta').length;
  assert.ok(deltas >= 1);
  assert.deepEqual(types, ['message_start', 'content_block_start', ...Array(deltas).fill('content_block_delta'),
    'content_block_stop', 'message_delta', 'message_stop']);
  assert.equal(text, plain.content[0].text);
  assert.equal(final.content[0].text, text);
  assert.equal(final.stop_reason, 'max_tokens');
  assert.equal(final.usage.output_tokens, 6);
  assert.equal(final.usage.input_tokens, plain.usage.input_tokens);
  // stream: true on messages.create gives the raw events
  const raw = await client.messages.create({ ...body, stream: true });
  const rawTypes = [];
  for await (const ev of raw) rawTypes.push(ev.type);
  assert.deepEqual(rawTypes, types);
});

// greedy: sampled, the JSON grammar's optional whitespace can use up max_tokens (seen once in a run)
test('tools: a tool_use block, then a tool_result sent back', async () => {
  const r = await client.messages.create({ model, messages: [{ role: 'user', content: 'Weather in Paris?' }],
    max_tokens: 60, tools, tool_choice: { type: 'any' }, temperature: 0 });
  assert.equal(r.stop_reason, 'tool_use');
  const use = r.content.find((b) => b.type === 'tool_use');
  assert.ok(use, JSON.stringify(r.content));
  assert.equal(use.name, 'get_weather');
  assert.ok(['Paris', 'Rome'].includes(use.input.city));
  const next = await client.messages.create({ model, max_tokens: 4, tools, messages: [
    { role: 'user', content: 'Weather in Paris?' },
    { role: 'assistant', content: r.content },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny' }] },
  ] });
  assert.ok(next.usage.input_tokens > r.usage.input_tokens);     // the call and its result are in the prompt
  assert.equal(next.content[0].type, 'text');
  // streamed: tool_use block with its input as input_json_delta
  const stream = client.messages.stream({ model, messages: [{ role: 'user', content: 'Weather in Rome?' }],
    max_tokens: 60, tools, tool_choice: { type: 'tool', name: 'get_weather' }, temperature: 0 });
  const final = await stream.finalMessage();
  assert.equal(final.stop_reason, 'tool_use');
  const streamed = final.content.find((b) => b.type === 'tool_use');
  assert.ok(['Paris', 'Rome'].includes(streamed.input.city));
});

test('errors come in Anthropic\'s shape and map to the SDK error classes', async () => {
  await assert.rejects(client.messages.create({ model, messages }),     // no max_tokens
    (e) => e instanceof Anthropic.BadRequestError && e.error.type === 'error'
      && e.error.error.type === 'invalid_request_error' && /max_tokens/.test(e.error.error.message));
  await assert.rejects(client.messages.create({ model, messages, max_tokens: 2, temperature: 1.5 }),
    (e) => e instanceof Anthropic.BadRequestError && /temperature/.test(e.message));
  await assert.rejects(client.messages.create({ model: `${model}x`, messages, max_tokens: 2 }),
    (e) => e instanceof Anthropic.NotFoundError && e.error.error.type === 'not_found_error');
  const wrong = new Anthropic({ baseURL, apiKey: 'wrong-key', maxRetries: 0 });
  await assert.rejects(wrong.messages.create({ model, messages, max_tokens: 2 }),
    (e) => e instanceof Anthropic.AuthenticationError && e.error.error.type === 'authentication_error');
  const count = await client.messages.countTokens({ model, messages });
  const r = await client.messages.create({ model, messages, max_tokens: 1 });
  assert.equal(count.input_tokens, r.usage.input_tokens);
});
