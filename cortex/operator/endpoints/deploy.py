"""``POST /deploy``: a multipart upload whose file field ``config`` is the cortex.yaml."""

from __future__ import annotations

import email.parser
import email.policy
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from cortex.errors import InvalidRequestError
from cortex.operator.async_apis import async_apis_of
from cortex.operator.endpoints._common import OperatorState, operator_state, query_bool

MAX_CONFIG_BYTES = 10 * 2**20
_MISSING_CONFIG = 'request form file "config" must be provided'

router = APIRouter()


def config_from_multipart(content_type: str, body: bytes) -> bytes:
    """The bytes of the ``config`` file field of a ``multipart/form-data`` body.

    Parsed with the standard library's MIME parser (a form is a MIME multipart message), which
    keeps the file's bytes as sent. Missing or empty: :class:`InvalidRequestError`.
    """
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidRequestError(_MISSING_CONFIG)
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise InvalidRequestError(_MISSING_CONFIG)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "config":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes) and payload:
                return payload
    raise InvalidRequestError(_MISSING_CONFIG)


@router.post("/deploy")
async def deploy(
    request: Request,
    state: Annotated[OperatorState, Depends(operator_state)],
    force: str | None = None,
    config_file_name: Annotated[str | None, Query(alias="configFileName")] = None,
    project_dir: Annotated[str | None, Query(alias="projectDir")] = None,
) -> JSONResponse:
    """Deploy every API of the file; ``projectDir`` (absolute) is the containers' working
    directory, default the operator's state directory."""
    body = await request.body()
    if len(body) > MAX_CONFIG_BYTES:
        raise InvalidRequestError(f"the config file must be at most {MAX_CONFIG_BYTES} bytes")
    config = config_from_multipart(request.headers.get("content-type", ""), body)
    folder = Path(project_dir) if project_dir else state.settings.state_dir
    if not folder.is_absolute():
        raise InvalidRequestError(f"projectDir must be an absolute path (got {project_dir!r})")
    outcomes = state.deployer.deploy(
        config,
        file_name=config_file_name or "cortex.yaml",
        project_dir=folder,
        force=query_bool(force),
    )
    async_apis = async_apis_of(request.app)
    if async_apis is not None:  # AsyncAPIs' queues exist before the answer does
        await async_apis.after_deploy(o.record for o in outcomes)
    return JSONResponse(state.responses.deploy_results(outcomes))
