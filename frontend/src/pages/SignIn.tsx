import { useEffect, useRef, useState, type FormEvent } from "react";
import { api, ApiError } from "../api";
import { auth } from "../auth";
import { loadScript } from "../scripts";

interface GoogleIdentity {
  initialize(config: { client_id: string; callback: (answer: { credential: string }) => void }): void;
  renderButton(element: HTMLElement, options: { type: string; text: string }): void;
}
declare global {
  interface Window {
    google?: { accounts: { id: GoogleIdentity } };
  }
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

interface FieldProps {
  id: string;
  label: string;
  type: string;
  autoComplete: string;
  value: string;
  onChange: (value: string) => void;
  error: string | undefined;
}

/** A labelled input whose problem is shown under it and announced with it. */
function Field({ id, label, type, autoComplete, value, onChange, error }: FieldProps) {
  return (
    <>
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        type={type}
        autoComplete={autoComplete}
        value={value}
        onChange={(e) => onChange(e.target.value)}
        aria-invalid={Boolean(error)}
        aria-describedby={error ? `${id}-error` : undefined}
      />
      {error && (
        <p id={`${id}-error`} className="field-error">
          {error}
        </p>
      )}
    </>
  );
}

/** Sign in, or register (a mailed link finishes it). Problems are shown next to the field. */
export function SignIn() {
  const [mode, setMode] = useState<"login" | "register">("login");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [needsCode, setNeedsCode] = useState(false);
  const [errors, setErrors] = useState<{ email?: string; password?: string; code?: string; form?: string }>({});
  const [sent, setSent] = useState(false);
  const [busy, setBusy] = useState(false);
  const [steam, setSteam] = useState(false);
  const [google, setGoogle] = useState<{ client_id: string; gsi_url: string } | null>(null);
  const googleButton = useRef<HTMLDivElement>(null);
  useEffect(() => {
    api<{ steam: boolean; google: { client_id: string; gsi_url: string } | null }>("/v1/auth/providers")
      .then((p) => {
        setSteam(p.steam);
        setGoogle(p.google);
      })
      .catch(() => setSteam(false));
  }, []);
  useEffect(() => {
    if (!google) return;
    // Google's own button (Google Identity Services): it hands back an ID token
    loadScript(google.gsi_url)
      .then(() => {
        const gsi = window.google?.accounts.id;
        if (!gsi || !googleButton.current) return;
        gsi.initialize({
          client_id: google.client_id,
          callback: ({ credential }) => {
            auth
              .google(credential)
              .then(() => {
                window.location.hash = "#/play";
              })
              .catch((e: unknown) => setErrors({ form: e instanceof ApiError ? e.message : "Google sign-in failed" }));
          },
        });
        gsi.renderButton(googleButton.current, { type: "standard", text: "signin_with" });
      })
      .catch(() => setErrors({ form: "Google sign-in is unavailable" }));
  }, [google]);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const found: typeof errors = {};
    if (!EMAIL.test(email.trim())) found.email = "Enter an email address like name@example.com";
    if (password.length < 10) found.password = "At least 10 characters";
    if (needsCode && !/^\d{6}$/.test(code.trim())) found.code = "The 6 digits your authenticator app shows";
    setErrors(found);
    if (found.email || found.password || found.code) return;
    setBusy(true);
    try {
      if (mode === "login") {
        await auth.login(email.trim(), password, needsCode ? code.trim() : undefined);
        window.location.hash = auth.session?.role === "admin" ? "#/admin" : "#/wallet";
      } else {
        await auth.register(email.trim(), password);
        setSent(true);
      }
    } catch (e) {
      const message = e instanceof ApiError ? e.message : "Something went wrong";
      const why = e instanceof ApiError ? e.code : "";
      if (why === "totp_required") {
        setNeedsCode(true);
        setErrors({ code: "Enter the code from your authenticator app" });
      } else if (why === "bad_totp") {
        setErrors({ code: message });
      } else {
        setErrors(why === "invalid_password" ? { password: message } : { form: message });
      }
    } finally {
      setBusy(false);
    }
  };

  if (sent) {
    return (
      <section aria-labelledby="signin-title">
        <h1 id="signin-title">Check your mail</h1>
        <p role="status">We sent a link to {email}. Open it to finish creating your account.</p>
      </section>
    );
  }
  return (
    <section aria-labelledby="signin-title" className="narrow">
      <h1 id="signin-title">{mode === "login" ? "Sign in" : "Create an account"}</h1>
      <form onSubmit={submit} noValidate>
        <Field
          id="email"
          label="Email"
          type="email"
          autoComplete="email"
          value={email}
          onChange={setEmail}
          error={errors.email}
        />
        <Field
          id="password"
          label="Password"
          type="password"
          autoComplete={mode === "login" ? "current-password" : "new-password"}
          value={password}
          onChange={setPassword}
          error={errors.password}
        />
        {needsCode && (
          <Field
            id="totp"
            label="Authenticator code"
            type="text"
            autoComplete="one-time-code"
            value={code}
            onChange={setCode}
            error={errors.code}
          />
        )}
        {errors.form && (
          <p role="alert" className="field-error">
            {errors.form}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {mode === "login" ? "Sign in" : "Create account"}
        </button>
      </form>
      {google && <div ref={googleButton} className="provider" data-testid="google-button" />}
      {steam && (
        <p>
          <a className="provider" href="/v1/auth/steam/start">
            Sign in with Steam
          </a>
        </p>
      )}
      <p>
        <button type="button" className="link" onClick={() => setMode(mode === "login" ? "register" : "login")}>
          {mode === "login" ? "New here? Create an account" : "Have an account? Sign in"}
        </button>
      </p>
    </section>
  );
}
