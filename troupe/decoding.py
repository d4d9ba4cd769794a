"""Token ids → text on character boundaries: no generated reply ever holds U+FFFD.

    guard = utf8_guard(tokenizer)               # a logits processor for model.generate
    text = decode(tokenizer, ids)               # the complete characters of a reply
    streamer = CharacterStreamer(tokenizer)     # streamed text, one whole character at a time

Byte-level tokenizers (GPT-2 style: Llama 3, Qwen, SmolLM, the demo's) and SentencePiece ones with
byte fallback (Gemma, Llama 2) split a character outside their vocabulary into byte tokens. A model
can then emit bytes that are not UTF-8 (a lead byte followed by a new character), and a reply cut
by `max_new_tokens` can end half-way through a character; both decode as U+FFFD. The guard masks,
at every step, the tokens whose bytes would not continue valid UTF-8, so generation only writes
text; `decode` and the streamer leave out a last character that is not finished.
"""

import codecs
import json
import re
from functools import cache

BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
# What a pending (unfinished) character allows next: the first byte of each kind of lead, per Unicode's
# table of well-formed UTF-8 (E0, ED, F0 and F4 narrow the range of the byte that follows them).
PENDING_KINDS = (b"\xc3", b"\xe1", b"\xe0", b"\xed", b"\xf1", b"\xf0", b"\xf4")


def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-in character for each byte, reversed (what a byte-level token is made of)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes, extra = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes, strict=True)}


