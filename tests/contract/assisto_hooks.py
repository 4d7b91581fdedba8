"""Schemathesis hooks of the contract test (tests/tests/it/contract.rs): bodies for the
media types it cannot make up itself (the embed's voice messages)."""
import schemathesis


@schemathesis.serializer("audio/webm", "audio/ogg")
def audio(ctx, value):
    # Any bytes: the service must refuse what is not a recording with a documented answer.
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")
