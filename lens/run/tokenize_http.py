"""The HTTP side of ``tokenizer: server``'s pre-flight (lens.scenario.server_tokenizer):
one blocking httpx client per origin, its own connections, bounded by a timeout, used
before the run's clock starts and closed before it does."""

from __future__ import annotations

from typing import Any

import httpx

from lens.scenario.server_tokenizer import PreflightError, ServerTarget

# One tokenize call of a long prompt is milliseconds on a local server; a server that does
# not answer in this long is down or wrong, and the run should not wait on it.
PREFLIGHT_TIMEOUT_S = 10.0


class HttpTransport:
    """``Transport`` over httpx: JSON bodies, the provider's bearer key when it has one."""

    def __init__(self, timeout_s: float = PREFLIGHT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._clients: dict[str, httpx.Client] = {}

    def post(self, target: ServerTarget, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        client = self._clients.get(target.origin)
        if client is None:
            headers = {"authorization": f"Bearer {target.api_key}"} if target.api_key else {}
            client = httpx.Client(
                base_url=target.origin, timeout=self.timeout_s, headers=headers, trust_env=False
            )
            self._clients[target.origin] = client
        try:
            response = client.post(path, json=body)
        except httpx.HTTPError as exc:
            raise PreflightError(
                f"tokenizer: server ({target.provider}): POST {target.origin}{path} failed: "
                f"{type(exc).__name__}{f': {exc}' if str(exc) else ''} (lens run counts "
                "tokens with the server before it starts: is the server up?)"
            ) from None
        return response.status_code, response.content

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
