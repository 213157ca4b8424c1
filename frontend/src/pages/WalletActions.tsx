// Money in and out of the wallet: a card deposit (Stripe.js: the card goes from the browser
// to Stripe, never through us), a deposit address per chain, a withdrawal (with the TOTP code
// when the server asks for it, and two-factor enrolment), and the Pro subscription.
import { useEffect, useRef, useState, type FormEvent } from "react";
import { api, problemOf } from "../api";
import { auth } from "../auth";
import { assetScales } from "../assets";
import { formatUnits, parseUnits } from "../money";
import { loadScript } from "../scripts";

export interface PaymentsConfig {
  card: { publishable_key: string; js_url: string } | null;
  chains: string[];
}

interface StripeCard {
  mount(target: HTMLElement): void;
  destroy?(): void;
}
interface StripeJs {
  elements(): { create(type: "card"): StripeCard };
  confirmCardPayment(
    clientSecret: string,
    data: { payment_method: { card: StripeCard } },
  ): Promise<{ error?: { message?: string }; paymentIntent?: { status: string } }>;
}
declare global {
  interface Window {
    Stripe?: (key: string) => StripeJs;
  }
}

const INCOMING_EVERY_MS = 5_000;

function newKey(): string {
  return crypto.randomUUID();
}

/** Amount (USD), the card in Stripe's element, Pay: a deposit, then Stripe confirms it. */
export function CardDeposit({ card }: { card: NonNullable<PaymentsConfig["card"]> }) {
  const mountPoint = useRef<HTMLDivElement>(null);
  const stripe = useRef<{ js: StripeJs; card: StripeCard } | null>(null);
  const [amount, setAmount] = useState("");
  const [amountError, setAmountError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    let gone = false;
    loadScript(card.js_url)
      .then(() => {
        if (gone || !window.Stripe || !mountPoint.current) return;
        const js = window.Stripe(card.publishable_key);
        const element = js.elements().create("card");
        element.mount(mountPoint.current);
        stripe.current = { js, card: element };
      })
      .catch((e: unknown) => setProblem(problemOf(e, "card payments are unavailable")));
    return () => {
      gone = true;
      stripe.current?.card.destroy?.();
      stripe.current = null;
    };
  }, [card]);

  const pay = async (event: FormEvent) => {
    event.preventDefault();
    const parsed = parseUnits(amount, 2);
    if ("error" in parsed) {
      setAmountError(parsed.error);
      return;
    }
    if (BigInt(parsed.units) < 100n || BigInt(parsed.units) > 1_000_000n) {
      setAmountError("a card deposit is 1.00 to 10,000.00 USD");
      return;
    }
    setAmountError(null);
    setProblem(null);
    if (!stripe.current) {
      setProblem("the card form is still loading");
      return;
    }
    setBusy(true);
    try {
      const deposit = await api<{ id: string; client_secret: string }>("/v1/deposits", {
        body: { method: "card", asset: "USD", amount: parsed.units },
        token: auth.token(),
        idempotencyKey: newKey(),
      });
      setStatus("Paying…");
      const paid = await stripe.current.js.confirmCardPayment(deposit.client_secret, {
        payment_method: { card: stripe.current.card },
      });
      if (paid.error) {
        setStatus(null);
        setProblem(paid.error.message ?? "the card was declined");
      } else {
        setStatus("Paid. Your deposit appears in your balance as soon as Stripe confirms it.");
        setAmount("");
      }
    } catch (e) {
      setStatus(null);
      setProblem(problemOf(e, "the deposit could not be made"));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={(e) => void pay(e)} aria-labelledby="card-title" noValidate>
      <h3 id="card-title">By card</h3>
      <label htmlFor="card-amount">Amount (USD)</label>
      <input
        id="card-amount"
        inputMode="decimal"
        value={amount}
        onChange={(e) => setAmount(e.target.value)}
        aria-invalid={amountError ? true : undefined}
        aria-describedby={amountError ? "card-amount-error" : undefined}
      />
      {amountError && (
        <p id="card-amount-error" className="field-error">
          {amountError}
        </p>
      )}
      <div ref={mountPoint} className="card-element" data-testid="card-element" />
      <p className="muted">A 2.5 % fee is taken from the deposit (1.5 % with Pro).</p>
      {problem && (
        <p role="alert" className="field-error">
          {problem}
        </p>
      )}
      {status && <p role="status">{status}</p>}
      <button type="submit" disabled={busy}>
        Pay
      </button>
    </form>
  );
}

