"""One slug pattern (troupe.project.SLUG_RE) for recipe names, `troupe.after`, shared recipes and
converter names: a name one place accepts, every place accepts."""

import pytest
from pydantic import ValidationError

from troupe.project import SLUG_RE
from troupe.schema import TroupeSpec

BLOCK = {"character": {"name": "x"}, "source": {"converter": "arknights"}}


@pytest.mark.parametrize("name", ["kaltsit", "a" * 64, "sherlock_2"])
def test_a_slug_is_accepted_as_troupe_after(name):
    assert SLUG_RE.match(name) and TroupeSpec.parse({**BLOCK, "after": name}).after == name


@pytest.mark.parametrize("name", ["a" * 65, "kaltsit\n", "Kaltsit", "2b", "a-b"])
def test_a_name_that_is_no_slug_is_refused_as_troupe_after(name):
    assert not SLUG_RE.match(name)
    with pytest.raises(ValidationError):
        TroupeSpec.parse({**BLOCK, "after": name})
