// The realtime client: one websocket to /ws that authenticates, subscribes, and on its own
// reconnects and recovers what it missed (docs/PROTOCOL.md). Frames are the generated
// protocol types. Close codes 4000–4499 (and any network loss) reconnect with jittered
// exponential backoff; 4500–4999 stop. On reconnect every channel is subscribed again with the
// last offset and epoch seen; `recovered: false` tells the subscriber to fetch a snapshot.

import type { Client, Server } from "./generated/protocol";

export type Status = "connecting" | "online" | "reconnecting" | "stopped";

export interface Subscriber {
  /** A publication's body, in offset order, each once. */
  onPublication(body: unknown, offset: number): void;
  /** The history could not be replayed (or this is the first subscription): fetch a fresh
   * snapshot; publications after it follow. */
  onReset?(): void;
}

interface Channel {
  subscribers: Set<Subscriber>; // every part of the page following the channel
  epoch: string | null;
  offset: number | null;
}

export interface SocketLike {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export interface Options {
  /** The current access token, or null for an anonymous spectator. */
  token?: () => string | null;
  socket?: (url: string) => SocketLike;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
  random?: () => number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
}

const OPEN = 1;
const RPC_TIMEOUT_MS = 15_000;

/** How long to wait before reconnect attempt ``attempt`` (0-based): full jitter over an
 * exponentially growing window, so a server restart does not bring every client back at once. */
export function backoffMs(attempt: number, random: () => number, minMs = 250, maxMs = 30_000): number {
  const window = Math.min(maxMs, minMs * 2 ** attempt);
  return Math.round(minMs + random() * (window - minMs));
}

export function shouldReconnect(code: number): boolean {
  return !(code >= 4500 && code <= 4999);
}

type Pending = { resolve: (v: unknown) => void; reject: (e: RealtimeError) => void; timer: unknown };

export class RealtimeError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

export class RealtimeClient {
  status: Status = "connecting";
  role: string | null = null;
  subject: string | null = null;
  private ws: SocketLike | null = null;
  private readonly channels = new Map<string, Channel>();
  private readonly pending = new Map<string, Pending>();
  private readonly listeners = new Set<(s: Status) => void>();
  private attempt = 0;
  private nextId = 1;
  private stopped = false;
  private switching = false; // closed on purpose to sign in as someone else
  private timer: unknown = null;
  private readonly opts: Required<Omit<Options, "token">> & Pick<Options, "token">;

