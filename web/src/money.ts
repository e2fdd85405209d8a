// Credits have 8 decimals; the API carries base units as decimal strings (no floating point).
export const DECIMALS = 8;
const SCALE = 10n ** BigInt(DECIMALS);

/** "125000000" → "1.25" (base units to credits, trailing zeros dropped). */
export function formatCredits(base: string): string {
  const units = BigInt(base);
  const whole = units / SCALE;
  const frac = (units % SCALE).toString().padStart(DECIMALS, "0").replace(/0+$/, "");
  return frac ? `${whole}.${frac}` : whole.toString();
}

/** "1.25" → "125000000"; an error that says what is wrong otherwise. */
export function parseCredits(human: string): { ok: true; base: string } | { ok: false; error: string } {
  const text = human.trim();
  const m = /^(\d+)(?:\.(\d+))?$/.exec(text);
  if (!m) return { ok: false, error: `"${text}" is not an amount of credits (for example 12.5)` };
  const frac = m[2] ?? "";
  if (frac.length > DECIMALS) return { ok: false, error: `credits have at most ${DECIMALS} decimals` };
  const base = BigInt(m[1] ?? "0") * SCALE + BigInt(frac.padEnd(DECIMALS, "0") || "0");
  return { ok: true, base: base.toString() };
}

/** Seconds as the largest whole unit: 3600 → "1 h", 86400 → "1 d". */
export function formatDuration(seconds: number): string {
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["min", 60]] as const) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size} ${unit}`;
  }
  return `${seconds} s`;
}

/** Seconds, rounded down to the two largest units: 25199 → "6 h 59 min". */
export function formatSpan(seconds: number): string {
  const parts: string[] = [];
  let left = Math.floor(seconds);
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]] as const) {
    if (left >= size || (unit === "s" && parts.length === 0)) {
      parts.push(`${Math.floor(left / size)} ${unit}`);
      left %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(" ");
}
