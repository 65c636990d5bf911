const here = new URL('.', import.meta.url);

function script(src) {
  // The runtimes' files are UMD builds: loaded as classic scripts, they define a global (`ort`, `tf`).
  if ([...document.scripts].some((s) => s.src === src)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src;
    s.onload = resolve;
    s.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.appendChild(s);
  });
}

function argmax(values) {
  let top1 = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[top1]) top1 = i;
  return top1;
}

// What predict() returns: the raw outputs, the arg-max, the time, and for a classifier with class names
// the top k names with probabilities (softmax of the logits; outputs that already are probabilities,
// from a model ending in softmax, are kept as they are).
function answer(output, ms, options) {
  const r = { output, top1: argmax(output), ms };
  const labels = meta.labels || [];
  if (!labels.length || labels.length !== output.length) return r;
  const k = options.topk ?? 5;
  if (!Number.isInteger(k) || k < 1) throw new Error(`topk ${k} must be a whole number of at least 1`);
  let sum = 0;
  const probs = output.every((v) => v >= 0 && v <= 1) && Math.abs(output.reduce((a, v) => a + v, 0) - 1) < 1e-3
    ? Array.from(output)
    : Array.from(output, (v) => { const e = Math.exp(v - output[r.top1]); sum += e; return e; }).map((e) => e / sum);
  r.top = probs.map((score, index) => ({ label: labels[index], index, score }))
    .sort((a, b) => b.score - a.score || a.index - b.index).slice(0, k);
  return r;
}

// A model with several inputs or outputs (META.inputs/outputs): predict({input_ids: [...], attention_mask: [...]})
// takes one array per input by the model's names; the answer holds `outputs` by name (`output` is the first).
function namedValues(input) {
  const flat = Array.isArray(input) || ArrayBuffer.isView(input);
  const given = flat && meta.inputs.length === 1 ? { [meta.inputs[0].data]: input }  // one input, several outputs
    : input && typeof input === 'object' && !flat ? input : null;
  if (!given) throw new Error(`this model takes ${meta.inputs.map((s) => s.data).join(', ')}: pass an object with one array each`);
  return meta.inputs.map((s) => {
    const values = given[s.data] ?? given[s.name];
    if (!values) throw new Error(`input ${s.data} is missing; pass ${meta.inputs.map((i) => i.data).join(', ')}`);
    const n = s.shape.reduce((a, b) => a * b, 1);
    if (values.length !== n) throw new Error(`${s.data} has ${values.length} values; the model takes ${n} (${s.shape})`);
    return { spec: s, values };
  });
}

function several(outputs, ms, options) {
  const first = outputs[Object.keys(outputs)[0]];
  return { ...answer(first, ms, options), outputs };
}
