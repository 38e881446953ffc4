// node web/testdata/node.mjs: the golden vectors through the web app's
// protocol code in Node (the real check runs in Chromium: vectors_test.go).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runVectors } from './vectors.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const golden = fs.readFileSync(path.join(repo, 'wire/testdata/golden-v1.txt'), 'utf8');
const structured = fs.readFileSync(path.join(repo, 'wire/testdata/golden-v1-structured.txt'), 'utf8');
const keyVectors = {};
for (const f of fs.readdirSync(path.join(repo, 'keys/testdata'))) keyVectors[f] = fs.readFileSync(path.join(repo, 'keys/testdata', f), 'utf8');
const { checks, failures } = runVectors({ golden, keyVectors, structured });
console.log(`${checks.length} checks, ${failures.length} failures`);
for (const f of failures) console.log('FAIL', f);
process.exit(failures.length ? 1 : 0);