interface Address {
  chain: string;
  chain_id: number;
  address: string;
  assets: string[];
  confirmations: number;
  incoming: { asset: string; amount: string; block: number; tx_hash: string }[];
}

/** The player's deposit address on a chain, and what is on its way there. */
export function ChainDeposit({ chains, revision }: { chains: string[]; revision: number }) {
  const [scales, setScales] = useState<Record<string, number>>({});
  useEffect(() => {
    assetScales()
      .then(setScales)
      .catch(() => undefined);
  }, []);
  const [chain, setChain] = useState(chains[0] ?? "");
  const [address, setAddress] = useState<Address | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    if (!chain) return;
    // the address, and what is on its way to it: read again while the page is open (a
    // payment is seen at once and credited once deep enough)
    const read = () =>
      api<Address>(`/v1/deposit-addresses/${encodeURIComponent(chain)}`, { token: auth.token() })
        .then((a) => {
          setAddress(a);
          setProblem(null);
        })
        .catch((e: unknown) => setProblem(problemOf(e, "no address")));
    void read();
    const every = setInterval(() => void read(), INCOMING_EVERY_MS);
    return () => clearInterval(every);
  }, [chain, revision]);
  return (
    <div aria-labelledby="chain-title">
      <h3 id="chain-title">On chain</h3>
      <label htmlFor="chain">Chain</label>
      <select id="chain" value={chain} onChange={(e) => setChain(e.target.value)}>
        {chains.map((c) => (
          <option key={c}>{c}</option>
        ))}
      </select>
      {problem && <p role="alert">{problem}</p>}
      {address && (
        <>
          <p>
            Send {address.assets.join(" or ")} to <code data-testid="deposit-address">{address.address}</code> (chain id{" "}
            {address.chain_id}). It is credited after {address.confirmations} confirmations, less a 2.5 % fee.
          </p>
          {address.incoming.length > 0 && (
            <ul aria-label="Incoming">
              {address.incoming.map((i, n) => (
                <li key={n}>
                  {i.asset in scales ? formatUnits(i.amount, scales[i.asset] ?? 0) : "…"} {i.asset} on its way (seen in
                  block {i.block}; credited once {address.confirmations} blocks deep)
                </li>
              ))}
            </ul>
          )}
        </>
      )}
    </div>
  );
}

interface Withdrawal {
  id: string;
  state: string;
  asset: string;
  amount: string;
  fee: string;
  payout: string;
}
interface DepositRow {
  id: string;
  method: string;
  state: string;
  asset: string;
  amount: string;
}

const STATES: Record<string, string> = {
  awaiting_totp: "waiting for your TOTP code",
  awaiting_approval: "waiting for an admin's approval",
  in_review: "in review",
  approved: "approved",
  sending: "being sent",
  sent: "sent",
  failed: "failed",
  rejected: "rejected",
  cancelled: "cancelled",
  returned: "returned to your wallet",
};

