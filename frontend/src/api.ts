// The REST API: JSON in, JSON out, refusals as problem+json (RFC 9457) with a stable `code`.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** What to tell the person about a failure: the server's (or the socket's) words, else ``fallback``. */
export function problemOf(e: unknown, fallback: string): string {
  return e instanceof Error && e.message ? e.message : fallback;
}

export interface Request {
  method?: string;
  body?: unknown;
  token?: string | null;
  idempotencyKey?: string;
}

export async function api<T>(path: string, req: Request = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (req.body !== undefined) headers["Content-Type"] = "application/json";
  if (req.token) headers.Authorization = `Bearer ${req.token}`;
  if (req.idempotencyKey) headers["Idempotency-Key"] = req.idempotencyKey;
  let response: Response;
  try {
    response = await fetch(path, {
      method: req.method ?? (req.body === undefined ? "GET" : "POST"),
      headers,
      body: req.body === undefined ? undefined : JSON.stringify(req.body),
    });
  } catch {
    throw new ApiError(0, "offline", "the server cannot be reached");
  }
  const text = await response.text();
  const parsed: unknown = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const problem = (parsed ?? {}) as { code?: string; detail?: string; title?: string };
    throw new ApiError(response.status, problem.code ?? "error", problem.detail ?? problem.title ?? response.statusText);
  }
  return parsed as T;
}

export interface TournamentSummary {
  id: string;
  name: string;
  phase: string;
  format: string;
  queue: string;
  team_size: number;
  entries: number;
  participants_max: number;
  entry_fee: { asset: string; amount: string } | null;
  prize_asset: string;
}
