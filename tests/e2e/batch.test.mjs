// End-to-end test of the Files and Batch API (docs/batch.md) through the
// official OpenAI Node SDK: upload a JSONL input, create a batch, poll it,
// read the output file, list, cancel. Layer: tests; run by tests/e2e/run.sh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { toFile } from 'openai';

const baseURL = process.env.MOONHUB_BASE_URL;
const apiKey = process.env.MOONHUB_API_KEY;
assert.ok(baseURL && apiKey, 'run through tests/e2e/run.sh (MOONHUB_BASE_URL, MOONHUB_API_KEY)');

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30_000 });

function jsonl(n) {
  const lines = [];
  for (let i = 0; i < n; i++) {
    lines.push(JSON.stringify({ custom_id: `task-${i}`, method: 'POST', url: '/v1/chat/completions',
      body: { model: 'any', messages: [{ role: 'user', content: `Say ${i}` }], max_tokens: 2, seed: i } }));
  }
  return lines.join('\n') + '\n';
}

async function until(id, done) {
  for (let i = 0; i < 600; i++) {
    const b = await client.batches.retrieve(id);
    if (done(b)) return b;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`batch ${id} did not finish`);
}

test('files.create, batches.create/retrieve/list, files.content', async () => {
  const models = await client.models.list();
  const model = models.data[0].id;
  const text = jsonl(6).replaceAll('"model":"any"', `"model":${JSON.stringify(model)}`);
  const file = await client.files.create({ file: await toFile(Buffer.from(text), 'input.jsonl'), purpose: 'batch' });
  assert.equal(file.object, 'file');
  assert.equal(file.purpose, 'batch');
  assert.equal(file.bytes, Buffer.byteLength(text));
  assert.equal((await client.files.retrieve(file.id)).filename, 'input.jsonl');
  const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions',
    completion_window: '24h', metadata: { from: 'e2e' } });
  assert.equal(batch.object, 'batch');
  assert.equal(batch.request_counts.total, 6);
  const done = await until(batch.id, (b) => ['completed', 'failed', 'cancelled'].includes(b.status));
  assert.equal(done.status, 'completed');
  assert.deepEqual(done.request_counts, { total: 6, completed: 6, failed: 0 });
  assert.deepEqual(done.metadata, { from: 'e2e' });
  const out = await (await client.files.content(done.output_file_id)).text();
  const rows = out.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(rows.map((r) => r.custom_id).sort(), [0, 1, 2, 3, 4, 5].map((i) => `task-${i}`));
  for (const r of rows) {
    assert.equal(r.response.status_code, 200);
    assert.equal(r.response.body.object, 'chat.completion');
    assert.equal(r.response.body.usage.completion_tokens, 2);
    assert.equal(r.error, null);
  }
  const page = await client.batches.list({ limit: 10 });
  assert.ok(page.data.some((b) => b.id === batch.id));
  const files = await client.files.list({ purpose: 'batch_output' });
  assert.ok(files.data.some((f) => f.id === done.output_file_id));
  const del = await client.files.delete(file.id);
  assert.equal(del.deleted, true);
  await assert.rejects(client.files.retrieve(file.id), (e) => e.status === 404);
});

test('batches.cancel', async () => {
  const file = await client.files.create({ file: await toFile(Buffer.from(jsonl(40)), 'c.jsonl'), purpose: 'batch' });
  const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions',
    completion_window: '24h' });
  const c = await client.batches.cancel(batch.id);
  assert.ok(['cancelling', 'cancelled'].includes(c.status), c.status);
  const done = await until(batch.id, (b) => !['cancelling', 'in_progress', 'validating'].includes(b.status));
  assert.equal(done.status, 'cancelled');
  assert.ok(done.request_counts.completed + done.request_counts.failed < 40);
});
