/**
 * 8-bit grayscale PNGs (encoded by pngjs) and the 5x5 sample grids the report shows.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeGrayPng } from "./png.ts";
 * const png = encodeGrayPng(2, 1, new Uint8Array([0, 255]));
 * assert(png[1] === 0x50); // "PNG"
 * ```
 */
import { Buffer } from "node:buffer";
import { PNG } from "pngjs";

/** Encodes a grayscale image (row-major, one byte per pixel) as PNG, through pngjs. */
export function encodeGrayPng(width: number, height: number, pixels: Uint8Array): Uint8Array {
  const png = new PNG({ width, height, colorType: 0, inputColorType: 0, bitDepth: 8 });
  png.data = Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength);
  // no row filters: the bytes stay plain pixels, which the decode test reads back
  const out = PNG.sync.write(png, { colorType: 0, inputColorType: 0, filterType: 0 });
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/**
 * A grid of images (rows of `side*side` floats, clipped to [0,1]) as grayscale pixels:
 * `cols` across (by default the square's side, as torchvision's make_grid gives 8x8 for 64),
 * 2-pixel gaps, each pixel repeated `scale` times. White digits on black, as MNIST stores them.
 */
export function gridPixels(
  images: Float32Array,
  side: number,
  count: number,
  { cols = Math.ceil(Math.sqrt(count)), gap = 2, scale = 2 }: {
    cols?: number;
    gap?: number;
    scale?: number;
  } = {},
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
export function gridPng(images: Float32Array, side: number, count: number): Uint8Array {
  const g = gridPixels(images, side, count);
  return encodeGrayPng(g.width, g.height, g.pixels);
}
