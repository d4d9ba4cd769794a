"""troupe: declarative YAML recipes that turn story text into a character LoRA, built on Axolotl.

troupe list                      # recipes found in recipes/*.yaml
troupe check kaltsit             # every problem in a recipe, at once
troupe train demo max_steps=2    # convert → preprocess → axolotl train, with overrides
"""

__version__ = "0.1.0"
