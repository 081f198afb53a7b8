import pytest
import torch
from safetensors.torch import load_file

from emo_core.emoeditor.emotions import (
    EMOTIONS,
    NEGATIVE_EMOTIONS,
    POSITIVE_EMOTIONS,
    class_index,
    emotion_direction,
    one_hot,
    same_valence,
    valence_of,
)


def test_class_order_is_alphabetical_with_valence_groups():
    assert EMOTIONS == ("amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness")
    assert list(EMOTIONS) == sorted(EMOTIONS)
    assert POSITIVE_EMOTIONS == {"amusement", "awe", "contentment", "excitement"}
    assert NEGATIVE_EMOTIONS == {"anger", "disgust", "fear", "sadness"}
    assert valence_of("awe") == "positive" and valence_of(7) == "negative"
    assert same_valence("amusement", "excitement") and not same_valence("anger", "awe")


@pytest.mark.parametrize("name, index", [("awe", 2), ("Awe", 2), (" SADNESS ", 7), ("amusement", 0), (5, 5)])
def test_class_index_is_case_insensitive(name, index):
    assert class_index(name) == index


@pytest.mark.parametrize("bad", ["happiness", "", "joy", 8, -1, True])
def test_unknown_class_lists_the_valid_names(bad):
    with pytest.raises(ValueError) as info:
        class_index(bad)
    assert "amusement" in str(info.value) and "sadness" in str(info.value)


def test_one_hot_and_direction():
    assert one_hot("fear").tolist() == [0, 0, 0, 0, 0, 0, 1, 0]
    uniform = torch.full((8,), 1 / 8)
    d = emotion_direction("awe", uniform)
    assert d.dtype == torch.float32 and d[2] == 0.875 and torch.all(d[torch.arange(8) != 2] == -0.125)
    assert abs(float(d.sum())) < 1e-6
    batch = emotion_direction(3, torch.stack([uniform, one_hot(3)]))
    assert batch.shape == (2, 8) and torch.equal(batch[1], torch.zeros(8))
    assert emotion_direction("awe", [0.125] * 8).dtype == torch.float32
    with pytest.raises(ValueError, match=r"\(8,\) or \(B, 8\)"):
        emotion_direction("awe", torch.zeros(7))


def test_direction_matches_the_golden_float32_subtraction(golden):
    g = load_file(golden / "emoeditor" / "encoder_golden.safetensors")
    softmax = g["direction_source_softmax"]
    for t in range(8):  # rows 0-7: onehot(t) - softmax(logits_t), the official float32 subtraction
        assert torch.equal(emotion_direction(t, softmax[t]), g["directions"][t])
    assert torch.equal(emotion_direction("awe", torch.full((8,), 0.125)), g["directions"][9])
