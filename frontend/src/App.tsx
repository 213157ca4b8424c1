import { useEffect, useMemo, useState } from "react";
import { RealtimeClient, type Status } from "./realtime";
import { TournamentList } from "./pages/TournamentList";
import { TournamentView } from "./pages/TournamentView";

/** The route in the URL's fragment: #/tournaments, #/tournaments/<id>. */
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

export function App() {
  const route = useRoute();
  const realtime = useMemo(() => new RealtimeClient(socketUrl()), []);
  const [status, setStatus] = useState<Status>("connecting");
  useEffect(() => realtime.onStatus(setStatus), [realtime]);
  useEffect(() => () => realtime.stop(), [realtime]);

  let page;
  if (route[0] === "tournaments" && route[1]) {
    page = <TournamentView id={decodeURIComponent(route[1])} realtime={realtime} />;
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
          <a href="#/tournaments">Tournaments</a>
        </nav>
      </header>
      {status === "reconnecting" && (
        <div className="banner" role="status" aria-live="polite">
          Connection lost. Reconnecting…
        </div>
      )}
      <main id="main" tabIndex={-1}>
        {page}
      </main>
    </>
  );
}
