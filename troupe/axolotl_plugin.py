"""troupe's Axolotl plugin, which troupe adds to every adapter config it renders.

Axolotl 0.19 seeds (transformers' `set_seed(cfg.seed)`) only when it builds the Trainer. By then
PEFT has already drawn the new LoRA's initial weights from an unseeded generator. So two runs of
one recipe start from different weights and end with different adapters; two `make demo` runs
differed by 0.02 in their style score.

The plugin seeds just before Axolotl creates the adapter. `seed` then fixes the whole run.
Axolotl imports this module by name in every training process (Axolotl's `plugins:` list); it is
never imported by troupe itself.
"""

from axolotl.integrations.base import BasePlugin

TRAINER_DEFAULT_SEED = 42  # transformers.TrainingArguments.seed: what the Trainer uses when `seed` is unset


class SeedBeforeLoRA(BasePlugin):
    def pre_lora_load(self, cfg, model):
        from transformers import set_seed

        set_seed(cfg.seed if cfg.seed is not None else TRAINER_DEFAULT_SEED)
