// Encoder embeddings (bert) through the official OpenAI Node SDK: a tiny
// bert file that tests/e2e/run.sh writes with `moonhub create --preset
// tiny-bert` and serves on its own server (MOONHUB_BERT_URL). Layer: tests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.MOONHUB_BERT_URL;
const apiKey = process.env.MOONHUB_API_KEY;
assert.ok(baseURL && apiKey, 'run through tests/e2e/run.sh (MOONHUB_BERT_URL, MOONHUB_API_KEY)');
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30_000 });
const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

test('embeddings.create on a bert file: a batch, unit vectors, usage, base64 = float', async () => {
  const model = (await client.models.list()).data[0].id;
  const texts = ['A cat sat on the mat', 'Hello world, the quick brown fox jumps over the lazy dog.'];
  const f = await client.embeddings.create({ model, input: texts, encoding_format: 'float' });
  assert.equal(f.data.length, 2);
  assert.equal(f.data[0].embedding.length, 64);
  for (const d of f.data) assert.ok(Math.abs(norm(d.embedding) - 1) < 1e-5);
  assert.notDeepEqual(f.data[0].embedding, f.data[1].embedding);
  assert.equal(f.usage.prompt_tokens, 8 + 15);       // [CLS] ... [SEP] of each text
  const b = await client.embeddings.create({ model, input: texts });   // the SDK asks base64, decodes
  for (let i = 0; i < 2; i++)
    for (let j = 0; j < 64; j++) assert.ok(Math.abs(b.data[i].embedding[j] - f.data[i].embedding[j]) < 1e-6);
  const one = await client.embeddings.create({ model, input: texts[1], encoding_format: 'float' });
  for (let j = 0; j < 64; j++) assert.ok(Math.abs(one.data[0].embedding[j] - f.data[1].embedding[j]) < 1e-5);
});

test('chat on a bert file is refused: an embedding model', async () => {
  const model = (await client.models.list()).data[0].id;
  await assert.rejects(client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] }),
    (e) => e.status === 400 && /is an embedding model/.test(e.message));
});
