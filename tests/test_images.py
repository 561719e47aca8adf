import cv2
import numpy as np
import pytest
from helpers import require
from PIL import Image

from fer.data.images import as_array, read_image, shrunk, to_face, to_gray
from fer.errors import ImageError


def test_gray_is_pil_luma_to_within_one_level():
    rgb = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    difference = np.abs(to_gray(rgb).astype(int) - np.asarray(Image.fromarray(rgb).convert("L")))
    assert difference.max() <= 1 and (difference == 0).mean() > 0.99
    assert np.array_equal(to_gray(rgb[:, ::-1]), to_gray(rgb[:, ::-1].copy()))  # a view converts as its copy


def test_rgb_and_bgr_arrays_give_the_same_gray():
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 0] = 200  # pure red: luma 0.299*200
    gray_rgb = to_gray(as_array(rgb))
    gray_bgr = to_gray(as_array(rgb[..., ::-1].copy(), channel_order="bgr"))
    assert gray_rgb.shape == (10, 12)
    assert np.array_equal(gray_rgb, gray_bgr)
    assert abs(int(gray_rgb[0, 0]) - round(0.299 * 200)) <= 1
    # Reading BGR data as RGB would be the classic mistake: it gives another gray level.
    assert not np.array_equal(gray_rgb, to_gray(as_array(rgb[..., ::-1].copy())))


@pytest.mark.parametrize("shape", [(5, 5), (5, 5, 1), (5, 5, 3), (5, 5, 4)])
def test_supported_array_shapes(shape):
    out = as_array(np.full(shape, 100, np.uint8))
    assert out.dtype == np.uint8 and out.shape[:2] == (5, 5)


@pytest.mark.parametrize("shape", [(5,), (5, 5, 2), (2, 5, 5, 3), (0, 5)])
def test_bad_array_shapes_are_rejected(shape):
    with pytest.raises(ImageError, match="Cannot interpret"):
        as_array(np.zeros(shape, np.uint8))


def test_float_and_16bit_arrays_are_scaled():
    assert as_array(np.full((4, 4), 1.0))[0, 0] == 255
    assert as_array(np.full((4, 4), 65535, np.uint16))[0, 0] == 255


def test_unsupported_type():
    with pytest.raises(ImageError, match="Unsupported image input of type list"):
        as_array([[1, 2], [3, 4]])


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)  # fully transparent black
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "t.png")
    assert read_image(tmp_path / "t.png").min() == 255


def test_16bit_png_uses_the_full_range(tmp_path):
    arr = np.linspace(1000, 3000, 64, dtype=np.uint16).reshape(8, 8)
    Image.fromarray(arr).save(tmp_path / "deep.png")
    out = read_image(tmp_path / "deep.png")
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)  # landscape
    image = Image.fromarray(arr)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(tmp_path / "rot.jpg", exif=exif)
    assert read_image(tmp_path / "rot.jpg").shape[:2] == (40, 20)


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(ImageError, match="nope.jpg: no such file"):
        read_image(tmp_path / "nope.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"definitely not a jpeg")
    with pytest.raises(ImageError, match="bad.jpg: not a readable image"):
        read_image(bad)
    truncated = tmp_path / "trunc.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(ImageError, match="trunc.jpg"):
        read_image(truncated)


def test_to_face_resizes_any_crop_to_48():
    big = np.zeros((200, 160, 3), np.uint8)
    big[:, 80:] = 255
    face = to_face(big)
    assert face.shape == (48, 48) and face.dtype == np.uint8
    assert face[:, :20].max() == 0 and face[:, 28:].min() == 255  # left dark, right bright
    small = to_face(np.full((20, 20), 77, np.uint8))
    assert small.shape == (48, 48) and np.all(small == 77)


def test_a_huge_photo_is_decoded_reduced_and_boxes_come_back_in_its_own_pixels(tmp_path):
    import warnings

    from fer.data.images import MAX_PHOTO_SIDE, read_photo

    big = np.zeros((9000, 9000, 3), np.uint8)
    big[3000:6000, 3000:6000] = 200  # something to see after the reduction
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=70)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's DecompressionBombWarning would be an error here
        arr, scale = read_photo(tmp_path / "big.jpg")
    assert max(arr.shape[:2]) <= MAX_PHOTO_SIDE * 2 and max(arr.shape[:2]) < 9000
    assert scale == pytest.approx(9000 / max(arr.shape[:2]))
    assert read_photo(tmp_path / "big.jpg", max_side=None)[0].shape[:2] == (9000, 9000)


