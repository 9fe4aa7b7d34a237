"""Typed configuration: one pydantic model per TOML table, loaded and validated at start.

An unknown key, a wrong type or a value out of range fails with its dotted key, the bad value and
what is allowed (plus the closest valid key for a typo); the CLI turns that into exit status 78.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SYSTEM_CONFIG_PATH = Path("/etc/livespeaker/config.toml")
EX_CONFIG = 78


class _Table(BaseModel):
    """Base for every table: frozen, unknown keys rejected, attribute docstrings kept."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


DeviceRef = str | int
"""An audio device: a substring of its name, or its PortAudio index; "" means the system default."""


class EchoMode(StrEnum):
    """How the microphone is treated while the speaker plays."""

    HALF_DUPLEX = "half_duplex"
    """Nothing is streamed to the server while the speaker plays (plus a tail); wake word still runs."""
    FULL_DUPLEX = "full_duplex"
    """Stream all the time: for headsets or hardware echo cancellation."""
    AEC = "aec"
    """Cancel the speaker's echo on the device (WebRTC AEC3) and stream all the time: talk over
    an answer without the wake word; the server's voice activity detection decides barge-in."""
    AUTO = "auto"
    """Chosen at start from the last `livespeaker doctor` measurement of the room: aec when the
    canceller removes 25 dB or more of the echo, full_duplex when the microphone does not hear
    the speaker, else (and before any measurement) half_duplex."""

    @property
    def streams_while_playing(self) -> bool:
        """Whether the upload stays open while the speaker plays (auto: decided at start)."""
        return self in (EchoMode.FULL_DUPLEX, EchoMode.AEC)


class LiveConfig(_Table):
    """[live]: the Gemini Live API session."""

    model: str = "gemini-3.8-live"
    """Live model name (without the models/ prefix)."""
    voice: str = "Kore"
    """Prebuilt voice name."""
    language_code: str = "en-US"
    """BCP-47 language of the speech output."""
    system_instruction: str = (
        "You are a friendly voice assistant on a small smart speaker. "
        "Answer briefly and conversationally: your answers are spoken aloud."
    )
    """System instruction sent with every session."""
    base_url: str = ""
    """Endpoint; empty means Google's. e.g. https://127.0.0.1:8443 for the local simulator."""
    ca_file: str = ""
    """Extra CA bundle (PEM) trusted for base_url, for local simulators."""
    api_key_file: str = ""
    """File holding the API key (used when no systemd credential is given)."""
    api_version: Literal["v1alpha", "v1beta", "v1"] = "v1beta"
    """API version in the websocket path."""
    connect_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    """Bound on connect + setupComplete (the SDK would wait forever)."""
    resume_window_s: Annotated[float, Field(ge=0, le=86400)] = 7200.0
    """How long a saved resumption handle is used after it was issued; 0 disables resumption."""
    google_search: bool = False
    """Let the model ground answers with Google Search."""
    vad_silence_ms: Annotated[int, Field(ge=100, le=5000)] = 700
    """Server VAD: silence that ends the user's turn."""
    vad_prefix_padding_ms: Annotated[int, Field(ge=0, le=2000)] = 100
    """Server VAD: speech needed before a start of speech is committed."""
    vad_start_sensitivity: Literal["low", "high"] = "high"
    """Server VAD start-of-speech sensitivity."""
    vad_end_sensitivity: Literal["low", "high"] = "high"
    """Server VAD end-of-speech sensitivity."""
    compression_trigger_tokens: Annotated[int, Field(ge=1000)] = 25600
    """Context window compression starts at this many tokens (sliding window)."""
    compression_target_tokens: Annotated[int, Field(ge=500)] = 12800
    """Tokens kept by the sliding window."""
    retry_initial_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    """First backoff after a transient failure (doubles, with jitter)."""
    retry_max_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    """Longest backoff after transient failures."""
    quota_backoff_s: Annotated[float, Field(gt=0, le=86400)] = 300.0
    """Backoff after a quota error."""


