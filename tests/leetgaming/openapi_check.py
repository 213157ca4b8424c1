"""Responses held against the served OpenAPI document (JSON Schema 2020-12, as OpenAPI 3.1)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import jsonschema


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def template_of(doc: dict[str, Any], path: str) -> str:
    """The documented path template that ``path`` matches."""
    for template in doc["paths"]:
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path):
            return str(template)
    raise AssertionError(f"{path} is not documented")


def conforms(doc: dict[str, Any], response: httpx.Response) -> None:
    """Assert that ``response`` is one the document declares, with a body of its schema."""
    request = response.request
    template = template_of(doc, request.url.path)
    operation = doc["paths"][template].get(request.method.lower())
    assert operation is not None, f"{request.method} {template} is not documented"
    declared = operation["responses"].get(str(response.status_code))
    assert declared is not None, (
        f"{request.method} {template} answered {response.status_code}, which it does not declare"
    )
    content = declared.get("content")
    if not content:
        return
    media = response.headers["content-type"].split(";")[0]
    assert media in content, f"{media} is not the declared {list(content)}"
    schema = _resolve(doc, content[media]["schema"])
    jsonschema.Draft202012Validator(
        {**schema, "components": doc.get("components", {})} if "$ref" not in schema else schema
    ).validate(response.json())
