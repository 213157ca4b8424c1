// The signed-in session: the access token in memory, the refresh token in this tab's
// sessionStorage (gone when the tab closes), refreshed a minute before the access token ends.

import { api } from "./api";

export interface Session {
  subject: string;
  role: string;
  access_token: string;
  expires_in: number;
  refresh_token: string;
  device_token?: string;
}

const KEY = "leetgaming.refresh";
// The device token of this browser's last password sign-in (with its address): sent with the
// next one to that address, it is counted against this device's limit, not the account's, so
// someone guessing at the account elsewhere does not lock its owner out.
const DEVICE_KEY = "leetgaming.device";

function deviceToken(email: string): string | undefined {
  try {
    const saved = JSON.parse(localStorage.getItem(DEVICE_KEY) ?? "null") as {
      email?: string;
      token?: string;
    } | null;
    return saved?.email === email.trim().toLowerCase() ? saved.token : undefined;
  } catch {
    return undefined;
  }
}
type Listener = (s: Session | null) => void;

class Auth {
  session: Session | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly listeners = new Set<Listener>();

  onChange(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  token(): string | null {
    return this.session?.access_token ?? null;
  }

  private set(session: Session | null): void {
    this.session = session;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (session) {
      sessionStorage.setItem(KEY, session.refresh_token);
      const wait = Math.max(5, session.expires_in - 60) * 1000;
      this.timer = setTimeout(() => void this.refresh(), wait);
    } else {
      sessionStorage.removeItem(KEY);
    }
    for (const listener of this.listeners) listener(session);
  }

  /** Sign in; an admin enrolled in TOTP adds the code (the server asks: `totp_required`). */
  async login(email: string, password: string, totp?: string): Promise<void> {
    const device_token = deviceToken(email);
    const body = {
      email,
      password,
      ...(totp ? { totp } : {}),
      ...(device_token ? { device_token } : {}),
    };
    const session = await api<Session>("/v1/auth/login", { body });
    if (session.device_token) {
      const saved = { email: email.trim().toLowerCase(), token: session.device_token };
      localStorage.setItem(DEVICE_KEY, JSON.stringify(saved));
    }
    this.set(session);
  }

  async register(email: string, password: string): Promise<void> {
    await api("/v1/auth/register", { body: { email, password } });
  }

  async confirm(token: string): Promise<void> {
    this.set(await api<Session>("/v1/auth/confirm", { body: { token } }));
  }

  /** The ID token Google's button gave (the server checks it with Google's keys). */
  async google(idToken: string): Promise<void> {
    this.set(await api<Session>("/v1/auth/google", { body: { id_token: idToken } }));
  }

  /** The one-time code a Steam sign-in brought back (in the URL fragment). */
  async exchange(code: string): Promise<void> {
    this.set(await api<Session>("/v1/auth/exchange", { body: { code } }));
  }

  /** Resume the tab's session (after a reload), or keep it fresh. */
  async refresh(): Promise<boolean> {
    const refresh_token = this.session?.refresh_token ?? sessionStorage.getItem(KEY);
    if (!refresh_token) return false;
    try {
      this.set(await api<Session>("/v1/auth/refresh", { body: { refresh_token } }));
      return true;
    } catch {
      this.set(null);
      return false;
    }
  }

  async logout(): Promise<void> {
    const refresh_token = this.session?.refresh_token;
    this.set(null);
    if (refresh_token) await api("/v1/auth/logout", { body: { refresh_token } }).catch(() => {});
  }
}

export const auth = new Auth();
