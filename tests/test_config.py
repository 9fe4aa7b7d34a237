"""Typed configuration: defaults, the shipped file, and exact error messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from device.apikey import find_api_key
from device.config import (
    EX_CONFIG,
    Config,
    ConfigError,
    LiveConfig,
    config_to_toml,
    load_config,
    parse_config,
)

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config" / "livespeaker.toml"


def livespeaker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "device", *args], capture_output=True, text=True, timeout=60
    )


def test_shipped_config_documents_every_key_with_its_default() -> None:
    assert SHIPPED.read_text() == config_to_toml(Config())
    cfg, _ = load_config(SHIPPED)
    assert cfg == Config()
    lines = SHIPPED.read_text().splitlines()
    for i, line in enumerate(lines):
        if " = " in line and not line.startswith("#"):
            assert lines[i - 1].startswith("#"), f"undocumented key: {line}"


def test_config_check_accepts_the_shipped_file() -> None:
    r = livespeaker("config", "check", str(SHIPPED))
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


def test_typo_exits_78_naming_the_key_and_the_closest_valid_one(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[audio]\ninput_devise = "x"\n')
    r = livespeaker("config", "check", str(bad))
    assert r.returncode == EX_CONFIG
    assert "audio.input_devise" in r.stderr
    assert "did you mean 'input_device'" in r.stderr


def test_wrong_type_names_the_key_and_the_expected_type(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[wakeword]\nthreshold = "high"\n')
    r = livespeaker("--config", str(bad), "config", "show")
    assert r.returncode == EX_CONFIG
    assert "wakeword.threshold" in r.stderr
    assert "expected float" in r.stderr
    assert "'high'" in r.stderr


def test_out_of_range_and_bad_choice_say_what_is_allowed() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"wakeword": {"threshold": 3}, "audio": {"echo_mode": "echo"}})
    text = str(e.value)
    assert "wakeword.threshold: Input should be less than 1, got 3" in text
    assert "audio.echo_mode" in text and "'half_duplex', 'full_duplex', 'aec' or 'auto'" in text


def test_unknown_table_and_broken_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"led: unknown key; did you mean 'leds'"):
        parse_config({"led": {}})
    broken = tmp_path / "broken.toml"
    broken.write_text("[audio\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)
    with pytest.raises(ConfigError, match="cannot read file"):
        load_config(tmp_path / "missing.toml")


def test_config_show_prints_effective_config_and_never_the_key(tmp_path: Path) -> None:
    keyfile = tmp_path / "key"
    keyfile.write_text("AIza-very-secret\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[live]\napi_key_file = "{keyfile}"\nvoice = "Puck"\n')
    r = livespeaker("--config", str(cfg), "config", "show")
    assert r.returncode == 0, r.stderr
    assert 'voice = "Puck"' in r.stdout
    assert "AIza-very-secret" not in r.stdout + r.stderr
    assert "<redacted>" in r.stdout


def test_api_key_lookup_order(tmp_path: Path) -> None:
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "api-key").write_text("from-cred\n")
    (tmp_path / "file").write_text("from-file")
    live = LiveConfig(api_key_file=str(tmp_path / "file"))
    env = {
        "CREDENTIALS_DIRECTORY": str(tmp_path / "creds"),
        "GEMINI_API_KEY": "g",
        "GOOGLE_API_KEY": "o",
    }
    order = []
    for drop in (None, "CREDENTIALS_DIRECTORY", "file", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        if drop == "file":
            live = LiveConfig()
        elif drop:
            env.pop(drop)
        key = find_api_key(live, env)
        order.append(key.value if key else None)
    assert order == ["from-cred", "from-file", "g", "o", None]
    assert "from-cred" not in repr(find_api_key(LiveConfig(), {"GEMINI_API_KEY": "from-cred"}))


def test_config_check_path_does_not_read_the_installed_config(tmp_path: Path) -> None:
    """A broken /etc/livespeaker/config.toml must not fail the check of a good file (provisioning
    checks the new file with the new build before it replaces the broken one). The broken file is
    real: /etc is overlaid in a private mount namespace (root, like CI), the host's /etc is untouched.
    """
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir()
    work.mkdir()
    (upper / "livespeaker").mkdir()
    (upper / "livespeaker" / "config.toml").write_text("[audio\nbroken = \n")
    good = tmp_path / "good.toml"
    good.write_text("[conversation]\nfollow_up_s = 4.0\n")
    script = (
        f"mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc && "
        f'exec "$0" -m device "$@"'
    )

    def in_namespace(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                sys.executable,
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )

    # The namespace really has the broken installed config: the effective config fails.
    r = in_namespace("config", "check")
    assert r.returncode == EX_CONFIG, (r.stdout, r.stderr)
    assert "/etc/livespeaker/config.toml" in r.stderr
    # A good file checks fine regardless, and a bad one is still reported as itself.
    r = in_namespace("config", "check", str(good))
    assert r.returncode == 0, r.stderr
    assert f"{good}: OK" in r.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[conversation]\nfollow_up_s = -1\n")
    r = in_namespace("config", "check", str(bad))
    assert r.returncode == EX_CONFIG
    assert "conversation.follow_up_s" in r.stderr
    assert "/etc/livespeaker" not in r.stderr


def test_with_setting_edits_one_line_and_keeps_the_rest() -> None:
    from device.config import with_setting

    text = '# my speaker\n[audio]\n# how it hears\necho_mode = "full_duplex"  # was\nvolume = 40\n'
    edited = with_setting(text, "audio", "echo_mode", "aec")
    assert edited == '# my speaker\n[audio]\n# how it hears\necho_mode = "aec"\nvolume = 40\n'
    # The key missing: added at the top of its table; the table missing: added at the end.
    assert with_setting("[audio]\nvolume = 40\n", "audio", "echo_mode", "aec") == (
        '[audio]\necho_mode = "aec"\nvolume = 40\n'
    )
    assert with_setting('state_dir = "/tmp/x"\n', "audio", "echo_mode", "auto").endswith(
        '\n[audio]\necho_mode = "auto"\n'
    )
    # A value the config would refuse is an error, and nothing is returned to write.
    with pytest.raises(ConfigError, match="echo_mode"):
        with_setting(text, "audio", "echo_mode", "loud")
