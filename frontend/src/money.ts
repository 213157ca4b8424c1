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
