"""Supervise one Slurm kernel's job on the login host, so that no job is left behind.

Copied into Slurm kernels' dirs as ozkernels-slurm-supervise.py. The wrapper (ozkernels-slurm,
jupyter_client's process) starts it in a session of its own, because jupyter_client SIGKILLs the
wrapper's process group on a forced shutdown and SIGKILL to srun would leave the job running:

    setsid PYTHON -I -S ozkernels-slurm-supervise.py --kernel NAME --job-name JOB
        [--pending-limit SECONDS] [--sidecar FILE] [--connection-file FILE] [--profile NAME]
        [--stdout-fd FD] -- SRUN ARG...

It runs srun (its stdout on FD), reads the wrapper's requests on stdin ("interrupt",
"cancel"), cancels the job when stdin ends without one (the wrapper is gone), says on stderr
while the job waits in the queue and gives up after --pending-limit (at once for a pending
reason that waiting never resolves), relays a remote kernel's
ports once the node side has written the sidecar, and ends with one line "exit RC" on stdout.
A failure is said on stderr and also told to the wrapper as "fail LINE" on stdout: the wrapper
records it where the launcher records its failures (one writer of those records in bash).
Standard library only (Python 3.7+).
"""

import fcntl
import fnmatch
import importlib.util
import os
import pwd
import signal
import subprocess
import sys
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional  # noqa: F401 - type comments

# When the queue is looked at (seconds after submission), then every minute.
QUEUE_STEPS = (1, 3, 10, 30, 60)
CANCEL_TRIES = 150
CANCEL_EVERY = 0.2
LOCK_WAIT = 60.0
RELAY_FILE = "ozkernels-slurm-relay.py"
OPTIONS = ("--kernel", "--job-name", "--pending-limit", "--sidecar", "--connection-file",
           "--profile", "--stdout-fd")
# Pending reasons that waiting never resolves (the request cannot be met where it was sent),
# as fnmatch patterns, with the profile setting to change.
NEVER_STARTS = (
    ("PartitionTimeLimit", "'time' (above the partition's time limit)"),
    ("PartitionNodeLimit", "'cpus', 'mem' or the node count in 'extra' (above the partition's "
     "limits)"),
    ("PartitionConfig", "'partition', 'account' or 'qos' (the partition does not take them)"),
    ("ReqNodeNotAvail, UnavailableNodes:?*", "'partition' or the node list in 'extra' (the "
     "nodes asked for are down or drained)"),
    ("BadConstraints", "'extra' (--constraint) or 'gres' (no node has them)"),
    ("InvalidAccount", "'account'"), ("AccountNotAllowed", "'account'"),
    ("InvalidQOS", "'qos'"), ("QOSNotAllowed", "'qos'"),
    ("Assoc*PerJob*Limit", "'cpus', 'mem', 'gpus' or 'time' (beyond the account's or QOS's "
     "per-job limit)"),
    ("QOS*PerJob*Limit", "'cpus', 'mem', 'gpus' or 'time' (beyond the account's or QOS's "
     "per-job limit)"),
    ("QOSMinCpuNotSatisfied", "'cpus', 'mem', 'gpus' or 'time' (beyond the account's or QOS's "
     "per-job limit)"),
)


def say(kernel, message):
    # type: (str, str) -> None
    """One line on stderr (Jupyter's server log) in the launcher's format."""
    line = "ozkernels: kernel '%s': %s\n" % (kernel.replace("\n", " "), message.replace("\n", " "))
    try:
        sys.stderr.write(line)
        sys.stderr.flush()
    except OSError:
        pass


_TELL = threading.Lock()


def tell(line):
    # type: (str) -> None
    """One line to the wrapper on stdout (threads take turns; a gone wrapper is ignored)."""
    with _TELL:
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            pass


def fail(kernel, message):
    # type: (str, str) -> None
    """Say a start failure, and have the wrapper record the same line."""
    say(kernel, message)
    tell("fail " + message.replace("\n", " "))


