// Run an ONNX model in onnxruntime-web's wasm backend under Node: the browser's kernels, no browser.
// usage: node ort_web_run.mjs DIST_DIR MODEL.onnx INPUT.f32 N,C,H,W  -> JSON {outputs: [...], version}
import fs from 'fs';
import path from 'path';
import { pathToFileURL } from 'url';

const [dist, model, input, shape] = process.argv.slice(2);
const ort = await import(pathToFileURL(path.join(dist, 'ort.wasm.min.mjs')).href);
ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = dist.endsWith('/') ? dist : dist + '/';
const buf = fs.readFileSync(input);
const data = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
const sess = await ort.InferenceSession.create(fs.readFileSync(model), { executionProviders: ['wasm'] });
const feeds = { [sess.inputNames[0]]: new ort.Tensor('float32', data, shape.split(',').map(Number)) };
const out = await sess.run(feeds);
process.stdout.write(JSON.stringify({ outputs: Array.from(out[sess.outputNames[0]].data), version: ort.env.versions?.web ?? '' }));
