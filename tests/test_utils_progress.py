"""progress_bar / silenced: a quiet block shows no bar, whatever a caller inside asks for."""

from __future__ import annotations

from gpt2rec.utils.progress import progress_bar, silenced


def test_a_silenced_block_hides_every_bar_and_ends_with_it():
    assert progress_bar(range(3), show=True).disable is False
    assert progress_bar(range(3), show=False).disable is True
    with silenced():
        assert progress_bar(range(3), show=True).disable is True
        with silenced(False):  # an inner block cannot turn bars back on
            assert progress_bar(range(3), show=True).disable is True
    assert progress_bar(range(3), show=True).disable is False