/** A withdrawal back to a card deposit or to an address on a chain. */
export function Withdraw({
  scales,
  chains,
  revision,
}: {
  scales: Record<string, number>;
  chains: string[];
  revision: number;
}) {
  const [deposits, setDeposits] = useState<DepositRow[]>([]);
  const [asset, setAsset] = useState("USD");
  const [amount, setAmount] = useState("");
  const [rail, setRail] = useState("card_refund");
  const [destination, setDestination] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [problem, setProblem] = useState<string | null>(null);
  const [current, setCurrent] = useState<Withdrawal | null>(null);
  const [code, setCode] = useState("");

  useEffect(() => {
    api<{ deposits: DepositRow[] }>("/v1/deposits", { token: auth.token() })
      .then((b) => setDeposits(b.deposits.filter((d) => d.method === "card" && d.state === "succeeded")))
      .catch(() => setDeposits([]));
  }, [revision]);
  useEffect(() => {
    // money moved: where the withdrawal shown has got to
    if (!current) return;
    api<Withdrawal>(`/v1/withdrawals/${encodeURIComponent(current.id)}`, { token: auth.token() })
      .then((w) => setCurrent((c) => (c && c.id === w.id ? w : c)))
      .catch(() => undefined);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [revision]);
  const cards = deposits.filter((d) => d.asset === asset);
  const chosen = rail === "card_refund" ? destination || cards[0]?.id || "" : destination;

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const found: Record<string, string> = {};
    const parsed = parseUnits(amount, scales[asset] ?? 2);
    if ("error" in parsed) found.amount = parsed.error;
    if (!chosen) found.destination = rail === "card_refund" ? "no card deposit to refund to" : "an address, 0x…";
    else if (rail !== "card_refund" && !/^0x[0-9a-fA-F]{40}$/.test(chosen))
      found.destination = "an address is 0x and 40 hex digits";
    setErrors(found);
    setProblem(null);
    if (Object.keys(found).length > 0 || "error" in parsed) return;
    try {
      const w = await api<Withdrawal>("/v1/withdrawals", {
        body: { asset, amount: parsed.units, rail, destination: chosen },
        token: auth.token(),
        idempotencyKey: newKey(),
      });
      setCurrent(w);
      setAmount("");
    } catch (e) {
      setProblem(problemOf(e, "the withdrawal was refused"));
    }
  };

  const confirm = async (event: FormEvent) => {
    event.preventDefault();
    if (!current) return;
    if (!/^\d{6}$/.test(code)) {
      setErrors({ code: "the code is 6 digits" });
      return;
    }
    setErrors({});
    try {
      setCurrent(
        await api<Withdrawal>(`/v1/withdrawals/${encodeURIComponent(current.id)}/confirm`, {
          body: { code },
          token: auth.token(),
        }),
      );
      setCode("");
      setProblem(null);
    } catch (e) {
      setProblem(problemOf(e, "the code was refused"));
    }
  };

  const cancel = async () => {
    if (!current) return;
    try {
      setCurrent(
        await api<Withdrawal>(`/v1/withdrawals/${encodeURIComponent(current.id)}/cancel`, {
          method: "POST",
          token: auth.token(),
        }),
      );
    } catch (e) {
      setProblem(problemOf(e, "it could not be cancelled"));
    }
  };

  const field = (name: string) =>
    errors[name] ? { "aria-invalid": true as const, "aria-describedby": `withdraw-${name}-error` } : {};
  const message = (name: string) =>
    errors[name] && (
      <p id={`withdraw-${name}-error`} className="field-error">
        {errors[name]}
      </p>
    );

  return (
    <section aria-labelledby="withdraw-title" className="panel">
      <h2 id="withdraw-title">Withdraw</h2>
      <form onSubmit={(e) => void submit(e)} noValidate>
        <label htmlFor="withdraw-rail">To</label>
        <select id="withdraw-rail" value={rail} onChange={(e) => (setRail(e.target.value), setDestination(""))}>
          <option value="card_refund">the card I deposited with</option>
          {chains.map((c) => (
            <option key={c} value={c}>
              an address on {c}
            </option>
          ))}
        </select>
        <label htmlFor="withdraw-asset">Asset</label>
        <select
          id="withdraw-asset"
          value={asset}
          onChange={(e) => {
            setAsset(e.target.value);
            setDestination(""); // a card deposit is of one asset
          }}
        >
          {Object.keys(scales)
            .sort()
            .map((a) => (
              <option key={a}>{a}</option>
            ))}
        </select>
        <label htmlFor="withdraw-amount">Amount ({asset})</label>
        <input
          id="withdraw-amount"
          inputMode="decimal"
          value={amount}
          onChange={(e) => setAmount(e.target.value)}
          {...field("amount")}
        />
        {message("amount")}
        {rail === "card_refund" ? (
          <>
            <label htmlFor="withdraw-destination">Card deposit</label>
            <select
              id="withdraw-destination"
              value={chosen}
              onChange={(e) => setDestination(e.target.value)}
              {...field("destination")}
            >
              {cards.map((d) => (
                <option key={d.id} value={d.id}>
                  {formatUnits(d.amount, scales[d.asset] ?? 2)} {d.asset} ({d.id})
                </option>
              ))}
            </select>
          </>
        ) : (
          <>
            <label htmlFor="withdraw-destination">Address</label>
            <input
              id="withdraw-destination"
              value={destination}
              onChange={(e) => setDestination(e.target.value.trim())}
              {...field("destination")}
            />
          </>
        )}
        {message("destination")}
        <p className="muted">
          A 3 % fee (2 % with Pro). Above $1,000 you confirm with your TOTP code and an admin approves.
        </p>
        <button type="submit">Withdraw</button>
      </form>
      {problem && (
        <p role="alert" className="field-error">
          {problem}
        </p>
      )}
      {current && (
        <div role="status" data-testid="withdrawal">
          <p>
            Withdrawal of {formatUnits(current.amount, scales[current.asset] ?? 2)} {current.asset}:{" "}
            <strong>{STATES[current.state] ?? current.state}</strong> (you receive{" "}
            {formatUnits(current.payout, scales[current.asset] ?? 2)} after the fee).
          </p>
          {current.state === "awaiting_totp" && (
            <form onSubmit={(e) => void confirm(e)} noValidate>
              <label htmlFor="withdraw-code">TOTP code</label>
              <input
                id="withdraw-code"
                inputMode="numeric"
                autoComplete="one-time-code"
                value={code}
                onChange={(e) => setCode(e.target.value.trim())}
                {...field("code")}
              />
              {message("code")}
              <button type="submit">Confirm</button>
            </form>
          )}
          {["awaiting_totp", "awaiting_approval", "in_review", "approved"].includes(current.state) && (
            <button type="button" className="secondary" onClick={() => void cancel()}>
              Cancel the withdrawal
            </button>
          )}
        </div>
      )}
      <TwoFactor />
    </section>
  );
}

