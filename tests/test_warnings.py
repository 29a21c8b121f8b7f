"""The CLI silences only named, known-noisy warnings of named modules; every other warning,
from a library or from repotune, still reaches the user."""

import warnings

from repotune.cli import KNOWN_NOISE, _quiet_libraries


def _raised(message: str, category: type[Warning], module: str) -> bool:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _quiet_libraries()
        warnings.warn_explicit(
            message, category, f"{module.replace('.', '/')}.py", 1, module=module
        )
    return bool(seen)


def test_only_named_noise_is_silenced():
    noise = "`is_gradient_checkpointing` is deprecated and will be removed in v6."
    assert not _raised(noise, FutureWarning, "transformers.modeling_utils")
    # the same words from elsewhere, and any other warning, are shown
    assert _raised(noise, FutureWarning, "repotune.train.sft")
    assert _raised("a tokenizer with no pad token", UserWarning, "transformers.tokenization_utils")
    assert _raised("Already found a peft_config attribute", UserWarning, "peft.tuners.tuners_utils")
    assert _raised("dtype mismatch", FutureWarning, "peft.utils.other")
    assert all(issubclass(category, Warning) for category, _, _ in KNOWN_NOISE)
