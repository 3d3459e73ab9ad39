"""Relay a remote Slurm kernel's ports: listen on the connection file's ip and ports on the login
host and forward every connection to the same port kind of the kernel on the compute node.

Copied into Slurm kernels' dirs as ozkernels-slurm-relay.py; the supervisor
(ozkernels-slurm-supervise.py) runs `serve()` in a thread once the node side has written where
the kernel listens (CONNECTION_FILE.slurm-node, completed by ipykernel with the ports it bound).
Also runnable alone: `PYTHON -I -S ozkernels-slurm-relay.py CONNECTION_FILE SIDECAR KERNEL`.
Standard library only (Python 3.7+: asyncio.run).
"""

import asyncio
import json
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Awaitable, Callable, Dict, Optional  # noqa: F401 - type comments

PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
CHUNK = 65536
# A port the client side just closed may still be held for a moment: retry binding it.
BIND_ATTEMPTS = 50
POLL = 0.1


class RelayError(Exception):
    """The relay cannot run; the message names the kernel and the cause."""


def load(path):
    # type: (str) -> Optional[Dict[str, Any]]
    """A connection file's JSON object, or None while it is missing, partial or not JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def complete(info):
    # type: (Optional[Dict[str, Any]]) -> bool
    """Whether a connection file names an ip and every port (ipykernel has bound them)."""
    return isinstance(info, dict) and bool(info.get("ip")) and all(
        isinstance(info.get(p), int) and info.get(p) for p in PORTS)


async def pump(reader, writer):
    # type: (asyncio.StreamReader, asyncio.StreamWriter) -> None
    """Copy one direction of a connection until it ends."""
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


def forward_to(host, port):
    # type: (str, int) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
    """A connection handler that forwards to host:port."""
    async def handle(reader, writer):
        # type: (asyncio.StreamReader, asyncio.StreamWriter) -> None
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
    return handle


async def relay(connection_file, sidecar, kernel, started=None):
    # type: (str, str, str, Optional[Callable[[], None]]) -> None
    """Listen on the connection file's ports and forward to the node's, until cancelled."""
    mine = load(connection_file)
    if not complete(mine):
        raise RelayError("kernel %r: cannot read the connection file %s" % (kernel,
                                                                            connection_file))
    assert mine is not None
    node = load(sidecar)
    while not complete(node):
        await asyncio.sleep(POLL)
        node = load(sidecar)
    assert node is not None
    servers = []
    try:
        for port in PORTS:
            for attempt in range(BIND_ATTEMPTS):
                try:
                    servers.append(await asyncio.start_server(
                        forward_to(node["ip"], node[port]), mine["ip"], mine[port]))
                    break
                except OSError as e:
                    if attempt == BIND_ATTEMPTS - 1:
                        raise RelayError(
                            "kernel %r: cannot listen on %s:%s for the kernel on %s: %s"
                            % (kernel, mine["ip"], mine[port], node["ip"], e)) from e
                    await asyncio.sleep(POLL)
        if started is not None:
            started()
        await asyncio.Event().wait()
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()


def serve(connection_file, sidecar, kernel):
    # type: (str, str, str) -> None
    """Run the relay until the process ends."""
    asyncio.run(relay(connection_file, sidecar, kernel))


def main(argv):
    # type: (list) -> int
    """`ozkernels-slurm-relay.py CONNECTION_FILE SIDECAR KERNEL`."""
    if len(argv) != 3:
        print("usage: ozkernels-slurm-relay.py CONNECTION_FILE SIDECAR KERNEL", file=sys.stderr)
        return 2
    try:
        serve(*argv)
    except RelayError as e:
        print("ozkernels: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
