/**
 * NumPy `.npy` format 1.0 for the dtypes the pipeline writes: `<f4`, `|u1`, `<i4`.
 * Files written here open with `numpy.load` with the right dtype and shape.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeNpy, encodeNpy } from "./npy.ts";
 * const bytes = encodeNpy(new Float32Array([1, 2, 3, 4]), [2, 2]);
 * const back = decodeNpy(bytes);
 * assert(back.shape[0] === 2 && back.data[3] === 4);
 * ```
 */
import { DataError } from "../../pipeline/errors.ts";

export type NpyArray = Float32Array | Uint8Array | Int32Array;

/** A decoded array with its shape. */
export interface Npy<T extends NpyArray = NpyArray> {
  data: T;
  shape: number[];
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

function descrOf(data: NpyArray): string {
  if (data instanceof Float32Array) return "<f4";
  if (data instanceof Uint8Array) return "|u1";
  if (data instanceof Int32Array) return "<i4";
  throw new Error("unsupported npy dtype");
}

/** Encodes a typed array and shape as `.npy` bytes (C order, little-endian). */
export function encodeNpy(data: NpyArray, shape: number[]): Uint8Array {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) {
    throw new Error(`npy: shape [${shape}] holds ${count} values but data has ${data.length}`);
  }
  const shapeStr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  let header = `{'descr': '${descrOf(data)}', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  const pre = 10; // magic(6) + version(2) + header length(2)
  const total = Math.ceil((pre + header.length + 1) / 64) * 64;
  header = header.padEnd(total - pre - 1, " ") + "\n";
  const body = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(total + body.length);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  out[8] = header.length & 0xff;
  out[9] = header.length >> 8;
  for (let i = 0; i < header.length; i++) out[pre + i] = header.charCodeAt(i);
  out.set(body, total);
  return out;
}

/** Decodes `.npy` bytes; `name` is used in error messages. */
export function decodeNpy(bytes: Uint8Array, name = "npy file"): Npy {
  if (bytes.length < 10 || MAGIC.some((m, i) => bytes[i] !== m)) {
    throw new DataError(`${name}: not a .npy file (bad magic bytes)`);
  }
  const major = bytes[6];
  let hlen: number, pre: number;
  if (major === 1) {
    hlen = bytes[8] | (bytes[9] << 8);
    pre = 10;
  } else if (major === 2 || major === 3) {
    hlen = new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true);
    pre = 12;
  } else throw new DataError(`${name}: unsupported .npy version ${major}`);
  const header = new TextDecoder().decode(bytes.subarray(pre, pre + hlen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeStr = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeStr === undefined) {
    throw new DataError(`${name}: malformed .npy header`);
  }
  if (fortran === "True") throw new DataError(`${name}: Fortran-order .npy is not supported`);
  const shape = shapeStr.split(",").map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const off = pre + hlen;
  const size = { "<f4": 4, "|u1": 1, "<u1": 1, "<i4": 4 }[descr];
  if (size === undefined) throw new DataError(`${name}: unsupported dtype ${descr}`);
  if (bytes.length - off !== count * size) {
    throw new DataError(
      `${name}: truncated or padded .npy (expected ${count * size} data bytes, found ${
        bytes.length - off
      })`,
    );
  }
  const copy = bytes.slice(off); // aligned copy
  const data = size === 1
    ? copy
    : descr === "<f4"
    ? new Float32Array(copy.buffer)
    : new Int32Array(copy.buffer);
  return { data, shape };
}

/** Writes an array as `.npy`. */
export async function writeNpy(path: string, data: NpyArray, shape: number[]): Promise<void> {
  await Deno.writeFile(path, encodeNpy(data, shape));
}

/** Reads a `.npy` file. */
export async function readNpy(path: string): Promise<Npy> {
  return decodeNpy(await Deno.readFile(path), path);
}

/** Reads a `.npy` file that must hold float32. */
export async function readNpyF32(path: string): Promise<Npy<Float32Array>> {
  const a = await readNpy(path);
  if (!(a.data instanceof Float32Array)) throw new DataError(`${path}: expected float32 data`);
  return a as Npy<Float32Array>;
}
