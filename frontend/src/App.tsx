import { useEffect, useMemo, useState } from "react";
import { ApiError } from "./api";
import { auth, type Session } from "./auth";
import { RealtimeClient, type Status } from "./realtime";
import { Admin } from "./pages/Admin";
import { Lobby } from "./pages/Lobby";
import { MatchView } from "./pages/MatchView";
import { SignIn } from "./pages/SignIn";
import { TournamentList } from "./pages/TournamentList";
import { TournamentView } from "./pages/TournamentView";
import { Wallet } from "./pages/Wallet";

/** The route in the URL's fragment: #/tournaments, #/tournaments/<id>, #/wallet, #/signin. */
function useRoute(): string[] {
  const read = () => window.location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const changed = () => setRoute(read());
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return route;
}

function socketUrl(): string {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${window.location.host}/ws`;
}

/** Back from Steam: /#login_code=… (or #login_error=…) becomes a session (or a notice). */
async function signInFromProvider(): Promise<string | null> {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const code = params.get("login_code");
  const failed = params.get("login_error");
  if (!code && !failed) return null;
  window.history.replaceState(null, "", "/#/play"); // the code leaves the address bar
  window.dispatchEvent(new HashChangeEvent("hashchange"));
  if (failed) return `Steam sign-in failed (${failed})`;
  try {
    await auth.exchange(code ?? "");
    return null;
  } catch (e) {
    return e instanceof ApiError ? e.message : "the sign-in could not be finished";
  }
}

/** A mailed confirmation link (/confirm#token=…): create the account, sign in, go on. */
async function confirmFromLink(): Promise<string | null> {
  if (window.location.pathname !== "/confirm") return signInFromProvider();
  const token = new URLSearchParams(window.location.hash.slice(1)).get("token");
  window.history.replaceState(null, "", "/#/wallet"); // the token leaves the address bar
  window.dispatchEvent(new HashChangeEvent("hashchange"));
  if (!token) return "the link has no token";
  try {
    await auth.confirm(token);
    return null;
  } catch (e) {
    return e instanceof ApiError ? e.message : "the link could not be used";
  }
}

export function App() {
  const route = useRoute();
  const realtime = useMemo(() => new RealtimeClient(socketUrl(), { token: () => auth.token() }), []);
  const [status, setStatus] = useState<Status>("connecting");
  const [session, setSession] = useState<Session | null>(auth.session);
  const [notice, setNotice] = useState<string | null>(null);
  useEffect(() => realtime.onStatus(setStatus), [realtime]);
  useEffect(
    () =>
      auth.onChange((s) => {
        setSession(s);
        realtime.reauthenticate(); // the socket speaks for whoever is signed in now
      }),
    [realtime],
  );
  useEffect(() => {
    void confirmFromLink().then((problem) => {
      if (problem) setNotice(problem);
      else if (!auth.session) void auth.refresh();
    });
  }, []);
  useEffect(() => () => realtime.stop(), [realtime]);

  let page;
  if (route[0] === "tournaments" && route[1]) {
    page = <TournamentView id={decodeURIComponent(route[1])} realtime={realtime} />;
  } else if (route[0] === "matches" && route[1]) {
    page = <MatchView key={`${route[1]}:${session?.subject ?? ""}`} id={decodeURIComponent(route[1])} realtime={realtime} />;
  } else if (route[0] === "wallet") {
    page = <Wallet key={session?.subject ?? "anonymous"} realtime={realtime} />;
  } else if (route[0] === "play") {
    page = session ? null : <Lobby key="anonymous" realtime={realtime} visible />;
  } else if (route[0] === "admin") {
    page = <Admin key={session?.subject ?? "anonymous"} section={route[1] ?? ""} />;
  } else if (route[0] === "signin") {
    page = <SignIn />;
  } else {
    page = <TournamentList />;
  }
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <a className="brand" href="#/">
          LeetGaming
        </a>
        <nav aria-label="Main">
          <a href="#/play">Play</a>
          <a href="#/tournaments">Tournaments</a>
          <a href="#/wallet">Wallet</a>
          {session?.role === "admin" && <a href="#/admin">Admin</a>}
          {session ? (
            <button type="button" className="link" onClick={() => void auth.logout()}>
              Sign out
            </button>
          ) : (
            <a href="#/signin">Sign in</a>
          )}
        </nav>
      </header>
      {status === "reconnecting" && (
        <div className="banner" role="status" aria-live="polite">
          Connection lost. Reconnecting…
        </div>
      )}
      {notice && (
        <div className="banner" role="alert">
          {notice}
        </div>
      )}
      <main id="main" tabIndex={-1}>
        {/* a signed-in player's lobby stays mounted: a ready check (a tournament's too) pops
            up on whatever page they are on */}
        {session && <Lobby key={session.subject} realtime={realtime} visible={route[0] === "play"} />}
        {page}
      </main>
    </>
  );
}
