"""Schemathesis against the served /openapi.json: property-based requests for every documented
operation, as a player and as an admin, against a real ``leetgaming serve`` (embedded), held
to the document: no 5xx, only declared statuses and content types, bodies of their schema."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from leetgaming.tokens import issue_access_token

from ..ws import unused_port

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s" * 40
EXAMPLES_PER_OPERATION = 40


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, localstripe: str) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("schemathesis")
    port = unused_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEETGAMING_")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "LEETGAMING_PORT": str(port),
        "LEETGAMING_DATABASE_URL": f"sqlite:///{folder}/db.sqlite3",
        "LEETGAMING_SECRET_KEY": SECRET,
        "LEETGAMING_MAIL_DIR": str(folder / "mail"),
        "LEETGAMING_REST_REQUESTS_PER_MIN": "10000000",
        "LEETGAMING_LOG_LEVEL": "warning",
        "LEETGAMING_STRIPE_SECRET_KEY": "sk_test_schemathesis",
        "LEETGAMING_STRIPE_WEBHOOK_SECRET": "whsec_schemathesis",
        "LEETGAMING_STRIPE_API_BASE": localstripe,
    }
    log = (folder / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "leetgaming", "serve"], env=env, cwd=folder, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, (folder / "serve.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the server did not get ready within 60 s"
        time.sleep(0.2)
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
        errors = [
            line
            for line in (folder / "serve.log").read_text().splitlines()
            if '"level":"error"' in line
        ]
        assert not errors, errors[:3]


@pytest.mark.parametrize("role", ["player", "admin"])
def test_every_documented_operation_holds_to_its_document(served: str, role: str) -> None:
    schema = schemathesis.openapi.from_url(f"{served}/openapi.json")
    subject = f"st-{role}-{secrets.token_hex(3)}"
    token = issue_access_token(
        SECRET, subject, role, "s", int(time.time()), 3600, mfa=role == "admin"
    )
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        strategy = operation.as_strategy()

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,  # a fixed seed: the same requests every run, a failure replays
        )
        @given(case=strategy)
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(
                headers={**(case.headers or {}), **headers},
                timeout=30,
                # A schema-valid request may still be refused: the asset may not exist, the
                # deposit named as a destination may be someone else's, the amount may be out
                # of a card's range. Every other check runs, the refusal of schema-invalid
                # input included.
                excluded_checks=[positive_data_acceptance],
            )

        try:
            check()
        except Exception as exc:  # one line per operation that broke its document
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:600]}")
    assert operations >= 20
    assert not failures, "\n\n".join(failures)


def test_stateful_runs_follow_the_documents_links(served: str) -> None:
    """Schemathesis's stateful run: it creates (a card deposit at localstripe, a withdrawal)
    and follows the document's links from what was made to reading or cancelling it, as a
    player, every response held to the document; a fixed seed."""
    document = schemathesis.openapi.from_url(f"{served}/openapi.json")
    links = [
        name
        for path in document.raw_schema["paths"].values()
        for operation in path.values()
        for response in operation.get("responses", {}).values()
        for name in response.get("links", {})
    ]
    assert {"GetDeposit", "GetWithdrawal", "CancelWithdrawal"} <= set(links)
    token = issue_access_token(
        SECRET, f"st-flow-{secrets.token_hex(3)}", "player", "s", int(time.time()), 3600
    )
    followed: list[str] = []
    # the wallet's operations a player makes and reads: where the links are
    schema = document.include(path_regex="^/v1/(deposits|withdrawals)")

    class Flows(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, object]:
            headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
            return {"headers": headers, "timeout": 30}

        def after_call(self, response: object, case: schemathesis.Case) -> None:
            if "{" in case.path:
                status = getattr(response, "status_code", 0)
                followed.append(f"{case.method} {case.path} {status}")

        def validate_response(self, response: object, case: schemathesis.Case, **_: object) -> None:
            case.validate_response(response, excluded_checks=[positive_data_acceptance])

    Flows.run(
        settings=settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
            stateful_step_count=6,
        )
    )
    # a deposit read by the id its creation answered (a random id would be a 404)
    assert "GET /v1/deposits/{deposit_id} 200" in followed, followed[:20]
