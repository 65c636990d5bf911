// Images in, the model's input tensor out: the same numbers as compressor/preprocess.py computes with
// Pillow for the run's data (colour mode, resize rule, bilinear resampling, crop, /255, mean/std).
// The resampler is Pillow's own algorithm (separable triangle filter widened when shrinking, 22-bit
// fixed-point weights, horizontal pass then vertical, each rounded to 8 bits), not the canvas's: in
// Chromium, canvas smoothing differs from Pillow by about 1 level on average and up to 10 when shrinking,
// enough to move a borderline top-1. Cost: about 0.2 s for a 12-megapixel photo on a busy 2-core machine.

const IMAGE_TYPES = ['ImageData', 'HTMLImageElement', 'HTMLCanvasElement', 'HTMLVideoElement', 'ImageBitmap',
                     'OffscreenCanvas', 'VideoFrame'];

function isImage(x) {
  return x != null && IMAGE_TYPES.some((t) => typeof globalThis[t] === 'function' && x instanceof globalThis[t]);
}

// The model's image geometry from META: channels, height, width, and where the channel axis is.
function imageShape() {
  const s = meta.inputShape;
  if (!meta.preprocess) {
    throw new Error('this bundle records no image preprocessing (the run did not read image files); pass a flat array of ' +
                    `${s.reduce((a, b) => a * b, 1)} values`);
  }
  if (s.length !== 4 || !meta.inputDtype.startsWith('float')) {
    throw new Error(`this model takes ${meta.inputDtype} [${s}], not an image; pass a flat array`);
  }
  const [c, h, w] = meta.layout === 'nhwc' ? [s[3], s[1], s[2]] : [s[1], s[2], s[3]];
  if (c !== 1 && c !== 3) throw new Error(`this model takes ${c} channels; images give 1 (grayscale) or 3 (RGB)`);
  return { c, h, w };
}

function canvas2d(w, h) {
  const c = typeof OffscreenCanvas === 'function' ? new OffscreenCanvas(w, h)
    : Object.assign(document.createElement('canvas'), { width: w, height: h });
  return c.getContext('2d', { willReadFrequently: true });
}

// The source's own pixels (RGBA, its natural size): read once, never resampled by the browser.
async function sourcePixels(src) {
  if (src instanceof ImageData) return { data: src.data, w: src.width, h: src.height };
  if (typeof HTMLImageElement === 'function' && src instanceof HTMLImageElement) {
    await src.decode().catch(() => { throw new Error(`the <img> ${src.src.slice(0, 80)} could not be decoded`); });
  }
  const w = src.naturalWidth || src.videoWidth || src.displayWidth || src.width;
  const h = src.naturalHeight || src.videoHeight || src.displayHeight || src.height;
  if (!w || !h) throw new Error('the image has no pixels (not loaded yet?)');
  const g = canvas2d(w, h);
  g.drawImage(src, 0, 0);
  return { data: g.getImageData(0, 0, w, h).data, w, h };
}

// The pixels in the model's colour mode: RGB read in place from RGBA (alpha dropped, as Pillow's
// convert("RGB") does), or Pillow's "L" luminance, (19595 R + 38470 G + 7471 B + 0x8000) >> 16.
function colour(px, c) {
  if (c === 3) return { data: px.data, stride: 4 };
  const n = px.w * px.h;
  const d = px.data;
  const l = new Uint8Array(n);
  for (let i = 0, j = 0; i < n; i++, j += 4) l[i] = (d[j] * 19595 + d[j + 1] * 38470 + d[j + 2] * 7471 + 0x8000) >> 16;
  return { data: l, stride: 1 };
}

const BITS = 22;  // Pillow's PRECISION_BITS for 8-bit images (32 - 8 - 2)
const HALF = 1 << (BITS - 1);

