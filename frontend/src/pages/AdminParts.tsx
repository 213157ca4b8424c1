// The admin portal's live figures, audit log and reconciliation report.
import { useEffect, useRef, useState } from "react";
import { api, ApiError } from "../api";
import { auth } from "../auth";
import { formatUnits } from "../money";

interface Figures {
  at_s: number;
  node: string;
  connections: number;
  queues: { queue: string; waiting: number; wait_estimate_s: number | null; matches_recent: number }[];
  matches: { ready_check: number; allocating: number; live: number };
  tournaments_running: number;
  ledger: { transfers_written: number; queued_requests: number };
}

const FIGURES_EVERY_MS = 2_000;

/** The figures, read every 2 s; the ledger's transfers per second from two readings. */
export function LiveFigures() {
  const [figures, setFigures] = useState<Figures | null>(null);
  const [rate, setRate] = useState<number | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const last = useRef<Figures | null>(null);
  useEffect(() => {
    const read = () =>
      api<Figures>("/v1/admin/figures", { token: auth.token() })
        .then((f) => {
          const before = last.current;
          if (before && before.node === f.node && f.at_s > before.at_s) {
            setRate((f.ledger.transfers_written - before.ledger.transfers_written) / (f.at_s - before.at_s));
          }
          last.current = f;
          setFigures(f);
          setProblem(null);
        })
        .catch((e: unknown) => setProblem(e instanceof ApiError ? e.message : "no figures"));
    void read();
    const every = setInterval(() => void read(), FIGURES_EVERY_MS);
    return () => clearInterval(every);
  }, []);
  if (problem) return <p role="alert">{problem}</p>;
  if (!figures) return <p>Loading…</p>;
  return (
    <section aria-labelledby="figures-title">
      <h2 id="figures-title">Live figures</h2>
      <dl className="figures">
        <div>
          <dt>Connections (this node)</dt>
          <dd data-testid="connections">{figures.connections}</dd>
        </div>
        <div>
          <dt>Ready checks</dt>
          <dd data-testid="ready-checks">{figures.matches.ready_check}</dd>
        </div>
        <div>
          <dt>Finding a server</dt>
          <dd>{figures.matches.allocating}</dd>
        </div>
        <div>
          <dt>Matches live</dt>
          <dd data-testid="matches-live">{figures.matches.live}</dd>
        </div>
        <div>
          <dt>Tournaments running</dt>
          <dd data-testid="tournaments-running">{figures.tournaments_running}</dd>
        </div>
        <div>
          <dt>Ledger transfers/s (this node)</dt>
          <dd data-testid="ledger-rate">{rate === null ? "…" : rate.toFixed(1)}</dd>
        </div>
      </dl>
      <table aria-label="Queues">
        <thead>
          <tr>
            <th scope="col">Queue</th>
            <th scope="col">Waiting</th>
            <th scope="col">Wait (median, 15 min)</th>
            <th scope="col">Matches (15 min)</th>
          </tr>
        </thead>
        <tbody>
          {figures.queues.map((q) => (
            <tr key={q.queue} data-queue={q.queue}>
              <th scope="row">{q.queue}</th>
              <td>{q.waiting}</td>
              <td>{q.wait_estimate_s === null ? "–" : `${q.wait_estimate_s} s`}</td>
              <td>{q.matches_recent}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

interface AuditEntry {
  id: string;
  at_ns: string;
  actor: string;
  action: string;
  subject: string;
  detail: Record<string, unknown>;
}

/** The audit log, newest first, a page at a time, filtered by action. */
export function AuditLog() {
  const [entries, setEntries] = useState<AuditEntry[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [action, setAction] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const load = async (before: string | null, filter: string) => {
    const query = new URLSearchParams({ limit: "50" });
    if (before) query.set("before", before);
    if (filter.trim()) query.set("action", filter.trim());
    try {
      const page = await api<{ entries: AuditEntry[]; next_before: string | null }>(`/v1/admin/audit?${query}`, {
        token: auth.token(),
      });
      setEntries((e) => (before ? [...e, ...page.entries] : page.entries));
      setNext(page.next_before);
      setProblem(null);
    } catch (e) {
      setProblem(e instanceof ApiError ? e.message : "the log could not be read");
    }
  };
  useEffect(() => void load(null, ""), []);
  return (
    <section aria-labelledby="audit-title">
      <h2 id="audit-title">Audit log</h2>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void load(null, action);
        }}
      >
        <label htmlFor="audit-action">Action (e.g. withdrawal.approve)</label>
        <input id="audit-action" value={action} onChange={(e) => setAction(e.target.value)} />
        <button type="submit">Filter</button>
      </form>
      {problem && <p role="alert">{problem}</p>}
      <table aria-label="Audit entries">
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Who</th>
            <th scope="col">What</th>
            <th scope="col">On</th>
          </tr>
        </thead>
        <tbody>
          {entries.map((e) => (
            <tr key={e.id}>
              <td>{new Date(Number(BigInt(e.at_ns) / 1_000_000n)).toISOString().replace("T", " ").slice(0, 19)}</td>
              <td>{e.actor}</td>
              <td>{e.action}</td>
              <td>{e.subject}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {next && (
        <button type="button" onClick={() => void load(next, action)}>
          Older
        </button>
      )}
    </section>
  );
}

interface Report {
  ok: boolean;
  accounts: number;
  transfers: number;
  assets: Record<string, { posted_net: string; pending_net: string; accounts: string }>;
  problems_total: number;
  problems: { kind: string; detail: string }[];
}

/** Every balance recomputed from the ledger's transfers, on request (it reads everything). */
export function Reconciliation() {
  const [report, setReport] = useState<Report | null>(null);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const run = async () => {
    setBusy(true);
    try {
      setReport(await api<Report>("/v1/admin/reconciliation", { token: auth.token() }));
      setProblem(null);
    } catch (e) {
      setProblem(e instanceof ApiError ? e.message : "the reconciliation did not run");
    } finally {
      setBusy(false);
    }
  };
  return (
    <section aria-labelledby="recon-title">
      <h2 id="recon-title">Reconciliation</h2>
      <button type="button" onClick={() => void run()} disabled={busy}>
        Reconcile the ledger
      </button>
      {problem && <p role="alert">{problem}</p>}
      {report && (
        <>
          <p role="status" data-testid="reconciliation">
            {report.ok ? "Clean" : `${report.problems_total} differences found`}: {report.accounts} accounts,{" "}
            {report.transfers} transfers
          </p>
          <table aria-label="Sums per asset">
            <thead>
              <tr>
                <th scope="col">Asset</th>
                <th scope="col">Posted (sums to zero)</th>
                <th scope="col">Pending</th>
                <th scope="col">Accounts</th>
              </tr>
            </thead>
            <tbody>
              {Object.entries(report.assets).map(([asset, sums]) => (
                <tr key={asset}>
                  <th scope="row">{asset}</th>
                  <td>{formatUnits(sums.posted_net, 0)}</td>
                  <td>{formatUnits(sums.pending_net, 0)}</td>
                  <td>{sums.accounts}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {report.problems.length > 0 && (
            <ul aria-label="Differences">
              {report.problems.map((p, i) => (
                <li key={i}>
                  {p.kind}: {p.detail}
                </li>
              ))}
            </ul>
          )}
        </>
      )}
    </section>
  );
}
