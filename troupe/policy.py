"""What a recipe from a stranger may not do without the user's explicit `--allow-unsafe`
(`ALLOW_UNSAFE=1`): run code, reach outside the project, or publish the user's work.

Checked by `troupe check`, `troupe import` and every pipeline step, one clear line per finding:
- `trust_remote_code: true` (runs the model repository's Python code);
- `plugins` other than Axolotl's own integrations (`axolotl.integrations.…`);
- a dataset `type` that names Python code instead of one of Axolotl's prompt strategies;
- paths (output_dir, deepspeed, fsdp, chat_template_jinja, lora_model_dir, dataset paths,
  troupe.source files …) that are absolute, contain `..`, or lead outside the project;
- `base_model` as a local folder outside the project;
- upload keys (`hub_model_id`, `push_dataset_to_hub`, `hub_strategy`);
- `troupe.source.base_url` on anything but https (http only for 127.0.0.1 / localhost).
"""

import functools
import pkgutil
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from troupe.errors import Problem

UPLOAD_KEYS = ("hub_model_id", "push_dataset_to_hub", "hub_strategy")
PATH_KEYS = (
    "output_dir",
    "dataset_prepared_path",
    "lora_model_dir",
    "tokenizer_config",
    "base_model_config",
    "processor_config",
    "chat_template_jinja",
    "deepspeed",
    "fsdp",
    "fsdp_config",
    "resume_from_checkpoint",
)
SOURCE_PATH_KEYS = ("files", "urls")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
FIX = "remove it, or run with --allow-unsafe (ALLOW_UNSAFE=1) if you trust this recipe"


@functools.cache
def prompt_strategies() -> frozenset[str]:
    """Axolotl's own dataset types (modules of axolotl.prompt_strategies)."""
    import axolotl.prompt_strategies as strategies

    return frozenset(m.name for m in pkgutil.iter_modules(strategies.__path__)) | {"messages"}


def outside(value: str, root: Path) -> str | None:
    """Why a path would leave the project, or None if it stays inside."""
    if value.startswith(("/", "~", "\\")) or (len(value) > 1 and value[1] == ":"):
        return "is an absolute path"
    if ".." in PurePosixPath(value.replace("\\", "/")).parts:
        return "contains '..'"
    if not (root / value).resolve().is_relative_to(root.resolve()):
        return "leads outside the project"
    return None


def _is_inline_template(value: str) -> bool:
    return "\n" in value or "{%" in value or "{{" in value


def _looks_local(value: str, root: Path) -> bool:
    """A dataset or model given as a file path rather than a hub id ("org/name")."""
    return value.startswith(("/", "~", ".", "\\")) or ".." in value or (root / value).exists() or value.count("/") > 1


def problems(config: dict, block: dict, root: Path, where: str) -> list[Problem]:
    """Every policy finding of one recipe (Axolotl keys `config`, troupe `block`)."""
    found = []

    def refuse(key: str, why: str) -> None:
        found.append(Problem(where, key, f"unsafe: {why}", FIX))

    if config.get("trust_remote_code"):
        refuse("trust_remote_code", "runs Python code from the model repository")
    for plugin in config.get("plugins") or []:
        if not str(plugin).startswith("axolotl.integrations."):
            refuse("plugins", f"'{plugin}' is not one of Axolotl's own integrations (code would run)")
    for key in UPLOAD_KEYS:
        if config.get(key):
            refuse(key, "would upload the trained model or data to a hub")
    for key in PATH_KEYS:
        value = config.get(key)
        if isinstance(value, str) and value and not (key == "chat_template_jinja" and _is_inline_template(value)):
            if why := outside(value, root):
                refuse(key, f"path '{value}' {why}")
    base = str(config.get("base_model") or "")
    if base and _looks_local(base, root) and (why := outside(base, root)):
        refuse("base_model", f"local model '{base}' {why}")
    found += [Problem(where, key, f"unsafe: {why}", FIX) for key, why in _dataset_findings(config, root)]
    found += [Problem(where, key, f"unsafe: {why}", FIX) for key, why in _source_findings(block, root)]
    return found


def _dataset_findings(config: dict, root: Path):
    for list_name in ("datasets", "test_datasets"):
        for i, entry in enumerate(config.get(list_name) or []):
            if not isinstance(entry, dict):
                continue
            kind = entry.get("type")
            if isinstance(kind, str) and kind.split(".")[0].split(":")[0] not in prompt_strategies():
                yield f"{list_name}[{i}].type", f"'{kind}' is not an Axolotl prompt strategy (it names Python code)"
            for key in ("path", "data_files"):
                values = entry.get(key)
                for value in values if isinstance(values, list) else [values]:
                    if isinstance(value, str) and _looks_local(value, root) and (why := outside(value, root)):
                        yield f"{list_name}[{i}].{key}", f"path '{value}' {why}"


def _source_findings(block: dict, root: Path):
    source = block.get("source") if isinstance(block.get("source"), dict) else {}
    for key in SOURCE_PATH_KEYS:
        values = source.get(key)
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, str) and (why := outside(value, root)):
                yield f"troupe.source.{key}", f"path '{value}' {why}"
    url = source.get("base_url")
    if isinstance(url, str):
        parts = urlsplit(url)
        if not (parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOCAL_HOSTS)):
            yield "troupe.source.base_url", f"'{url}' is not https (http is allowed only for 127.0.0.1/localhost)"
