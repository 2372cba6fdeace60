"""The server keeps full garbage collections off its hot path: what is loaded gets frozen."""

from __future__ import annotations

import gc

import anyio
from serve_helpers import in_process


def test_loaded_models_are_frozen_out_of_the_collector_and_unload_refreezes(repo):
    async def main():
        gc.unfreeze()
        async with in_process(repo) as client:
            frozen = gc.get_freeze_count()
            assert frozen > 1000  # torch, the runtime and the models: a gen-2 collection skips them
            assert (await client.post("/v2/repository/models/mlp/unload")).status_code == 200
            assert gc.get_freeze_count() > 0  # unfrozen, collected, frozen again
        gc.unfreeze()

    anyio.run(main)
