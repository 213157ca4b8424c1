import { useEffect, useRef, useState } from "react";
import { api, ApiError } from "../api";
import { auth } from "../auth";
import type { RealtimeClient } from "../realtime";

/** The public view of a CS2 series (docs/PROTOCOL.md, "CS2 matches"): scores, rounds, kills;
 * no names, no addresses. */
export interface SeriesView {
  phase: string;
  num_maps: number;
  maps_won: number[];
  maps: { map: number; map_name: string | null; score: number[]; finished: boolean; kills: Record<string, number> }[];
}

interface Live {
  match: string;
  delay_s: number;
  latest: { kind: string } | null;
  series: SeriesView | null; // as of the latest CS2 body the public has seen
}

interface Demo {
  id: string;
  map_number: number | null;
  filename: string;
  size_bytes: number;
  state: string;
  error: string | null;
}

/** The match's live score as the public sees it: after the spectator delay. Subscribe first,
 * then fetch the latest body; each publication carrying the series replaces it. */
function useLive(id: string, realtime: RealtimeClient) {
  const [delay, setDelay] = useState<number | null>(null);
  const [series, setSeries] = useState<SeriesView | null>(null);
  const [last, setLast] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const seen = useRef(false); // a publication arrived: a later snapshot must not go back
  useEffect(() => {
    let live = true;
    seen.current = false;
    const fetchLatest = () => {
      api<Live>(`/v1/matches/${encodeURIComponent(id)}/live`)
        .then((got) => {
          if (!live) return;
          setDelay(got.delay_s);
          if (!seen.current) {
            if (got.series) setSeries(got.series);
            if (got.latest) setLast(got.latest.kind);
          }
        })
        .catch((e: unknown) => {
          if (!live) return;
          if (e instanceof ApiError && e.status === 404) setError("This match has no live view (it is not played on a CS2 server).");
          else setError(e instanceof ApiError ? e.message : "could not load");
        });
    };
    const stop = realtime.subscribe(`match:${id}`, {
      onReset: fetchLatest,
      onPublication: (body) => {
        const b = body as { kind?: string; series?: SeriesView };
        if (!live || typeof b.kind !== "string") return;
        setLast(b.kind);
        if (b.series) {
          seen.current = true;
          setSeries(b.series);
        }
      },
    });
    return () => {
      live = false;
      stop();
    };
  }, [id, realtime]);
  return { delay, series, last, error };
}

/** The demos of the match, for its players and admins (others see nothing of them). */
function Demos({ id }: { id: string }) {
  const [demos, setDemos] = useState<Demo[] | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    if (!auth.session) return;
    api<{ demos: Demo[] }>(`/v1/matches/${encodeURIComponent(id)}/demos`, { token: auth.token() })
      .then((got) => setDemos(got.demos))
      .catch(() => setDemos(null));
  }, [id]);
  if (demos === null) return null;
  const download = async (demo: Demo) => {
    setProblem(null);
    const token = auth.token();
    const answer = await fetch(`/v1/matches/${encodeURIComponent(id)}/demos/${encodeURIComponent(demo.id)}/file`, {
      headers: token ? { Authorization: `Bearer ${token}` } : {},
    });
    if (!answer.ok) {
      setProblem(`the demo could not be downloaded (${answer.status})`);
      return;
    }
    const url = URL.createObjectURL(await answer.blob());
    const link = document.createElement("a");
    link.href = url;
    link.download = demo.filename;
    link.click();
    URL.revokeObjectURL(url);
  };
  return (
    <section aria-labelledby="demos-title">
      <h2 id="demos-title">Demos</h2>
      {demos.length === 0 ? (
        <p className="muted">No demo uploaded yet.</p>
      ) : (
        <ul aria-label="Demos">
          {demos.map((d) => (
            <li key={d.id} data-demo={d.id}>
              {d.map_number === null ? "" : `Map ${d.map_number + 1} · `}
              <span className="wrap-anywhere">{d.filename}</span> · {(d.size_bytes / 1_048_576).toFixed(1)} MiB · <span data-testid="demo-state">{d.state}</span>
              {d.error ? <span className="muted"> ({d.error})</span> : null}{" "}
              <button type="button" className="link" onClick={() => void download(d)}>
                Download
              </button>
            </li>
          ))}
        </ul>
      )}
      {problem && <p role="alert">{problem}</p>}
    </section>
  );
}

export function MatchView({ id, realtime }: { id: string; realtime: RealtimeClient }) {
  const { delay, series, last, error } = useLive(id, realtime);
  if (error) return <p role="alert">{error}</p>;
  return (
    <section aria-labelledby="match-title">
      <h1 id="match-title" className="wrap-anywhere">
        Match {id}
      </h1>
      <p className="muted">
        {delay === null ? "Loading…" : `Shown ${Math.round(delay)} s after it happens (the spectator delay).`}
        {last ? (
          <>
            {" "}
            Last: <span data-testid="last-event">{last}</span>
          </>
        ) : null}
      </p>
      {series === null ? (
        delay !== null && <p>Nothing to show yet: the first rounds appear after the delay.</p>
      ) : (
        <>
          <p>
            <span data-testid="series-phase">{series.phase}</span> · maps{" "}
            <span data-testid="maps-won">{series.maps_won.join(" – ")}</span> (best of {series.num_maps})
          </p>
          <table aria-label="Maps">
            <thead>
              <tr>
                <th scope="col">Map</th>
                <th scope="col">Score</th>
                <th scope="col">Kills</th>
              </tr>
            </thead>
            <tbody>
              {series.maps.map((m) => (
                <tr key={m.map} data-map={m.map}>
                  <td>
                    {m.map + 1}. {m.map_name ?? "—"}
                    {m.finished ? "" : " (live)"}
                  </td>
                  <td data-testid={`score-${m.map}`}>{m.score.join(" – ")}</td>
                  <td>{Object.values(m.kills).reduce((a, b) => a + b, 0)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      <Demos id={id} />
    </section>
  );
}
