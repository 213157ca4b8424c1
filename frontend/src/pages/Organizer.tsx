// The organizer's side of tournaments (admins): create one, move it through its phases, and
// settle disputed matches or correct a result (a correction is a reversal the audit log keeps).
import { useEffect, useState, type FormEvent } from "react";
import { api, problemOf, type TournamentSummary } from "../api";
import { auth } from "../auth";
import type { MatchEntry, Snapshot } from "../bracket";
import { parseUnits } from "../money";

const FORMATS = ["single_elimination", "double_elimination", "round_robin", "swiss", "groups_playoffs"];

/** A new tournament, with every field checked before it is sent. */
export function CreateTournament({ onCreated }: { onCreated: (id: string) => void }) {
  const [queues, setQueues] = useState<string[]>([]);
  const [form, setForm] = useState({
    name: "",
    format: "double_elimination",
    queue: "",
    size: "8",
    fee: "5.00",
    split: "70, 30",
    rake: "10",
  });
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    api<{ queues: { queue: string }[] }>("/v1/queues")
      .then((r) => {
        setQueues(r.queues.map((q) => q.queue));
        setForm((f) => ({ ...f, queue: f.queue || r.queues[0]?.queue || "" }));
      })
      .catch(() => setProblem("could not load the queues"));
  }, []);
  const set = (name: keyof typeof form) => (e: { target: { value: string } }) =>
    setForm((f) => ({ ...f, [name]: e.target.value }));

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const found: Record<string, string> = {};
    if (!form.name.trim()) found.name = "a tournament has a name";
    const size = Number(form.size);
    if (!Number.isInteger(size) || size < 2 || size > 1024) found.size = "2 to 1,024 players";
    const fee = parseUnits(form.fee, 2); // the entry fees make the prize pool
    if ("error" in fee) found.fee = fee.error;
    const split = form.split.split(",").map((p) => Number(p.trim()));
    if (split.some((p) => !Number.isInteger(p) || p <= 0) || split.reduce((a, b) => a + b, 0) !== 100) {
      found.split = "whole percentages, best place first, adding up to 100";
    }
    const rake = Number(form.rake);
    if (!Number.isInteger(rake) || rake < 0 || rake > 50) found.rake = "0 to 50 %";
    setErrors(found);
    if (Object.keys(found).length > 0 || "error" in fee) return;
    try {
      const created = await api<{ id: string }>("/v1/admin/tournaments", {
        token: auth.token(),
        body: {
          name: form.name.trim(),
          queue: form.queue,
          team_size: 1,
          format: { kind: form.format },
          entry_fee: { asset: "USD", amount: fee.units },
          prize_asset: "USD",
          payout_bps: split.map((p) => p * 100),
          participants_min: 2,
          participants_max: size,
          rake_bps: rake * 100,
        },
      });
      setProblem(null);
      onCreated(created.id);
    } catch (e) {
      setProblem(problemOf(e, "the tournament was not created"));
    }
  };

  const field = (name: string, label: string, input: JSX.Element) => (
    <>
      <label htmlFor={`t-${name}`}>{label}</label>
      {input}
      {errors[name] && (
        <p id={`t-${name}-error`} className="field-error">
          {errors[name]}
        </p>
      )}
    </>
  );
  const invalid = (name: string) =>
    errors[name] ? { "aria-invalid": true as const, "aria-describedby": `t-${name}-error` } : {};

  return (
    <form onSubmit={(e) => void submit(e)} aria-labelledby="create-title" noValidate className="panel">
      <h2 id="create-title">New tournament</h2>
      {field("name", "Name", <input id="t-name" value={form.name} onChange={set("name")} {...invalid("name")} />)}
      {field(
        "format",
        "Format",
        <select id="t-format" value={form.format} onChange={set("format")}>
          {FORMATS.map((f) => (
            <option key={f} value={f}>
              {f.replaceAll("_", " ")}
            </option>
          ))}
        </select>,
      )}
      {field(
        "queue",
        "Queue (game, mode, region)",
        <select id="t-queue" value={form.queue} onChange={set("queue")}>
          {queues.map((q) => (
            <option key={q}>{q}</option>
          ))}
        </select>,
      )}
      {field(
        "size",
        "Players at most",
        <input id="t-size" inputMode="numeric" value={form.size} onChange={set("size")} {...invalid("size")} />,
      )}
      {field(
        "fee",
        "Entry fee (USD)",
        <input id="t-fee" inputMode="decimal" value={form.fee} onChange={set("fee")} {...invalid("fee")} />,
      )}
      {field(
        "split",
        "Prize split (%, best first)",
        <input id="t-split" value={form.split} onChange={set("split")} {...invalid("split")} />,
      )}
      {field(
        "rake",
        "Rake (%)",
        <input id="t-rake" inputMode="numeric" value={form.rake} onChange={set("rake")} {...invalid("rake")} />,
      )}
      {problem && (
        <p role="alert" className="field-error">
          {problem}
        </p>
      )}
      <button type="submit">Create</button>
    </form>
  );
}

