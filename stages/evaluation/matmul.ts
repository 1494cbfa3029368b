/**
 * The matmul the conv evaluator uses: the fast backend's BLAS where it runs (its kernel family
 * and threads are in the runtime facts, so in the keys), the TypeScript matmul elsewhere.
 */
import { type Sgemm, sgemmJs } from "../backends/blas.ts";
import { fastCpuSgemm } from "../backends/fast_cpu.ts";

/** The sgemm for the active backend. */
export const matmul = (): Sgemm => fastCpuSgemm() ?? sgemmJs;
