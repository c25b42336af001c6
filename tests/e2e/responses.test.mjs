// End-to-end tests of `moonhub serve`'s /v1/responses through the official
// OpenAI Node SDK (client.responses, pinned in package-lock.json). Layer:
// tests; run by tests/e2e/run.sh (MOONHUB_BASE_URL / _API_KEY). The model
// has random weights: tests check shapes, event order and constraints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.MOONHUB_BASE_URL;
const apiKey = process.env.MOONHUB_API_KEY;
assert.ok(baseURL && apiKey, 'run through tests/e2e/run.sh (MOONHUB_BASE_URL, MOONHUB_API_KEY)');

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30_000 });
const tools = [{
  type: 'function', name: 'get_weather', description: 'Current weather in a city',
  parameters: { type: 'object', properties: { city: { enum: ['Paris', 'Rome'] } }, required: ['city'] },
}];
let model;

test('responses.create: string input, instructions, max_output_tokens -> incomplete', async () => {
  model = (await client.models.list()).data[0].id;
  const r = await client.responses.create({
    model, instructions: 'Answer briefly.', input: 'Hello, who are you?', max_output_tokens: 5, temperature: 0,
  });
  assert.equal(r.object, 'response');
  assert.match(r.id, /^resp_/);
  assert.equal(r.model, model);
  assert.equal(r.status, 'incomplete');
  assert.equal(r.incomplete_details.reason, 'max_output_tokens');
  assert.equal(r.instructions, 'Answer briefly.');
  assert.equal(r.output.length, 1);
  const item = r.output[0];
  assert.equal(item.type, 'message');
  assert.equal(item.role, 'assistant');
  assert.equal(item.content[0].type, 'output_text');
  assert.equal(r.output_text, item.content[0].text);     // the SDK's convenience field
  assert.equal(r.usage.output_tokens, 5);
  assert.equal(r.usage.total_tokens, r.usage.input_tokens + 5);
  // the same with input items instead of instructions + string
  const items = await client.responses.create({
    model, max_output_tokens: 5, temperature: 0,
    input: [{ role: 'developer', content: 'Answer briefly.' },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hello, who are you?' }] }],
  });
  assert.equal(items.output_text, r.output_text);
  assert.equal(items.usage.input_tokens, r.usage.input_tokens);
});

test('responses.create stream: the typed events in order, same text as non-streamed', async () => {
  const body = { model, input: 'Tell me a story.', max_output_tokens: 6, temperature: 0 };
  const stream = await client.responses.create({ ...body, stream: true });
  const events = [];
  for await (const ev of stream) events.push(ev);
  const types = events.map((e) => e.type);
  const deltas = types.filter((t) => t === 'response.output_text.delta').length;
  assert.ok(deltas >= 1);
  assert.deepEqual(types, ['response.created', 'response.in_progress', 'response.output_item.added',
    'response.content_part.added', ...Array(deltas).fill('response.output_text.delta'),
    'response.output_text.done', 'response.content_part.done', 'response.output_item.done',
    'response.incomplete']);
  events.forEach((e, i) => assert.equal(e.sequence_number, i));
  const text = events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
  assert.equal(events.at(-4).text, text);
  const final = events.at(-1).response;
  assert.equal(final.usage.output_tokens, 6);
  assert.equal(final.output[0].content[0].text, text);
  const plain = await client.responses.create(body);
  assert.equal(plain.output_text, text);
  // the SDK's stream helper folds the same events into a final response
  const helper = client.responses.stream(body);
  const done = await helper.finalResponse();
  assert.equal(done.output_text, text);
});

test('function tools: a function_call item, then its output sent back', async () => {
  const r = await client.responses.create({
    model, input: 'Weather in Paris?', max_output_tokens: 60, tools, tool_choice: 'required', temperature: 0,
  });
  assert.equal(r.status, 'completed');
  const call = r.output.find((o) => o.type === 'function_call');
  assert.ok(call, JSON.stringify(r.output));
  assert.equal(call.name, 'get_weather');
  assert.match(call.call_id, /^call_/);
  assert.ok(['Paris', 'Rome'].includes(JSON.parse(call.arguments).city));
  const next = await client.responses.create({
    model, max_output_tokens: 4, tools,
    input: [{ role: 'user', content: 'Weather in Paris?' }, call,
      { type: 'function_call_output', call_id: call.call_id, output: '{"sky": "sunny"}' }],
  });
  assert.ok(next.usage.input_tokens > r.usage.input_tokens);      // the call and its output are in the prompt
  assert.equal(next.output[0].type, 'message');
  // streamed: the call's item events, then response.completed
  const stream = await client.responses.create({
    model, input: 'Weather in Rome?', max_output_tokens: 60, tools,
    tool_choice: { type: 'function', name: 'get_weather' }, stream: true, temperature: 0,
  });
  const types = [];
  let args = '';
  for await (const ev of stream) {
    types.push(ev.type);
    if (ev.type === 'response.function_call_arguments.done') args = ev.arguments;
  }
  assert.deepEqual(types, ['response.created', 'response.in_progress', 'response.output_item.added',
    'response.function_call_arguments.delta', 'response.function_call_arguments.done', 'response.output_item.done',
    'response.completed']);
  assert.ok(['Paris', 'Rome'].includes(JSON.parse(args).city));
});

test('refused fields and bad input map to the SDK error classes', async () => {
  await assert.rejects(
    client.responses.create({ model, input: 'hi', previous_response_id: 'resp_123' }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'previous_response_id',
  );
  await assert.rejects(
    client.responses.create({ model, input: 'hi', tools: [{ type: 'web_search' }] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'tools' && /only function tools/.test(e.message),
  );
  await assert.rejects(
    client.responses.create({ model, input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'x' }] }] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'input',
  );
  await assert.rejects(
    client.responses.create({ model, input: 'hi', temperature: 5 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature',
  );
  const wrong = new OpenAI({ baseURL, apiKey: 'wrong-key', maxRetries: 0 });
  await assert.rejects(wrong.responses.create({ model, input: 'hi' }),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
});
