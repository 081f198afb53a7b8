"""Reading the editor file: UNet/VAE split and the UNet layout read off diffusers key names."""

import pytest
import torch
from diffusers import UNet2DConditionModel

from emo_core.emoeditor.predictor import EmotionPredictor
from emo_core.emoeditor.unet_layout import check_ip2p_input, diffusers_unet_layout, split_editor_checkpoint
from emo_core.errors import CheckpointError


def meta_unet(**config) -> dict[str, torch.Tensor]:
    with torch.device("meta"):  # shapes only
        return UNet2DConditionModel(**config).state_dict()


def test_sd15_layout_is_read_off_the_keys():
    layout = diffusers_unet_layout(meta_unet(in_channels=8, cross_attention_dim=768))
    assert layout == {  # ComfyUI's own SD 1.5 table
        "num_res_blocks": [2, 2, 2, 2],
        "channel_mult": [1, 2, 4, 4],
        "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
        "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
        "transformer_depth_middle": 1,
    }


def test_other_block_structures():
    state = meta_unet(in_channels=8, block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=64,
                      down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                      up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=8, norm_num_groups=8,
                      transformer_layers_per_block=2)
    layout = diffusers_unet_layout(state)
    assert layout["num_res_blocks"] == [1, 1] and layout["channel_mult"] == [1, 2]
    assert layout["transformer_depth"] == [0, 2]
    assert layout["transformer_depth_output"] == [0, 0, 2, 2]
    assert layout["transformer_depth_middle"] == 2


def test_split_and_its_errors():
    unet = {"unet.conv_in.weight": torch.zeros(4, 8, 3, 3)}
    vae = {"auto_encoder.encoder.conv_in.weight": torch.zeros(4, 3, 3, 3)}
    got_unet, got_vae = split_editor_checkpoint(unet | vae, "model_ip2p.pt")
    assert set(got_unet) == {"conv_in.weight"} and set(got_vae) == {"encoder.conv_in.weight"}
    with pytest.raises(CheckpointError, match="no VAE weights"):
        split_editor_checkpoint(unet, "only_unet.pt")
    with pytest.raises(CheckpointError, match="LDM-layout checkpoint: load it with Load Checkpoint"):
        split_editor_checkpoint({"model.diffusion_model.x": torch.zeros(1)}, "ldm.ckpt")
    with pytest.raises(CheckpointError, match="predictor.*pick it as 'predictor'"):
        split_editor_checkpoint(EmotionPredictor().state_dict(), "emo_predictor.pt")


@pytest.mark.parametrize(("channels", "what"), [(4, "text-to-image"), (9, "inpainting"), (6, "6 input channels")])
def test_only_instructpix2pix_unets(channels, what):
    with pytest.raises(CheckpointError, match=what):
        check_ip2p_input(channels, "x.pt")
    check_ip2p_input(8, "x.pt")
