import { useEffect, useRef, useState } from "react";
import { api, ApiError } from "../api";
import { auth } from "../auth";
import { RealtimeError, type RealtimeClient } from "../realtime";
import { LobbyChat, PartyPanel } from "./LobbyParts";

interface Queue {
  queue: string;
  team_size: number;
  teams: number;
  ready_check_s: number;
  waiting: number;
  wait_estimate_s: number | null;
}

const QUEUES_REFRESH_MS = 5_000;

function waitText(q: Queue | undefined): string {
  if (!q) return "";
  const estimate =
    q.wait_estimate_s === null ? "no recent matches" : `about ${Math.max(1, Math.round(q.wait_estimate_s))} s`;
  return `${q.waiting} waiting, wait ${estimate}`;
}

type Phase =
  | { kind: "idle" }
  | { kind: "searching"; queue: string; since: number }
  | { kind: "found"; match: string; queue: string; teams: string[][]; deadline: number; accepted: boolean }
  | { kind: "allocating"; match: string; queue: string }
  | { kind: "live"; match: string; queue: string; address: string | null; live: unknown }
  | { kind: "finished"; match: string; queue: string; won: boolean | null; rating: string | null };

interface Event {
  kind: string;
  match?: string;
  queue?: string;
  teams?: string[][];
  accept_within_s?: number;
  address?: string;
  ranks?: number[];
  live?: unknown;
}

function conservative(mu: number, sigma: number): number {
  return Math.round((mu - 3 * sigma) * 100) / 100;
}

function scoreText(live: unknown): string {
  if (live && typeof live === "object" && "score" in live) {
    const score = (live as { score: unknown }).score;
    if (Array.isArray(score)) return score.join(" : ");
  }
  return live === null || live === undefined ? "waiting for the server" : JSON.stringify(live);
}