class AudioConfig(_Table):
    """[audio]: microphone and speaker."""

    input_device: DeviceRef = ""
    """Microphone: name substring or PortAudio index; "" = system default."""
    output_device: DeviceRef = ""
    """Speaker: name substring or PortAudio index; "" = system default."""
    block_ms: Annotated[int, Field(ge=10, le=100)] = 20
    """Microphone block size delivered to the app (also the upload chunk: 20-40 ms)."""
    output_block_ms: Annotated[int, Field(ge=5, le=100)] = 10
    """Speaker block: what the writer writes at a time, or the callback's block with `aec` (the
    device buffer holds a few of them)."""
    output_latency_ms: Annotated[int, Field(ge=10, le=500)] = 40
    """Speaker device buffer: how far ahead of the DAC the writer (or callback) may be; a reply
    starting from silence does not wait behind it. Higher stutters less on a busy CPU."""
    output_idle_pause_s: Annotated[float, Field(ge=0, le=3600)] = 5.0
    """With `echo_mode = "aec"` (a callback stream): stop the output stream after this long with
    nothing to play outside a conversation (no callbacks, no CPU while idle); the next sound
    starts it again. 0: never stop it. Other modes write only when there is something to play."""
    echo_mode: EchoMode = EchoMode.HALF_DUPLEX
    """half_duplex: no upload while the speaker plays; full_duplex: always upload; aec: cancel
    the speaker's echo on the device and always upload (needs block_ms in 10 ms steps); auto:
    chosen at start from the last doctor measurement of the room (half_duplex before one)."""
    echo_tail_ms: Annotated[int, Field(ge=0, le=3000)] = 300
    """Half duplex: keep the upload closed this long after playback ends (room echo)."""
    earcon_tail_ms: Annotated[int, Field(ge=0, le=3000)] = 150
    """Half duplex: the same after a short sound (the wake chime, an error sound): its echo's
    delay and the loud part of its reverberation, no more, so a user who answers the chime at
    once keeps the start of the question. At most echo_tail_ms."""
    volume: Annotated[int, Field(ge=0, le=100)] = 70
    """Initial software volume in percent (the last level set is persisted in state_dir)."""
    earcons: bool = True
    """Play short sounds for wake, end, mute and errors."""

    @model_validator(mode="after")
    def _aec_blocks(self) -> AudioConfig:
        if self.echo_mode in (EchoMode.AEC, EchoMode.AUTO) and self.block_ms % 10:
            raise ValueError(
                f'echo_mode = "{self.echo_mode.value}" needs block_ms in steps of 10 ms '
                f"(got {self.block_ms})"
            )
        return self


class WakeAudience(StrEnum):
    """Who may wake the speaker by voice."""

    ANYONE = "anyone"
    ENROLLED = "enrolled"


class WakewordConfig(_Table):
    """[wakeword]: local wake word detection (openWakeWord)."""

    model: str = "hey_jarvis"
    """Built-in name (hey_jarvis, alexa, hey_mycroft, hey_rhasspy, okay_nabu) or a .tflite/.onnx path."""
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    """Score that counts as a detection (in quiet surroundings)."""
    noisy_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.02
    """With noise_suppression: threshold in steady loud noise (suppression lowers all scores there)."""
    trigger_frames: Annotated[int, Field(ge=1, le=20)] = 1
    """80 ms frames at or above threshold needed to trigger."""
    noisy_trigger_frames: Annotated[int, Field(ge=1, le=20)] = 2
    """With noise_suppression: frames at or above the (lower) threshold needed in steady loud noise."""
    refractory_s: Annotated[float, Field(ge=0, le=30)] = 2.0
    """No new detection for this long after one."""
    barge_in_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.8
    """Higher threshold while the speaker plays, so its own voice does not trigger."""
    preroll_s: Annotated[float, Field(ge=0.5, le=10)] = 3.0
    """Ring buffer of recent microphone audio kept for the question after the wake word."""
    noise_suppression: bool = False
    """Clean the wake word path's audio before scoring (off: on a broad evaluation it gained
    little and added false accepts on speech over music)."""
    second_stage: bool = True
    """Let the trained second stage decide (hey_jarvis has one): it catches wake words the base
    model scores low in noise and rooms, and rejects ordinary speech the base model would accept.
    Not used with noise_suppression (it was trained on the plain features)."""
    micro_wake_word: bool = True
    """Also listen with microWakeWord's model for the same wake word (hey_jarvis, alexa, hey_mycroft
    and okay_nabu have one), at the cutoff its author ships: a wake word either model is sure of
    counts. On voices never used to tune anything it caught 1-13 points more of the wake words in
    10 dB noise and rooms (mean 6), with no more false accepts (README)."""
    who_can_wake: WakeAudience = WakeAudience.ANYONE
    """anyone (enrolled voices also wake it when the base model alone would miss them), or
    enrolled (only voices enrolled with `livespeaker wakeword enroll`; the button always works)."""


class ConversationConfig(_Table):
    """[conversation]: how long a conversation stays open."""

    follow_up_s: Annotated[float, Field(ge=0, le=60)] = 8.0
    """After an answer, keep listening this long without the wake word."""
    max_conversation_s: Annotated[float, Field(ge=10, le=3600)] = 300.0
    """Hard limit on one conversation."""
    no_speech_timeout_s: Annotated[float, Field(ge=1, le=60)] = 8.0
    """End a conversation that was opened but never heard a question."""


class GpioConfig(_Table):
    """[gpio]: the pin library."""

    pin_factory: str = "auto"
    """auto (real pins on a Pi, mock pins elsewhere), mock, or a gpiozero factory (lgpio, rpigpio, native)."""


