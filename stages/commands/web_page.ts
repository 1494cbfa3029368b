/**
 * The `web` export's page: an `index.html` that draws new digits in the browser from the
 * exported counterfeiter, offline and from `file://` (the model travels as a script, since
 * browsers refuse `fetch` of local files; tfjs is served from the folder). `#check` draws one
 * fixed noise batch and writes its figures into `<output id="check">`, which the tests compare
 * with the same batch drawn here.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkNoise, pageHtml } from "./web_page.ts";
 * assert.equal(checkNoise(2, 1)[1], Math.fround(Math.sin(2)));
 * assert.match(pageHtml("quick-0123"), /<title>quick-0123/);
 * ```
 */
import { escapeHtml } from "../../pipeline/run_record.ts";

/** The tfjs browser bundles the page loads, in order (core first: the others extend it). */
export const TFJS_BUNDLES = [
  "@tensorflow/tfjs-core/dist/tf-core.min.js",
  "@tensorflow/tfjs-backend-cpu/dist/tf-backend-cpu.min.js",
  "@tensorflow/tfjs-layers/dist/tf-layers.min.js",
];

/** The `#check` noise: row-major `rows x dim`, element i is sin(i + 1) (the page's formula). */
export function checkNoise(rows: number, dim: number): Float32Array {
  return Float32Array.from({ length: rows * dim }, (_, i) => Math.sin(i + 1));
}

/** How many digits `#check` draws. */
export const CHECK_ROWS = 4;

/** The page; `model.js` beside it sets `window.GAN_MODEL`. */
export function pageHtml(run: string): string {
  const scripts = TFJS_BUNDLES.map((b) => `<script src="${b.split("/").at(-1)}"></script>`);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(run)}: new digits</title>
<style>
body { font: 15px system-ui, sans-serif; margin: 2em; color: #222; }
canvas { image-rendering: pixelated; border: 2px solid #282828; background: #000; }
button { font-size: 15px; padding: .3em 1em; }
</style>
${scripts.join("\n")}
<script src="model.js"></script>
</head>
<body>
<h1>New digits from ${escapeHtml(run)}</h1>
<p>The counterfeiter of a gan-pipeline run, drawn in this browser with TensorFlow.js
from 10 random numbers per digit. Nothing is fetched from the network.</p>
<p><button id="again">Draw again</button> <span id="status">loading the model...</span></p>
<canvas id="grid"></canvas>
<output id="check"></output>
<script>
(async () => {
  const status = document.getElementById("status");
  try {
    const m = window.GAN_MODEL;
    await tf.setBackend("cpu");
    const bytes = Uint8Array.from(atob(m.weights), (c) => c.charCodeAt(0));
    const model = await tf.loadLayersModel(tf.io.fromMemory(m.topology, m.weightSpecs, bytes.buffer));
    const toUnit = (v) => (m.pixelScale === "unit" ? v : (v + 1) / 2);
    const draw = (noise, rows) => {
      const out = tf.tidy(() => model.predict(tf.tensor2d(noise, [rows, m.noiseDim])));
      const data = out.dataSync();
      out.dispose();
      return data;
    };
    const show = (data, rows) => {
      const side = m.side, cols = Math.ceil(Math.sqrt(rows)), lines = Math.ceil(rows / cols);
      const canvas = document.getElementById("grid");
      canvas.width = cols * side;
      canvas.height = lines * side;
      canvas.style.width = cols * side * 3 + "px";
      const ctx = canvas.getContext("2d");
      const img = ctx.createImageData(canvas.width, canvas.height);
      for (let k = 0; k < rows; k++) {
        const x0 = (k % cols) * side, y0 = Math.floor(k / cols) * side;
        for (let p = 0; p < side * side; p++) {
          const v = Math.round(255 * Math.min(1, Math.max(0, toUnit(data[k * side * side + p]))));
          const at = 4 * ((y0 + Math.floor(p / side)) * canvas.width + x0 + (p % side));
          // white digits on black, as MNIST and every grid of the project
          img.data[at] = img.data[at + 1] = img.data[at + 2] = v;
          img.data[at + 3] = 255;
        }
      }
      ctx.putImageData(img, 0, 0);
    };
    const normals = (n) => Float32Array.from({ length: n }, () =>
      Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()));
    const fresh = () => {
      const rows = 64;
      show(draw(normals(rows * m.noiseDim), rows), rows);
      status.textContent = "64 new digits";
    };
    if (location.hash === "#check") {
      const rows = ${CHECK_ROWS};
      const noise = Float32Array.from({ length: rows * m.noiseDim }, (_, i) => Math.sin(i + 1));
      const data = draw(noise, rows);
      show(data, rows);
      let sum = 0;
      for (const v of data) sum += v;
      document.getElementById("check").textContent =
        JSON.stringify({ sum, first: Array.from(data.slice(0, 8)) });
      status.textContent = "drew the check batch";
    } else fresh();
    document.getElementById("again").onclick = fresh;
  } catch (e) {
    status.textContent = "failed: " + e.message;
  }
})();
</script>
</body>
</html>
`;
}
