import { describe, expect, it } from "vitest";
import { applyDelta, columns, decide, type Delta, type Snapshot } from "./bracket";

const snap: Snapshot = {
  id: "t1",
  name: "Cup",
  phase: "running",
  version: 4,
  entries: { a: { roster: ["a"] }, b: { roster: ["b"] } },
  matches: {
    "w1-1": { round: 1, stage: "winners", sides: ["a", "b"], result: null, decided: false, state: "playing" },
    "l1-1": { round: 1, stage: "losers", sides: [null, null], result: null, decided: false, state: null },
  },
};

const delta = (base: number, version: number, set: Delta["set"], unset: Delta["unset"] = []): Delta => ({
  kind: "tournament.delta",
  base,
  version,
  set,
  unset,
});

describe("deltas", () => {
  it("applies a delta on its base and leaves the snapshot it came from alone", () => {
    const done = { round: 1, stage: "winners", sides: ["a", "b"], result: 0, decided: true, state: null };
    const next = applyDelta(snap, delta(4, 5, [[["matches", "w1-1"], done], [["phase"], "complete"]], [["entries", "b"]]));
    expect(next.version).toBe(5);
    expect(next.matches["w1-1"]?.result).toBe(0);
    expect(next.phase).toBe("complete");
    expect(Object.keys(next.entries)).toEqual(["a"]);
    expect(snap.matches["w1-1"]?.result).toBeNull();
    expect(Object.keys(snap.entries)).toEqual(["a", "b"]);
  });

  it("applies, ignores or refetches by version", () => {
    expect(decide(4, delta(4, 5, []))).toBe("apply");
    expect(decide(5, delta(4, 5, []))).toBe("ignore");
    expect(decide(4, delta(5, 6, []))).toBe("refetch");
  });

  it("lays the bracket out by stage, then round", () => {
    expect(columns(snap).map((c) => `${c.stage}:${c.round}`)).toEqual(["winners:1", "losers:1"]);
  });
});
