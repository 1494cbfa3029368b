/**
 * Just enough of a WebAssembly assembler for the hand-written SIMD kernels (adam_simd.ts,
 * dense_simd.ts): byte encodings of the instructions they use, and a module of exported
 * functions over one imported memory. The kernels stay readable instruction lists in
 * TypeScript, with no binary blob in the repository.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { leb, moduleBytes } from "./wasm_asm.ts";
 * assert.deepEqual(leb(624485), [0xe5, 0x8e, 0x26]);
 * const bytes = moduleBytes([], false);
 * assert.ok(WebAssembly.validate(bytes as BufferSource));
 * ```
 */

export const I32 = 0x7f, F32 = 0x7d, V128 = 0x7b;

/** Unsigned LEB128. */
export function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

export const str = (s: string) => [...leb(s.length), ...new TextEncoder().encode(s)];
const section = (id: number, body: number[]) => [id, ...leb(body.length), ...body];
export const f32c = (x: number) => [0x43, ...new Uint8Array(new Float32Array([x]).buffer)];
export const i32c = (x: number) => [0x41, ...sleb(x)];

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

export const get = (i: number) => [0x20, i],
  set = (i: number) => [0x21, i],
  tee = (i: number) => [0x22, i];
export const simd = (op: number) => [0xfd, ...leb(op)];
/** v128.load / v128.store (alignment hint 4 bytes, no offset). */
export const LOAD = [...simd(0x00), 2, 0], STORE = [...simd(0x0b), 2, 0];
export const SPLAT = simd(0x13), SQRT = simd(0xe3), ADD = simd(0xe4), SUB = simd(0xe5);
export const MUL = simd(0xe6), DIV = simd(0xe7), MAX = simd(0xe9), PMAX = simd(0xeb);
export const GT = simd(0x44), AND = simd(0x4e);
export const F64X2_ADD = simd(0xf0), PROMOTE_LOW = simd(0x5f), DEMOTE_ZERO = simd(0x5e);
export const lane = (k: number) => [...simd(0x1f), k];
/** i8x16.shuffle of two vectors by 16 byte indices (0-15 the first, 16-31 the second). */
export const shuffle = (bytes: number[]) => [...simd(0x0d), ...bytes];
export const I32_ADD = [0x6a], I32_MUL = [0x6c], I32_GE_U = [0x4f], I32_EQZ = [0x45];
export const F32_SUB = [0x93], F32_ADD = [0x92], F32_EQ = [0x5b];
export const V128_ZERO = [...simd(0x0c), ...new Array(16).fill(0)];

/**
 * `body` repeated while local `i` < local `end`, `i` stepping after each pass by `step` (a
 * constant, or `{ local }`: the value of that local).
 */
export function loop(
  i: number,
  end: number,
  step: number | { local: number },
  body: number[],
): number[] {
  return [
    0x02, // block
    0x40,
    0x03, // loop
    0x40,
    ...get(i),
    ...get(end),
    ...I32_GE_U,
    0x0d, // br_if 1 (out of the block)
    1,
    ...body,
    ...get(i),
    ...(typeof step === "number" ? i32c(step) : get(step.local)),
    ...I32_ADD,
    ...set(i),
    0x0c, // br 0 (loop)
    0,
    0x0b, // end loop
    0x0b, // end block
  ];
}

/** One exported function: its parameter and result types, extra locals, and code. */
export interface WasmFunction {
  name: string;
  params: number[];
  results: number[];
  /** Extra locals as [count, type] runs. */
  locals: [number, number][];
  body: number[];
}

/**
 * A module of `fns` over one imported memory `env.mem`. `shared`: the memory is shared
 * (limits 1 to 65536 pages), so threads can run the functions over it together.
 */
export function moduleBytes(fns: WasmFunction[], shared: boolean): Uint8Array {
  const types = fns.flatMap((f) => [
    0x60,
    ...leb(f.params.length),
    ...f.params,
    ...leb(f.results.length),
    ...f.results,
  ]);
  const codes = fns.flatMap((f) => {
    const code = [
      ...leb(f.locals.length),
      ...f.locals.flatMap(([n, t]) => [...leb(n), t]),
      ...f.body,
      0x0b, // end function
    ];
    return [...leb(code.length), ...code];
  });
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, [...leb(fns.length), ...types]),
    ...section(2, [
      1,
      ...str("env"),
      ...str("mem"),
      0x02,
      ...(shared ? [0x03, 0x01, ...leb(65536)] : [0x00, 0x01]),
    ]),
    ...section(3, [...leb(fns.length), ...fns.map((_, i) => i)]),
    ...section(7, [...leb(fns.length), ...fns.flatMap((f, i) => [...str(f.name), 0x00, i])]),
    ...section(10, [...leb(fns.length), ...codes]),
  ]);
}

/**
 * A function that compiles `bytes()` on first call and returns that module from then on, or
 * null from then on where it does not compile (no WebAssembly SIMD here).
 */
export function compiledOnce(bytes: () => Uint8Array): () => WebAssembly.Module | null {
  let compiled: WebAssembly.Module | null | undefined;
  return () => {
    if (compiled !== undefined) return compiled;
    try {
      compiled = new WebAssembly.Module(bytes() as BufferSource);
    } catch {
      compiled = null;
    }
    return compiled;
  };
}
