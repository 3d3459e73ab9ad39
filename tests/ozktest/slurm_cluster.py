"""A private single-node Slurm cluster (munged, slurmctld, slurmd) in a directory, for tests."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
DAEMONS = {"munged": "munge", "mungekey": "munge", "slurmctld": "slurmctld", "slurmd": "slurmd"}
CLIENTS = {"srun": "slurm-client", "squeue": "slurm-client", "scancel": "slurm-client",
           "sinfo": "slurm-client"}
SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")
PIDS_FILE = "pids.json"
NODE = "localhost"
PARTITION = "debug"
TIMEOUT = 30.0
# Unix socket paths (munge's) are limited to 108 bytes.
MAX_BASE = 80
# Variables that would make client commands attach to, or take defaults from, an outer job.
SLURM_VAR_PREFIXES = ("SLURM_", "SRUN_", "SALLOC_", "SBATCH_", "SQUEUE_", "SINFO_")

# sched_interval: a job that misses the immediate scheduling attempt at submission waits for the
# main scheduling loop (60 s by default), which would make a test wait for a minute.
CONF = """\
ClusterName=ozk
SlurmctldHost={node}
SlurmUser={user}
SlurmdUser={user}
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={base}/munge/munge.socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
SchedulerParameters=batch_sched_delay=0,sched_interval=2
MpiDefault=none
InactiveLimit=10
MinJobAge=5
KillWait=2
MailProg=/bin/true
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/slurmctld.log
SlurmdLogFile={base}/slurmd.log
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 State=UNKNOWN
PartitionName={partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP
# A job asking for more time than this partition allows pends with PartitionTimeLimit forever.
PartitionName=short Nodes={node} MaxTime=10 State=UP
"""


def find_tool(name: str) -> str:
    """The path of a Slurm or munge command; RuntimeError naming the Debian packages if absent."""
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))
    if not path:
        msg = (f"{name} not found: a test Slurm cluster needs the Debian packages "
               f"{' '.join(PACKAGES)} (apt-get install -y --no-install-recommends "
               f"{' '.join(PACKAGES)})")
        raise RuntimeError(msg)
    return path


def clean_environ(env: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """A copy of env (default os.environ) without Slurm job or client-default variables."""
    result = {k: v for k, v in (os.environ if env is None else env).items()
              if not k.startswith(SLURM_VAR_PREFIXES)}
    result.update(extra)
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int, base: Path) -> bool:
    """Whether pid is still one of this cluster's daemons (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return str(base).encode() in cmdline and stat.rsplit(")", 1)[-1].split()[0] != "Z"


@dataclass
class Cluster:
    """A running private cluster: its base dir, config file and daemon pids."""

    base: Path
    conf: Path
    pids: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    def environ(self, env: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
        """env (default os.environ) pointed at this cluster, with no outer job leaking in."""
        return clean_environ(env, SLURM_CONF=str(self.conf), **extra)

    def run(self, *cmd: str, timeout: float = TIMEOUT,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command against this cluster."""
        return subprocess.run([find_tool(cmd[0]), *cmd[1:]], env=self.environ(),
                              capture_output=True, text=True, timeout=timeout, check=check)

    def jobs(self) -> list[str]:
        """'JOBID STATE NAME' for every job squeue still shows."""
        out = self.run("squeue", "-h", "-o", "%i %T %j").stdout
        return [line for line in out.splitlines() if line.strip()]

    def wait_empty(self, timeout: float = 10.0) -> float:
        """Seconds until squeue shows no job; RuntimeError with the jobs after timeout."""
        t0 = time.monotonic()
        while True:
            jobs = self.jobs()
            if not jobs:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                msg = f"jobs still queued after {timeout} s: {jobs}"
                raise RuntimeError(msg)
            time.sleep(0.05)

    def cancel_all(self) -> None:
        """Cancel every job of this cluster and wait until squeue is empty."""
        self.run("scancel", "--user", getpass.getuser(), check=False)
        self.wait_empty(TIMEOUT)

    def stop(self) -> None:
        """Cancel jobs, then stop slurmd, slurmctld and munged by their recorded pids."""
        if self.pids and _alive(self.pids.get("slurmctld", 0), self.base):
            try:
                self.cancel_all()
            except (RuntimeError, subprocess.SubprocessError):
                pass
        stop_daemons(self.base, self.pids)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=TIMEOUT)
        self.pids.clear()
        (self.base / PIDS_FILE).unlink(missing_ok=True)


def stop_daemons(base: Path, pids: Mapping[str, int] | None = None) -> None:
    """Stop the daemons recorded for base (slurmd first), SIGKILL any that linger."""
    if pids is None:
        try:
            pids = json.loads((base / PIDS_FILE).read_text())
        except (OSError, ValueError):
            return
    order = [n for n in ("slurmd", "slurmctld", "munged") if n in pids]
    for name in order:
        pid = pids[name]
        if _alive(pid, base):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(pid, base) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _alive(pid, base):
            os.kill(pid, signal.SIGKILL)


def _write_config(base: Path, cpus: int) -> Path:
    for sub in ("state", "spool"):
        (base / sub).mkdir(mode=0o700, exist_ok=True)
    # munged wants its socket dir searchable by everyone, and nothing group-writable.
    (base / "munge").mkdir(mode=0o755, exist_ok=True)
    (base / "munge").chmod(0o755)
    conf = base / "slurm.conf"
    conf.write_text(CONF.format(base=base, node=NODE, user=getpass.getuser(), cpus=cpus,
                                partition=PARTITION, ctld_port=_free_port(),
                                d_port=_free_port()))
    return conf


def _spawn(cluster: Cluster, name: str, cmd: list[str]) -> None:
    with open(cluster.base / f"{name}.out", "ab") as log:
        proc = subprocess.Popen(cmd, env=cluster.environ(), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    cluster.procs[name] = proc
    cluster.pids[name] = proc.pid
    (cluster.base / PIDS_FILE).write_text(json.dumps(cluster.pids))


def _wait_for(what: str, ready, cluster: Cluster, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        dead = [n for n, p in cluster.procs.items() if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            logs = "".join(f"\n--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                           for p in sorted(cluster.base.glob("*.out")) + sorted(
                               cluster.base.glob("*.log")))
            cluster.stop()
            why = f"{', '.join(dead)} exited" if dead else f"not within {timeout} s"
            msg = f"test Slurm cluster in {cluster.base}: {what} failed ({why}){logs}"
            raise RuntimeError(msg)
        time.sleep(0.05)


def start_cluster(base: Path, *, cpus: int = 8, timeout: float = TIMEOUT) -> Cluster:
    """Start munged, slurmctld and slurmd in base (a short, private dir) and wait until idle."""
    base = Path(base).absolute()
    if len(str(base)) > MAX_BASE:
        msg = f"{base} is too long for munge's socket path: use a base dir under {MAX_BASE} chars"
        raise RuntimeError(msg)
    tools = {name: find_tool(name) for name in (*DAEMONS, *CLIENTS)}
    base.mkdir(parents=True, exist_ok=True)
    # munged wants every dir up to its socket searchable by everyone.
    base.chmod(0o755)
    stop_daemons(base)
    conf = _write_config(base, cpus)
    cluster = Cluster(base=base, conf=conf)
    munge = base / "munge"
    key = munge / "munge.key"
    if not key.exists():
        subprocess.run([tools["mungekey"], "-c", "-k", str(key)], capture_output=True,
                       timeout=timeout, check=True)
    _spawn(cluster, "munged", [
        tools["munged"], "-F", f"--key-file={key}", f"--socket={munge}/munge.socket",
        f"--pid-file={munge}/munged.pid", f"--log-file={munge}/munged.log",
        f"--seed-file={munge}/munged.seed"])
    _wait_for("munged", (munge / "munge.socket").exists, cluster, timeout)
    _spawn(cluster, "slurmctld", [tools["slurmctld"], "-D", "-c", "-f", str(conf)])
    _spawn(cluster, "slurmd", [tools["slurmd"], "-D", "-N", NODE, "-f", str(conf)])

    def idle() -> bool:
        # One line per partition the node is in.
        out = cluster.run("sinfo", "-h", "-N", "-o", "%t", check=False).stdout.split()
        return bool(out) and set(out) == {"idle"}

    _wait_for("waiting for the node to be idle", idle, cluster, timeout)
    return cluster


def main(argv: list[str]) -> int:
    """`python tests/ozktest/slurm_cluster.py start|stop DIR`: run or stop a cluster by hand."""
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python tests/ozktest/slurm_cluster.py start|stop DIR", file=sys.stderr)
        return 2
    base = Path(argv[1]).absolute()
    if argv[0] == "stop":
        stop_daemons(base)
        return 0
    cluster = start_cluster(base)
    stop = f"python tests/ozktest/slurm_cluster.py stop {base}"
    print(f"export SLURM_CONF={cluster.conf}  # stop: {stop}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
