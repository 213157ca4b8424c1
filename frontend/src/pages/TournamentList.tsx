import { useEffect, useState } from "react";
import { api, ApiError, type TournamentSummary } from "../api";

export function TournamentList() {
  const [rows, setRows] = useState<TournamentSummary[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api<{ tournaments: TournamentSummary[] }>("/v1/tournaments")
      .then((r) => setRows(r.tournaments))
      .catch((e: unknown) => setError(e instanceof ApiError ? e.message : "could not load"));
  }, []);
  return (
    <section aria-labelledby="tournaments-title">
      <h1 id="tournaments-title">Tournaments</h1>
      {error && <p role="alert">{error}</p>}
      {rows === null && !error && <p>Loading…</p>}
      {rows?.length === 0 && <p>No tournaments yet.</p>}
      {rows && rows.length > 0 && (
        <ul className="cards">
          {rows.map((t) => (
            <li key={t.id} className="card">
              <a href={`#/tournaments/${encodeURIComponent(t.id)}`}>{t.name}</a>
              <span className="muted">
                {t.format.replaceAll("_", " ")} · {t.phase} · {t.entries}/{t.participants_max}
              </span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