class LedMode(StrEnum):
    """Which LEDs are wired."""

    NONE = "none"
    SINGLE = "single"
    PWM = "pwm"
    RGB = "rgb"
    PER_STATE = "per_state"


class LedsConfig(_Table):
    """[leds]: status LEDs (BCM pin numbers)."""

    mode: LedMode = LedMode.RGB
    """none, single (on/off LED), pwm (dimmable LED), rgb, or per_state (one LED per state)."""
    pin: Annotated[int, Field(ge=0, le=27)] = 25
    """single/pwm: the LED's pin."""
    red_pin: Annotated[int, Field(ge=0, le=27)] = 17
    """rgb: red pin."""
    green_pin: Annotated[int, Field(ge=0, le=27)] = 27
    """rgb: green pin."""
    blue_pin: Annotated[int, Field(ge=0, le=27)] = 22
    """rgb: blue pin."""
    listening_pin: Annotated[int, Field(ge=0, le=27)] = 5
    """per_state: lit while microphone audio is streamed."""
    responding_pin: Annotated[int, Field(ge=0, le=27)] = 6
    """per_state: lit while the answer plays."""
    error_pin: Annotated[int, Field(ge=0, le=27)] = 13
    """per_state: lit (or blinking) on errors and while muted."""
    active_high: bool = True
    """False for common-anode RGB LEDs or LEDs wired to 3V3."""


class ButtonConfig(_Table):
    """[button]: the hardware button."""

    enabled: bool = True
    """Whether a button is wired."""
    pin: Annotated[int, Field(ge=0, le=27)] = 23
    """BCM pin of the button."""
    pull_up: bool = True
    """True: button between the pin and GND (internal pull-up)."""
    hold_s: Annotated[float, Field(ge=0.5, le=10)] = 2.0
    """Holding this long toggles mute."""
    bounce_s: Annotated[float, Field(ge=0, le=0.5)] = 0.05
    """Debounce time."""


class PrivacyConfig(_Table):
    """[privacy]: what the device keeps about conversations (see README: what leaves the device)."""

    log_transcripts: bool = False
    """Write what was said and answered to the journal (debug level), for debugging only."""
    ledger_days: Annotated[int, Field(ge=1, le=3650)] = 30
    """The upload ledger (one line per connection: when, why, how much) keeps this many days."""
    ledger_max_kb: Annotated[int, Field(ge=16, le=65536)] = 1024
    """The upload ledger's size bound in KiB (the oldest records go first)."""


class TimersConfig(_Table):
    """[timers]: timers and alarms the model sets with local tools; the device rings them."""

    grace_s: Annotated[float, Field(ge=0, le=86400)] = 300.0
    """A timer or alarm found due this late (the daemon was down, the clock jumped) still rings;
    later ones are reported as missed."""
    ring_timeout_s: Annotated[float, Field(ge=1, le=3600)] = 300.0
    """Ringing stops by itself after this long."""
    volume_floor: Annotated[int, Field(ge=0, le=100)] = 50
    """The ring plays at least this loud (percent), whatever the speaker's volume."""


class MqttConfig(_Table):
    """[mqtt]: several speakers in one home (wake arbitration) and Home Assistant, through an MQTT
    broker. No host: the speaker works alone and never connects."""

    host: str = ""
    """Broker host name or address; "" turns the whole table off."""
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    """Broker port (8883 is the usual one for TLS)."""
    tls: bool = False
    """Connect with TLS (the system's CAs, plus ca_file)."""
    ca_file: str = ""
    """Extra CA bundle (PEM) trusted for the broker."""
    credentials_file: str = ""
    """File holding 'username:password' (a systemd credential named mqtt is used first)."""
    speaker_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{0,64}$")] = ""
    """This speaker's name in the home (letters, digits, '-', '_'); "" = the host name."""
    topic_prefix: str = "livespeaker"
    """Topics: PREFIX/SPEAKER/... for state and commands, PREFIX/wake for arbitration."""
    discovery_prefix: str = "homeassistant"
    """Home Assistant's discovery prefix; "" publishes no discovery."""
    arbitration_ms: Annotated[int, Field(ge=0, le=500)] = 150
    """After hearing the wake word, wait this long for the other speakers' claims; the best placed
    one answers. Detectors of speakers in one room fire up to a couple of 80 ms frames apart: with
    120 the loudest was late once in 20 trials on the rig. 0: no arbitration (every speaker
    answers its own wake-ups)."""
    reconnect_max_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    """Longest wait between reconnection attempts (doubling from 1 s)."""


