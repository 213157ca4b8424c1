"""The web portal: its protocol types come from the schema the server exports (the committed
copy must be the code's), and the server serves the built portal at / with its assets, under
the security headers, without counting its files against the REST rate limit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from leetgaming.app import PORTAL_DIR_DEFAULT, create_app
from leetgaming.settings import Settings
from realtime.envelope import protocol_schema

from ..ws import serving, unused_port

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"


def test_the_committed_protocol_schema_is_the_servers() -> None:
    committed = json.loads((FRONTEND / "protocol.schema.json").read_text())
    assert committed == json.loads(json.dumps(protocol_schema())), (
        "frontend/protocol.schema.json is stale: "
        "python -m leetgaming protocol-schema > frontend/protocol.schema.json"
    )


async def test_the_built_portal_is_served_at_the_root(tmp_path: Path) -> None:
    assert (PORTAL_DIR_DEFAULT / "index.html").is_file(), (
        "the portal is not built: ./scripts/build-portal (./scripts/test builds it)"
    )
    port = unused_port()
    settings = Settings.from_env(
        {
            "LEETGAMING_PORT": str(port),
            "LEETGAMING_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
            "LEETGAMING_MAIL_DIR": str(tmp_path / "mail"),
            "LEETGAMING_REST_REQUESTS_PER_MIN": "3",
        }
    )
    async with (
        serving(create_app(settings), port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        for _ in range(5):  # more than the REST limit: static files are not counted
            page = await http.get("/")
            assert page.status_code == 200
        assert '<div id="root"></div>' in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        scripts = re.findall(r'src="(/assets/[^"]+\.js)"', page.text)
        assert scripts, page.text
        script = await http.get(scripts[0])
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        assert "tournament.delta" in script.text  # the bracket view is in the bundle
        missing = await http.get("/v1/nothing-here")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
