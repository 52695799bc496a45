"""viz (figures) and images (bring your own image): numbers computed here, no browser."""

import io
import struct
import zlib

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from PIL import Image

from xai_course import viz
from xai_course.images import read_image


# --------------------------------------------------------------------------- normalize_map
def test_normalize_maxabs_divides_by_the_largest_magnitude():
    a = torch.tensor([[1.0, -4.0], [2.0, 0.5]])
    np.testing.assert_allclose(viz.normalize_map(a, "maxabs"), [[0.25, -1.0], [0.5, 0.125]])


def test_normalize_percentile_clips_the_extremes():
    a = np.arange(101, dtype=float)  # |a|'s 50th percentile is 50
    out = viz.normalize_map(a, "percentile", percentile=50)
    assert out[25] == pytest.approx(0.5)
    assert out[50] == pytest.approx(1.0)
    assert out[100] == 1.0  # clipped, not 2.0


def test_normalize_none_and_zero_maps():
    a = np.array([3.0, -6.0])
    np.testing.assert_array_equal(viz.normalize_map(a, None), a)
    np.testing.assert_array_equal(viz.normalize_map(np.zeros(4), "maxabs"), np.zeros(4))
    with pytest.raises(ValueError, match="maxabs"):
        viz.normalize_map(a, "minmax")
    with pytest.raises(ValueError, match="NaN"):
        viz.normalize_map(np.array([np.nan]), "maxabs")


# --------------------------------------------------------------------------- heatmap_overlay
def test_signed_map_uses_a_diverging_scale_centred_at_zero():
    gen = torch.Generator().manual_seed(0)
    image, attr = torch.rand(3, 6, 5, generator=gen), torch.randn(3, 6, 5, generator=gen)
    fig = viz.heatmap_overlay(image, attr)
    assert isinstance(fig, go.Figure)
    img, heat = fig.data
    assert img.type == "image" and np.asarray(img.z).shape == (6, 5, 3)
    # over an image: the diverging scale, transparent at 0; the map fills [-1, 1]
    assert heat.zmid == 0 and (heat.zmin, heat.zmax) == (-1, 1)
    assert heat.colorscale == go.Heatmap(colorscale=viz.OVERLAY_DIVERGING).colorscale
    assert heat.colorscale[2][1].endswith(",0)") and heat.opacity == viz.OPACITY
    alone = viz.heatmap_overlay(None, attr).data[0]  # no image: the plain diverging scale
    assert alone.colorscale == go.Heatmap(colorscale=viz.DIVERGING).colorscale
    summed = attr.sum(0).numpy()
    np.testing.assert_allclose(heat.z, summed / np.abs(summed).max(), atol=1e-6)
    assert fig.layout.yaxis.autorange == "reversed" and fig.layout.yaxis.scaleanchor == "x"


def test_unsigned_map_uses_a_sequential_scale_from_zero():
    attr = torch.tensor([[0.0, 2.0], [1.0, 4.0]])
    fig = viz.heatmap_overlay(torch.rand(2, 2), attr)  # grey image (H, W)
    heat = fig.data[1]
    assert heat.zmid is None and heat.zmin == 0 and heat.zmax == 1
    assert heat.colorscale == go.Heatmap(colorscale=viz.OVERLAY_SEQUENTIAL).colorscale
    assert heat.colorscale[0][1] == "rgba(0,0,4,0)"  # 0 shows the image
    np.testing.assert_allclose(heat.z, [[0, 0.5], [0.25, 1]])
    # a grey image is shown as RGB with equal channels
    z = np.asarray(fig.data[0].z)
    assert (z[..., 0] == z[..., 1]).all() and (z[..., 1] == z[..., 2]).all()


def test_signed_can_be_forced_and_raw_values_kept():
    attr = np.array([[0.0, 2.0], [1.0, 4.0]])
    heat = viz.heatmap_overlay(np.zeros((1, 2, 2)), attr, signed=True, normalize=None).data[1]
    assert heat.zmid == 0
    np.testing.assert_array_equal(heat.z, attr)


def test_overlay_opacity_title_and_presentation():
    fig = viz.heatmap_overlay(torch.rand(1, 4, 4), torch.rand(4, 4), opacity=0.3, title="T",
                              colorbar=False, presentation=True)
    assert fig.data[1].opacity == 0.3 and fig.data[1].showscale is False
    assert fig.layout.title.text == "T"
    assert fig.layout.font.size == viz.FONT_SIZE[True] > viz.FONT_SIZE[False]
    assert fig.layout.height == viz.HEIGHT[True]
    assert viz.heatmap_overlay(attribution=torch.rand(4, 4)).data[0].type == "heatmap"


