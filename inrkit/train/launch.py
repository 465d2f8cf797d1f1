"""``--devices N`` on one machine: N training processes, the signals they get, and how they end.

torchrun's agent would start them, but a scheduler's SIGTERM or a Ctrl-C goes wrong with it: the
process that started torchrun dies and leaves torchrun and its workers training on (still holding
the run's lock); torchrun itself prints a traceback of its own, and kills its workers 30 s after
forwarding the signal, whether or not their checkpoint is written. Here, instead:

- the workers run in sessions of their own, so a terminal's Ctrl-C reaches only this launcher,
  which forwards each SIGINT or SIGTERM it gets to every worker once (SIGHUP as SIGTERM). The
  workers agree on a step at the next log step, save one checkpoint (rank 0 writes it; every rank
  its RNG state), rank 0 prints the one line, and they exit with 128 + the signal. The launcher
  waits for them as long as that takes (no clock) and exits with rank 0's code;
- if the launcher itself is killed, each worker sends itself one SIGTERM and stops the same way: it
  holds the read end of a pipe whose only write end the launcher holds, and a thread of its own
  wakes when that closes (:func:`stop_with_launcher`). (The kernel's parent-death signal would
  come once for every thread of the dying launcher, and a second SIGTERM stops a worker at once.)
- a worker that fails (not by a signal) stops the rest: a peer blocked in a collective would wait
  for the dead one forever, so after ``grace`` seconds it gets SIGTERM and, ``grace`` later, SIGKILL;
  a peer whose collective fails because the other end closed says so in one line and exits with
  :data:`PEER_LOST` (:func:`peer_lost` recognises that error), and the launcher then exits with the
  code of the worker that failed first, not the peer's;
- the rendezvous store is this launcher's own TCPStore on a free port, so there is no port race.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from ..errors import ProcessesFailed

LAUNCHER_ENV = "INRKIT_LAUNCHER_FD"  # the worker's end of the pipe that closes when the launcher dies
FORWARDED = {signal.SIGINT: signal.SIGINT, signal.SIGTERM: signal.SIGTERM, signal.SIGHUP: signal.SIGTERM}
STOPPED_BY_SIGNAL = {128 + int(signal.SIGINT), 128 + int(signal.SIGTERM)}
PEER_LOST = 3  # a worker's exit code when its collective failed because another worker had ended
_PEER_GONE = ("connection closed by peer", "connection reset by peer", "broken pipe")


def peer_lost(err: BaseException) -> bool:
    """Whether ``err`` (or what caused it) is a collective failing because another process of the
    group ended: gloo reports a closed or reset connection; torch.distributed's own DistError types."""
    from torch.distributed import DistError

    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, DistError) or (isinstance(err, RuntimeError)
                                          and any(s in str(err).lower() for s in _PEER_GONE)):
            return True
        err = err.__cause__ or err.__context__
    return False


def launch_local(devices: int, command: list[str], grace: float = 30.0, poll: float = 0.1) -> None:
    """Run ``command`` (a Python process that trains with inrkit's Engine) as ``devices`` ranks on
    this machine and wait for all of them; raises :class:`ProcessesFailed` with rank 0's exit code
    (or the first failing one's) when they do not all succeed. Their messages are their own."""
    from torch.distributed import TCPStore

    store = TCPStore("127.0.0.1", 0, devices, is_master=True, wait_for_workers=False)
    alive_r, alive_w = os.pipe()  # this process holds the only write end until every worker has ended
    base = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(store.port), "WORLD_SIZE": str(devices),
            "LOCAL_WORLD_SIZE": str(devices), "GROUP_RANK": "0", "TORCHELASTIC_USE_AGENT_STORE": "True",
            LAUNCHER_ENV: str(alive_r)}
    base.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // devices)))
    procs: list[subprocess.Popen] = []
    signalled: list[int] = []

    def forward(signum, frame):
        signalled.append(signum)
        for p in procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, FORWARDED[signum])
                except ProcessLookupError:
                    pass

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        for rank in range(devices):
            env = {**base, "RANK": str(rank), "LOCAL_RANK": str(rank)}
            procs.append(subprocess.Popen(command, env=env, start_new_session=True, pass_fds=(alive_r,)))
            if signalled:  # a signal while the others were being started
                os.kill(procs[-1].pid, FORWARDED[signalled[0]])
        os.close(alive_r)
        alive_r = None
        codes = _wait(procs, signalled, grace, poll)
        for rank, p in enumerate(procs):
            if p.returncode < 0 and not signalled:  # killed by someone else: it could not say so itself
                print(f"error: the training process of rank {rank} was killed by {signal.Signals(-p.returncode).name}"
                      "; continue with --resume from the newest checkpoint", file=sys.stderr)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        for p in procs:  # only if this launcher itself failed while they ran
            if p.poll() is None:
                p.kill()
                p.wait()
        for fd in (alive_r, alive_w):
            if fd is not None:
                os.close(fd)
        del store
    if any(codes):
        # rank 0's code, or the first failing rank's, skipping peers that only lost it
        raise ProcessesFailed(next((c for c in codes if c and c != PEER_LOST), PEER_LOST))


def _wait(procs: list[subprocess.Popen], signalled: list[int], grace: float, poll: float) -> list[int]:
    failed_at = None
    stopping: list[int] = []
    while any(p.poll() is None for p in procs):
        failed = [p.returncode for p in procs if p.returncode not in (None, 0, *STOPPED_BY_SIGNAL)]
        if failed and not signalled and failed_at is None:
            failed_at = time.monotonic()  # the others may be failing the same way: give them time
        if failed_at is not None:
            waited = time.monotonic() - failed_at
            for sig, after in ((signal.SIGTERM, grace), (signal.SIGKILL, 2 * grace)):
                if waited >= after and sig not in stopping:
                    stopping.append(sig)
                    for p in procs:
                        if p.poll() is None:
                            p.send_signal(sig)
        time.sleep(poll)
    return [128 - p.returncode if p.returncode < 0 else p.returncode for p in procs]  # killed by N: 128 + N


def stop_with_launcher() -> None:
    """In a worker of :func:`launch_local`: one SIGTERM to itself when the launcher dies (its pipe
    closes), so that the worker saves a checkpoint and stops as if the launcher had forwarded it."""
    fd = os.environ.pop(LAUNCHER_ENV, None)  # not for processes this one starts
    if fd is None:
        return
    import threading

    def watch() -> None:
        try:
            while os.read(int(fd), 64):
                pass  # nothing is ever written: only the end of the pipe counts
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="inrkit-launcher-watch", daemon=True).start()
