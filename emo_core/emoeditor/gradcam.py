"""Grad-CAM on the emotion predictor's last residual block, exactly as EmoEditor's ESMI script gets it from
pytorch-grad-cam (``GradCAM(model, target_layers=[model.layer4[-1]])``, ``targets=None``) [EE metric_ESMI.py], in a
few lines of torch: no grad-cam or OpenCV at run time.

The steps (grad-cam 1.5.x, spec §9): A = the output of ``layer4[-1]`` (B, 512, 7, 7); the target class is each
image's top logit (lowest index on ties) unless given; weights = the spatial mean of d logit / dA; cam = ReLU(sum_k
w_k A_k); ``scale_cam_image``: subtract the minimum, divide by (1e-7 + maximum), resize to the input size with
OpenCV's bilinear filter (half-pixel centres, edges clamped = torch's ``bilinear`` with ``align_corners=False``);
aggregation over the one layer (ReLU, mean: no change), then the min/max normalisation once more. float32 as in
grad-cam; the channel sum is taken in float64 (grad-cam's numpy sum and torch's differ in the last bit anyway),
so maps agree to about 1e-7 and a mask ``cam > 0.5`` can only differ at ties.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .predictor import EmotionPredictor


def last_block_and_logits(predictor: EmotionPredictor, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, logits) for preprocessed (B, 3, H, W) pixels: A = ``layer4[-1]``'s output as a leaf that needs a gradient,
    logits computed from it with the predictor's own head (the same operations as ``predictor(pixels)``)."""
    with torch.no_grad():
        x = predictor.maxpool(predictor.relu(predictor.bn1(predictor.conv1(pixels))))
        x = predictor.layer3(predictor.layer2(predictor.layer1(x)))
        x = predictor.layer4[-1](predictor.layer4[:-1](x))
    # ComfyUI runs nodes in inference mode, whose tensors (weights loaded there included) cannot take part in
    # autograd: the head runs on ordinary copies.
    with torch.inference_mode(False), torch.enable_grad():
        block = x.clone().requires_grad_(True)
        weight, bias = predictor.fc.weight.clone(), predictor.fc.bias.clone()
        logits = F.linear(torch.flatten(predictor.avgpool(block), 1), weight, bias)
    return block, logits


def _min_max(cam: torch.Tensor) -> torch.Tensor:
    """grad-cam's ``scale_cam_image`` normalisation, per map: (x - min) / (1e-7 + max of the shifted map)."""
    cam = cam - cam.amin(dim=(-2, -1), keepdim=True)
    return cam / (1e-7 + cam.amax(dim=(-2, -1), keepdim=True))


def grad_cam(predictor: EmotionPredictor, images_224: torch.Tensor, target: torch.Tensor | int | None = None,
             *, return_logits: bool = False):
    """Grad-CAM maps (B, H, W) float32 in [0, 1] for preprocessed pixels (B, 3, H, W) (224x224 for ESMI).

    ``target``: None = each image's top predicted class (as the published script), an int or a (B,) tensor of
    class indices otherwise. With ``return_logits`` also the logits of this forward pass (B, 8)."""
    if images_224.dim() != 4 or images_224.shape[1] != 3:
        raise ValueError(f"grad_cam: expected pixels shaped (B, 3, H, W), got {tuple(images_224.shape)}")
    param = next(predictor.parameters())
    pixels = images_224.to(device=param.device, dtype=param.dtype)
    block, logits = last_block_and_logits(predictor, pixels)
    with torch.inference_mode(False):
        rows = torch.arange(logits.shape[0], device=logits.device)
        if target is None:
            classes = logits.detach().argmax(dim=1)
        else:
            classes = torch.as_tensor(target, device=logits.device).clone().expand(logits.shape[0])
        (grads,) = torch.autograd.grad(logits[rows, classes].sum(), block)
    weights = grads.float().mean(dim=(2, 3))  # (B, 512)
    cam = (weights[:, :, None, None].double() * block.detach().double()).sum(dim=1).float()
    cam = _min_max(cam.clamp_min(0))
    cam = F.interpolate(cam[:, None], size=pixels.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    cam = _min_max(cam.clamp_min(0))  # the aggregation over the single layer, then scale_cam_image again
    cam = cam.cpu()
    return (cam, logits.detach()) if return_logits else cam