/** The tournaments, newest first, each a link to its page (where it is run). */
export function AdminTournaments() {
  const [list, setList] = useState<TournamentSummary[]>([]);
  const load = () =>
    api<{ tournaments: TournamentSummary[] }>("/v1/tournaments")
      .then((r) => setList(r.tournaments))
      .catch(() => setList([]));
  useEffect(() => void load(), []);
  return (
    <div className="panels">
      <CreateTournament
        onCreated={(id) => {
          window.location.hash = `#/tournaments/${encodeURIComponent(id)}`;
        }}
      />
      <section aria-labelledby="tlist-title" className="panel">
        <h2 id="tlist-title">Tournaments</h2>
        <ul aria-label="Tournaments">
          {list.map((t) => (
            <li key={t.id}>
              <a href={`#/tournaments/${encodeURIComponent(t.id)}`}>{t.name}</a> · {t.phase} · {t.entries}/
              {t.participants_max}
            </li>
          ))}
        </ul>
      </section>
    </div>
  );
}

const NEXT: Record<string, string[]> = {
  draft: ["open-registration", "cancel"],
  registration: ["open-check-in", "seed", "cancel"],
  check_in: ["seed", "cancel"],
  seeded: ["start", "cancel"],
  running: ["cancel"],
};

/** On a tournament's page, for admins: its next steps, and the matches that need them. */
export function OrganizerPanel({ snap }: { snap: Snapshot }) {
  const [message, setMessage] = useState<string | null>(null);
  const [corrections, setCorrections] = useState<Record<string, string>>({});
  const act = async (path: string, body: unknown = {}) => {
    try {
      await api(`/v1/admin/tournaments/${encodeURIComponent(snap.id)}/${path}`, { token: auth.token(), body });
      setMessage(null);
    } catch (e) {
      setMessage(problemOf(e, "that was refused"));
    }
  };
  const waiting = Object.entries(snap.matches).filter(([, m]) => m.disputed || m.state === "needs_admin");
  const decided = Object.entries(snap.matches).filter(([, m]) => m.decided && m.sides.every((s) => s));
  const teamOf = (m: MatchEntry, i: number) => m.sides[i] ?? "";
  return (
    <section aria-labelledby="organizer-title" className="panel">
      <h2 id="organizer-title">Organizer</h2>
      {message && (
        <p role="alert" className="field-error">
          {message}
        </p>
      )}
      <div>
        {(NEXT[snap.phase] ?? []).map((step) => (
          <button
            key={step}
            type="button"
            className={step === "cancel" ? "secondary" : undefined}
            onClick={() => void act(step, step === "cancel" ? { reason: "cancelled by the organizer" } : {})}
          >
            {step.replaceAll("-", " ")}
          </button>
        ))}
      </div>
      {waiting.length > 0 && (
        <>
          <h3>Waiting for you</h3>
          <ul aria-label="Matches to resolve">
            {waiting.map(([mid, m]) => (
              <li key={mid} data-match={mid}>
                {mid}: {teamOf(m, 0)} vs {teamOf(m, 1)} {m.disputed ? "(disputed)" : "(no result)"}{" "}
                {[0, 1].map((i) => (
                  <button
                    key={i}
                    type="button"
                    onClick={() => void act(`matches/${encodeURIComponent(mid)}/resolve`, { winner: teamOf(m, i) })}
                  >
                    {`${teamOf(m, i)} wins`}
                  </button>
                ))}
                {m.disputed && (
                  <button
                    type="button"
                    className="secondary"
                    onClick={() => void act(`matches/${encodeURIComponent(mid)}/resolve`, { winner: null })}
                  >
                    The result stands
                  </button>
                )}
              </li>
            ))}
          </ul>
        </>
      )}
      {decided.length > 0 && snap.phase === "running" && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            const mid = corrections.match ?? decided[0]?.[0] ?? "";
            const winner = corrections.winner ?? "";
            if (!winner) {
              setMessage("choose the winner the result should have been");
              return;
            }
            void act(`matches/${encodeURIComponent(mid)}/correct`, { winner });
          }}
          aria-labelledby="correct-title"
          noValidate
        >
          <h3 id="correct-title">Correct a result</h3>
          <label htmlFor="correct-match">Match</label>
          <select
            id="correct-match"
            value={corrections.match ?? decided[0]?.[0] ?? ""}
            onChange={(e) => setCorrections({ match: e.target.value })}
          >
            {decided.map(([mid, m]) => (
              <option key={mid} value={mid}>
                {mid}: {teamOf(m, 0)} vs {teamOf(m, 1)}
              </option>
            ))}
          </select>
          <label htmlFor="correct-winner">Winner</label>
          <select
            id="correct-winner"
            value={corrections.winner ?? ""}
            onChange={(e) => setCorrections((c) => ({ ...c, winner: e.target.value }))}
          >
            <option value="">choose…</option>
            {(() => {
              const m = snap.matches[corrections.match ?? decided[0]?.[0] ?? ""];
              return m ? m.sides.map((s) => s && <option key={s}>{s}</option>) : null;
            })()}
          </select>
          <button type="submit">Correct</button>
        </form>
      )}
    </section>
  );
}
