// End-to-end tests of `moonhub serve` through the official OpenAI Node SDK
// (pinned in package-lock.json). Layer: tests; run by tests/e2e/run.sh,
// which starts the server and passes MOONHUB_BASE_URL / _API_KEY here.
// The model has random weights: tests check shapes and constraints, not text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.MOONHUB_BASE_URL;
const apiKey = process.env.MOONHUB_API_KEY;
assert.ok(baseURL && apiKey, 'run through tests/e2e/run.sh (MOONHUB_BASE_URL, MOONHUB_API_KEY)');

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30_000 });
const messages = [{ role: 'user', content: 'Hello, who are you?' }];
let model;

test('models.list and models.retrieve', async () => {
  const page = await client.models.list();
  assert.equal(page.data.length, 1);
  model = page.data[0].id;
  assert.equal(page.data[0].object, 'model');
  const one = await client.models.retrieve(model);
  assert.equal(one.id, model);
  assert.equal(one.owned_by, 'moonhub');
});

test('chat.completions.create, non-streaming', async () => {
  const r = await client.chat.completions.create({ model, messages, max_tokens: 5, seed: 7 });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 5);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 5);
  const again = await client.chat.completions.create({ model, messages, max_tokens: 5, seed: 7 });
  assert.equal(again.choices[0].message.content, r.choices[0].message.content);
});

test('chat.completions.create, streaming over an async iterator', async () => {
  const stream = await client.chat.completions.create({
    model, messages, max_tokens: 6, seed: 7, stream: true, stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  const ids = new Set(chunks.map((c) => c.id));
  assert.equal(ids.size, 1);
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const usage = chunks.at(-1);
  assert.deepEqual(usage.choices, []);
  assert.equal(usage.usage.completion_tokens, 6);
  const body = chunks.slice(0, -1);
  assert.equal(body.at(-1).choices[0].finish_reason, 'length');
  for (const c of body.slice(0, -1)) assert.equal(c.choices[0].finish_reason, null);
  for (const c of body.slice(1)) assert.equal(c.choices[0].delta.role, undefined);
  const text = body.map((c) => c.choices[0].delta.content ?? '').join('');
  const plain = await client.chat.completions.create({ model, messages, max_tokens: 6, seed: 7 });
  assert.equal(text, plain.choices[0].message.content);
});

test('completions.create with an array prompt and logprobs', async () => {
  const r = await client.completions.create({ model, prompt: ['Once upon', 'a time'], max_tokens: 3, logprobs: 2 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices.length, 2);
  for (const c of r.choices) {
    assert.equal(c.finish_reason, 'length');
    assert.equal(c.logprobs.tokens.join(''), c.text);
    assert.equal(c.logprobs.token_logprobs.length, 3);
  }
  const stream = await client.completions.create({ model, prompt: 'Once', max_tokens: 3, stream: true });
  let n = 0;
  for await (const chunk of stream) if (chunk.choices[0].text) n += 1;
  assert.ok(n >= 1);
});

test('embeddings.create: float, and base64 decoded by the SDK', async () => {
  const f = await client.embeddings.create({ model, input: 'hello world', encoding_format: 'float' });
  const v = f.data[0].embedding;
  assert.ok(Array.isArray(v) && v.length > 8);
  // without encoding_format the SDK asks for base64 and decodes it to floats
  const b = await client.embeddings.create({ model, input: ['hello world', 'other'] });
  assert.equal(b.data.length, 2);
  assert.equal(b.data[0].embedding.length, v.length);
  b.data[0].embedding.forEach((x, i) => assert.ok(Math.abs(x - v[i]) <= 1e-6 * Math.max(1, Math.abs(x))));
});

test('response_format json_schema: the output parses and follows the schema', async () => {
  const schema = {
    type: 'object',
    properties: { pet: { enum: ['cat', 'dog'] }, ok: { type: 'boolean' }, legs: { type: 'integer' } },
    required: ['pet', 'ok', 'legs'],
    additionalProperties: false,
  };
  let finished = 0;
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.create({
      model, messages, max_tokens: 80, seed,
      response_format: { type: 'json_schema', json_schema: { name: 'animal', schema, strict: true } },
    });
    const c = r.choices[0];
    if (c.finish_reason !== 'stop') continue;
    finished += 1;
    const v = JSON.parse(c.message.content);
    assert.ok(['cat', 'dog'].includes(v.pet));
    assert.equal(typeof v.ok, 'boolean');
    assert.ok(Number.isInteger(v.legs));
    assert.deepEqual(Object.keys(v).sort(), ['legs', 'ok', 'pet']);
  }
  assert.ok(finished > 0, 'no generation finished');
});

test('tools with tool_choice required give tool_calls with JSON arguments', async () => {
  const tools = [{
    type: 'function',
    function: {
      name: 'get_weather', description: 'Current weather in a city',
      parameters: { type: 'object', properties: { city: { enum: ['Paris', 'Rome'] } }, required: ['city'] },
    },
  }];
  const r = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: 'Weather in Paris?' }], max_tokens: 60, seed: 1,
    tools, tool_choice: 'required',
  });
  const c = r.choices[0];
  assert.equal(c.finish_reason, 'tool_calls');
  assert.equal(c.message.tool_calls.length, 1);
  const call = c.message.tool_calls[0];
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.ok(['Paris', 'Rome'].includes(JSON.parse(call.function.arguments).city));
});

test('errors map to the SDK error classes', async () => {
  await assert.rejects(
    client.chat.completions.create({ model, messages, max_tokens: 2, temperature: -1 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'temperature',
  );
  await assert.rejects(
    client.chat.completions.create({ model, messages: [{ role: 'user', content: 'x '.repeat(1500) }] }),
    (e) => e instanceof OpenAI.BadRequestError && e.code === 'exceed_context_size_error',
  );
  const wrong = new OpenAI({ baseURL, apiKey: 'wrong-key', maxRetries: 0 });
  await assert.rejects(
    wrong.chat.completions.create({ model, messages, max_tokens: 2 }),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401,
  );
  await assert.rejects(client.models.retrieve('no-such-model'),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404);
  // a model the server does not hold is not answered by another one
  await assert.rejects(
    client.chat.completions.create({ model: `${model}x`, messages, max_tokens: 2 }),
    (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found' && e.message.includes(model),
  );
  await assert.rejects(
    client.chat.completions.create({ model, messages: [{ role: 'user' }], max_tokens: 2 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages',
  );
  // and the server still serves
  const r = await client.chat.completions.create({ model, messages, max_tokens: 2 });
  assert.equal(r.choices.length, 1);
});
