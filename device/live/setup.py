"""From our config to the SDK's: the genai Client (endpoint, TLS) and the LiveConnectConfig."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any

from google import genai
from google.genai import types

from device.config import LiveConfig
from device.events import ToolSpec

PING_INTERVAL_S = 20.0
PING_TIMEOUT_S = 45.0
"""The service's pongs have been seen 8-30 s late: a shorter timeout closes healthy links (1011).
A dead link with a turn in flight is noticed sooner by the data watch (device.live.link.STALL_S)."""
CLOSE_TIMEOUT_S = 2.0
"""websockets waits this long for the server's close frame (then drops the TCP connection)."""

_START = {
    "low": types.StartSensitivity.START_SENSITIVITY_LOW,
    "high": types.StartSensitivity.START_SENSITIVITY_HIGH,
}
_END = {
    "low": types.EndSensitivity.END_SENSITIVITY_LOW,
    "high": types.EndSensitivity.END_SENSITIVITY_HIGH,
}


def make_client(live: LiveConfig, api_key: str) -> genai.Client:
    """A genai Client for the configured endpoint (Google's, or a local simulator over TLS)."""
    # Never through a proxy for a loopback simulator; websockets >= 15 honours HTTPS_PROXY.
    args: dict[str, Any] = {
        "ping_interval": PING_INTERVAL_S,
        "ping_timeout": PING_TIMEOUT_S,
        "close_timeout": CLOSE_TIMEOUT_S,
    }
    if live.ca_file:
        args["ssl"] = ssl.create_default_context(cafile=live.ca_file)
    if live.base_url:
        args["proxy"] = None
    options = types.HttpOptions(
        api_version=live.api_version,
        base_url=live.base_url or None,
        async_client_args=args,
    )
    return genai.Client(api_key=api_key, vertexai=False, http_options=options)


def connect_config(
    live: LiveConfig, tools: Sequence[ToolSpec] = (), handle: str | None = None, note: str = ""
) -> types.LiveConnectConfig:
    """The session setup: audio replies, voice, transcripts, server VAD, compression, resumption;
    `note` (what happened on the device meanwhile) follows the system instruction."""
    tool_list: list[Any] = []
    if live.google_search:
        tool_list.append(types.Tool(google_search=types.GoogleSearch()))
    if tools:
        decls = [
            types.FunctionDeclaration(
                name=t.name,
                description=t.description,
                parameters_json_schema=t.parameters or None,
            )
            for t in tools
        ]
        tool_list.append(types.Tool(function_declarations=decls))
    return types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        speech_config=types.SpeechConfig(
            voice_config=types.VoiceConfig(
                prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=live.voice)
            ),
            language_code=live.language_code,
        ),
        system_instruction=types.Content(
            role="user",
            parts=[types.Part(text=f"{live.system_instruction}\n\n{note}".strip())],
        ),
        input_audio_transcription=types.AudioTranscriptionConfig(),
        output_audio_transcription=types.AudioTranscriptionConfig(),
        realtime_input_config=types.RealtimeInputConfig(
            automatic_activity_detection=types.AutomaticActivityDetection(
                disabled=False,
                start_of_speech_sensitivity=_START[live.vad_start_sensitivity],
                end_of_speech_sensitivity=_END[live.vad_end_sensitivity],
                prefix_padding_ms=live.vad_prefix_padding_ms,
                silence_duration_ms=live.vad_silence_ms,
            ),
            activity_handling=types.ActivityHandling.START_OF_ACTIVITY_INTERRUPTS,
        ),
        context_window_compression=types.ContextWindowCompressionConfig(
            trigger_tokens=live.compression_trigger_tokens,
            sliding_window=types.SlidingWindow(target_tokens=live.compression_target_tokens),
        ),
        session_resumption=types.SessionResumptionConfig(handle=handle),
        tools=tool_list or None,
    )
