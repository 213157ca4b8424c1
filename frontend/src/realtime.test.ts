import { describe, expect, it } from "vitest";
import { backoffMs, RealtimeClient, shouldReconnect, type SocketLike } from "./realtime";

class FakeSocket implements SocketLike {
  readyState = 0;
  sent: Record<string, unknown>[] = [];
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close(code = 1000) {
    this.readyState = 3;
    this.onclose?.({ code, reason: "" });
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  server(frame: Record<string, unknown>) {
    this.onmessage?.({ data: JSON.stringify({ v: 1, ...frame }) });
  }
}

function harness() {
  const sockets: FakeSocket[] = [];
  const timers: (() => void)[] = [];
  const client = new RealtimeClient("ws://x/ws", {
    token: () => null,
    socket: () => {
      const s = new FakeSocket();
      sockets.push(s);
      return s;
    },
    setTimer: (fn) => timers.push(fn),
    clearTimer: () => {},
    random: () => 0.5,
  });
  return { client, sockets, timers };
}

describe("the realtime client", () => {
  it("authenticates, subscribes, delivers each offset once, and recovers after a drop", () => {
    const { client, sockets, timers } = harness();
    const seen: [unknown, number][] = [];
    let resets = 0;
    client.subscribe("tournament:t1", { onPublication: (b, o) => seen.push([b, o]), onReset: () => resets++ });
    const first = sockets[0]!;
    first.open();
    expect(first.sent[0]).toMatchObject({ type: "auth", data: {} });
    first.server({ type: "auth_ok", id: "1", data: { role: "spectator", subject: "", session: "" } });
    expect(client.status).toBe("online");
    expect(first.sent[1]).toMatchObject({ type: "subscribe", ch: "tournament:t1", data: {} });
    first.server({
      type: "subscribed",
      id: "sub:tournament:t1",
      ch: "tournament:t1",
      data: { epoch: "e1", offset: 3, recovered: true, publications: [] },
    });
    expect(resets).toBe(1); // a first subscription fetches the snapshot
    first.server({ type: "pub", ch: "tournament:t1", data: { epoch: "e1", offset: 4, body: "a" } });
    first.server({ type: "pub", ch: "tournament:t1", data: { epoch: "e1", offset: 4, body: "a" } });
    expect(seen).toEqual([["a", 4]]);

    first.close(4000); // the server drains: reconnect and recover from offset 4
    expect(client.status).toBe("reconnecting");
    timers.shift()!();
    const second = sockets[1]!;
    second.open();
    second.server({ type: "auth_ok", id: "2", data: { role: "spectator", subject: "", session: "" } });
    expect(second.sent[1]).toMatchObject({
      type: "subscribe",
      data: { since_offset: 4, since_epoch: "e1" },
    });
    second.server({
      type: "subscribed",
      id: "sub:tournament:t1",
      ch: "tournament:t1",
      data: {
        epoch: "e1",
        offset: 6,
        recovered: true,
        publications: [
          { v: 1, type: "pub", ch: "tournament:t1", data: { epoch: "e1", offset: 5, body: "b" } },
          { v: 1, type: "pub", ch: "tournament:t1", data: { epoch: "e1", offset: 6, body: "c" } },
        ],
      },
    });
    expect(seen).toEqual([["a", 4], ["b", 5], ["c", 6]]);
    expect(resets).toBe(1);

    second.close(1006); // lost: history gone this time
    timers.shift()!();
    const third = sockets[2]!;
    third.open();
    third.server({ type: "auth_ok", id: "3", data: { role: "spectator", subject: "", session: "" } });
    third.server({
      type: "subscribed",
      id: "sub:tournament:t1",
      ch: "tournament:t1",
      data: { epoch: "e2", offset: 40, recovered: false, publications: [] },
    });
    expect(resets).toBe(2);
  });

  it("lets several parts of a page follow one channel over one subscription", () => {
    const { client, sockets } = harness();
    const ws = sockets[0]!;
    ws.open();
    ws.server({ type: "auth_ok", id: "1", data: { role: "player", subject: "p1", session: "s" } });
    const a: unknown[] = [];
    const b: unknown[] = [];
    let bResets = 0;
    const stopA = client.subscribe("user:p1", { onPublication: (body) => a.push(body) });
    ws.server({
      type: "subscribed",
      id: "sub:user:p1",
      ch: "user:p1",
      data: { epoch: "e", offset: 0, recovered: true, publications: [] },
    });
    const stopB = client.subscribe("user:p1", { onPublication: (body) => b.push(body), onReset: () => bResets++ });
    expect(ws.sent.filter((f) => f.type === "subscribe")).toHaveLength(1);
    expect(bResets).toBe(1); // it joined late: fetch the snapshot
    ws.server({ type: "pub", ch: "user:p1", data: { epoch: "e", offset: 1, body: "x" } });
    expect([a, b]).toEqual([["x"], ["x"]]);
    stopA();
    expect(ws.sent.filter((f) => f.type === "unsubscribe")).toHaveLength(0); // b still follows
    ws.server({ type: "pub", ch: "user:p1", data: { epoch: "e", offset: 2, body: "y" } });
    expect([a, b]).toEqual([["x"], ["x", "y"]]);
    stopB();
    stopB(); // twice is harmless
    expect(ws.sent.filter((f) => f.type === "unsubscribe")).toHaveLength(1);
  });

  it("switches identity at once, without saying the connection was lost", () => {
    const { client, sockets, timers } = harness();
    const seen: string[] = [];
    client.onStatus((s) => seen.push(s));
    sockets[0]!.open();
    sockets[0]!.server({ type: "auth_ok", id: "1", data: { role: "spectator", subject: "", session: "" } });
    client.reauthenticate();
    expect(sockets).toHaveLength(2); // a new socket at once, no backoff timer
    expect(timers).toHaveLength(0);
    expect(seen).not.toContain("reconnecting");
  });

  it("stops on the do-not-reconnect close codes", () => {
    const { client, sockets, timers } = harness();
    sockets[0]!.open();
    sockets[0]!.close(4501);
    expect(client.status).toBe("stopped");
    expect(timers).toHaveLength(0);
  });

  it("matches rpc answers by id and rejects refusals with their code", async () => {
    const { client, sockets } = harness();
    const ws = sockets[0]!;
    ws.open();
    ws.server({ type: "auth_ok", id: "1", data: { role: "player", subject: "p1", session: "s" } });
    const joined = client.rpc("queue.join", { queue: "cs2:1v1:eu" });
    const refused = client.rpc("queue.join", { queue: "nope" });
    const [a, b] = ws.sent.slice(-2) as { id: string }[];
    ws.server({ type: "error", data: { code: "unknown_queue", message: "no", retryable: false, ref: b!.id } });
    ws.server({ type: "rpc_result", id: a!.id, data: { result: { ticket: "t" } } });
    await expect(joined).resolves.toEqual({ ticket: "t" });
    await expect(refused).rejects.toMatchObject({ code: "unknown_queue" });
  });

  it("backs off exponentially with jitter, within bounds", () => {
    expect(backoffMs(0, () => 0)).toBe(250);
    expect(backoffMs(3, () => 1)).toBe(2000);
    expect(backoffMs(20, () => 1)).toBe(30_000);
    expect(shouldReconnect(4000)).toBe(true);
    expect(shouldReconnect(1006)).toBe(true);
    expect(shouldReconnect(4502)).toBe(false);
  });
});
