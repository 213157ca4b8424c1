import { useEffect, useRef, useState } from "react";
import { api, ApiError } from "../api";
import { applyDelta, columns, decide, type Delta, type MatchEntry, type Snapshot } from "../bracket";
import type { RealtimeClient } from "../realtime";

/** A live bracket anyone can watch: subscribe first, then fetch the snapshot, then apply each
 * delta on the version held (docs/PROTOCOL.md, "Tournaments"). */
function useBracket(id: string, realtime: RealtimeClient): { snap: Snapshot | null; error: string | null } {
  const [snap, setSnap] = useState<Snapshot | null>(null);
  const [error, setError] = useState<string | null>(null);
  const held = useRef<Snapshot | null>(null);
  const early = useRef<Delta[]>([]);
  useEffect(() => {
    let live = true;
    held.current = null;
    early.current = [];
    const show = (next: Snapshot) => {
      held.current = next;
      if (live) setSnap(next);
    };
    const fetchSnapshot = () => {
      api<Snapshot>(`/v1/tournaments/${encodeURIComponent(id)}/bracket`)
        .then((fresh) => {
          let next = fresh;
          for (const d of early.current) if (decide(next.version, d) === "apply") next = applyDelta(next, d);
          early.current = [];
          show(next);
        })
        .catch((e: unknown) => live && setError(e instanceof ApiError ? e.message : "could not load"));
    };
    const stop = realtime.subscribe(`tournament:${id}`, {
      onReset: fetchSnapshot,
      onPublication: (body) => {
        const delta = body as Delta;
        if (delta.kind !== "tournament.delta") return;
        const current = held.current;
        if (current === null) {
          early.current.push(delta);
          return;
        }
        const action = decide(current.version, delta);
        if (action === "apply") show(applyDelta(current, delta));
        else if (action === "refetch") fetchSnapshot();
      },
    });
    return () => {
      live = false;
      stop();
    };
  }, [id, realtime]);
  return { snap, error };
}

function side(m: MatchEntry, i: number) {
  const name = m.sides[i] ?? "—";
  const won = m.result === i;
  return (
    <li className={won ? "side won" : "side"}>
      <span>{name}</span>
      {won && <span className="sr-only"> (winner)</span>}
    </li>
  );
}

export function TournamentView({ id, realtime }: { id: string; realtime: RealtimeClient }) {
  const { snap, error } = useBracket(id, realtime);
  if (error) return <p role="alert">{error}</p>;
  if (!snap) return <p>Loading…</p>;
  return (
    <section aria-labelledby="bracket-title">
      <h1 id="bracket-title">{snap.name}</h1>
      <p className="muted">
        <span data-testid="phase">{snap.phase}</span> · version <span data-testid="version">{snap.version}</span>
      </p>
      <div className="bracket" role="list" aria-label="Bracket">
        {columns(snap).map((c) => (
          <div className="round" role="listitem" key={`${c.stage}-${c.round}`}>
            <h2>
              {c.stage.replaceAll("_", " ")} · round {c.round}
            </h2>
            {c.matches.map(([mid, m]) => (
              <ul className={`match ${m.state ?? ""}`} key={mid} data-match={mid} aria-label={`Match ${mid}`}>
                {side(m, 0)}
                {side(m, 1)}
              </ul>
            ))}
          </div>
        ))}
      </div>
      {snap.places && (
        <ul className="places" aria-label="Final places">
          {snap.places.map(([place, who]) => (
            <li key={place}>
              {place}. {who.join(", ")}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