class Config(_Table):
    """The whole configuration file."""

    state_dir: str = "/var/lib/livespeaker"
    """Where the resumption handle, volume, mute state and the upload ledger are kept."""
    live: LiveConfig = LiveConfig()
    audio: AudioConfig = AudioConfig()
    wakeword: WakewordConfig = WakewordConfig()
    conversation: ConversationConfig = ConversationConfig()
    gpio: GpioConfig = GpioConfig()
    leds: LedsConfig = LedsConfig()
    button: ButtonConfig = ButtonConfig()
    privacy: PrivacyConfig = PrivacyConfig()

    timers: TimersConfig = TimersConfig()
    mqtt: MqttConfig = MqttConfig()


class ConfigError(Exception):
    """The configuration could not be read or is invalid; str() is the message for the user."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"invalid configuration in {source}:"] + [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The table model that holds the key at loc[:-1]."""
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def _describe(err: Any) -> str:
    loc: tuple[int | str, ...] = tuple(err["loc"])
    key = ".".join(str(p) for p in loc)
    value = err.get("input")
    if err["type"] == "extra_forbidden":
        model = _model_at(loc)
        known = sorted(model.model_fields) if model else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"{key}: unknown key{hint} (valid keys here: {', '.join(known)})"
    msg = err["msg"]
    if err["type"] in {
        "string_type",
        "int_type",
        "float_type",
        "bool_type",
        "int_parsing",
        "float_parsing",
        "bool_parsing",
        "model_type",
        "dict_type",
    }:
        expected = err["type"].split("_")[0].replace("model", "table").replace("dict", "table")
        return f"{key}: expected {expected}, got {value!r} ({type(value).__name__}): {msg}"
    return f"{key}: {msg}, got {value!r}"


def parse_config(data: dict[str, Any], source: str = "<config>") -> Config:
    """Validate a parsed TOML document."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(e) for e in exc.errors()]) from None


def load_config(path: str | os.PathLike[str] | None = None) -> tuple[Config, str]:
    """Load from path, else the system config if it exists, else built-in defaults.

    Returns the config and where it came from.
    """
    if path is None:
        if not SYSTEM_CONFIG_PATH.exists():
            return Config(), "built-in defaults"
        path = SYSTEM_CONFIG_PATH
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [f"cannot read file: {exc.strerror or exc}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(p), [f"not valid TOML: {exc}"]) from None
    return parse_config(data, str(p)), str(p)


def config_to_toml(cfg: Config, *, comments: bool = True) -> str:
    """Render a configuration as TOML, each key under its documentation comment.

    The shipped config/livespeaker.toml is exactly this for the defaults (a test keeps it so).
    No secrets are part of the config, so nothing needs redacting here.
    """
    out: list[str] = [
        "# livespeaker configuration. Every key is optional; shown here with its default.",
        "# Secrets (the API key) never go in this file: see README.md.",
        "",
    ]
    tables: list[tuple[str, BaseModel]] = []
    for name, field in Config.model_fields.items():
        value = getattr(cfg, name)
        if isinstance(value, BaseModel):
            tables.append((name, value))
            continue
        if comments and field.description:
            out += _comment(field.description)
        out.append(f"{name} = {_toml_value(value)}")
    for name, table in tables:
        out.append("")
        if comments and type(table).__doc__:
            out += _comment(type(table).__doc__ or "")
        out.append(f"[{name}]")
        for key, field in type(table).model_fields.items():
            if comments and field.description:
                out += _comment(field.description)
            out.append(f"{key} = {_toml_value(getattr(table, key))}")
    return "\n".join(out) + "\n"


def _comment(text: str) -> list[str]:
    """A (possibly multi-line) docstring as TOML comment lines."""
    return [f"# {line.strip()}".rstrip() for line in text.strip().splitlines()]


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, StrEnum):
        v = v.value
    if isinstance(v, int | float):
        return repr(v)
    s = str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{s}"'


def with_setting(text: str, table: str, key: str, value: str) -> str:
    """The config file's text with `[table] key` set to the string `value` (comments and
    everything else kept): the key's line is replaced, or added at the top of its table, or the
    table is added at the end. Raises ConfigError if the result does not validate."""
    line = f"{key} = {_toml_value(value)}"
    lines = text.splitlines()
    header = re.compile(r"^\s*\[\s*([A-Za-z0-9_.]+)\s*\]\s*(#.*)?$")
    setting = re.compile(rf"^\s*{re.escape(key)}\s*=")
    current = ""
    table_at: int | None = None
    for i, raw in enumerate(lines):
        if m := header.match(raw):
            current = m[1]
            if current == table:
                table_at = i
            continue
        if current == table and setting.match(raw):
            lines[i] = line
            break
    else:
        if table_at is None:
            lines += ["", f"[{table}]", line]
        else:
            lines.insert(table_at + 1, line)
    out = "\n".join(lines) + "\n"
    try:
        data = tomllib.loads(out)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("<edited config>", [f"not valid TOML: {exc}"]) from None
    parse_config(data, "<edited config>")
    return out
