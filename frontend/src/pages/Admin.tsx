import { useCallback, useEffect, useState } from "react";
import { api, ApiError } from "../api";
import { assetScales } from "../assets";
import { auth } from "../auth";
import { formatUnits } from "../money";
import { AuditLog, LiveFigures, Reconciliation } from "./AdminParts";
import { AdminTournaments } from "./Organizer";

interface Waiting {
  id: string;
  player: string;
  state: string;
  asset: string;
  amount: string;
  payout: string;
  rail: string;
  risk_score: number;
  risk_reasons: string[];
}

const SECTIONS: [string, string][] = [
  ["", "Overview"],
  ["tournaments", "Tournaments"],
  ["audit", "Audit log"],
  ["reconciliation", "Reconciliation"],
];

/** The admin portal: the overview (live figures, withdrawals waiting), tournaments, the audit
 * log, the reconciliation report. */
export function Admin({ section }: { section: string }) {
  const session = auth.session;
  if (session?.role !== "admin") return <p>Admins only.</p>;
  return (
    <>
      <nav aria-label="Admin" className="subnav">
        {SECTIONS.map(([path, label]) => (
          <a key={path} href={`#/admin${path ? `/${path}` : ""}`} aria-current={section === path ? "page" : undefined}>
            {label}
          </a>
        ))}
      </nav>
      {section === "tournaments" && <AdminTournaments />}
      {section === "audit" && <AuditLog />}
      {section === "reconciliation" && <Reconciliation />}
      {section === "" && (
        <>
          <WithdrawalQueue />
          <LiveFigures />
        </>
      )}
    </>
  );
}

/** The withdrawals waiting for an admin: over the approval threshold, or held for review. */
function WithdrawalQueue() {
  const [rows, setRows] = useState<Waiting[] | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [scale, setScale] = useState<Record<string, number>>({});
  const session = auth.session;

  const load = useCallback(async () => {
    try {
      const [body, scales] = await Promise.all([
        api<{ withdrawals: Waiting[] }>("/v1/admin/withdrawals?queue=all", { token: auth.token() }),
        assetScales(),
      ]);
      setScale(scales);
      setRows(body.withdrawals);
    } catch (e) {
      setMessage(e instanceof ApiError ? e.message : "could not load the queue");
    }
  }, []);
  useEffect(() => {
    if (session?.role === "admin") void load();
  }, [session, load]);

  const decide = async (w: Waiting, action: "approve" | "reject") => {
    try {
      const done = await api<{ state: string }>(`/v1/admin/withdrawals/${encodeURIComponent(w.id)}/${action}`, {
        method: "POST",
        token: auth.token(),
      });
      setMessage(`Withdrawal ${w.id} is ${done.state}`);
    } catch (e) {
      setMessage(e instanceof ApiError ? e.message : "the decision was not taken");
    }
    await load();
  };

  return (
    <section aria-labelledby="admin-title">
      <h1 id="admin-title">Withdrawals to approve</h1>
      {message && <p role="status">{message}</p>}
      {rows === null && <p>Loading…</p>}
      {rows?.length === 0 && <p>Nothing is waiting.</p>}
      {rows && rows.length > 0 && (
        <table aria-label="Waiting withdrawals">
          <thead>
            <tr>
              <th scope="col">Player</th>
              <th scope="col">Amount</th>
              <th scope="col">Why it waits</th>
              <th scope="col">Decision</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((w) => (
              <tr key={w.id} data-withdrawal={w.id}>
                <td>{w.player}</td>
                <td>
                  {formatUnits(w.amount, scale[w.asset] ?? 0)} {w.asset}
                </td>
                <td>
                  {w.state.replaceAll("_", " ")}
                  {w.risk_reasons.length > 0 && ` (risk ${w.risk_score}: ${w.risk_reasons.join(", ")})`}
                </td>
                <td>
                  <button type="button" onClick={() => void decide(w, "approve")} aria-label={`Approve ${w.id}`}>
                    Approve
                  </button>{" "}
                  <button
                    type="button"
                    className="secondary"
                    onClick={() => void decide(w, "reject")}
                    aria-label={`Reject ${w.id}`}
                  >
                    Reject
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
