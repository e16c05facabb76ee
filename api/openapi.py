"""The OpenAPI document, with errors described as the problem documents the API really sends."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.errors import ProblemDetails, problem_responses

_FASTAPI_422_REF = "#/components/schemas/HTTPValidationError"


def _problem_schemas() -> dict[str, Any]:
    schema = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    nested = schema.pop("$defs", {})
    return {**nested, "ProblemDetails": schema}


def _replace_default_422(document: dict[str, Any]) -> None:
    """FastAPI documents its own 422 shape on routes that did not list one; ours is a problem document."""
    problem_422 = problem_responses(422)[422]
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            response = operation.get("responses", {}).get("422")
            schema = (response or {}).get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("$ref") == _FASTAPI_422_REF:
                operation["responses"]["422"] = problem_422
    schemas = document.get("components", {}).get("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)


def install_openapi(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            document.setdefault("components", {}).setdefault("schemas", {}).update(_problem_schemas())
            _replace_default_422(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]
