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
