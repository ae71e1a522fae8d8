"""What a trainer ships to remote rollout workers after an update."""

from __future__ import annotations

import copy

import torch

from palaestra.trainers.core.model_setup import trained_weights


def test_lora_ships_only_the_merged_adapted_layers(tiny_model):
    from peft import LoraConfig, get_peft_model

    base = copy.deepcopy(tiny_model)
    peft = get_peft_model(copy.deepcopy(tiny_model), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():  # a trained adapter: B is zero at initialisation
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(generator=torch.Generator().manual_seed(0))
    shipped = trained_weights(peft, lora=True, full=False)
    assert sorted(shipped) == sorted(
        k for k in base.state_dict() if k.endswith(("q_proj.weight", "v_proj.weight"))
    )
    worker = copy.deepcopy(base)
    worker.load_state_dict(shipped, strict=False)
    ids = torch.tensor([[1, 5, 9, 14, 3]])
    with torch.no_grad():
        expected = peft(ids).logits
        assert not torch.allclose(base(ids).logits, expected, atol=1e-4)
        # merged W + BA vs W x + B(A x): float32 reassociation, ~1e-7 of |logits| < 10; 1e-5 is 10x that
        assert torch.allclose(worker(ids).logits, expected, atol=1e-5)
    assert set(trained_weights(peft, lora=True)) == set(base.state_dict())  # full: every weight
