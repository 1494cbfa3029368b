/**
 * The IDX format of the original MNIST files, with full header validation: every way a file
 * can be wrong (not IDX, wrong type, wrong rank, truncated, trailing bytes, corrupt gzip)
 * is a one-line {@link DataError} that names the file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeIdx, parseIdx } from "./idx.ts";
 * const bytes = encodeIdx(new Uint8Array([1, 2, 3]), [3]);
 * assert(parseIdx(bytes, "labels").dims[0] === 3);
 * ```
 */
import { DataError } from "../../pipeline/errors.ts";

/** A parsed IDX array of unsigned bytes. */
export interface Idx {
  dims: number[];
  data: Uint8Array;
}

/** Whether bytes start with the gzip magic. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Gunzips bytes; a corrupt or cut stream is a DataError naming `name`. */
export async function gunzip(bytes: Uint8Array, name: string): Promise<Uint8Array> {
  try {
    const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(
      new DecompressionStream("gzip"),
    );
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (e) {
    throw new DataError(`${name}: corrupt or truncated gzip data (${(e as Error).message})`);
  }
}

/** Returns the bytes, gunzipped when they are gzip. */
export async function maybeGunzip(bytes: Uint8Array, name: string): Promise<Uint8Array> {
  return isGzip(bytes) ? await gunzip(bytes, name) : bytes;
}

/** Parses an IDX file of unsigned bytes; `rank` is the expected number of dimensions. */
export function parseIdx(bytes: Uint8Array, name: string, rank?: number): Idx {
  if (bytes.length < 4) {
    throw new DataError(`${name}: not an IDX file (only ${bytes.length} bytes)`);
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new DataError(
      `${name}: not an IDX file (bad magic ${bytes[0]},${bytes[1]}; expected 0,0${
        isGzip(bytes) ? "; it is gzip" : ""
      })`,
    );
  }
  if (bytes[2] !== 0x08) {
    throw new DataError(
      `${name}: IDX data type 0x${bytes[2].toString(16)} is not unsigned byte (0x08)`,
    );
  }
  const nd = bytes[3];
  if (nd === 0 || (rank !== undefined && nd !== rank)) {
    throw new DataError(`${name}: IDX has ${nd} dimensions, expected ${rank ?? "at least 1"}`);
  }
  const headerLen = 4 + 4 * nd;
  if (bytes.length < headerLen) throw new DataError(`${name}: truncated IDX header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < nd; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  const have = bytes.length - headerLen;
  if (have < count) {
    throw new DataError(
      `${name}: truncated IDX file: header says ${
        dims.join("x")
      } = ${count} bytes of data, found ${have}`,
    );
  }
  if (have > count) {
    throw new DataError(`${name}: corrupt IDX file: ${have - count} bytes after the data`);
  }
  return { dims, data: bytes.subarray(headerLen) };
}

/** Encodes unsigned bytes as IDX (tests and small generated datasets). */
export function encodeIdx(data: Uint8Array, dims: number[]): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out[2] = 0x08;
  out[3] = dims.length;
  const view = new DataView(out.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

/** Checks that images and labels of one split fit together and are MNIST-like. */
export function checkSplit(images: Idx, labels: Idx, split: string): void {
  if (images.dims.length !== 3) throw new DataError(`${split} images: expected 3 dimensions`);
  if (labels.dims[0] !== images.dims[0]) {
    throw new DataError(
      `${split}: ${images.dims[0]} images but ${
        labels.dims[0]
      } labels (files from different sets?)`,
    );
  }
  for (let i = 0; i < labels.data.length; i++) {
    if (labels.data[i] > 9) {
      throw new DataError(
        `${split} labels: label ${labels.data[i]} at row ${i} is not a digit 0-9`,
      );
    }
  }
}
