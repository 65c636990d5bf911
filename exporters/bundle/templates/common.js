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
