"""Server content -> session events; each turn's usage is logged once (its words only with
privacy.log_transcripts: device.privacy.transcripts)."""

from __future__ import annotations

import logging

from google.genai import types

from device.events import (
    GenerationCompleted,
    InputTranscribed,
    ModelAudio,
    OutputTranscribed,
    ServerInterrupted,
    SessionEvent,
    TurnCompleted,
    Usage,
)
from device.live.link import Link
from device.live.model_audio import ModelAudioIn
from device.privacy.transcripts import Transcripts

log = logging.getLogger("device.live.session")


class TurnLog:
    """Translates serverContent and collects what was said in the current turn."""

    def __init__(self, transcripts: Transcripts | None = None) -> None:
        self._transcripts = transcripts or Transcripts(False)
        self.audio = ModelAudioIn()
        self.user_text: list[str] = []
        self.model_text: list[str] = []

    def content(
        self, link: Link, sc: types.LiveServerContent, usage: types.UsageMetadata | None
    ) -> list[SessionEvent]:
        out: list[SessionEvent] = []
        if sc.input_transcription and sc.input_transcription.text:
            link.turn_started()
            link.received_text(sc.input_transcription.text)
            self.user_text.append(sc.input_transcription.text)
            out.append(InputTranscribed(sc.input_transcription.text))
        for part in sc.model_turn.parts or [] if sc.model_turn else []:
            if part.inline_data and part.inline_data.data:
                pcm = self.audio.take(part.inline_data.mime_type, part.inline_data.data)
                if pcm:
                    link.answer_audio(len(pcm))
                    out.append(ModelAudio(pcm))
        if sc.output_transcription and sc.output_transcription.text:
            link.turn_started()
            link.received_text(sc.output_transcription.text)
            self.model_text.append(sc.output_transcription.text)
            out.append(OutputTranscribed(sc.output_transcription.text))
        if sc.interrupted:
            link.end_turn()
            self.audio.end_turn()  # what the resampler held of the interrupted answer: dropped
            out.append(ServerInterrupted())
        if sc.generation_complete:
            out.append(GenerationCompleted())
        if sc.turn_complete:
            tail = self.audio.end_turn()
            if tail:
                link.answer_audio(len(tail))
                out.append(ModelAudio(tail))
            link.end_turn()
            out.append(TurnCompleted(self._log_turn(usage)))
        return out

    def _log_turn(self, usage: types.UsageMetadata | None) -> Usage | None:
        u = None
        if usage is not None:
            u = Usage(
                usage.prompt_token_count or 0,
                usage.response_token_count or 0,
                usage.total_token_count or 0,
            )
        user, model = "".join(self.user_text).strip(), "".join(self.model_text).strip()
        self.user_text.clear()
        self.model_text.clear()
        log.info(
            "turn: %s tokens",
            u.total_tokens if u else "?",
            extra={
                "PROMPT_TOKENS": u.prompt_tokens if u else 0,
                "RESPONSE_TOKENS": u.response_tokens if u else 0,
                "TOTAL_TOKENS": u.total_tokens if u else 0,
            },
        )
        self._transcripts.turn(user, model)
        return u
