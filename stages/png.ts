/**
 * A minimal PNG encoder for 8-bit grayscale images (zlib through the platform's
 * CompressionStream), and the 5x5 sample grids the report shows.
 *
 * @example
 * ```ts
 * import { encodeGrayPng } from "./png.ts";
 * const png = await encodeGrayPng(2, 1, new Uint8Array([0, 255]));
 * console.assert(png[1] === 0x50); // "PNG"
 * ```
 */

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

async function zlib(bytes: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([bytes as BlobPart]).stream().pipeThrough(new CompressionStream("deflate"));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

/** Encodes a grayscale image (row-major, one byte per pixel) as PNG. */
export async function encodeGrayPng(
  width: number,
  height: number,
  pixels: Uint8Array,
): Promise<Uint8Array> {
  const raw = new Uint8Array(height * (width + 1));
  for (let y = 0; y < height; y++) {
    raw.set(pixels.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  }
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grayscale
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", await zlib(raw)),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * A grid of images (rows of `side*side` floats, clipped to [0,1]) as grayscale pixels:
 * `cols` across, 2-pixel gaps, each pixel repeated `scale` times. White digits on black,
 * as MNIST stores them.
 */
export function gridPixels(
  images: Float32Array,
  side: number,
  count: number,
  { cols = 5, gap = 2, scale = 2 }: { cols?: number; gap?: number; scale?: number } = {},
): { width: number; height: number; pixels: Uint8Array } {
  const rows = Math.ceil(count / cols);
  const cell = side + gap;
  const w = (cols * cell + gap) * scale, h = (rows * cell + gap) * scale;
  const px = new Uint8Array(w * h).fill(40);
  for (let k = 0; k < count; k++) {
    const ox = gap + (k % cols) * cell, oy = gap + Math.floor(k / cols) * cell;
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        const v = Math.min(1, Math.max(0, images[k * side * side + y * side + x]));
        const g = Math.round(v * 255);
        for (let dy = 0; dy < scale; dy++) {
          const row = ((oy + y) * scale + dy) * w;
          for (let dx = 0; dx < scale; dx++) px[row + (ox + x) * scale + dx] = g;
        }
      }
    }
  }
  return { width: w, height: h, pixels: px };
}

/** A grid PNG of images. */
export async function gridPng(
  images: Float32Array,
  side: number,
  count: number,
): Promise<Uint8Array> {
  const g = gridPixels(images, side, count);
  return await encodeGrayPng(g.width, g.height, g.pixels);
}
