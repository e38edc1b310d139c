"""Feature extractors: declared shapes, agreement with librosa, the seed's image."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from instrlab.errors import InstrlabError, UnknownNameError
from instrlab.features import LogMel, SeedImage, get_extractor
from instrlab.scores import ScoreConfig, generate_score

SR = 44100


@pytest.fixture(scope="module")
def clip(synth, seed12) -> np.ndarray:  # noqa: ANN001
    """A real 5 s, 4-instrument FluidSynth mix."""
    from instrlab.synth.mixing import MixConfig, mix_stems

    cfg = ScoreConfig(min_instruments=4, max_instruments=4)
    score = generate_score(seed12, cfg, 0, 0)
    stems = [synth.render_stem(seed12.instruments[i], score.notes_of(i), 5.0)
             for i in score.instruments]
    return mix_stems(stems, MixConfig())[0]


def noise_and_chirp(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(round(seconds * SR))) / SR
    chirp = 0.5 * np.sin(2 * np.pi * (100 * t + 400 * t**2))
    return (chirp + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_registered_extractors_and_unknown_names() -> None:
    assert isinstance(get_extractor("logmel"), LogMel)
    assert isinstance(get_extractor("seed_image"), SeedImage)
    with pytest.raises(UnknownNameError, match="Did you mean 'seed_image'"):
        get_extractor("seed_imag")


@pytest.mark.parametrize(
    ("name", "params", "seconds", "shape"),
    [
        ("logmel", {}, 5.0, (128, 431)),
        ("logmel", {"n_mels": 64}, 5.0, (64, 431)),
        ("logmel", {}, 2.0, (128, 173)),
        ("logmel", {"hop_length": 1024, "n_fft": 4096}, 5.0, (128, 216)),
        ("seed_image", {}, 5.0, (1, 400, 400)),
        ("seed_image", {"size": 128}, 3.0, (1, 128, 128)),
    ],
)
def test_output_has_the_declared_shape(name: str, params: dict, seconds: float,
                                       shape: tuple[int, ...]) -> None:
    extractor = get_extractor(name, sample_rate=SR, clip_seconds=seconds, **params)
    assert extractor.shape == shape
    assert extractor.n_samples == int(round(seconds * SR))
    for length in (extractor.n_samples, extractor.n_samples - 1000, extractor.n_samples + 999):
        out = extractor(noise_and_chirp(length / SR))  # short clips are padded, long ones cut
        assert out.shape == shape and out.dtype == np.float32
        assert np.isfinite(out).all()
    assert extractor.params()["name"] == name


@pytest.mark.parametrize("source", ["fluidsynth", "synthetic"])
def test_logmel_matches_librosa(clip: np.ndarray, source: str) -> None:
    y = clip if source == "fluidsynth" else noise_and_chirp(5.0)
    ours = LogMel()(y)
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=2048, hop_length=512,
                                         window="hann", center=True, power=2.0, n_mels=128)
    ref = librosa.power_to_db(mel, ref=np.max, top_db=80.0)
    assert ours.shape == ref.shape == (128, 431)
    assert float(np.abs(ours - ref).max()) < 1e-3
    assert float(ours.max()) == 0.0 and float(ours.min()) >= -80.0


def test_logmel_mel_power_matches_librosa(clip: np.ndarray) -> None:
    lm = LogMel(n_mels=64, fmax=8000.0)
    ref = librosa.feature.melspectrogram(y=clip, sr=SR, n_fft=2048, hop_length=512, n_mels=64,
                                         fmax=8000.0)
    np.testing.assert_allclose(lm.mel_power(clip), ref, rtol=1e-4, atol=1e-6 * ref.max())


def test_logmel_of_silence_is_finite() -> None:
    out = LogMel()(np.zeros(5 * SR, np.float32))
    assert np.isfinite(out).all()


def test_logmel_parameters_are_validated() -> None:
    with pytest.raises(InstrlabError, match="n_mels"):
        LogMel(n_mels=4)
    with pytest.raises(InstrlabError, match="n_fft"):
        LogMel(n_fft=16)


def test_seed_image_is_a_unit_range_spectrogram_image(clip: np.ndarray) -> None:
    img = SeedImage()(clip)
    assert img.shape == (1, 400, 400) and img.dtype == np.float32
    assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0
    assert float(img.max()) > 0.95 and float(img.min()) < 0.05  # uses the whole range
    # the image is the log-mel dB scaled to [0, 1], low frequencies at the bottom
    db = LogMel()(clip)
    assert img[0].mean() == pytest.approx(float(((db + 80) / 80).mean()), abs=0.02)


def test_seed_image_puts_low_frequencies_at_the_bottom() -> None:
    t = np.arange(5 * SR) / SR
    low = (0.5 * np.sin(2 * np.pi * 80 * t)).astype(np.float32)
    img = SeedImage()(low)[0]
    rows = img.mean(axis=1)
    assert int(np.argmax(rows)) > 300  # bright rows are near the bottom (row 399)
    assert rows[-50:].mean() > rows[:50].mean() + 0.3


def test_features_are_deterministic(clip: np.ndarray) -> None:
    for name in ("logmel", "seed_image"):
        a = get_extractor(name)(clip)
        b = get_extractor(name)(clip.copy())
        assert np.array_equal(a, b)
