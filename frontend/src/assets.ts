// Each asset's scale (digits after the point), from GET /v1/assets, read once per page load.

import { api } from "./api";

let scales: Promise<Record<string, number>> | null = null;

export function assetScales(): Promise<Record<string, number>> {
  scales ??= api<{ assets: { asset: string; scale: number }[] }>("/v1/assets")
    .then((r) => Object.fromEntries(r.assets.map((a) => [a.asset, a.scale])))
    .catch((e: unknown) => {
      scales = null; // try again next time
      throw e;
    });
  return scales;
}
