"""models/load.py: an adapter folded in for inference answers like the adapter on its base,
and the output layer gets a contiguous input (a strided one cost a copy of the weight per row)."""

import torch

from repotune.models.load import load_model
from tests.train.test_merge import make_adapter


def test_merged_adapter_gives_the_adapters_logits(tmp_path, tiny_model):
    make_adapter(tiny_model, tmp_path / "adapter")
    ids = torch.randint(5, 200, (3, 17))
    with torch.inference_mode():
        base = load_model(tiny_model, dtype="float32")(input_ids=ids).logits
        peft = load_model(tiny_model, dtype="float32", adapter=str(tmp_path / "adapter"))
        merged = load_model(
            tiny_model, dtype="float32", adapter=str(tmp_path / "adapter"), merge=True
        )
        with_adapter = peft(input_ids=ids).logits
        folded = merged(input_ids=ids).logits
    assert not any("lora" in name for name, _ in merged.named_modules())  # really folded in
    assert not torch.allclose(base, with_adapter, atol=1e-3)  # the adapter changes the answer
    torch.testing.assert_close(folded, with_adapter, atol=1e-4, rtol=1e-4)


def test_output_layer_sees_a_contiguous_input(tmp_path, tiny_model):
    make_adapter(tiny_model, tmp_path / "adapter")
    model = load_model(tiny_model, dtype="float32", adapter=str(tmp_path / "adapter"))
    seen = []
    model.get_output_embeddings().register_forward_hook(
        lambda _m, args, _out: seen.append(args[0].is_contiguous())
    )
    with torch.inference_mode():
        model(input_ids=torch.randint(5, 200, (2, 9)), logits_to_keep=1)
    assert seen == [True]  # hidden_states[:, -1:, :] is a strided view without the hook
