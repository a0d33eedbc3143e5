"""Corruption parameters follow the image size: CIFAR-10-C's at 32 px, ImageNet-C's from 224 px,
log-size interpolation in between; every corruption runs at other sizes."""

from __future__ import annotations

import math

import pytest
import torch

from xaiquest.data.corruptions import ALL_CORRUPTIONS, CORRUPTIONS, SEVERITIES, corrupt, corruption_parameters
from xaiquest.data.corruptions.blur import apply_zoom_blur, separable_zoom_blur
from xaiquest.data.corruptions.engine import to_unit
from xaiquest.data.corruptions.sizing import IMAGENET_C, KEPT_AT_CIFAR, size_position
from xaiquest.data.corruptions.weather import FROST_SCALE, frost_crops, frost_photos, frost_scale


def test_32_px_and_smaller_use_the_cifar10c_tables_unchanged():
    for name in ALL_CORRUPTIONS:
        for severity in SEVERITIES:
            cifar = dict(CORRUPTIONS.get(name).table[severity - 1])
            assert corruption_parameters(name, severity) == cifar
            assert corruption_parameters(name, severity, 28) == cifar


def test_224_px_and_larger_use_the_imagenet_c_set():
    assert set(IMAGENET_C) == set(ALL_CORRUPTIONS)
    for name in ALL_CORRUPTIONS:
        for severity in SEVERITIES:
            expected = dict(IMAGENET_C[name][severity - 1])
            for key in expected:
                if (name, key) in KEPT_AT_CIFAR:
                    expected[key] = CORRUPTIONS.get(name).table[severity - 1][key]
            assert corruption_parameters(name, severity, 224) == expected
            assert corruption_parameters(name, severity, 512) == expected


def test_sizes_in_between_interpolate_on_a_log_scale_and_pick_the_nearer_set_otherwise():
    t = math.log(2) / math.log(7)  # 64 px
    assert size_position(64) == pytest.approx(t)
    assert corruption_parameters("gaussian_noise", 3, 64)["std"] == pytest.approx((1 - t) * 0.08 + t * 0.18)
    assert corruption_parameters("jpeg_compression", 1, 64)["quality"] == round((1 - t) * 80 + t * 25)
    cifar_zoom = CORRUPTIONS.get("zoom_blur").table[0]["zoom_factors"]
    assert corruption_parameters("zoom_blur", 1, 64)["zoom_factors"] == cifar_zoom  # t = 0.36: nearer CIFAR
    assert corruption_parameters("zoom_blur", 1, 128)["zoom_factors"] == IMAGENET_C["zoom_blur"][0]["zoom_factors"]
    assert corruption_parameters("glass_blur", 5, 128)["max_delta"] == 1


def test_separable_zoom_blur_equals_the_dense_operator():
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    factors = CORRUPTIONS.get("zoom_blur").table[4]["zoom_factors"]
    dense = apply_zoom_blur(to_unit(images).view(6, -1), factors).view(2, 3, 32, 32)
    torch.testing.assert_close(separable_zoom_blur(to_unit(images), factors), dense, rtol=0, atol=1e-5)


@pytest.mark.parametrize("size", [28, 64])
def test_every_corruption_runs_at_other_sizes_and_grows_with_severity(size):
    generator = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(4, 3, 4, 4, generator=generator), size=size, mode="bilinear")
    images = (smooth * 200 + 20).to(torch.uint8)
    for name in ALL_CORRUPTIONS:
        mild, severe = (corrupt(images, name, severity) for severity in (1, 5))
        assert mild.shape == severe.shape == images.shape and severe.dtype == torch.uint8
        change = [(out.float() - images.float()).abs().mean().item() for out in (mild, severe)]
        assert change[1] > 0, name


def test_frost_photos_are_scaled_by_the_size_rule_and_always_leave_room_for_the_crop():
    assert frost_scale(32) == FROST_SCALE and frost_scale(28) == FROST_SCALE  # CIFAR-10-C's exact crops
    assert frost_scale(64) == pytest.approx((1 - size_position(64)) * FROST_SCALE + size_position(64))
    assert frost_scale(224) == 1.0  # ImageNet-C crops the photographs at full size
    for size in (96, 400):  # 0.2-scaled photos are 63 px high: too small; full-size ones are 315 px
        _, sizes = frost_photos(frost_scale(size))
        assert int(sizes.min()) > size
        crops = frost_crops(6, torch.Generator().manual_seed(0), size)
        assert crops.shape == (6, 3, size, size) and crops.dtype == torch.uint8
        # never a window into the zero padding of the stacked photos: no all-black row or column
        assert (crops.sum(dim=(1, 3)) > 0).all() and (crops.sum(dim=(1, 2)) > 0).all()


def test_a_batch_over_the_pixel_budget_is_corrupted_in_pieces_each_with_its_own_stream(monkeypatch):
    from xaiquest.data.corruptions import engine

    images = torch.randint(0, 256, (7, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    whole = corrupt(images, "gaussian_noise", 3, seed=5)
    monkeypatch.setattr(engine, "CORRUPT_PIXELS", 3 * 32 * 32)  # pieces of 3, 3 and 1 images
    pieces = corrupt(images, "gaussian_noise", 3, seed=5)
    assert torch.equal(pieces, corrupt(images, "gaussian_noise", 3, seed=5))  # deterministic
    assert torch.equal(pieces[:3], whole[:3])  # the first piece keeps the one-piece stream
    assert pieces.shape == images.shape and not torch.equal(pieces[3:], whole[3:])
    twice = images[:3].repeat(2, 1, 1, 1)  # the same three images in both pieces: other noise in the second
    noisy = corrupt(twice, "gaussian_noise", 3, seed=5)
    assert not torch.equal(noisy[:3], noisy[3:])
