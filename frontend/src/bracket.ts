// A tournament's bracket as a spectator holds it: the snapshot from
// GET /v1/tournaments/{id}/bracket, kept current by the `tournament.delta` publications of
// `tournament:<id>` (docs/PROTOCOL.md, "Tournaments"). Pure: no fetching here.

export interface MatchEntry {
  round: number;
  stage: string;
  sides: (string | null)[];
  result: number | null; // the winning side 0 or 1, 2 when both forfeited
  decided: boolean;
  state: "playing" | "needs_admin" | null;
  attempt?: number;
  disputed?: boolean;
}

export interface Snapshot {
  id: string;
  name: string;
  phase: string;
  version: number;
  entries: Record<string, unknown>;
  matches: Record<string, MatchEntry>;
  places?: [number, string[]][] | null;
  [key: string]: unknown;
}

export interface Delta {
  kind: "tournament.delta";
  base: number;
  version: number;
  set: [string[], unknown][];
  unset: string[][];
}

const NESTED = new Set(["entries", "matches"]);

/** What to do with a delta: apply it, ignore it (already held), or fetch the snapshot again
 * (one was missed). */
export function decide(held: number, delta: Delta): "apply" | "ignore" | "refetch" {
  if (delta.base === held) return "apply";
  if (delta.version <= held) return "ignore";
  return "refetch";
}

/** The snapshot after ``delta`` (whose base is ``snap.version``); ``snap`` is not changed. */
export function applyDelta(snap: Snapshot, delta: Delta): Snapshot {
  const out: Record<string, unknown> = { ...snap };
  for (const key of NESTED) out[key] = { ...(snap[key] as Record<string, unknown>) };
  for (const path of delta.unset) {
    const [key, entry] = path;
    if (key !== undefined && entry !== undefined) delete (out[key] as Record<string, unknown>)[entry];
  }
  for (const [path, value] of delta.set) {
    const [key, entry] = path;
    if (key === undefined) continue;
    if (entry !== undefined) (out[key] as Record<string, unknown>)[entry] = value;
    else out[key] = value;
  }
  out.version = delta.version;
  return out as Snapshot;
}

export interface Column {
  stage: string;
  round: number;
  matches: [string, MatchEntry][];
}

const STAGE_ORDER = ["winners", "upper", "main", "group", "swiss", "league", "losers", "lower", "grand_final", "final"];

/** The bracket laid out for display: one column per stage and round, in play order. */
export function columns(snap: Snapshot): Column[] {
  const byKey = new Map<string, Column>();
  for (const [id, m] of Object.entries(snap.matches)) {
    const key = `${m.stage}\u0000${m.round}`;
    let column = byKey.get(key);
    if (!column) {
      column = { stage: m.stage, round: m.round, matches: [] };
      byKey.set(key, column);
    }
    column.matches.push([id, m]);
  }
  const rank = (stage: string) => {
    const i = STAGE_ORDER.indexOf(stage);
    return i < 0 ? STAGE_ORDER.length : i;
  };
  const out = [...byKey.values()];
  out.sort((a, b) => rank(a.stage) - rank(b.stage) || a.stage.localeCompare(b.stage) || a.round - b.round);
  for (const c of out) c.matches.sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }));
  return out;
}