/** Queue up, accept the ready check, follow the live match, see the result and the rating. */
export function Lobby({ realtime, visible }: { realtime: RealtimeClient; visible: boolean }) {
  const session = auth.session;
  const [queues, setQueues] = useState<Queue[]>([]);
  const [chosen, setChosen] = useState("");
  const [phase, setPhase] = useState<Phase>({ kind: "idle" });
  const [problem, setProblem] = useState<string | null>(null);
  const [now, setNow] = useState(Date.now());
  const phaseRef = useRef(phase);
  phaseRef.current = phase;
  // the match in play, set as its events arrive (a render may come after the next event)
  const current = useRef<{ match: string; queue: string; teams: string[][] } | null>(null);

  useEffect(() => {
    const tick = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(tick);
  }, []);
  useEffect(() => {
    if (!visible) return;
    // the queues with who waits and the wait to expect, kept fresh while the lobby is open
    const load = () =>
      api<{ queues: Queue[] }>("/v1/queues")
        .then((r) => {
          setQueues(r.queues);
          setChosen((c) => c || r.queues[0]?.queue || "");
        })
        .catch(() => setProblem("could not load the queues"));
    void load();
    const every = setInterval(() => void load(), QUEUES_REFRESH_MS);
    return () => clearInterval(every);
  }, [visible]);
  const chosenQueue = queues.find((q) => q.queue === chosen);
  const region = chosen.split(":")[2] ?? "eu";

  // by subject, not by session: a refreshed token (every few minutes) is the same player, and
  // following the channels again would drop the match being followed
  const subject = session?.subject ?? null;
  useEffect(() => {
    if (!subject) return;
    const me = subject;
    const settle = async (match: string, queue: string) => {
      const mode = queue.split(":").slice(0, 2).join(":");
      try {
        const h = await api<{
          history: { match: string; mu_before: number; sigma_before: number; mu: number; sigma: number }[];
        }>(`/v1/players/${encodeURIComponent(me)}/ratings/${encodeURIComponent(mode)}`);
        const row = h.history.find((r) => r.match === match);
        if (!row) return;
        const before = conservative(row.mu_before, row.sigma_before);
        const after = conservative(row.mu, row.sigma);
        const change = `${before} → ${after} (${after >= before ? "+" : ""}${Math.round((after - before) * 100) / 100})`;
        setPhase((p) => (p.kind === "finished" && p.match === match ? { ...p, rating: change } : p));
      } catch {
        /* the rating shows on the next visit */
      }
    };
    let stopMatch: (() => void) | null = null;
    const follow = (match: string) => {
      stopMatch?.();
      stopMatch = realtime.subscribe(`match:${match}`, {
        onPublication: (body) => {
          const e = body as Event;
          if (e.kind === "match.update") {
            setPhase((p) => (p.kind === "live" && p.match === match ? { ...p, live: e.live } : p));
          }
        },
      });
    };
    const stop = realtime.subscribe(`user:${me}`, {
      onPublication: (body) => {
        const e = body as Event;
        const p = phaseRef.current;
        switch (e.kind) {
          case "queue.joined":
            setPhase({ kind: "searching", queue: e.queue ?? "", since: Date.now() });
            break;
          case "queue.left":
          case "queue.expired":
            if (p.kind === "searching") setPhase({ kind: "idle" });
            break;
          case "match.found":
            current.current = { match: e.match ?? "", queue: e.queue ?? "", teams: e.teams ?? [] };
            setPhase({
              kind: "found",
              match: e.match ?? "",
              queue: e.queue ?? "",
              teams: e.teams ?? [],
              deadline: Date.now() + (e.accept_within_s ?? 20) * 1000,
              accepted: false,
            });
            follow(e.match ?? "");
            break;
          case "match.allocating": {
            const c = current.current;
            if (c) setPhase({ kind: "allocating", match: c.match, queue: c.queue });
            break;
          }
          case "match.live": {
            const c = current.current;
            if (c) setPhase({ kind: "live", match: c.match, queue: c.queue, address: e.address ?? null, live: null });
            break;
          }
          case "match.finished": {
            const c = current.current;
            if (!c) break;
            const mine = c.teams.findIndex((t) => t.includes(me));
            const won = e.ranks && mine >= 0 ? e.ranks[mine] === 0 : null;
            setPhase({ kind: "finished", match: c.match, queue: c.queue, won, rating: null });
            break;
          }
          case "match.settled":
            if (current.current) void settle(current.current.match, current.current.queue);
            break;
          case "match.aborted":
          case "match.cancelled":
            setPhase({ kind: "idle" });
            setProblem(e.kind === "match.aborted" ? "The match was aborted." : "The match was cancelled.");
            break;
        }
      },
    });
    // a page opened (or a socket back) after a match.found: ask for the match in progress
    const resume = realtime.onStatus((status) => {
      if (status !== "online" || phaseRef.current.kind !== "idle") return;
      realtime
        .rpc("match.current", {})
        .then((r) => {
          const c = r as {
            match: string | null;
            queue?: string;
            teams?: string[][];
            state?: string;
            accepted?: boolean;
            accept_within_s?: number | null;
          };
          if (!c.match || phaseRef.current.kind !== "idle") return;
          const queue = c.queue ?? "";
          current.current = { match: c.match, queue, teams: c.teams ?? [] };
          follow(c.match);
          if (c.state === "ready_check") {
            setPhase({
              kind: "found",
              match: c.match,
              queue,
              teams: c.teams ?? [],
              deadline: Date.now() + (c.accept_within_s ?? 0) * 1000,
              accepted: c.accepted ?? false,
            });
          } else if (c.state === "allocating") {
            setPhase({ kind: "allocating", match: c.match, queue });
          } else {
            setPhase({ kind: "live", match: c.match, queue, address: null, live: null });
          }
        })
        .catch(() => undefined);
    });
    return () => {
      stop();
      stopMatch?.();
      resume();
    };
  }, [subject, realtime]);

  const call = async (method: string, params: Record<string, unknown>) => {
    setProblem(null);
    try {
      return await realtime.rpc(method, params);
    } catch (e) {
      setProblem(e instanceof RealtimeError || e instanceof ApiError ? e.message : "that did not work");
      return null;
    }
  };

  if (!session) {
    // a visitor sees the queues live and reads the chat
    return (
      <section aria-labelledby="lobby-title">
        <h1 id="lobby-title">Play</h1>
        <p>
          <a href="#/signin">Sign in</a> to play.
        </p>
        <table aria-label="Queues">
          <thead>
            <tr>
              <th scope="col">Queue</th>
              <th scope="col">Now</th>
            </tr>
          </thead>
          <tbody>
            {queues.map((q) => (
              <tr key={q.queue}>
                <th scope="row">{q.queue}</th>
                <td>{waitText(q)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <div className="panels">
          <LobbyChat realtime={realtime} region={region} me={null} />
        </div>
      </section>
    );
  }
  const dialog = phase.kind === "found" && (
    <div role="alertdialog" aria-labelledby="found-title" className={visible ? "dialog" : "dialog overlay"}>
      <h2 id="found-title">Match found</h2>
      <p>{phase.teams.map((t) => t.join(", ")).join(" vs ")}</p>
      <p>Accept within {Math.max(0, Math.ceil((phase.deadline - now) / 1000))} s</p>
      {phase.accepted ? (
        <p role="status">Accepted. Waiting for the others…</p>
      ) : (
        <>
          <button
            type="button"
            onClick={() =>
              void call("match.accept", { match: phase.match }).then(
                (r) => r && setPhase((p) => (p.kind === "found" ? { ...p, accepted: true } : p)),
              )
            }
          >
            Accept
          </button>{" "}
          <button
            type="button"
            className="secondary"
            onClick={() => void call("match.decline", { match: phase.match })}
          >
            Decline
          </button>
        </>
      )}
    </div>
  );
  if (!visible) {
    // elsewhere in the portal: the ready check pops up, a match in play is a link away
    if (dialog) return dialog;
    if (phase.kind === "allocating" || phase.kind === "live") {
      return (
        <p className="banner" role="status">
          Your match is on. <a href="#/play">Follow it</a>
        </p>
      );
    }
    return null;
  }
  return (
    <section aria-labelledby="lobby-title">
      <h1 id="lobby-title">Play</h1>
      {problem && <p role="alert">{problem}</p>}
      {phase.kind === "idle" && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void call("queue.join", { queue: chosen });
          }}
        >
          <label htmlFor="queue">Queue</label>
          <select id="queue" value={chosen} onChange={(e) => setChosen(e.target.value)}>
            {queues.map((q) => (
              <option key={q.queue} value={q.queue}>
                {q.queue} ({q.team_size}v{q.team_size})
              </option>
            ))}
          </select>
          <p className="muted" data-testid="queue-figures">
            {waitText(chosenQueue)}
          </p>
          <button type="submit" disabled={!chosen}>
            Find a match
          </button>
        </form>
      )}
      {phase.kind === "searching" && (
        <div role="status">
          <p>
            Searching in {phase.queue}… {Math.floor((now - phase.since) / 1000)} s
          </p>
          <p className="muted">{waitText(queues.find((q) => q.queue === phase.queue))}</p>
          <button type="button" className="secondary" onClick={() => void call("queue.leave", {})}>
            Leave the queue
          </button>
        </div>
      )}
      {dialog}
      {phase.kind === "allocating" && <p role="status">Everyone accepted. Finding a server…</p>}
      {phase.kind === "live" && (
        <div role="status">
          <h2>Live{phase.address ? ` on ${phase.address}` : ""}</h2>
          <p>
            Score: <strong data-testid="live-score">{scoreText(phase.live)}</strong>
          </p>
        </div>
      )}
      {phase.kind === "finished" && (
        <div role="status">
          <h2 data-testid="result">{phase.won === null ? "Match over" : phase.won ? "Victory" : "Defeat"}</h2>
          {phase.rating && <p data-testid="rating-change">Rating {phase.rating}</p>}
          <button type="button" onClick={() => setPhase({ kind: "idle" })}>
            Play again
          </button>
        </div>
      )}
      <div className="panels">
        <PartyPanel realtime={realtime} me={session.subject} />
        <LobbyChat realtime={realtime} region={region} me={session.subject} />
      </div>
    </section>
  );
}
