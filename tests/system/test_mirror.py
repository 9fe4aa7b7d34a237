"""The containers' Debian mirror comes from this machine's own apt configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.system.container import apt_mirror

pytestmark = pytest.mark.unit


def test_mirror_is_read_from_deb822_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LIVESPEAKER_DEBIAN_MIRROR", raising=False)
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "debian.sources").write_text(
        "Types: deb\n# a comment: with a colon\nURIs: http://security.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n"
    )
    assert apt_mirror((d, tmp_path / "sources.list")) == "http://mirror.example/debian"


def test_mirror_is_read_from_a_one_line_sources_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LIVESPEAKER_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list").write_text(
        "# deb http://old.example/debian bullseye main\n"
        "deb [signed-by=/k.gpg] http://ftp.example.org/debian bookworm main\n"
    )
    assert apt_mirror((tmp_path / "none.d", tmp_path / "sources.list")) == (
        "http://ftp.example.org/debian"
    )


def test_no_archive_configured_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIVESPEAKER_DEBIAN_MIRROR", raising=False)
    with pytest.raises(LookupError, match="LIVESPEAKER_DEBIAN_MIRROR"):
        apt_mirror((tmp_path / "none.d", tmp_path / "sources.list"))
