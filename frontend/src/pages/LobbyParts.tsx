// The lobby's party (queue together on one team) and its chat (the region's lobby channel).
import { useEffect, useRef, useState, type FormEvent } from "react";
import { problemOf } from "../api";
import { RealtimeError, type RealtimeClient } from "../realtime";

interface PartyView {
  party: string | null;
  leader?: string;
  members?: string[];
}
interface PartyEvent {
  kind: string;
  party?: string;
  leader?: string;
  members?: string[];
}

/** The player's party: create one, invite by player id, join an invitation, leave. */
export function PartyPanel({ realtime, me }: { realtime: RealtimeClient; me: string }) {
  const [party, setParty] = useState<PartyView>({ party: null });
  const [invites, setInvites] = useState<{ party: string; leader: string }[]>([]);
  const [invitee, setInvitee] = useState("");
  const [problem, setProblem] = useState<string | null>(null);

  useEffect(() => {
    const load = () =>
      realtime
        .rpc("party.status", {})
        .then((v) => setParty(v as PartyView))
        .catch(() => undefined);
    const offline = realtime.onStatus((status) => {
      if (status === "online") void load(); // again after a reconnect: what changed meanwhile
    });
    const stop = realtime.subscribe(`user:${me}`, {
      onReset: () => void load(),
      onPublication: (body) => {
        const e = body as PartyEvent;
        if (e.kind === "party.invited" && e.party && e.leader) {
          const invite = { party: e.party, leader: e.leader };
          setInvites((list) => [...list.filter((i) => i.party !== invite.party), invite]);
        } else if (e.kind === "party.changed") {
          setParty({ party: e.party ?? null, leader: e.leader, members: e.members });
        } else if (e.kind === "party.left" || e.kind === "party.disbanded") {
          setParty({ party: null });
        }
      },
    });
    return () => {
      stop();
      offline();
    };
  }, [realtime, me]);

  const call = async (method: string, params: Record<string, unknown>) => {
    setProblem(null);
    try {
      const answer = (await realtime.rpc(method, params)) as PartyView & { invited?: string };
      return answer;
    } catch (e) {
      setProblem(problemOf(e, "that did not work"));
      return null;
    }
  };

  const invite = async (event: FormEvent) => {
    event.preventDefault();
    const who = invitee.trim();
    if (!who) {
      setProblem("enter the player id of whom to invite");
      return;
    }
    if (await call("party.invite", { player: who })) setInvitee("");
  };

  const join = async (id: string) => {
    const joined = await call("party.join", { party: id });
    if (joined) {
      setParty(joined);
      setInvites((list) => list.filter((i) => i.party !== id));
    }
  };

  return (
    <section aria-labelledby="party-title" className="panel">
      <h2 id="party-title">Party</h2>
      <p className="muted">
        Your player id: <code data-testid="my-id">{me}</code>
      </p>
      {problem && (
        <p role="alert" className="field-error">
          {problem}
        </p>
      )}
      {party.party ? (
        <>
          <ul aria-label="Party members">
            {(party.members ?? []).map((m) => (
              <li key={m}>
                {m === me ? "you" : m}
                {m === party.leader ? " (leader)" : ""}
              </li>
            ))}
          </ul>
          {party.leader === me ? (
            <form onSubmit={(e) => void invite(e)} noValidate>
              <label htmlFor="invitee">Invite a player (their id)</label>
              <input id="invitee" value={invitee} onChange={(e) => setInvitee(e.target.value)} />
              <button type="submit">Invite</button>
            </form>
          ) : (
            <p>The leader queues for the party.</p>
          )}
          <button
            type="button"
            className="secondary"
            onClick={() => void call("party.leave", {}).then((r) => r && setParty({ party: null }))}
          >
            Leave the party
          </button>
        </>
      ) : (
        <button
          type="button"
          className="secondary"
          onClick={() => void call("party.create", {}).then((r) => r && setParty(r))}
        >
          Create a party
        </button>
      )}
      {invites.length > 0 && (
        <ul aria-label="Invitations">
          {invites.map((i) => (
            <li key={i.party}>
              {i.leader} invites you (its leader may enter the party in paid tournaments: each member's fee is held from
              their own wallet){" "}
              <button type="button" onClick={() => void join(i.party)}>
                Join
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

interface Line {
  offset: number;
  from: string;
  text: string;
}

const LINES_KEPT = 100;
const TEXT_CHARS_MAX = 500;

/** The region's lobby chat: anyone reads, signed-in players write. */
export function LobbyChat({ realtime, region, me }: { realtime: RealtimeClient; region: string; me: string | null }) {
  const [lines, setLines] = useState<Line[]>([]);
  const [text, setText] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const end = useRef<HTMLLIElement>(null);
  const channel = `lobby:${region}`;

  useEffect(() => {
    setLines([]);
    return realtime.subscribe(channel, {
      onPublication: (body, offset) => {
        const b = body as { from?: string; text?: string };
        if (typeof b.text !== "string") return;
        setLines((l) => [...l, { offset, from: b.from ?? "?", text: b.text ?? "" }].slice(-LINES_KEPT));
      },
    });
  }, [realtime, channel]);
  useEffect(() => {
    // braces: scrollIntoView returns a promise in newer browsers, and an effect may return a
    // cleanup function only
    void end.current?.scrollIntoView?.({ block: "nearest" });
  }, [lines]);

  const send = async (event: FormEvent) => {
    event.preventDefault();
    const message = text.trim();
    if (!message) return;
    if (message.length > TEXT_CHARS_MAX) {
      setProblem(`at most ${TEXT_CHARS_MAX} characters`);
      return;
    }
    try {
      await realtime.publish(channel, { text: message });
      setText("");
      setProblem(null);
    } catch (e) {
      setProblem(
        e instanceof RealtimeError && e.code === "rate_limited"
          ? "slow down: one message a second"
          : problemOf(e, "not sent"),
      );
    }
  };

  return (
    <section aria-labelledby="chat-title" className="panel">
      <h2 id="chat-title">Lobby chat ({region})</h2>
      <ul className="chat" aria-label="Messages" aria-live="polite">
        {lines.map((l) => (
          <li key={l.offset}>
            <strong>{l.from === me ? "you" : l.from}</strong>: {l.text}
          </li>
        ))}
        <li ref={end} aria-hidden="true" />
      </ul>
      {me ? (
        <form onSubmit={(e) => void send(e)} noValidate>
          <label htmlFor="chat-text">Message</label>
          <input id="chat-text" value={text} maxLength={TEXT_CHARS_MAX} onChange={(e) => setText(e.target.value)} />
          {problem && (
            <p role="alert" className="field-error">
              {problem}
            </p>
          )}
          <button type="submit">Send</button>
        </form>
      ) : (
        <p className="muted">Sign in to chat.</p>
      )}
    </section>
  );
}
