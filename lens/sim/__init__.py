"""Simulated LLM servers: lens's built-in benchmark target and test double.

``SimServerProcess`` runs the streaming server as a child process; ``SimServer.handle``
serves it in-process with ``trio.serve_tcp`` (tests); ``main`` is the
``python -m lens.sim`` / ``lens serve-sim`` entry point.  ``SimSettings.protocol`` (flag
``--protocol``) picks the wire protocol: ``openai`` (Chat Completions, the default),
``openai-responses``, ``azure-openai``, ``anthropic``, ``gemini`` or ``bedrock``; each is
one module implementing ``lens.sim.protocol_base.SimProtocol``.
"""

from lens.sim.config import ServerConfig, config_to_argv, parse_argv, settings_to_argv
from lens.sim.process import SimServerError, SimServerProcess
from lens.sim.protocol_registry import PROTOCOL_NAMES, get_protocol
from lens.sim.schedule import token_due_times
from lens.sim.server import SimServer, main, serve

__all__ = [
    "PROTOCOL_NAMES",
    "ServerConfig",
    "SimServer",
    "SimServerError",
    "SimServerProcess",
    "config_to_argv",
    "get_protocol",
    "main",
    "parse_argv",
    "serve",
    "settings_to_argv",
    "token_due_times",
]
