"""Simulated LLM servers: lens's built-in benchmark target and test double.

``SimServerProcess`` runs the OpenAI-compatible streaming server as a child process;
``SimServer.handle`` serves it in-process with ``trio.serve_tcp`` (tests); ``main`` is
the ``python -m lens.sim`` / ``lens serve-sim`` entry point.
"""

from lens.sim.config import ServerConfig, config_to_argv, parse_argv, settings_to_argv
from lens.sim.process import SimServerError, SimServerProcess
from lens.sim.schedule import token_due_times
from lens.sim.server import SimServer, main, serve

__all__ = [
    "ServerConfig",
    "SimServer",
    "SimServerError",
    "SimServerProcess",
    "config_to_argv",
    "main",
    "parse_argv",
    "serve",
    "settings_to_argv",
    "token_due_times",
]
