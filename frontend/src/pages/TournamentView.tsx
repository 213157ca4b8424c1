import { useEffect, useRef, useState } from "react";
import { api, ApiError } from "../api";
import { assetScales } from "../assets";
import { auth } from "../auth";
import { formatUnits } from "../money";
import { applyDelta, columns, decide, type Delta, type MatchEntry, type Snapshot } from "../bracket";
import type { RealtimeClient } from "../realtime";
import { OrganizerPanel } from "./Organizer";

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

interface Entry {
  roster: string[];
  checked_in: string[];
}

/** The signed-in player's part: register (the fee and what the balance will be after it),
 * withdraw, check in. The bracket's deltas say what the server did. */
function EntryPanel({ snap, realtime }: { snap: Snapshot; realtime: RealtimeClient }) {
  const session = auth.session;
  const teamSize = Number(snap.team_size ?? 1);
  const [teamName, setTeamName] = useState("");
  const [party, setParty] = useState<{ leader?: string; members?: string[] } | null>(null);
  useEffect(() => {
    if (!session || teamSize < 2) return;
    // asked once the socket is online (a page opened directly connects first)
    return realtime.onStatus((status) => {
      if (status !== "online") return;
      realtime
        .rpc("party.status", {})
        .then((p) => setParty(p as { leader?: string; members?: string[] }))
        .catch(() => setParty(null));
    });
  }, [session?.subject, teamSize, realtime, snap.version]);
  const [balance, setBalance] = useState<{ available: string; scale: number } | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const fee = snap.entry_fee as { asset: string; amount: string } | null;
  useEffect(() => {
    if (!session || !fee) return;
    Promise.all([
      api<{ balances: { asset: string; available: string }[] }>("/v1/wallet", { token: auth.token() }),
      assetScales(),
    ])
      .then(([w, scales]) => {
        const row = w.balances.find((b) => b.asset === fee.asset);
        setBalance({ available: row?.available ?? "0", scale: scales[fee.asset] ?? 0 });
      })
      .catch(() => setBalance(null));
  }, [session, fee?.asset, fee?.amount, snap.version]);
  if (!session) {
    return snap.phase === "registration" ? (
      <p>
        <a href="#/signin">Sign in</a> to register.
      </p>
    ) : null;
  }
  const me = session.subject;
  const mine = Object.values(snap.entries as Record<string, Entry>).find((e) => e.roster.includes(me));
  const act = async (path: string, method: string, body: unknown = {}) => {
    setBusy(true);
    setProblem(null);
    try {
      await api(`/v1/tournaments/${encodeURIComponent(snap.id)}${path}`, {
        method,
        token: auth.token(),
        body: method === "DELETE" ? undefined : body,
      });
    } catch (e) {
      setProblem(e instanceof ApiError ? e.message : "that did not work");
    } finally {
      setBusy(false);
    }
  };
  const feeText = fee && balance ? `${formatUnits(fee.amount, balance.scale)} ${fee.asset}` : null;
  const after =
    fee && balance ? formatUnits((BigInt(balance.available) - BigInt(fee.amount)).toString(), balance.scale) : null;
  return (
    <div className="entry" aria-label="Your entry" role="region">
      {problem && <p role="alert">{problem}</p>}
      {snap.phase === "registration" && !mine && (
        <>
          <p>
            Entry fee: <strong>{feeText ?? "free"}</strong>
            {after !== null && (
              <>
                {" "}
                · your balance after it:{" "}
                <strong data-testid="balance-after">
                  {after} {fee?.asset}
                </strong>
              </>
            )}
          </p>
          {teamSize > 1 ? (
            <form
              onSubmit={(e) => {
                e.preventDefault();
                if (!teamName.trim()) return setProblem("your team needs a name");
                const members = party?.members ?? [];
                if (party?.leader !== me || members.length !== teamSize) {
                  return setProblem(
                    `a team of ${teamSize} registers as a party: make one on the Play page, ` +
                      "have your teammates join it, and register it here as its leader",
                  );
                }
                void act("/registration", "POST", { team: teamName.trim(), roster: members });
              }}
              aria-label="Register a team"
              noValidate
            >
              <p>
                Your party:{" "}
                <span data-testid="party-roster">{party?.members?.length ? party.members.join(", ") : "none yet"}</span>{" "}
                (each member pays their own fee: joining your party let you enter them)
              </p>
              <label htmlFor="team-name">Team name</label>
              <input id="team-name" value={teamName} onChange={(e) => setTeamName(e.target.value)} />
              <button type="submit" disabled={busy}>
                Register the team
              </button>
            </form>
          ) : (
            <button type="button" disabled={busy} onClick={() => void act("/registration", "POST")}>
              Register
            </button>
          )}
        </>
      )}
      {mine && snap.phase === "registration" && (
        <>
          <p role="status">You are registered.</p>
          <button
            type="button"
            className="secondary"
            disabled={busy}
            onClick={() => void act("/registration", "DELETE")}
          >
            Withdraw
          </button>
        </>
      )}
      {mine && snap.phase === "check_in" && !mine.checked_in.includes(me) && (
        <button type="button" disabled={busy} onClick={() => void act("/check-in", "POST")}>
          Check in
        </button>
      )}
      {mine && snap.phase === "check_in" && mine.checked_in.includes(me) && <p role="status">You are checked in.</p>}
    </div>
  );
}