  constructor(
    private readonly url: string,
    options: Options = {},
  ) {
    this.opts = {
      token: options.token,
      socket: options.socket ?? ((u) => new WebSocket(u) as unknown as SocketLike),
      setTimer: options.setTimer ?? ((fn, ms) => setTimeout(fn, ms)),
      clearTimer: options.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>)),
      random: options.random ?? Math.random,
      backoffMinMs: options.backoffMinMs ?? 250,
      backoffMaxMs: options.backoffMaxMs ?? 30_000,
    };
    this.open();
  }

  onStatus(listener: (s: Status) => void): () => void {
    this.listeners.add(listener);
    listener(this.status);
    return () => this.listeners.delete(listener);
  }

  /** Follow ``ch``; the returned function stops following it. Several parts of a page may
   * follow one channel: the server sees one subscription, each gets every publication, and
   * one joining a channel already followed is told to fetch its snapshot (``onReset``). */
  subscribe(ch: string, subscriber: Subscriber): () => void {
    const existing = this.channels.get(ch);
    if (existing) {
      existing.subscribers.add(subscriber);
      if (existing.epoch !== null) subscriber.onReset?.();
    } else {
      this.channels.set(ch, { subscribers: new Set([subscriber]), epoch: null, offset: null });
      if (this.status === "online") this.sendSubscribe(ch);
    }
    return () => {
      const channel = this.channels.get(ch);
      if (!channel || !channel.subscribers.delete(subscriber) || channel.subscribers.size > 0) return;
      this.channels.delete(ch);
      if (this.status === "online") this.send({ v: 1, type: "unsubscribe", id: this.id(), ch, data: {} });
    };
  }

  /** Call an application method; resolves with its result or rejects with its error code. */
  rpc(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    if (this.status !== "online") {
      return Promise.reject(new RealtimeError("offline", "not connected", true));
    }
    const id = this.id();
    return new Promise((resolve, reject) => {
      const timer = this.opts.setTimer(() => {
        this.pending.delete(id);
        reject(new RealtimeError("timeout", `${method} got no answer`, true));
      }, RPC_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.send({ v: 1, type: "rpc", id, data: { method, params } });
    });
  }

  /** Publish on ``ch`` (lobby chat); resolves with the publication's offset or rejects with
   * the refusal (``rate_limited``, ``forbidden``…). */
  publish(ch: string, body: unknown): Promise<unknown> {
    if (this.status !== "online") {
      return Promise.reject(new RealtimeError("offline", "not connected", true));
    }
    const id = this.id();
    return new Promise((resolve, reject) => {
      const timer = this.opts.setTimer(() => {
        this.pending.delete(id);
        reject(new RealtimeError("timeout", "the message got no answer", true));
      }, RPC_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.send({ v: 1, type: "publish", id, ch, data: { body } });
    });
  }

  /** Reconnect now with the current token (after signing in or out): at once, and without
   * the status saying the connection was lost. */
  reauthenticate(): void {
    if (!this.ws) return; // a reconnect is due anyway and will send the current token
    this.switching = true;
    this.ws.close(1000, "reauthenticate");
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) this.opts.clearTimer(this.timer);
    this.ws?.close(1000, "bye");
    this.setStatus("stopped");
  }

  // -- internals ------------------------------------------------------------------------------

  private id(): string {
    return String(this.nextId++);
  }

  private setStatus(status: Status): void {
    if (this.status === status) return;
    this.status = status;
    for (const listener of this.listeners) listener(status);
  }

  private send(frame: Client): void {
    if (this.ws && this.ws.readyState === OPEN) this.ws.send(JSON.stringify(frame));
  }

  private open(): void {
    this.timer = null;
    const ws = this.opts.socket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      const token = this.opts.token?.() ?? null;
      this.send({ v: 1, type: "auth", id: this.id(), data: token ? { token } : {} });
    };
    ws.onmessage = (ev) => this.receive(String(ev.data));
    ws.onerror = () => {};
    ws.onclose = (ev) => this.closed(ev.code);
  }

  private closed(code: number): void {
    this.ws = null;
    for (const [id, p] of this.pending) {
      this.opts.clearTimer(p.timer);
      p.reject(new RealtimeError("disconnected", "the connection closed", true));
      this.pending.delete(id);
    }
    if (this.stopped || !shouldReconnect(code)) {
      this.setStatus("stopped");
      return;
    }
    if (this.switching) {
      this.switching = false;
      this.setStatus("connecting");
      this.open();
      return;
    }
    this.setStatus("reconnecting");
    const wait = backoffMs(this.attempt++, this.opts.random, this.opts.backoffMinMs, this.opts.backoffMaxMs);
    this.timer = this.opts.setTimer(() => this.open(), wait);
  }

  private sendSubscribe(ch: string): void {
    const channel = this.channels.get(ch);
    if (!channel) return;
    const data =
      channel.epoch !== null && channel.offset !== null
        ? { since_offset: channel.offset, since_epoch: channel.epoch }
        : {};
    this.send({ v: 1, type: "subscribe", id: `sub:${ch}`, ch, data });
  }

  private receive(text: string): void {
    let frame: Server;
    try {
      frame = JSON.parse(text) as Server;
    } catch {
      return;
    }
    switch (frame.type) {
      case "auth_ok":
        this.attempt = 0;
        this.role = frame.data.role;
        this.subject = frame.data.subject;
        this.setStatus("online");
        for (const ch of this.channels.keys()) this.sendSubscribe(ch);
        return;
      case "ping":
        this.send({ v: 1, type: "pong", data: {} } as Client);
        return;
      case "subscribed": {
        const channel = this.channels.get(frame.ch);
        if (!channel) return;
        const fresh = channel.epoch === null;
        if (!frame.data.recovered) {
          channel.epoch = frame.data.epoch;
          channel.offset = frame.data.offset;
          for (const sub of channel.subscribers) sub.onReset?.();
          return;
        }
        channel.epoch = frame.data.epoch;
        const missed = frame.data.publications as { data: { offset: number; body: unknown } }[];
        for (const pub of missed) this.deliver(frame.ch, pub.data.offset, pub.data.body);
        if (channel.offset === null || channel.offset < frame.data.offset) channel.offset = frame.data.offset;
        if (fresh) for (const sub of channel.subscribers) sub.onReset?.();
        return;
      }
      case "pub":
        if (this.channels.get(frame.ch)?.epoch !== frame.data.epoch) return; // another history
        this.deliver(frame.ch, frame.data.offset, frame.data.body);
        return;
      case "rpc_result":
      case "published": {
        const p = this.pending.get(frame.id);
        if (!p) return;
        this.pending.delete(frame.id);
        this.opts.clearTimer(p.timer);
        p.resolve(frame.type === "rpc_result" ? frame.data.result : frame.data.offset);
        return;
      }
      case "error": {
        const ref = frame.data.ref;
        const p = ref ? this.pending.get(ref) : undefined;
        if (ref && p) {
          this.pending.delete(ref);
          this.opts.clearTimer(p.timer);
          p.reject(new RealtimeError(frame.data.code, frame.data.message, frame.data.retryable));
        } else if (ref?.startsWith("sub:") && frame.data.retryable) {
          const ch = ref.slice(4);
          this.opts.setTimer(() => this.sendSubscribe(ch), backoffMs(0, this.opts.random));
        }
        return;
      }
      default:
        return; // disconnect (the close follows), join/leave, published, presence_result …
    }
  }

  private deliver(ch: string, offset: number, body: unknown): void {
    const channel = this.channels.get(ch);
    if (!channel) return;
    if (channel.offset !== null && offset <= channel.offset) return; // seen already
    channel.offset = offset;
    for (const sub of [...channel.subscribers]) sub.onPublication(body, offset);
  }
}