def test_overlay_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="8x8 but the image is 4x4"):
        viz.heatmap_overlay(torch.rand(3, 4, 4), torch.rand(8, 8))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        viz.heatmap_overlay(torch.rand(2, 4, 4), torch.rand(4, 4))  # 2 channels
    with pytest.raises(ValueError, match="attribution must have shape"):
        viz.heatmap_overlay(torch.rand(3, 4, 4), torch.rand(4))
    with pytest.raises(ValueError, match="give an image"):
        viz.heatmap_overlay()


# --------------------------------------------------------------------------- method_grid
def test_method_grid_has_one_titled_panel_per_method():
    image = torch.rand(3, 5, 5)
    signed = -torch.arange(25.0).reshape(5, 5) + 3  # has negative values
    maps = {"gradient": signed.expand(3, 5, 5), "cam": torch.rand(5, 5),
            "mask": torch.rand(5, 5), "ig": signed, "lime": signed.T}
    fig = viz.method_grid(image, maps, cols=3)
    assert [a.text for a in fig.layout.annotations] == list(maps)
    assert [t.type for t in fig.data] == ["image", "heatmap"] * 5
    heats = fig.data[1::2]
    assert [h.zmid for h in heats] == [0, None, None, 0, 0]  # signed decided per map
    assert heats[4].xaxis == "x5" and fig.layout.yaxis5.scaleanchor == "x5"
    assert fig.layout.yaxis5.autorange == "reversed" and fig.layout.yaxis5.constrain == "domain"
    assert fig.layout.xaxis6.visible is False  # the empty cell of the last row
    assert fig.layout.height == 2 * (viz.ROW_HEIGHT[False] + 20) + 70  # a fixed height a row
    with pytest.raises(ValueError, match="maps is empty"):
        viz.method_grid(image, {})


def test_add_panel_anchors_the_image_in_any_grid_cell():
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=3, specs=[[{}, {}, {}], [{}, {"colspan": 2}, None]])
    viz.add_panel(fig, viz.heatmap_overlay(torch.rand(3, 4, 6)), 2, 2)
    image = fig.data[0]
    assert (image.xaxis, image.yaxis) == ("x5", "y5")
    assert fig.layout.yaxis5.scaleanchor == "x5" and fig.layout.xaxis5.visible is False
    viz.add_panel(fig, viz.token_figure(["a"], [1.0]), 1, 1, image=False)
    assert fig.layout.yaxis.scaleanchor is None and fig.layout.xaxis.visible is False


def test_probability_bars_write_the_names_inside_the_panel():
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2)
    viz.probability_bars(fig, ["golden retriever", "tabby"], {"p": [0.75, 0.125]}, 1, 2)
    bars, labels = fig.data
    assert list(bars.x) == [0.75, 0.125] and bars.xaxis == labels.xaxis == "x2"
    assert list(labels.text) == ["golden retriever  75.0%", "tabby  12.5%"]
    assert fig.layout.yaxis2.visible is False  # no tick labels to run under the image
    assert fig.layout.xaxis2.range == (0, 1)


def test_wrap_blank_and_the_top_margin():
    assert viz.wrap("the attribution gathered from zero", 16) == \
        "the attribution<br>gathered from<br>zero"
    blank = viz.blank_figure("no picture: <ValueError>")
    assert blank.data == () and blank.layout.title.text == "no picture: &lt;ValueError&gt;"
    from plotly.subplots import make_subplots

    one = viz.style(make_subplots(rows=1, cols=2, subplot_titles=("a", "b")), "T")
    two = viz.style(make_subplots(rows=1, cols=2, subplot_titles=("a<br>b", "c")), "T")
    assert two.layout.margin.t > one.layout.margin.t > viz.layout("T")["margin"]["t"] - 10


# --------------------------------------------------------------------------- tokens, lines
def test_token_colours_follow_the_sign_and_relevant_tokens_are_marked():
    tokens = ["not", "a", "<good>", "film"]
    scores = torch.tensor([-2.0, 0.0, 4.0, 1.0])
    fig = viz.token_figure(tokens, scores, relevant=[1, 0, 1, 0], per_row=3)
    heat, marks = fig.data
    assert heat.zmid == 0 and heat.z.shape == (2, 3) and (heat.zmin, heat.zmax) == (-1, 1)
    np.testing.assert_allclose(heat.z.flat[:4], [-0.5, 0.0, 1.0, 0.25])
    assert np.isnan(heat.z.flat[5])
    assert list(heat.text.flat[:4]) == ["<b>not</b>", "a", "<b>&lt;good&gt;</b>", "film"]
    np.testing.assert_array_equal(heat.customdata.flat[:4], scores.numpy())  # raw in hover
    assert list(marks.x) == [0, 2] and list(marks.y) == pytest.approx([0.42, 0.42])
    with pytest.raises(ValueError, match="3 tokens but 2 scores"):
        viz.token_figure(["a", "b", "c"], [1.0, 2.0])


