"""Dense item x item models refuse catalogs they cannot hold, naming the memory and the alternatives."""

from __future__ import annotations

import pytest

from gpt2rec.errors import UserError
from gpt2rec.models.base import ModelContext
from gpt2rec.models.limits import check_dense_items
from gpt2rec.models.registry import get_spec
from gpt2rec.utils.config import from_dict


def test_ease_at_1e5_items_needs_335_gib():
    # 36 bytes per cell * 10^10 cells / 2^30 = 335.28 GiB
    with pytest.raises(ValueError, match=r"ease needs dense 100000 x 100000 item matrices, about 335\.28 GiB.*use bpr"):
        check_dense_items("ease", 100_000, 36, 8.0)


@pytest.mark.parametrize("name, per_cell", [("ease", 36), ("itemknn", 4)])
def test_build_refuses_above_the_configured_cap_and_builds_below(name, per_cell):
    spec = get_spec(name)
    n_items = 2000
    need = per_cell * n_items**2 / 2**30  # ease 0.134 GiB, itemknn 0.0149 GiB
    ctx = ModelContext(n_users=5, n_items=n_items)
    with pytest.raises(
        ValueError, match=rf"{name} needs .* about {need:.2f} GiB, above its limit max_memory_gb="
    ) as err:
        spec.build(spec.config_cls(max_memory_gb=need * 0.9), ctx)
    raised = float(str(err.value).rsplit("max_memory_gb=", 1)[1].split()[0])  # the limit it suggests
    assert raised > need  # (it used to suggest 0 for small needs, which the config refuses)
    spec.build(spec.config_cls(max_memory_gb=raised), ctx)
    model = spec.build(spec.config_cls(max_memory_gb=need * 1.1), ctx)
    assert model.n_items == n_items


def test_cap_must_be_positive():
    with pytest.raises(ValueError, match="max_memory_gb must be > 0"):
        get_spec("ease").config_cls(max_memory_gb=0)  # in the library
    with pytest.raises(UserError, match="max_memory_gb must be > 0"):
        from_dict(get_spec("ease").config_cls, {"max_memory_gb": "0"})  # at the edge
