"""Tournaments over REST: public reads (list, detail, bracket, standings, a player's history),
players' registration, check-in and disputes, and admins' commands. Refusals are
problem+json with the core's stable codes; a refused request changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from leetgaming import security
from leetgaming.auth_api import Refused, admin_without_mfa, bearer, json_body, unauthorized
from leetgaming.identity import Identity
from leetgaming.problems import problem
from leetgaming.tokens import AccessClaims
from leetgaming.tournaments import TournamentNotFound, Tournaments, snapshot, standings
from matchmaking import tournament as tm
from matchmaking.formats import Format, FormatError, Kind
from wallet.amounts import BadAmount, parse_minor
from wallet.credits import CREDIT_ASSETS

_UNPROCESSABLE: Final = frozenset(
    {"bad_config", "bad_roster", "bad_team", "bad_reason", "bad_seeding", "bad_winner"}
)
_CONFIG_FIELDS: Final = (
    "name",
    "queue",
    "team_size",
    "format",
    "entry_fee",
    "prize_asset",
    "payout_bps",
    "participants_min",
    "participants_max",
    "rake_bps",
    "guaranteed",
    "best_of",
    "final_best_of",
    "check_in_s",
    "spectator_delay_s",
    "starts_at_s",
    "prize_split",
)
_FORMAT_FIELDS: Final = ("kind", "third_place", "swiss_rounds", "groups", "advance", "tiebreakers")


class BadConfig(ValueError):
    pass


def config_from_json(body: Mapping[str, Any], queues: Mapping[str, object]) -> tm.Config:
    """A tournament's configuration from a request body; :class:`BadConfig` names every
    problem at once."""
    problems: list[str] = []

    def integer(name: str, default: int | None = None, source: Mapping[str, Any] = body) -> int:
        value = source.get(name, default)
        if isinstance(value, str) and 0 < len(value) <= 40 and value.isascii() and value.isdigit():
            return int(value)  # amounts may come as strings (wei do not fit a double)
        if type(value) is not int:
            problems.append(f"{name} is a whole number")
            return 0
        return value

    def ints(name: str, default: list[int] | None = None) -> tuple[int, ...]:
        value = body.get(name, default)
        if not isinstance(value, list) or not all(type(v) is int for v in value):
            problems.append(f"{name} is a list of whole numbers")
            return ()
        return tuple(value)

    fmt_body = body.get("format")
    if not isinstance(fmt_body, dict) or set(fmt_body) - set(_FORMAT_FIELDS):
        raise BadConfig(f"format is an object of {', '.join(_FORMAT_FIELDS)}")
    try:
        kind = Kind(str(fmt_body.get("kind")))
    except ValueError:
        raise BadConfig(f"format.kind is one of {', '.join(k.value for k in Kind)}") from None
    tiebreakers = fmt_body.get("tiebreakers", ["head_to_head", "sonneborn_berger", "seed"])
    if not isinstance(tiebreakers, list) or not all(isinstance(t, str) for t in tiebreakers):
        problems.append("format.tiebreakers is a list of names")
        tiebreakers = []
    rounds = fmt_body.get("swiss_rounds")
    if rounds is not None and type(rounds) is not int:
        problems.append("format.swiss_rounds is a whole number")
        rounds = None
    fmt = Format(
        kind,
        bool(fmt_body.get("third_place", False)),
        rounds,
        integer("groups", 2, fmt_body),
        integer("advance", 2, fmt_body),
        tuple(tiebreakers),
    )
    fee_body = body.get("entry_fee")
    fee = None
    if fee_body is not None:
        if not isinstance(fee_body, dict) or set(fee_body) != {"asset", "amount"}:
            problems.append("entry_fee is {asset, amount} or null")
        else:
            try:
                amount = parse_minor(fee_body["amount"], "entry_fee.amount")
            except BadAmount as bad:
                problems.append(str(bad))
                amount = 0
            fee = tm.EntryFee(str(fee_body["asset"]), amount)
    for name in ("name", "queue", "prize_asset"):
        if not isinstance(body.get(name), str):
            problems.append(f"{name} is a string")
    queue = str(body.get("queue", ""))
    if queue not in queues:
        problems.append(f"queue is one of {', '.join(sorted(queues))}")
    split = body.get("prize_split")
    if split is not None and not (
        isinstance(split, dict) and all(isinstance(v, list) for v in split.values())
    ):
        problems.append("prize_split maps a team to its shares")
    check_in = body.get("check_in_s", 0)
    starts = body.get("starts_at_s")
    if not isinstance(check_in, int | float) or isinstance(check_in, bool):
        problems.append("check_in_s is a number of seconds")
        check_in = 0
    if starts is not None and (not isinstance(starts, int | float) or isinstance(starts, bool)):
        problems.append("starts_at_s is a time in seconds")
        starts = None
    final = body.get("final_best_of")
    delay = body.get("spectator_delay_s", 0)
    if not isinstance(delay, int | float) or isinstance(delay, bool):
        problems.append("spectator_delay_s is a number of seconds")
        delay = 0
    config = tm.Config(
        name=str(body.get("name", "")),
        queue=queue,
        team_size=integer("team_size", 1),
        format=fmt,
        entry_fee=fee,
        prize_asset=str(body.get("prize_asset", "")),
        payout_bps=ints("payout_bps"),
        participants_min=integer("participants_min", 2),
        participants_max=integer("participants_max", 64),
        rake_bps=integer("rake_bps", 1_000),
        guaranteed=integer("guaranteed", 0),
        best_of=ints("best_of", [1]),
        final_best_of=final if type(final) is int else None,
        check_in_s=float(check_in),
        spectator_delay_s=float(delay),
        starts_at_s=None if starts is None else float(starts),
        prize_split=None if split is None else {k: tuple(v) for k, v in split.items()},
    )
    problems += [] if problems else config.problems()
    if problems:
        raise BadConfig("; ".join(problems))
    return config


def summary(t: tm.Tournament) -> dict[str, Any]:
    fee = t.config.entry_fee
    return {
        "id": t.id,
        "name": t.config.name,
        "phase": str(t.phase),
        "format": str(t.config.format.kind),
        "queue": t.config.queue,
        "team_size": t.config.team_size,
        "entries": len(t.entries),
        "participants_max": t.config.participants_max,
        "entry_fee": None if fee is None else {"asset": fee.asset, "amount": str(fee.amount)},
        "prize_asset": t.config.prize_asset,
        "starts_at_s": t.config.starts_at_s,
    }


Handler = Callable[[Request, AccessClaims, dict[str, Any]], Awaitable[Response]]


def tournament_routes(
    tournaments_of: Callable[[], Tournaments], identity_of: Callable[[], Identity]
) -> list[Route]:
    def guarded(
        role: str | None, *fields: str
    ) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
        """Authenticate (``role``: the one required), read the body's ``fields``, and map
        the core's refusals to problem+json."""

        def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
            async def run(request: Request) -> Response:
                claims = bearer(request, identity_of())
                if claims is None:
                    return unauthorized()
                if role is not None and claims.role != role:
                    return problem(403, f"{role}s only", code="forbidden")
                if (no_mfa := admin_without_mfa(claims)) is not None:
                    return no_mfa
                empty = request.headers.get("content-length") in (None, "0")
                try:
                    body = await json_body(request, *fields) if fields and not empty else {}
                    return await handler(request, claims, body)
                except Refused as refused:
                    return refused.response
                except BadConfig as bad:
                    return problem(422, str(bad), code="bad_config")
                except TournamentNotFound:
                    return problem(404, "no such tournament", code="not_found")
                except tm.TournamentRefused as refused:
                    security.operation_refused(
                        request.scope, f"{claims.role}:{claims.subject}", refused.code
                    )
                    status = 422 if refused.code in _UNPROCESSABLE else 409
                    return problem(status, str(refused), code=refused.code)
                except tm.IllegalTransition as illegal:
                    return problem(409, str(illegal), code="wrong_phase")
                except FormatError as refused:  # e.g. a start with fewer than two entries
                    return problem(409, str(refused), code="format_refused")

            return run

        return wrap

    async def listing(request: Request) -> Response:
        return JSONResponse({"tournaments": [summary(t) for t in await tournaments_of().recent()]})

    async def viewed(request: Request) -> tuple[dict[str, Any], list[Any]] | Response:
        """The tournament's snapshot and standings as the caller may see them: as delayed for
        the public when it has a spectator delay, as they are for admins."""
        try:
            t = await tournaments_of().get(str(request.path_params["tournament"]))
        except TournamentNotFound:
            return problem(404, "no such tournament", code="not_found")
        claims = bearer(request, identity_of())
        if claims is not None and claims.role == "admin" and claims.mfa:
            return snapshot(t), standings(t)
        return await tournaments_of().public_view(t)

    async def detail(request: Request) -> Response:
        seen = await viewed(request)
        if isinstance(seen, Response):
            return seen
        return JSONResponse({k: v for k, v in seen[0].items() if k != "matches"})

    async def bracket(request: Request) -> Response:
        seen = await viewed(request)
        return seen if isinstance(seen, Response) else JSONResponse(seen[0])

    async def table(request: Request) -> Response:
        seen = await viewed(request)
        if isinstance(seen, Response):
            return seen
        snap, places = seen
        return JSONResponse({"id": snap["id"], "version": snap["version"], "standings": places})

    async def history(request: Request) -> Response:
        player = str(request.path_params["player"])
        rows = []
        for t in await tournaments_of().of_player(player):
            row = summary(t)
            entry = t.team_of(player)
            row["team"] = None if entry is None else entry.team
            places = standings(t) if t.phase is tm.Phase.COMPLETE else []
            row["place"] = next((p["place"] for p in places if row["team"] in p["teams"]), None)
            rows.append(row)
        return JSONResponse({"player": player, "tournaments": rows})

    def tid(request: Request) -> str:
        return str(request.path_params["tournament"])

    @guarded("player", "team", "roster")
    async def register(request: Request, claims: AccessClaims, body: dict[str, Any]) -> Response:
        team, roster = body.get("team"), body.get("roster")
        if team is not None and not isinstance(team, str):
            return problem(422, "team is a name", code="bad_team")
        if roster is not None and not (
            isinstance(roster, list) and all(isinstance(p, str) for p in roster)
        ):
            return problem(422, "roster is a list of player ids", code="bad_roster")
        if roster is not None and set(roster) != {claims.subject}:
            # Every roster member's fee is held: only players who agreed to play together (a
            # party they joined) are entered, by its leader
            party = await tournaments_of().play.parties.of(claims.subject)
            if party is None or party.leader != claims.subject or set(party.members) != set(roster):
                return problem(
                    409,
                    "a team registers as a party: its leader registers it with the party's "
                    "members as the roster (each joined the party, so each agreed to pay)",
                    code="roster_not_party",
                )
        t = await tournaments_of().register(tid(request), claims.subject, team, roster)
        entry = t.team_of(claims.subject)
        assert entry is not None
        return JSONResponse(
            {"tournament": t.id, "team": entry.team, "roster": list(entry.roster)},
            status_code=201,
        )

    @guarded("player")
    async def withdraw(request: Request, claims: AccessClaims, body: dict[str, Any]) -> Response:
        now = tournaments_of().clock()
        await tournaments_of().command(tid(request), lambda t: tm.withdraw(t, claims.subject, now))
        return Response(status_code=204)

    @guarded("player")
    async def check_in(request: Request, claims: AccessClaims, body: dict[str, Any]) -> Response:
        now = tournaments_of().clock()
        await tournaments_of().command(tid(request), lambda t: tm.check_in(t, claims.subject, now))
        return JSONResponse({"tournament": tid(request), "checked_in": True})

    @guarded("player", "reason")
    async def dispute(request: Request, claims: AccessClaims, body: dict[str, Any]) -> Response:
        match, reason, now = (
            str(request.path_params["match"]),
            body.get("reason"),
            tournaments_of().clock(),
        )
        if not isinstance(reason, str):
            return problem(422, "reason is a text", code="bad_reason")
        await tournaments_of().command(
            tid(request), lambda t: tm.dispute(t, match, claims.subject, reason, now)
        )
        return JSONResponse(
            {"tournament": tid(request), "match": match, "disputed": True}, status_code=201
        )

    @guarded("admin", *_CONFIG_FIELDS)
    async def create(request: Request, claims: AccessClaims, body: dict[str, Any]) -> Response:
        tournaments = tournaments_of()
        config = config_from_json(body, tournaments.play.queues)
        known = set(await tournaments.ledger.store.assets()) | set(CREDIT_ASSETS)
        named = [config.prize_asset, *([config.entry_fee.asset] if config.entry_fee else [])]
        unknown = sorted({a for a in named if a not in known})
        if unknown:
            raise BadConfig(f"unknown assets: {', '.join(repr(a) for a in unknown)}")
        t = await tournaments.create(claims.subject, config)
        return JSONResponse(snapshot(t), status_code=201)

    @guarded("admin", "order", "reason")
    async def admin_action(
        request: Request, claims: AccessClaims, body: dict[str, Any]
    ) -> Response:
        tournaments = tournaments_of()
        action = str(request.path_params["action"])
        now = tournaments.clock()
        steps: dict[str, Callable[[tm.Tournament], tuple[tm.Tournament, list[tm.Effect]]]] = {
            "open-registration": lambda t: tm.open_registration(t, now),
            "open-check-in": lambda t: tm.open_check_in(t, now),
            "start": lambda t: tm.start(t, now),
            "cancel": lambda t: tm.cancel(t, now, str(body.get("reason") or "cancelled")),
        }
        if action == "seed":
            order = body.get("order")
            if order is not None and not (
                isinstance(order, list) and all(isinstance(o, str) for o in order)
            ):
                return problem(422, "order is a list of teams, best first", code="bad_seeding")
            current = await tournaments.get(tid(request))
            strength = await tournaments.strengths(current)
            steps["seed"] = lambda t: tm.seed(t, order, strength, now)
        if action not in steps:
            return problem(404, f"actions: {', '.join(sorted([*steps, 'seed']))}", code="not_found")
        t = await tournaments.command(
            tid(request), steps[action], (claims.subject, f"tournament.{action}")
        )
        return JSONResponse(snapshot(t))

    @guarded("admin", "winner")
    async def admin_match(request: Request, claims: AccessClaims, body: dict[str, Any]) -> Response:
        tournaments = tournaments_of()
        action, match = str(request.path_params["action"]), str(request.path_params["match"])
        winner, now = body.get("winner"), tournaments.clock()
        if winner is not None and not isinstance(winner, str):
            return problem(422, "winner is a team (or null: the result stands)", code="bad_winner")
        if action not in ("resolve", "correct"):
            return problem(404, "actions: resolve, correct", code="not_found")
        if action == "correct" and winner is None:
            return problem(422, "a correction names the winner", code="bad_winner")

        def step(t: tm.Tournament) -> tuple[tm.Tournament, list[tm.Effect]]:
            if action == "resolve":
                return tm.resolve(t, match, winner, now)
            assert winner is not None
            return tm.correct(t, match, winner, now)

        t = await tournaments.command(tid(request), step, (claims.subject, f"match.{action}"))
        return JSONResponse(snapshot(t))

    return [
        Route("/v1/tournaments", listing, methods=["GET"]),
        Route("/v1/tournaments/{tournament}", detail, methods=["GET"]),
        Route("/v1/tournaments/{tournament}/bracket", bracket, methods=["GET"]),
        Route("/v1/tournaments/{tournament}/standings", table, methods=["GET"]),
        Route("/v1/players/{player}/tournaments", history, methods=["GET"]),
        Route("/v1/tournaments/{tournament}/registration", register, methods=["POST"]),
        Route("/v1/tournaments/{tournament}/registration", withdraw, methods=["DELETE"]),
        Route("/v1/tournaments/{tournament}/check-in", check_in, methods=["POST"]),
        Route("/v1/tournaments/{tournament}/matches/{match}/dispute", dispute, methods=["POST"]),
        Route("/v1/admin/tournaments", create, methods=["POST"]),
        Route("/v1/admin/tournaments/{tournament}/{action}", admin_action, methods=["POST"]),
        Route(
            "/v1/admin/tournaments/{tournament}/matches/{match}/{action}",
            admin_match,
            methods=["POST"],
        ),
    ]