/** Two-factor authentication: a secret for the authenticator app, then a first code. */
function TwoFactor() {
  const [secret, setSecret] = useState<{ secret: string; otpauth_uri: string } | null>(null);
  const [code, setCode] = useState("");
  const [status, setStatus] = useState<string | null>(null);
  const start = async () => {
    try {
      setSecret(await api("/v1/me/totp", { method: "POST", token: auth.token() }));
      setStatus(null);
    } catch (e) {
      setStatus(problemOf(e, "two-factor authentication could not be turned on"));
    }
  };
  const finish = async (event: FormEvent) => {
    event.preventDefault();
    try {
      await api("/v1/me/totp/confirm", { body: { code }, token: auth.token() });
      setSecret(null);
      setStatus("Two-factor authentication is on.");
    } catch (e) {
      setStatus(problemOf(e, "the code was refused"));
    }
  };
  return (
    <div aria-labelledby="totp-title">
      <h3 id="totp-title">Two-factor authentication</h3>
      {status && <p role="status">{status}</p>}
      {secret ? (
        <form onSubmit={(e) => void finish(e)} noValidate>
          <p>
            Add this key to your authenticator app: <code data-testid="totp-secret">{secret.secret}</code>
          </p>
          <label htmlFor="totp-first">First code</label>
          <input
            id="totp-first"
            inputMode="numeric"
            autoComplete="one-time-code"
            value={code}
            onChange={(e) => setCode(e.target.value.trim())}
          />
          <button type="submit">Turn on</button>
        </form>
      ) : (
        <button type="button" className="secondary" onClick={() => void start()}>
          Set up an authenticator app
        </button>
      )}
    </div>
  );
}

interface Subscription {
  state: string;
  price: { asset: string; amount: string; per: string };
  period_end_s: number;
  renews: boolean;
  pro: boolean;
}

/** Pro: lower fees for $9.99 a month, paid from the wallet's USD. */
export function ProPlan() {
  const [sub, setSub] = useState<Subscription | null>(null);
  const [loaded, setLoaded] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    api<Subscription>("/v1/subscriptions/current", { token: auth.token() })
      .then(setSub)
      .catch(() => setSub(null))
      .finally(() => setLoaded(true));
  }, []);
  const act = async (path: string, body?: unknown) => {
    try {
      setSub(
        await api<Subscription>(path, {
          method: "POST",
          body,
          token: auth.token(),
          idempotencyKey: body ? newKey() : undefined,
        }),
      );
      setProblem(null);
    } catch (e) {
      setProblem(problemOf(e, "the subscription did not change"));
    }
  };
  if (!loaded) return null;
  const until = sub ? new Date(sub.period_end_s * 1000).toLocaleDateString() : "";
  return (
    <section aria-labelledby="pro-title" className="panel">
      <h2 id="pro-title">Pro</h2>
      {problem && (
        <p role="alert" className="field-error">
          {problem}
        </p>
      )}
      {sub?.pro ? (
        <>
          <p data-testid="pro-state">Pro {sub.renews ? `renews on ${until}` : `ends on ${until}`}.</p>
          {sub.renews ? (
            <button type="button" className="secondary" onClick={() => void act("/v1/subscriptions/current/cancel")}>
              Cancel Pro
            </button>
          ) : (
            <button type="button" onClick={() => void act("/v1/subscriptions/current/resume")}>
              Keep Pro
            </button>
          )}
        </>
      ) : (
        <>
          <p>Pay 1.5 % on deposits and 2 % on withdrawals, for $9.99 a month from your USD balance.</p>
          <button type="button" onClick={() => void act("/v1/subscriptions", { plan: "pro" })}>
            Subscribe to Pro
          </button>
        </>
      )}
    </section>
  );
}