def _decoder_kinds(tokenizer) -> set[str]:
    """The decoder steps of a `tokenizers`-backed tokenizer ('ByteLevel', 'ByteFallback', …)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return set()
    stack, kinds = [json.loads(backend.to_str()).get("decoder") or {}], set()
    while stack:
        step = stack.pop()
        kinds.add(step.get("type"))
        stack += step.get("decoders") or []
    return kinds


@cache
def _token_bytes_cached(tokenizer_key: int, tokenizer) -> tuple[bytes | None, ...]:
    kinds = _decoder_kinds(tokenizer)
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}))
    byte_level = _byte_decoder() if "ByteLevel" in kinds else None
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return tuple(
        None if i in special or piece is None else _piece_bytes(piece, byte_level, "ByteFallback" in kinds)
        for i, piece in enumerate(pieces)
    )


def _piece_bytes(piece: str, byte_level: dict | None, byte_fallback: bool) -> bytes:
    if byte_level is not None and all(ch in byte_level for ch in piece):
        return bytes(byte_level[ch] for ch in piece)
    if byte_fallback and (match := BYTE_TOKEN.match(piece)):
        return bytes([int(match[1], 16)])
    return piece.replace("▁", " ").encode("utf-8", "surrogatepass")


def token_bytes(tokenizer) -> tuple[bytes | None, ...]:
    """The bytes each token id stands for (None for special and added tokens)."""
    return _token_bytes_cached(id(tokenizer), tokenizer)


def _pending(data: bytes) -> bytes | None:
    """The bytes of an unfinished last character of `data` (b"" when it ends on a character
    boundary); None when `data` is not valid UTF-8 (leading continuation bytes are skipped)."""
    data = data.lstrip(bytes(range(0x80, 0xC0)))
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        decoder.decode(data, final=False)
    except UnicodeDecodeError:
        return None
    return decoder.getstate()[0]


def _kind_of(pending: bytes) -> bytes:
    """The representative of PENDING_KINDS that allows the same next bytes as `pending`."""
    need = {0xC: 1, 0xD: 1, 0xE: 2, 0xF: 3}[pending[0] >> 4] - (len(pending) - 1)
    if len(pending) == 1 and pending[:1] in PENDING_KINDS:
        return pending[:1]
    return {1: b"\xc3", 2: b"\xe1", 3: b"\xf1"}[need]


def _allowed_after(prefix: bytes, pieces: tuple[bytes | None, ...]) -> list[bool]:
    """Which tokens may follow `prefix` (b"": a character boundary) and leave valid UTF-8."""
    allowed = []
    for piece in pieces:
        if piece is None:
            allowed.append(not prefix)  # a special token (end of turn) only between characters
        elif piece == b"":
            allowed.append(True)
        elif prefix and not 0x80 <= piece[0] < 0xC0:
            allowed.append(False)  # an unfinished character needs a continuation byte first
        else:
            allowed.append(_valid_prefix(prefix + piece))
    return allowed


def _valid_prefix(data: bytes) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(data, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _tail(ids: list[int], pieces: tuple[bytes | None, ...]) -> bytes:
    """The bytes of the last tokens, back to a special token or 4 bytes (one character at most)."""
    tail = b""
    for token in reversed(ids):
        piece = pieces[token] if 0 <= token < len(pieces) else None
        if piece is None:
            break
        tail = piece + tail
        if len(tail) >= 4:
            break
    return tail


class Utf8Guard:
    """A logits processor (transformers' LogitsProcessor protocol) that lets only tokens that keep
    each row's generated bytes valid UTF-8 be chosen."""

    def __init__(self, tokenizer):
        import torch

        self.pieces = token_bytes(tokenizer)
        self.masks = {kind: torch.tensor(_allowed_after(kind, self.pieces)) for kind in (b"", *PENDING_KINDS)}

    def state(self, ids: list[int]) -> bytes:
        pending = _pending(_tail(ids, self.pieces))
        return b"" if not pending else _kind_of(pending)

    def __call__(self, input_ids, scores):
        for row, ids in enumerate(input_ids.tolist()):
            mask = self.masks[self.state(ids)].to(scores.device)
            width = min(mask.shape[0], scores.shape[1])
            scores[row, :width] = scores[row, :width].masked_fill(~mask[:width], float("-inf"))
        return scores


def utf8_guard(tokenizer) -> list:
    """[Utf8Guard] for `logits_processor=` (a LogitsProcessorList), or [] for a tokenizer whose tokens are
    whole characters anyway (no byte pieces)."""
    from transformers import LogitsProcessorList

    pieces = token_bytes(tokenizer)
    if all(piece is None or _pending(piece) == b"" for piece in pieces):
        return LogitsProcessorList()
    return LogitsProcessorList([Utf8Guard(tokenizer)])


def complete(tokenizer, ids: list[int]) -> list[int]:
    """`ids` without a last character that is not finished (a reply cut by max_new_tokens)."""
    pieces = token_bytes(tokenizer)
    end = len(ids)
    while end and _pending(_tail(ids[:end], pieces)):
        end -= 1
    return ids[:end]


def decode(tokenizer, ids: list[int], skip_special_tokens: bool = True) -> str:
    """The text of the complete characters of `ids`."""
    return tokenizer.decode(complete(tokenizer, ids), skip_special_tokens=skip_special_tokens)


def character_streamer(tokenizer, **decode_kwargs):
    """A TextIteratorStreamer that never sends part of a character: text is sent once its characters
    are complete, and an unfinished last character is left out at the end."""
    from transformers import TextIteratorStreamer

    class CharacterStreamer(TextIteratorStreamer):
        def put(self, value):
            if self.skip_prompt and self.next_tokens_are_prompt:
                super().put(value)
                return
            self.token_cache.extend(value.reshape(-1).tolist())
            done = complete(self.tokenizer, self.token_cache)
            text = self.tokenizer.decode(done, **self.decode_kwargs)
            printable = text[self.print_len :]
            self.print_len += len(printable)
            self.on_finalized_text(printable)

        def end(self):
            done = complete(self.tokenizer, self.token_cache)
            text = self.tokenizer.decode(done, **self.decode_kwargs) if done else ""
            self.token_cache, printable, self.print_len = [], text[self.print_len :], 0
            self.next_tokens_are_prompt = True
            self.on_finalized_text(printable, stream_end=True)

    return CharacterStreamer(tokenizer, skip_prompt=True, **decode_kwargs)
