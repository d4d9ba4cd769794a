"""How a run spans GPUs and machines: GPUS per machine, NODES, NODE_RANK and MASTER, validated.

    launch = launch_plan(gpus="8", nodes="2", node_rank="0", master="10.0.0.1:29500")
    launch.torchrun_args("troupe")   # --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d …

Several machines meet through torchrun's c10d rendezvous at MASTER, with the same command on every
machine and only NODE_RANK differing. torchrun ignores --node_rank outside its static backend, so
here NODE_RANK says who hosts the rendezvous store: node 0 (`is_host=1`), which must run at MASTER;
the others only connect (`is_host=0`), so two nodes on one host never both try to host it. The
rendezvous id is the same constant everywhere: Axolotl would otherwise draw a random one per node,
and nodes with different ids wait for each other until the timeout.
"""

import ipaddress
import re
import socket
from dataclasses import dataclass

from troupe.errors import TroupeError

LABEL_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
MASTER_RE = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9.-]{1,253})):(?P<port>[0-9]{1,5})$")
MASTER_EXAMPLE = "e.g. MASTER=10.0.0.1:29500 or MASTER=node0.cluster:29500"


@dataclass(frozen=True)
class Launch:
    gpus: int = 1
    nodes: int = 1
    node_rank: int = 0
    host: str = ""
    port: int = 0

    @property
    def processes(self) -> int:
        return self.gpus * self.nodes

    def endpoint(self, port_offset: int = 0) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port + port_offset}"

    def torchrun_args(
        self, run_id: str, nproc: int | None = None, port_offset: int = 0, join_timeout: int | None = None
    ) -> list[str]:
        """torchrun's options for this machine: c10d rendezvous at MASTER (+ `port_offset`)."""
        conf = f"is_host={int(self.node_rank == 0)}" + (f",join_timeout={join_timeout}" if join_timeout else "")
        return [
            *("--nnodes", str(self.nodes), "--nproc_per_node", str(nproc or self.gpus)),
            *("--rdzv_backend", "c10d", "--rdzv_endpoint", self.endpoint(port_offset)),
            *("--rdzv_id", run_id, "--rdzv_conf", conf),
        ]


SINGLE = Launch()  # one machine, one process: every run that names no GPUS or NODES


def launch_plan(gpus: str = "1", nodes: str = "1", node_rank: str | None = None, master: str | None = None) -> Launch:
    """The make variables (as the command line gives them: text) checked together, one line per mistake."""
    count = whole("GPUS", gpus, 1)
    machines = whole("NODES", nodes, 1)
    if machines == 1:
        if node_rank is not None or master is not None:
            raise TroupeError("NODE_RANK and MASTER are for several machines: add NODES=<machines> (2 or more)")
        return Launch(count)
    if node_rank is None or master is None:
        raise TroupeError(
            f"NODES={machines} needs MASTER=<host:port of node 0> and NODE_RANK=<0..{machines - 1}> "
            "(the same command on every machine, only NODE_RANK differs)"
        )
    rank = whole("NODE_RANK", node_rank, 0)
    if rank >= machines:
        raise TroupeError(f"NODE_RANK={rank} is not below NODES={machines}: number the machines 0..{machines - 1}")
    host, port = parse_master(master)
    return Launch(count, machines, rank, host, port)


def whole(name: str, text: str, minimum: int) -> int:
    if not re.fullmatch(r"[0-9]{1,6}", text.strip()) or int(text) < minimum:
        raise TroupeError(f"{name}={text!r} must be a whole number, {minimum} or more")
    return int(text)


def parse_master(text: str) -> tuple[str, int]:
    """host:port, host a DNS name, an IPv4 address or a bracketed IPv6 one; port+1 must exist too
    (the preflight meets there)."""
    match = MASTER_RE.match(text.strip())
    if not match or not _valid_host(match):
        raise TroupeError(f"MASTER={text!r} is not host:port of node 0 ({MASTER_EXAMPLE})")
    port = int(match["port"])
    if not 1 <= port <= 65534:
        raise TroupeError(f"MASTER={text!r}: the port must be 1-65534 (the preflight also uses port+1)")
    return match["v6"] or match["name"], port


def _valid_host(match: re.Match) -> bool:
    if not match["v6"]:
        return all(LABEL_RE.match(label) for label in match["name"].split("."))
    try:
        return ipaddress.ip_address(match["v6"]).version == 6
    except ValueError:
        return False


def check_master(launch: Launch) -> None:
    """Before waiting on the network: MASTER resolves here, and node 0 really is MASTER (it hosts the
    rendezvous; hosting it elsewhere would leave every node waiting until the timeout)."""
    try:
        addresses = socket.getaddrinfo(launch.host, launch.port, type=socket.SOCK_STREAM)
    except OSError:
        raise TroupeError(
            f"MASTER host '{launch.host}' does not resolve on this machine ({socket.gethostname()}): "
            "give node 0's IP address"
        ) from None
    if launch.node_rank == 0 and not any(_is_local(family, address[0]) for family, *_, address in addresses):
        raise TroupeError(
            f"NODE_RANK=0 hosts the rendezvous, but MASTER host '{launch.host}' is not an address of this machine "
            f"({socket.gethostname()}): run NODE_RANK=0 on {launch.host}, or set MASTER to this machine's address"
        )


def _is_local(family: int, address: str) -> bool:
    """Only an address of this machine can be bound."""
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
            return True
        except OSError:
            return False
