// Kubernetes resource quantities (k8s.io/apimachinery resource.Quantity): `100m`, `0.5`, `128Mi`,
// `1G`, `1e3`. Pure: a string (or the number YAML made of `cpu: 1`) in, a number of base units
// (cores, bytes, devices) out. Config validation and `sealift size` both read them, so they live
// on the ground floor.
import { SealiftError } from './errors.ts';

const BINARY: Record<string, number> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};
const DECIMAL: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

// <signedNumber><suffix>: suffix = binarySI | decimalExponent | decimalSI (resource.Quantity's grammar)
const QUANTITY_RE = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE]?)$/;

/** The value of a quantity in base units; `where` names the value in the error. */
export function parseQuantity(value: string | number, where = 'quantity'): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value)) return value;
  } else {
    const m = QUANTITY_RE.exec(value.trim());
    if (m) {
      const n = Number(m[1]);
      const suffix = m[2]!;
      if (suffix in BINARY) return n * BINARY[suffix]!;
      if (/^[eE][+-]?\d/.test(suffix)) return n * 10 ** Number(suffix.slice(1));
      return n * DECIMAL[suffix]!;
    }
  }
  throw new SealiftError('CONFIG_INVALID', `${where}: "${String(value)}" is not a Kubernetes quantity`, {
    hint: 'Write a number with an optional suffix: 500m or 2 (CPU), 128Mi, 4Gi or 1G (bytes), 1e3.',
    details: { value: String(value) },
  });
}

/** Whether `value` is a valid quantity (for schema checks). */
export function isQuantity(value: unknown): boolean {
  if (typeof value !== 'string' && typeof value !== 'number') return false;
  try {
    parseQuantity(value);
    return true;
  } catch {
    return false;
  }
}