def parse_args(argv):
    # type: (List[str]) -> Dict[str, object]
    """The options and the srun command line after --."""
    opts = {"--kernel": "", "--job-name": "", "--pending-limit": "0", "--sidecar": "",
            "--connection-file": "", "--profile": "", "--stdout-fd": "1"}  # type: Dict[str, str]
    i = 0
    while i < len(argv) and argv[i] != "--":
        if argv[i] not in OPTIONS or i + 1 >= len(argv):
            raise ValueError("unknown option or missing value: %s" % argv[i])
        opts[argv[i]] = argv[i + 1]
        i += 2
    command = argv[i + 1:]
    if not command:
        raise ValueError("no srun command after --")
    return {"kernel": opts["--kernel"], "job_name": opts["--job-name"],
            "pending_limit": int(float(opts["--pending-limit"] or 0)),
            "sidecar": opts["--sidecar"], "connection_file": opts["--connection-file"],
            "profile": opts["--profile"],
            "stdout_fd": int(opts["--stdout-fd"]), "command": command}


def queue_checks(limit):
    # type: (int) -> Iterator[int]
    """Seconds after submission at which to look at the queue: the steps, every minute after,
    and the pending limit itself (limit 0: none)."""
    t = 0
    steps = list(QUEUE_STEPS)
    while True:
        nxt = steps.pop(0) if steps else t + 60
        if 0 < limit and t < limit < nxt:
            nxt = limit
        if nxt > t:
            t = nxt
            yield t


def parse_queue_line(text):
    # type: (str) -> List[str]
    """[job id, state, reason] from squeue's '%i|%T|%r' output ('' for what is missing)."""
    first = text.split("\n", 1)[0]
    fields = first.split("|", 2)
    return (fields + ["", "", ""])[:3]


def never_starts(reason):
    # type: (str) -> str
    """The profile setting to change when a pending reason is one waiting never resolves."""
    return next((fix for pattern, fix in NEVER_STARTS if fnmatch.fnmatchcase(reason, pattern)),
                "")


def tools(srun):
    # type: (str) -> List[str]
    """scancel and squeue next to srun (or on PATH when srun was given bare)."""
    if "/" not in srun:
        return ["scancel", "squeue"]
    folder = os.path.dirname(srun)
    return [os.path.join(folder, "scancel"), os.path.join(folder, "squeue")]