interface Standing {
  place: number;
  teams: string[];
  points?: number;
  buchholz?: number;
}

/** The table of a Swiss or a league (points so far), or the final places: fetched again
 * whenever the bracket's version moves. */
function Standings({ id, version, format }: { id: string; version: number; format: string }) {
  const [rows, setRows] = useState<Standing[]>([]);
  useEffect(() => {
    api<{ standings: Standing[] }>(`/v1/tournaments/${encodeURIComponent(id)}/standings`)
      .then((r) => setRows(r.standings))
      .catch(() => setRows([]));
  }, [id, version]);
  if (rows.length === 0 || !["swiss", "round_robin"].includes(format)) return null;
  const swiss = rows.some((r) => r.buchholz !== undefined);
  return (
    <table aria-label="Standings">
      <thead>
        <tr>
          <th scope="col">Place</th>
          <th scope="col">Team</th>
          {rows.some((r) => r.points !== undefined) && <th scope="col">Points</th>}
          {swiss && <th scope="col">Buchholz</th>}
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr key={`${r.place}-${r.teams.join(",")}`}>
            <td>{r.place}</td>
            <th scope="row">{r.teams.join(", ")}</th>
            {r.points !== undefined && <td>{r.points}</td>}
            {swiss && <td>{r.buchholz}</td>}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

interface Pool {
  collected: string;
  rake: string;
  prizes: string;
}

/** Each team's prize at ``place``, where ``tied`` teams share it: the shares of the places the
 * group covers (payout_bps), split between them, as the server splits the pool (its largest
 * remainders aside, which move at most a unit). */
function prizeOf(snap: Snapshot, place: number, tied: number, scale: number): string | null {
  const pool = snap.pool as Pool | null | undefined;
  const bps = (snap.payout_bps as number[] | undefined) ?? [];
  if (!pool || place < 1 || place > bps.length || tied < 1) return null;
  const covered = bps.slice(place - 1, place - 1 + tied).reduce((a, b) => a + b, 0);
  const share = (BigInt(pool.prizes) * BigInt(covered)) / 10_000n / BigInt(tied);
  return `${formatUnits(share.toString(), scale)} ${String(snap.prize_asset ?? "")}`;
}

export function TournamentView({ id, realtime }: { id: string; realtime: RealtimeClient }) {
  const { snap, error } = useBracket(id, realtime);
  const [scales, setScales] = useState<Record<string, number>>({});
  useEffect(() => {
    assetScales()
      .then(setScales)
      .catch(() => undefined);
  }, []);
  const scale = scales[String(snap?.prize_asset ?? "")] ?? 2;
  if (error) return <p role="alert">{error}</p>;
  if (!snap) return <p>Loading…</p>;
  return (
    <section aria-labelledby="bracket-title">
      <h1 id="bracket-title">{snap.name}</h1>
      <p className="muted">
        <span data-testid="phase">{snap.phase}</span> · version <span data-testid="version">{snap.version}</span>
        {snap.pool ? (
          <>
            {" "}
            · prize pool <span data-testid="pool">{formatUnits((snap.pool as Pool).prizes, scale)}</span>{" "}
            {String(snap.prize_asset ?? "")}
          </>
        ) : null}
      </p>
      {auth.session?.role === "admin" ? <OrganizerPanel snap={snap} /> : <EntryPanel snap={snap} realtime={realtime} />}
      <Standings id={snap.id} version={snap.version} format={String(snap.format ?? "")} />
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
                {(m.state === "playing" || m.decided) && m.sides.every((x) => x !== null) && (
                  <li className="watch">
                    <a href={`#/matches/${encodeURIComponent(`t.${snap.id}.${mid}.${m.attempt ?? 0}`)}`}>
                      {m.state === "playing" ? "Watch" : "Match"}
                    </a>
                  </li>
                )}
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
              {prizeOf(snap, place, who.length, scale) && (
                <span data-testid={`prize-${place}`}>
                  {" "}
                  · {prizeOf(snap, place, who.length, scale)}
                  {who.length > 1 ? " each" : ""}
                </span>
              )}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
