/** The half-precision conversions live with the kernels that read half weights (kernels/half.ts). */
export * from '../kernels/half.js';
