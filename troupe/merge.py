"""`troupe merge`: Axolotl's merge, then the trained tokenizer and chat template put back.

Axolotl 0.19's default (memory-efficient) merge copies the *base* model's non-weight files into
`merged/`, so a template set by the recipe (`chat_template: …`) or tokens added in training are
lost. The tokenizer files Axolotl saved next to the adapter are the ones training used: copy them
over, then check that the merged folder loads with that exact template.
"""

import shutil
from pathlib import Path

from troupe.errors import TroupeError
from troupe.layout import TOKENIZER_FILES


def restore_tokenizer(adapter_dir: Path, merged_dir: Path) -> list[str]:
    """Copy the training-time tokenizer files over the merged model's; returns the names copied."""
    copied = []
    for name in TOKENIZER_FILES:
        if (adapter_dir / name).is_file():
            shutil.copy2(adapter_dir / name, merged_dir / name)
            copied.append(name)
    return copied


def verify_chat_template(adapter_dir: Path, merged_dir: Path) -> None:
    """The merged model's tokenizer must carry the same chat template as training."""
    from transformers import AutoTokenizer

    trained = AutoTokenizer.from_pretrained(adapter_dir).chat_template
    merged = AutoTokenizer.from_pretrained(merged_dir).chat_template
    if trained != merged:
        raise TroupeError(f"{merged_dir}: chat template differs from the one used in training")
