"""Driver side of the live progress: worker updates reach the bar and the stage's line."""
from __future__ import annotations

import io
import logging

from jobs import progress


def test_worker_updates_drive_the_terminal_bar(monkeypatch, caplog):
    err = io.StringIO()
    monkeypatch.setattr(progress.sys, "stderr", err)
    caplog.set_level(logging.DEBUG, logger="ser.progress")
    with progress.AnalysisProgress(3, tty=True) as p:
        send = progress.report(p.addr)
        send(0, 1800.0)     # a recording of 30 min analysed
        send(1, 0.0)        # its file done
        send(1, 1800.0)     # another file, analysed whole
        p._sock.sendto(b"not ours", p.addr)
        p.finish(3, 3600.0)
    assert (p.inputs, p.audio_s) == (2, 3600.0)
    bar = err.getvalue()
    assert "analysed" in bar and "2/3" in bar and "1.00 h of audio" in bar
    lines = [r.getMessage() for r in caplog.records]
    assert "live progress: workers reported 2/3 inputs, 3600.0 s of audio" in lines
    assert sum(m.startswith("analysed 3/3 inputs (files and archives), 1.00 h of audio") for m in lines) == 1


def test_no_driver_address_sends_nothing():
    progress.report(None)(1, 10.0)  # a no-op, never raises
