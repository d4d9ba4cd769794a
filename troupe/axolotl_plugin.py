"""troupe's Axolotl plugin, which troupe adds to every config it renders for training.

It does two things Axolotl 0.19 does not:
- Seeds just before Axolotl creates the adapter. Axolotl seeds (transformers' `set_seed(cfg.seed)`)
  only when it builds the Trainer; by then PEFT has already drawn the new LoRA's initial weights
  from an unseeded generator, so two runs of one recipe ended with different adapters (two
  `make demo` runs differed by 0.02 in their style score). `seed` now fixes the whole run.
- Says that training reached its planned end. Axolotl catches SIGINT, saves the half-trained
  model into output_dir and exits 0, exactly as a finished run does. The Trainer calls
  `on_train_end` only when its loop ends normally; the plugin then writes the run-finished record
  (troupe.provenance.RUN_FINISHED) with the steps done and planned. troupe promotes a run only
  with that record.
Axolotl imports this module by name in every training process (Axolotl's `plugins:` list); troupe
itself never imports it.
"""

from pathlib import Path

from axolotl.integrations.base import BasePlugin
from transformers import TrainerCallback

from troupe import provenance
from troupe.provenance import RUN_FINISHED

TRAINER_DEFAULT_SEED = 42  # transformers.TrainingArguments.seed: what the Trainer uses when `seed` is unset


class RunFinished(TrainerCallback):
    def __init__(self, output_dir: str):
        self.output_dir = Path(output_dir)

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_local_process_zero:  # each machine keeps its own run folder
            steps = {"global_step": state.global_step, "max_steps": state.max_steps}
            provenance.write_record(self.output_dir, provenance.record("train-loop", steps), RUN_FINISHED)


class TroupePlugin(BasePlugin):
    def pre_lora_load(self, cfg, model):
        from transformers import set_seed

        set_seed(cfg.seed if cfg.seed is not None else TRAINER_DEFAULT_SEED)

    def add_callbacks_post_trainer(self, cfg, trainer):
        return [RunFinished(cfg.output_dir)]