// Pillow's weights for one axis, inSize -> outSize, for the outputs first .. first + count - 1 only:
// output j reads n[j] inputs from lo[j], with the integer weights k[j * size ..].
function weights(inSize, outSize, first, count) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale;  // the triangle (bilinear) filter reaches 1 pixel, widened when shrinking
  const ss = 1 / filterScale;  // multiplied, not divided, as Pillow does: the last bit of each weight counts
  const size = Math.ceil(support) * 2 + 1;
  const lo = new Int32Array(count);
  const n = new Int32Array(count);
  const k = new Int32Array(count * size);
  const w = new Float64Array(size);
  for (let j = 0; j < count; j++) {
    const center = (first + j + 0.5) * scale;
    lo[j] = Math.max(Math.trunc(center - support + 0.5), 0);
    n[j] = Math.min(Math.trunc(center + support + 0.5), inSize) - lo[j];
    let sum = 0;
    for (let i = 0; i < n[j]; i++) {
      w[i] = Math.max(0, 1 - Math.abs((lo[j] + i - center + 0.5) * ss));
      sum += w[i];
    }
    for (let i = 0; i < n[j]; i++) k[j * size + i] = Math.trunc((sum ? w[i] / sum : 0) * (1 << BITS) + 0.5);
  }
  return { lo, n, k, size };
}

function clip8(acc) {
  const v = acc >> BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

// Resize (w x h, `bands` channels `stride` apart) to (rw x rh) and keep the crop (left, top, cw x ch):
// out holds the crop's pixels, channels interleaved.
function resizeCrop(src, stride, bands, w, h, rw, rh, left, top, cw, ch) {
  const xs = weights(w, rw, left, cw);
  const ys = weights(h, rh, top, ch);
  const rows = new Uint8Array(cw * h * bands);  // horizontal pass, on the source rows the vertical pass reads
  for (let y = ys.lo[0]; y < ys.lo[ch - 1] + ys.n[ch - 1]; y++) {
    for (let x = 0; x < cw; x++) {
      const base = (y * w + xs.lo[x]) * stride;
      for (let b = 0; b < bands; b++) {
        let acc = HALF;
        for (let i = 0, o = x * xs.size; i < xs.n[x]; i++, o++) acc += src[base + i * stride + b] * xs.k[o];
        rows[(y * cw + x) * bands + b] = clip8(acc);
      }
    }
  }
  const out = new Uint8Array(cw * ch * bands);  // vertical pass
  const line = cw * bands;
  for (let y = 0; y < ch; y++) {
    const base = ys.lo[y] * line;
    for (let q = 0; q < line; q++) {
      let acc = HALF;
      for (let i = 0, o = y * ys.size; i < ys.n[y]; i++, o++) acc += rows[base + i * line + q] * ys.k[o];
      out[y * line + q] = clip8(acc);
    }
  }
  return out;
}

// Python's round(): halves to even.
function roundHalfEven(x) {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
}

/** The model's input for an image: resized, cropped, scaled and normalised as the run's data were. */
export async function preprocess(image) {
  const { c, h, w } = imageShape();
  const pre = meta.preprocess;
  const f = Math.fround;  // float32 at every step, as numpy computes it: equal pixels give bit-equal inputs
  const div = f(pre.divisor);
  const mean = (pre.mean || []).map(f);
  const std = (pre.std || []).map(f);
  if (mean.length && mean.length !== c) throw new Error(`the recorded mean has ${mean.length} values; the model takes ${c} channels`);
  const px = await sourcePixels(image);
  let { data, stride } = colour(px, c);
  if (px.w !== w || px.h !== h) {
    // compressor/preprocess.py: the shorter side to max(H, W) / cropFraction, then the centre crop
    const scale = Math.max(h, w) / pre.cropFraction / Math.min(px.h, px.w);
    const rw = Math.max(w, roundHalfEven(px.w * scale));
    const rh = Math.max(h, roundHalfEven(px.h * scale));
    data = resizeCrop(data, stride, c, px.w, px.h, rw, rh, Math.floor((rw - w) / 2), Math.floor((rh - h) / 2), w, h);
    stride = c;
  }
  const out = new Float32Array(c * h * w);
  const nhwc = meta.layout === 'nhwc';
  for (let k = 0; k < c; k++) {
    for (let i = 0; i < h * w; i++) {
      let v = f(data[i * stride + k] / div);
      if (mean.length) v = f(f(v - mean[k]) / std[k]);
      out[nhwc ? i * c + k : k * h * w + i] = v;
    }
  }
  return out;
}