class Supervisor:
    """srun, and the threads that watch the wrapper, the queue and the sidecar."""

    def __init__(self, args):
        # type: (Dict[str, object]) -> None
        self.kernel = str(args["kernel"])
        self.job_name = str(args["job_name"])
        self.limit = int(args["pending_limit"])  # type: ignore[call-overload]
        self.sidecar = str(args["sidecar"])
        self.connection_file = str(args["connection_file"])
        self.profile = str(args.get("profile", ""))
        self.stdout_fd = int(args["stdout_fd"])  # type: ignore[call-overload]
        self.command = list(args["command"])  # type: ignore[call-overload]
        self.scancel, self.squeue = tools(self.command[0])
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.done = threading.Event()
        self.srun = None  # type: Optional[subprocess.Popen]
        self._lock_fd = -1

    def slurm(self, *args):
        # type: (str) -> str
        """Run a Slurm client command quietly; its stdout ('' when it failed)."""
        try:
            return subprocess.run(list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, universal_newlines=True,
                                  timeout=30, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    def alive(self):
        # type: () -> bool
        """Whether srun still runs."""
        return self.srun is not None and self.srun.poll() is None

    def cancel_until_gone(self):
        # type: () -> None
        """Cancel the job (by its unique name) until srun has gone: it may not have submitted
        the job yet; kill srun if it will not go."""
        for _ in range(CANCEL_TRIES):
            if not self.alive():
                return
            self.slurm(self.scancel, "--quiet", "--name=" + self.job_name, "--user=" + self.user)
            time.sleep(CANCEL_EVERY)
        if self.srun is not None and self.alive():
            self.srun.kill()

    def watch_wrapper(self):
        # type: () -> None
        """The wrapper's requests; the end of input (the wrapper is gone) cancels the job."""
        for line in sys.stdin:
            request = line.strip()
            if request == "interrupt":
                self.slurm(self.scancel, "--quiet", "--signal=INT", "--name=" + self.job_name,
                           "--user=" + self.user)
            elif request == "cancel":
                break
        if not self.done.is_set():
            self.cancel_until_gone()

    def watch_queue(self):
        # type: () -> None
        """Say so while the job waits in the queue; cancel it past the pending limit."""
        waited = 0
        note = "; gives up after %d s" % self.limit if self.limit > 0 else ""
        for t in queue_checks(self.limit):
            if self.done.wait(t - waited):
                return
            waited = t
            job, state, reason = parse_queue_line(self.slurm(
                self.squeue, "--noheader", "--name=" + self.job_name, "--user=" + self.user,
                "--format=%i|%T|%r"))
            if state and state != "PENDING":
                return
            if state != "PENDING":
                continue
            fix = never_starts(reason)
            if fix:
                profile = " '%s'" % self.profile if self.profile else ""
                self.give_up("Slurm job %s can never start (%s): change %s of Slurm profile%s "
                             "(SlurmProfiles.profiles)" % (job, reason, fix, profile))
                return
            if self.limit > 0 and t >= self.limit:
                self.give_up("gave up after %d s: Slurm job %s is still pending (%s); ask for "
                             "fewer resources, another partition or time, or raise the "
                             "profile's pending_limit" % (t, job, reason))
                return
            say(self.kernel, "Slurm job %s is waiting in the queue (%s) for %d s%s"
                % (job, reason, t, note))

    def give_up(self, line):
        # type: (str) -> None
        """Say why, leave the marker that makes Jupyter's quick restarts fail fast, cancel."""
        fail(self.kernel, line)
        # Jupyter restarts a kernel that died up to 5 times: make those fail at once.
        if self.connection_file:
            try:
                with open(self.connection_file + ".slurm-gave-up", "w") as f:
                    f.write("%d %s\n" % (int(time.time()), line))
            except OSError:
                pass
        self.cancel_until_gone()

    def watch_sidecar(self):
        # type: () -> None
        """Start the relay once the node side has said where the kernel listens."""
        polls = 0
        while True:
            try:
                # Open, not stat: on NFS only an open is sure to see another host's write.
                with open(self.sidecar, encoding="utf-8") as f:
                    first = f.readline().strip()
            except OSError:
                first = ""
            if first:
                break
            polls += 1
            if self.done.wait(0.1 if polls <= 100 else 1.0):
                return
        if first == "local":
            return
        relay = load_relay()
        try:
            relay.serve(self.connection_file, self.sidecar, self.kernel)
        except relay.RelayError as e:
            fail(self.kernel, str(e).split(": ", 1)[-1])

    def lock(self):
        # type: () -> None
        """One kernel per connection file at a time: a restart waits until the old job ended."""
        if not self.connection_file:
            return
        try:
            self._lock_fd = os.open(self.connection_file, os.O_RDONLY)
        except OSError:
            return
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    say(self.kernel, "the previous kernel on %s has not ended after %d s; "
                        "starting anyway" % (self.connection_file, LOCK_WAIT))
                    return
                time.sleep(0.05)
            except OSError:
                return

    def run(self):
        # type: () -> int
        """Run srun under watch; srun's exit status."""
        def on_signal(signum, frame):
            # type: (int, object) -> None
            self.cancel_until_gone()

        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, on_signal)
        self.lock()
        if self.sidecar:
            try:
                os.close(os.open(self.sidecar, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            except OSError:
                fail(self.kernel, "cannot write %s next to the connection file" % self.sidecar)
                return 1
        try:
            self.srun = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                         stdout=self.stdout_fd)
        except OSError as e:
            fail(self.kernel, "cannot run %s: %s" % (self.command[0], e.strerror))
            return 127
        watchers = [self.watch_wrapper, self.watch_queue]
        if self.sidecar:
            watchers.append(self.watch_sidecar)
        for target in watchers:
            threading.Thread(target=target, daemon=True).start()
        rc = self.srun.wait()
        self.done.set()
        if self.sidecar:
            try:
                os.unlink(self.sidecar)
            except OSError:
                pass
        return rc


def load_relay():
    # type: () -> Any
    """The relay module next to this file (-I keeps this file's dir off sys.path)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), RELAY_FILE)
    spec = importlib.util.spec_from_file_location("ozkernels_slurm_relay", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def main(argv):
    # type: (List[str]) -> int
    """Supervise, then tell the wrapper srun's status; always exits 0 itself."""
    try:
        args = parse_args(argv)
    except ValueError as e:
        fail("?", "ozkernels-slurm-supervise.py: %s" % e)
        tell("exit 2")
        return 0
    rc = Supervisor(args).run()
    # Last: the wrapper may be gone, and writing to it then fails.
    tell("exit %d" % (rc if rc >= 0 else 128 - rc))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
