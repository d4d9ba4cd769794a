"""One plan per verb: load the recipe once → check it once → resolve it once; the steps take the plan.

    plan = make_plan(load_recipe("kaltsit"), Needs.TRAIN, launch, parallel)   # CheckFailed: every problem
    pipeline.train(plan)

What a verb needs decides how much is checked (`Needs`), and every check is one call of
troupe.validate: the data half (the `troupe:` block, the safety policy, the layout, the dataset
entries, the stages; no Axolotl import) for verbs that only read the story source, both halves
(Axolotl's own schema and `validate_config` for the machine that will train) for the rest. Files an
earlier step builds (the dataset, a local base model) are errors for a step that reads them, notes
for `check`, and train's own work for `train`. The config is resolved once (troupe.render); the one
value that waits for a later step, the tokenised cache's path keyed on the dataset's hashes, is
filled in by `with_dataset` once the dataset is built.
"""

from dataclasses import dataclass, field
from enum import Enum

from troupe import dataset, validate
from troupe.errors import CheckFailed
from troupe.launch import SINGLE, Launch
from troupe.recipe import Recipe
from troupe.render import Resolved, prepared_path, resolve


class Needs(Enum):
    """What a verb is about to do, and so what must hold first."""

    SOURCE = "source"  # read the story source (convert, speakers, discover, verify, serve, chat)
    SHARE = "share"  # the same, and no key that looks like a secret (share)
    CONFIG = "config"  # look at the resolved config only (check): missing files are notes
    DRY_RUN = "dry run"  # the same, for this launch (train --dry-run)
    TRAIN = "train"  # train: it builds the dataset and a packaged base model itself
    INPUTS = "inputs"  # run Axolotl on what earlier steps built (preprocess, preflight)
    ADAPTER = "adapter"  # the same, and the trained adapter (evaluate, merge, export)


@dataclass
class Plan:
    """A checked recipe and what Axolotl will receive: the one object every step takes."""

    recipe: Recipe
    resolved: Resolved | None = None  # None for verbs that only read the story source
    notes: list[str] = field(default_factory=list)  # what check says but does not refuse

    @property
    def config(self) -> dict:
        return self.resolved.config

    @property
    def launch(self) -> Launch:
        return self.resolved.launch if self.resolved else SINGLE

    def with_dataset(self) -> "Plan":
        """The tokenised cache's path for the dataset now on disk (after `convert`)."""
        manifest = dataset.read_manifest(self.recipe)
        self.config["dataset_prepared_path"] = prepared_path(self.recipe, manifest, self.config)
        return self


def make_plan(recipe: Recipe, needs: Needs, launch: Launch = SINGLE, parallel: str | None = None) -> Plan:
    """The recipe checked for what the verb `needs`, every problem at once (CheckFailed), and resolved.
    A recipe the safety policy refuses is looked at no further (nothing it names is imported)."""
    if needs in (Needs.SOURCE, Needs.SHARE):
        secrets = validate.secret_problems(recipe) if needs is Needs.SHARE else []
        if problems := secrets + validate.data_problems(recipe):
            raise CheckFailed(problems)
        return Plan(recipe)
    missing = validate.missing_inputs(recipe, needs is Needs.TRAIN, adapter=needs is Needs.ADAPTER)
    only_notes = needs in (Needs.CONFIG, Needs.DRY_RUN)
    if missing and needs in (Needs.INPUTS, Needs.ADAPTER):  # nothing to run Axolotl on: said without loading it
        raise CheckFailed(validate.data_problems(recipe) + missing)
    problems, resolved = validate.all_problems(recipe, lambda: _resolved(recipe, launch, parallel))
    problems += [] if only_notes else missing
    problems += validate.launch_problems(recipe, resolved) if resolved and needs in (Needs.TRAIN, Needs.DRY_RUN) else []
    if problems:
        raise CheckFailed(problems)
    notes = [f"note: {p.problem}; {p.fix}" for p in missing] if only_notes else []
    return Plan(recipe, resolved, resolved.notes + notes)


def _resolved(recipe: Recipe, launch: Launch, parallel: str | None) -> Resolved:
    """The config with the cache path of the dataset on disk, if there is one (train replaces it once
    the dataset it builds is current)."""
    return resolve(recipe, dataset.read_manifest(recipe), parallel=parallel, launch=launch)
