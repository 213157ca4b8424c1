// Amounts travel as strings of the asset's smallest unit (cents, 10^-6 USDC, wei): shown with
// BigInt, never through a float.

export function formatUnits(amount: string, scale: number): string {
  const negative = amount.startsWith("-");
  const digits = (negative ? amount.slice(1) : amount).replace(/^0+(?=\d)/, "");
  if (!/^\d+$/.test(digits)) throw new Error(`not an amount: ${amount}`);
  const units = BigInt(digits);
  const base = 10n ** BigInt(scale);
  const whole = (units / base).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const fraction = scale > 0 ? "." + (units % base).toString().padStart(scale, "0") : "";
  return `${negative ? "-" : ""}${whole}${fraction}`;
}

/** What a person typed ("12.5", "1,000") in units of `scale` ("1250" for cents), or the reason
 * it is not an amount: digits with at most `scale` decimals, more than zero. */
export function parseUnits(text: string, scale: number): { units: string } | { error: string } {
  const cleaned = text.trim().replace(/,/g, "");
  const match = /^(\d+)(?:\.(\d*))?$/.exec(cleaned);
  if (!match) return { error: "an amount is digits, with a decimal point if needed" };
  const fraction = match[2] ?? "";
  if (fraction.length > scale) {
    return { error: scale === 0 ? "whole units only" : `at most ${scale} decimals` };
  }
  const units = BigInt(match[1] + fraction.padEnd(scale, "0"));
  if (units <= 0n) return { error: "more than zero" };
  return { units: units.toString() };
}