def test_line_figure_draws_one_line_per_series():
    fig = viz.line_figure([1, 2, 4], {"ours": [0.1, 0.2, 0.3], "captum": np.ones(3)},
                          "steps", "delta", title="convergence")
    assert [t.name for t in fig.data] == ["ours", "captum"]
    np.testing.assert_array_equal(fig.data[0].y, [0.1, 0.2, 0.3])
    assert fig.layout.xaxis.title.text == "steps" and fig.layout.yaxis.title.text == "delta"
    with pytest.raises(ValueError, match="'ours' has 2 values but x has 3"):
        viz.line_figure([1, 2, 3], {"ours": [1, 2]})


# --------------------------------------------------------------------------- images
def _encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that only claims its size: enough for Pillow to read the header."""
    def chunk(kind, data):
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                              0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_png_round_trip_is_exact():
    pixels = np.random.default_rng(0).integers(0, 256, (6, 4, 3), dtype=np.uint8)
    x = read_image(_encode(Image.fromarray(pixels), "PNG"), size=(6, 4))
    assert x.shape == (1, 3, 6, 4) and x.dtype == torch.float32
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), pixels / 255, atol=1e-6)


def test_jpeg_round_trip_is_close():
    image = Image.new("RGB", (16, 16), (200, 40, 10))
    x = read_image(_encode(image, "JPEG", quality=95), size=(8, 8))
    assert x.shape == (1, 3, 8, 8)
    np.testing.assert_allclose(x[0, :, 4, 4].numpy(), np.array([200, 40, 10]) / 255, atol=0.02)


def test_centre_crop_keeps_the_middle_and_grey_output():
    # 30 wide x 10 high: left third black, middle white, right third black
    pixels = np.zeros((10, 30), np.uint8)
    pixels[:, 10:20] = 255
    x = read_image(_encode(Image.fromarray(pixels), "PNG"), size=(5, 5), channels=1)
    assert x.shape == (1, 1, 5, 5)
    assert x.min().item() > 0.99  # the square crop is the white middle only


def test_rgba_and_palette_become_rgb():
    rgba = Image.new("RGBA", (4, 4), (10, 20, 30, 255))
    x = read_image(_encode(rgba, "PNG"), size=(4, 4))
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), np.array([10, 20, 30]) / 255, atol=1e-6)
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))  # transparent goes on white
    assert read_image(_encode(clear, "PNG"), size=(4, 4)).min().item() == 1.0
    palette = Image.new("RGB", (4, 4), (255, 0, 0)).convert("P")
    np.testing.assert_allclose(read_image(_encode(palette, "PNG"), size=(2, 2))[0, :, 0, 0],
                               [1.0, 0.0, 0.0])


@pytest.mark.parametrize("data, message", [
    (_encode(Image.new("RGB", (4, 4)), "GIF"), "not a PNG or JPEG"),
    (b"hello world", "not a PNG or JPEG"),
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "PNG but is damaged"),
    (_encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)),
             "PNG")[:4000], "damaged or truncated"),
    (_png_header(7000, 7000), "7000x7000 = 49,000,000 pixels; at most 40,000,000"),
    (_png_header(20000, 20000), "too many pixels"),  # Pillow's decompression-bomb guard
])
def test_refusals_say_what_is_wrong_and_what_is_valid(data, message):
    with pytest.raises(ValueError, match=message):
        read_image(data, size=(8, 8))


def test_size_limits_and_arguments():
    png = _encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ValueError, match="files up to 10 MB"):
        read_image(b"\x89PNG\r\n\x1a\n" + b"\0" * (10 * 2**20 + 1))
    with pytest.raises(ValueError, match="10,000 pixels; at most 5,000"):
        read_image(png, max_pixels=5000)
    with pytest.raises(ValueError, match="size must be"):
        read_image(png, size=(0, 4))
    with pytest.raises(ValueError, match="channels must be 1"):
        read_image(png, channels=4)
    with pytest.raises(TypeError, match="bytes"):
        read_image("cat.png")
    assert read_image(memoryview(png), size=(2, 2)).shape == (1, 3, 2, 2)
