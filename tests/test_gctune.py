"""The one garbage-collector helper: what it changes inside, and that it restores everything after."""

from __future__ import annotations

import gc

import pytest

from reconcile.util.gctune import FIRST_THRESHOLD, fewer_collections


@pytest.fixture(autouse=True)
def default_collector() -> object:
    old, enabled = gc.get_threshold(), gc.isenabled()
    gc.set_threshold(700, 10, 10)
    gc.enable()
    yield
    gc.set_threshold(*old)
    (gc.enable if enabled else gc.disable)()


def test_raises_first_threshold_and_restores_it() -> None:
    with fewer_collections():
        assert gc.get_threshold() == (FIRST_THRESHOLD, 10, 10)
        assert gc.isenabled()
    assert gc.get_threshold() == (700, 10, 10)


def test_paused_switches_the_collector_off_and_back_on() -> None:
    @fewer_collections(paused=True)
    def inside() -> bool:
        return gc.isenabled()

    assert inside() is False
    assert gc.isenabled()


def test_nested_uses_keep_the_outer_setting() -> None:
    with fewer_collections(paused=True):
        with fewer_collections():
            assert not gc.isenabled()  # the inner use does not switch the paused collector back on
        assert not gc.isenabled()
        gc.set_threshold(60_000, 10, 10)
        with fewer_collections():
            assert gc.get_threshold()[0] == 60_000  # never lowered
    assert gc.isenabled() and gc.get_threshold() == (700, 10, 10)  # as before the outer use


def test_restores_after_an_error() -> None:
    with pytest.raises(ValueError), fewer_collections(paused=True):
        raise ValueError("boom")
    assert gc.isenabled() and gc.get_threshold() == (700, 10, 10)
