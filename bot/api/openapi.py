"""The OpenAPI 3.1 document, assembled from the operation registry and the pydantic models.

Request and response schemas are the models' own JSON schemas (the same models validate input
and build output), so the document describes what the server really accepts and returns.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bot.api.common import PATH_PARAMS, Operation

_REF = "#/components/schemas/{model}"

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "统一错误格式 / the one error envelope",
    "required": ["ok", "error", "status"],
    "properties": {
        "ok": {"const": False},
        "status": {"type": "integer"},
        "error": {
            "type": "object",
            "required": ["code", "message", "message_en"],
            "properties": {
                "code": {"type": "string", "description": "stable machine code"},
                "message": {"type": "string", "description": "中文说明"},
                "message_en": {"type": "string"},
                "where": {"type": "string", "description": "field, row or parameter at fault"},
                "details": {"description": "every problem (field path / row number and reason)"},
            },
        },
    },
}

_STATUS_TEXT = {
    400: "输入有误 / invalid input (every problem listed with its field or row)",
    401: "缺少或无效的令牌 / missing, invalid or revoked token",
    403: "角色不允许 / role not allowed (coordinators are read-only)",
    404: "不存在 / not found",
    409: "状态冲突 / conflict with the current state",
    413: "请求体过大 / body too large",
    415: "不支持的媒体类型 / unsupported media type",
    503: "功能未接入 / not available in this instance",
}


def _is_model(x: Any) -> bool:
    return isinstance(x, type) and issubclass(x, BaseModel)


def build_document(operations: list[Operation], *, version: str = "0.1.0") -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Any]] = []
    for op in operations:
        if _is_model(op.body):
            models.append((op.body, "validation"))  # type: ignore[arg-type]
        if _is_model(op.data):
            models.append((op.data, "serialization"))  # type: ignore[arg-type]
    # Response models only referenced by name inside raw schemas (lists of X) are collected too.
    from bot.api import registered_models

    models.extend((m, "serialization") for m in registered_models())
    seen: set[tuple[type[BaseModel], str]] = set()
    unique = [m for m in models if not (m in seen or seen.add(m))]  # type: ignore[func-returns-value]
    keyed, defs = models_json_schema(unique, ref_template=_REF)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Error"] = _ERROR_SCHEMA

    paths: dict[str, Any] = {}
    for op in operations:
        item: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "description": (op.description or "").strip(),
            "tags": [op.tag],
            "x-role": op.role or "public",
            "security": [{"bearer": []}] if op.role else [],
        }
        params = []
        for name in re.findall(r"{(\w+)}", op.path):
            spec = PATH_PARAMS.get(name, {"type": "string", "maxLength": 200})
            params.append({"name": name, "in": "path", "required": True, "schema": spec})
        if op.query is not None:
            qschema = op.query.model_json_schema(ref_template=_REF)
            for name, prop in qschema.get("properties", {}).items():
                prop = {k: v for k, v in prop.items() if k != "title"}
                params.append({"name": name, "in": "query", "required": False, "schema": prop})
        if params:
            item["parameters"] = params
        if op.body is not None:
            if _is_model(op.body):
                content = {"application/json": {"schema": keyed[(op.body, "validation")]}}
            else:
                content = op.body  # type: ignore[assignment]
            item["requestBody"] = {"required": op.body_required, "content": content}
        responses: dict[str, Any] = {}
        if op.produces is not None:
            responses[str(op.success)] = {"description": "文件 / file", "content": op.produces}
        else:
            if _is_model(op.data):
                data_schema = keyed[(op.data, "serialization")]
            else:
                data_schema = op.data or {}
            responses[str(op.success)] = {
                "description": "成功 / success",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["ok", "data"],
                            "properties": {"ok": {"const": True}, "data": data_schema},
                        }
                    }
                },
            }
            if op.path == "/api/projects/load":
                responses["200"] = responses["201"]  # identical content: no new version
        statuses = set(op.errors)
        if op.role:
            statuses |= {401, 403}
        if "{" in op.path:
            statuses.add(404)
        if op.query is not None:
            statuses.add(400)
        if op.body is not None:
            statuses |= {400, 413}
            if _is_model(op.body):
                statuses.add(415)
        for status in sorted(statuses):
            resp: dict[str, Any] = {
                "description": _STATUS_TEXT.get(status, "error"),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
            if status == 401:
                resp["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
            responses[str(status)] = resp
        item["responses"] = responses
        paths.setdefault(op.path.replace("{", "{").replace("}", "}"), {})[op.method.lower()] = item

    paths["/api/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "本文档 / this document",
            "tags": ["meta"],
            "security": [],
            "responses": {
                "200": {
                    "description": "OpenAPI 3.1",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },  # fmt: skip
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jixiao admin API / 绩效评价管理接口",
            "version": version,
            "description": (
                "JSON in, JSON out. Money is 元 as a decimal string with exactly 2 decimals; dates are "
                "ISO (YYYY-MM-DD); datetimes ISO 8601 with offset. Success: {ok: true, data}; errors: "
                "{ok: false, error: {code, message, message_en, where, details}, status}. Roles: admin "
                "(everything on its projects), coordinator (read only). Each token is granted projects "
                "(`jixiao token create --project CODE`, or `--all-projects` for an admin); anything of "
                "another project answers 404."
            ),
        },
        "security": [{"bearer": []}],
        "tags": [
            {"name": t}
            for t in (
                "projects",
                "units",
                "campaigns",
                "responses",
                "scores",
                "documents",
                "delivery",
                "chats",
                "auth",
                "meta",
            )
        ],  # fmt: skip
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "jx_… token"}},
            "schemas": schemas,
        },
    }