def test_photos_decode_gray_for_prediction_as_the_colour_decode_converts(tmp_path):
    """read_photo(gray=True): a JPEG decodes its luma alone (what predict_emotion does: faster, no colour copy),
    nearly everywhere within a grey level of decoding in colour and converting; other formats converted exactly."""
    from fer.data.images import read_photo, to_gray

    skimage = require("skimage.data")
    photo = skimage.astronaut()
    Image.fromarray(photo).save(tmp_path / "astronaut.jpg", quality=90)
    Image.fromarray(photo).save(tmp_path / "astronaut.png")
    gray, scale = read_photo(tmp_path / "astronaut.jpg", gray=True)
    converted = to_gray(read_photo(tmp_path / "astronaut.jpg")[0])
    assert gray.shape == (512, 512) and gray.dtype == np.uint8 and scale == 1.0
    # The colour decode clips saturated channels to 0..255 before the conversion: a few pixels differ more.
    difference = np.abs(gray.astype(int) - converted)
    assert difference.mean() < 0.1 and (difference <= 1).mean() > 0.99
    assert np.array_equal(read_photo(tmp_path / "astronaut.png", gray=True)[0], to_gray(photo))
    reduced, scale = read_photo(tmp_path / "astronaut.jpg", max_side=128, gray=True)  # DCT-scaled luma
    assert reduced.ndim == 2 and max(reduced.shape) <= 256 and scale == 512 / max(reduced.shape)


def test_predict_reports_boxes_of_a_reduced_photo_in_original_pixels(trained, tmp_path, monkeypatch):
    import fer.data.images
    from fer.inference.predict import predict_emotion

    skimage = require("skimage.data")
    photo = skimage.astronaut()
    Image.fromarray(photo).save(tmp_path / "astronaut.png")
    model = trained[0].model
    (full,) = predict_emotion(tmp_path / "astronaut.png", model=model)
    monkeypatch.setattr(fer.data.images, "MAX_PHOTO_SIDE", 256)  # as if 512 px were huge: decoded at half size
    monkeypatch.setattr(fer.data.images.read_photo, "__defaults__", (256, False))
    (reduced,) = predict_emotion(tmp_path / "astronaut.png", model=model)
    assert reduced.box == pytest.approx(full.box, abs=8)  # the same face, in the photo's own pixels


def test_shrinking_keeps_pixel_positions_and_averages_areas():
    image = np.zeros((300, 400), np.uint8)
    image[200:210, 100:110] = 250  # a 10 px square at (100, 200)
    for factor in (0.2, 0.32, 0.64, 0.5):  # whole, fractional after a whole factor of 3, fractional only, whole
        small = shrunk(image, factor)
        assert abs(small.shape[1] - 400 * factor) <= 1 and abs(small.shape[0] - 300 * factor) <= 1
        ys, xs = np.nonzero(small > 20)
        centre = (np.average(xs, weights=small[ys, xs]) + 0.5, np.average(ys, weights=small[ys, xs]) + 0.5)
        assert np.allclose(np.array(centre) / factor, (105, 205), atol=1.0)  # (u, v) of the result = (x, y) * factor
        assert small.sum() == pytest.approx(image.sum() * factor**2, rel=0.05)  # area averaging: nothing lost
    # 1 / 0.2 is 4.999... in floating point: still the whole factor 5, a 5x5 block mean.
    assert np.array_equal(shrunk(image, 0.2), cv2.resize(image, (80, 60), interpolation=cv2.INTER_AREA))
