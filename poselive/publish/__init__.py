"""Network output: every frame's skeletons, faces and gesture events for game engines and creative tools.

    messages.py   the wire format (JSON, `schema_version`), UDP splitting, a checker for clients and tests
    ws.py         WebSocket server: per-client bounded queues, one-way, loopback by default
    udp.py        JSON datagrams to one target (the OSC output is the same sender)
    osc.py        OSC bundles (python-osc)
    server.py     StreamServer (fans one encoded message out to the outputs), StreamSink (the live loop's
                  stream output, gestures included), `poselive serve`

Needs the `stream` extra (websockets, python-osc) only for the outputs that use them.
"""
from poselive.publish.messages import SCHEMA_VERSION
from poselive.publish.server import StreamServer

__all__ = ["SCHEMA_VERSION", "StreamServer"]
