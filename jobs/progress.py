"""Progress of a run, stage by stage: listed → analysed n/N (audio hours) → written.

Every stage ends with one log line (``ser.progress``, INFO), which is what a cron log
gets. On a terminal the analysis stage also shows a live bar (tqdm, on stderr).

Live counts come from the Python workers as UDP datagrams to the driver (one per
finished input and per analysed recording, a few bytes, fire and forget): Spark merges
accumulators only when a task ends, and a run has about one task per core, so they
would jump from 0 to N. A lost datagram only delays the bar; the stage's line reports
the counts from the analysis rows themselves.
"""
from __future__ import annotations

import logging
import socket
import sys
import threading
import time

log = logging.getLogger("ser.progress")


def report(addr: tuple[str, int] | None):
    """Worker side: a function ``(inputs_done, audio_s) -> None`` sending one update to
    the driver at ``addr`` (None: a no-op). Never raises, never blocks."""
    if addr is None:
        return lambda inputs_done, audio_s: None
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)

    def send(inputs_done: int, audio_s: float) -> None:
        try:
            sock.sendto(f"{int(inputs_done)} {float(audio_s):.3f}".encode(), addr)
        except OSError:
            pass  # progress is best effort
    return send


class AnalysisProgress:
    """Driver side of the analysis stage: listens for worker updates while it is open.

    Usage::

        with AnalysisProgress(n_inputs, host) as p:
            ...  # run the Spark action; workers send to p.addr
            p.finish(n_read, audio_s)   # the authoritative counts, logged as the stage's line
    """

    def __init__(self, total: int, host: str = "127.0.0.1", tty: bool | None = None):
        self.total, self.inputs, self.audio_s = total, 0, 0.0
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.addr: tuple[str, int] | None = None
        self._sock = self._thread = self._bar = None
        self._stop = threading.Event()
        self._t0 = time.time()
        try:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.bind((host, 0))
            self._sock.settimeout(0.2)
            self.addr = self._sock.getsockname()
        except OSError as err:  # no live progress, the stage's line still comes
            log.debug("no live progress (cannot listen on %s: %s)", host, err)
            self._sock = None

    def __enter__(self) -> "AnalysisProgress":
        if self.tty:
            from tqdm import tqdm
            self._bar = tqdm(total=self.total, desc="analysed", unit=" inputs", file=sys.stderr, leave=True,
                             dynamic_ncols=True, postfix="0.00 h of audio")
        if self._sock is not None:
            self._thread = threading.Thread(target=self._listen, name="ser-progress", daemon=True)
            self._thread.start()
        return self

    def _take(self, data: bytes) -> None:
        try:
            n, s = data.split()
            n, s = int(n), float(s)
        except ValueError:
            return  # not ours
        self.inputs, self.audio_s = self.inputs + n, self.audio_s + s
        if self._bar is not None:
            self._bar.update(n)
            self._bar.set_postfix_str(f"{self.audio_s / 3600:.2f} h of audio", refresh=False)

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                self._take(self._sock.recv(256))
            except (socket.timeout, BlockingIOError):
                continue
            except OSError:
                return

    def close(self) -> None:
        """Stop listening, after taking the updates already received."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._sock.setblocking(False)
            while True:
                try:
                    self._take(self._sock.recv(256))
                except OSError:
                    break
        if self._sock is not None:
            self._sock.close()
        if self._bar is not None:
            self._bar.close()
        self._thread = self._sock = self._bar = None

    def finish(self, inputs: int, audio_s: float) -> None:
        """End the stage with the authoritative counts: one log line."""
        self.close()
        log.debug("live progress: workers reported %d/%d inputs, %.1f s of audio", self.inputs, self.total,
                  self.audio_s)
        log.info("analysed %d/%d inputs (files and archives), %.2f h of audio, in %.1f s", inputs, self.total,
                 audio_s / 3600, time.time() - self._t0)

    def __exit__(self, *exc) -> None:
        self.close()
