"""llama.cpp's own converters, as llama.cpp ships them, and llama.cpp itself (llama-cpp-python).

    python -m troupe.llama_cpp convert_hf_to_gguf.py <its arguments>   # what `troupe export` runs

`make setup` unpacks the converters (convert_hf_to_gguf.py, convert_lora_to_gguf.py, their
`conversion` package and gguf-py) from the source package of the pinned llama-cpp-python into
.venv/share/llama.cpp/, and builds llama-cpp-python itself, which loads what they write.

One thing is added to the converter. llama.cpp names a byte-level BPE tokenizer's pre-tokenizer (how
text is split before merging) by hashing the token ids of a test string, so a vocabulary it has
never seen — the demo's, trained here — stops the conversion. When such a tokenizer splits text
with GPT-2's byte-level rule, which is what the name stands for, it is named "gpt-2" and llama.cpp
applies that rule; any other pre-tokenizer stays an error.
"""

import contextlib
import runpy
import sys
from pathlib import Path

from troupe.errors import TroupeError

SCRIPTS = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py")


def converters_dir() -> Path:
    """.venv/share/llama.cpp: where `make setup` put llama.cpp's converters."""
    folder = Path(sys.prefix) / "share" / "llama.cpp"
    if not all((folder / name).is_file() for name in SCRIPTS):
        raise TroupeError(f"llama.cpp's converters are not in {folder}; run: make setup")
    return folder


def command(script: str, *args: str) -> list[str]:
    """The command line that runs one of llama.cpp's converters through this module."""
    return [sys.executable, "-m", "troupe.llama_cpp", script, *args]


def load(gguf: Path, lora: Path | None = None, context: int = 2048):
    """llama.cpp (llama-cpp-python's Llama) on a GGUF file, with a LoRA GGUF applied if given, logits
    kept for every position. Weights are not repacked (llama.cpp's `--no-repack`): on this project's
    CPU machines (Xeon with AMX), decoding a Q8_0 file through the repacked weights crashes the
    process (a segmentation fault in llama_decode); without repacking the same file decodes."""
    import llama_cpp
    import llama_cpp.llama_cpp as low_level

    defaults = low_level.llama_model_default_params

    def without_repacking():
        params = defaults()
        params.use_extra_bufts = False
        return params

    with _replaced(low_level, "llama_model_default_params", without_repacking):
        return llama_cpp.Llama(
            model_path=str(gguf), lora_path=str(lora) if lora else None, n_ctx=context, logits_all=True, verbose=False
        )


@contextlib.contextmanager
def _replaced(module, name: str, value):
    original = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)


def is_gpt2_split(tokenizer) -> bool:
    """Whether a transformers tokenizer splits text as GPT-2 does: byte-level, GPT-2's regular
    expression, no space added in front."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    split = getattr(backend, "pre_tokenizer", None)
    return type(split).__name__ == "ByteLevel" and split.use_regex and not split.add_prefix_space


def _name_gpt2_splits() -> None:
    from conversion.base import TextModel

    recognise = TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer) -> str:
        try:
            return recognise(self, tokenizer)
        except NotImplementedError:
            if is_gpt2_split(tokenizer):
                return "gpt-2"
            raise

    TextModel.get_vocab_base_pre = get_vocab_base_pre


def main(argv: list[str]) -> None:
    script, *args = argv
    if script not in SCRIPTS:
        raise SystemExit(f"troupe.llama_cpp runs {' or '.join(SCRIPTS)}, not {script!r}")
    folder = converters_dir()
    sys.path[:0] = [str(folder), str(folder / "gguf-py")]
    _name_gpt2_splits()
    sys.argv = [str(folder / script), *args]
    runpy.run_path(str(folder / script), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
