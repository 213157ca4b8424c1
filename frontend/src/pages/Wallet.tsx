import { useCallback, useEffect, useState } from "react";
import { api, ApiError } from "../api";
import { auth } from "../auth";
import { formatUnits } from "../money";
import type { RealtimeClient } from "../realtime";
import { CardDeposit, ChainDeposit, ProPlan, Withdraw, type PaymentsConfig } from "./WalletActions";

interface Balance {
  asset: string;
  scale: number;
  available: string;
  held: string;
  incoming: string;
  total: string;
}
interface WalletBody {
  balances: Balance[];
  portfolio: { value_cents: string };
}
interface Row {
  id: string;
  timestamp_ns: string;
  kind: string;
  state: string;
  asset: string;
  amount: string;
  scale: number;
}

/** Balances and history, fetched again whenever the player's channel says money moved. */
export function Wallet({ realtime }: { realtime: RealtimeClient }) {
  const [wallet, setWallet] = useState<WalletBody | null>(null);
  const [rows, setRows] = useState<Row[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [payments, setPayments] = useState<PaymentsConfig | null>(null);
  const [revision, setRevision] = useState(0); // counts the wallet's loads: money moved
  const session = auth.session;

  useEffect(() => {
    api<PaymentsConfig>("/v1/payments/config")
      .then(setPayments)
      .catch(() => setPayments({ card: null, chains: [] }));
  }, []);

  const load = useCallback(async () => {
    try {
      const token = auth.token();
      const [w, h] = await Promise.all([
        api<WalletBody>("/v1/wallet", { token }),
        api<{ transactions: Row[]; next_cursor: string | null }>("/v1/transactions?limit=20", { token }),
      ]);
      setWallet(w);
      setRevision((r) => r + 1);
      setRows(h.transactions);
      setCursor(h.next_cursor);
      setError(null);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : "could not load the wallet");
    }
  }, []);

  const more = async () => {
    if (!cursor) return;
    const h = await api<{ transactions: Row[]; next_cursor: string | null }>(
      `/v1/transactions?limit=20&cursor=${encodeURIComponent(cursor)}`,
      { token: auth.token() },
    );
    setRows((r) => [...r, ...h.transactions]);
    setCursor(h.next_cursor);
  };

  useEffect(() => {
    if (!session) return;
    void load();
    return realtime.subscribe(`user:${session.subject}`, {
      onPublication: (body) => {
        const kind = (body as { kind?: string }).kind ?? "";
        if (kind.startsWith("wallet.") || kind.startsWith("tournament.")) void load();
      },
    });
  }, [session, realtime, load]);

  if (!session) {
    return (
      <p>
        <a href="#/signin">Sign in</a> to see your wallet.
      </p>
    );
  }
  if (error) return <p role="alert">{error}</p>;
  if (!wallet) return <p>Loading…</p>;
  const scales = Object.fromEntries(wallet.balances.map((b) => [b.asset, b.scale]));
  return (
    <section aria-labelledby="wallet-title">
      <h1 id="wallet-title">Wallet</h1>
      <p>
        Portfolio: <strong data-testid="portfolio">{formatUnits(wallet.portfolio.value_cents, 2)} USD</strong>
      </p>
      <table aria-label="Balances">
        <thead>
          <tr>
            <th scope="col">Asset</th>
            <th scope="col">Available</th>
            <th scope="col">Held</th>
            <th scope="col">Total</th>
          </tr>
        </thead>
        <tbody>
          {wallet.balances.map((b) => (
            <tr key={b.asset} data-asset={b.asset}>
              <th scope="row">{b.asset}</th>
              <td data-testid={`available-${b.asset}`}>{formatUnits(b.available, b.scale)}</td>
              <td>{formatUnits(b.held, b.scale)}</td>
              <td>{formatUnits(b.total, b.scale)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div className="panels">
        <section aria-labelledby="deposit-title" className="panel">
          <h2 id="deposit-title">Deposit</h2>
          {payments?.card && <CardDeposit card={payments.card} />}
          {payments && payments.chains.length > 0 && <ChainDeposit chains={payments.chains} revision={revision} />}
          {payments && !payments.card && payments.chains.length === 0 && <p>This server takes no deposits yet.</p>}
        </section>
        <Withdraw scales={scales} chains={payments?.chains ?? []} revision={revision} />
        <ProPlan />
      </div>
      <h2>History</h2>
      {rows.length === 0 ? (
        <p>No transactions yet.</p>
      ) : (
        <ul className="history" aria-label="History">
          {rows.map((r) => (
            <li key={r.id}>
              <span>{r.kind.replaceAll("_", " ")}</span>
              <span>
                {formatUnits(r.amount, r.scale)} {r.asset}
              </span>
              <span className="muted">{r.state}</span>
            </li>
          ))}
        </ul>
      )}
      {cursor && (
        <button type="button" onClick={() => void more()}>
          Older
        </button>
      )}
    </section>
  );
}
