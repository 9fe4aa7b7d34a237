"""Errors printed before logging starts carry a journal priority when stderr is the journal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SCRIPT = "from device.logsetup import print_error; print_error('bad config:\\n  - audio.volume')"


def _run(stderr_file: Path, journal_stream: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    if journal_stream is not None:
        env["JOURNAL_STREAM"] = journal_stream
    with stderr_file.open("w") as err:
        subprocess.run([sys.executable, "-c", SCRIPT], env=env, stderr=err, check=True, timeout=60)
    return stderr_file.read_text()


def test_prefix_only_when_stderr_is_the_journal_stream(tmp_path: Path) -> None:
    f = tmp_path / "stderr"
    f.touch()
    st = f.stat()
    assert _run(f, f"{st.st_dev}:{st.st_ino}") == "<3>bad config:\n<3>  - audio.volume\n"
    assert _run(f, None) == "bad config:\n  - audio.volume\n"
    # Inherited by a child whose stderr goes elsewhere: no prefix.
    assert _run(f, f"{st.st_dev}:{st.st_ino + 1}") == "bad config:\n  - audio.volume\n"


def test_setup_logging_replaces_its_own_handler_and_keeps_others() -> None:
    import logging

    from device.logsetup import HANDLER_NAME, setup_logging

    root = logging.getLogger()
    other = logging.NullHandler()
    root.addHandler(other)
    try:
        setup_logging("info", journal=False)
        setup_logging("debug", journal=False)  # e.g. again after a reload
        ours = [h for h in root.handlers if h.get_name() == HANDLER_NAME]
        assert len(ours) == 1
        assert other in root.handlers  # pytest's capture (or anyone's) is not thrown away
        assert root.level == logging.DEBUG
    finally:
        root.removeHandler(other)
