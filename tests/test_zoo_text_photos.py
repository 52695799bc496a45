"""The zoo's text and photo data and its ImageNet models: offline, deterministic, checked.

- reviews: the shipped classifier's held-out accuracy, the labelling rule (negation flips),
  the relevant-token marks, determinism, a vocabulary safe to show on a projector, and the
  embedding / encoder split that attribution methods rely on.
- photos: shapes, range, ImageNet labels, licences.
- ImageNet models: not cached -> the fetch command; corrupt -> hash error; a weights file
  placed in a temporary torchvision cache loads and equals torchvision's own model.
"""

import codecs
import hashlib
import urllib.error

import pytest
import torch
import torchvision

from xai_course import zoo
from xai_course.zoo import imagenet, photos, reviews, weights

# --- reviews ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def review_model():
    return zoo.load_model("reviews", device="cpu")


@pytest.fixture(scope="module")
def review_test_set():
    return zoo.dataset("reviews", split="test")


def test_reviews_held_out_accuracy_of_shipped_weights(review_model, review_test_set):
    with torch.no_grad():
        predicted = review_model(review_test_set.x).argmax(dim=1)
    accuracy = (predicted == review_test_set.y).float().mean().item()
    print(f"reviews: held-out accuracy {accuracy:.4f} on {len(review_test_set)} sentences")
    assert len(review_test_set) == 2000
    assert accuracy >= 0.95


def test_reviews_weights_are_small():
    size = weights.weights_path("reviews").stat().st_size
    print(f"reviews.pt: {size / 1e6:.2f} MB")
    assert size < 2e6


def test_reviews_fields_and_relevant_tokens_are_aligned(review_test_set):
    data = review_test_set[:300]
    assert data.x.dtype == torch.long and data.x.shape == (300, reviews.MAX_LEN)
    assert data.relevant.shape == data.x.shape
    assert set(data.relevant.unique().tolist()) <= {0, 1}
    assert data.classes == ["negative", "positive"]
    assert data.vocab[:2] == ["<pad>", "<unk>"] and data.vocab == reviews.VOCAB
    assert reviews.decode(data.x) == data.tokens
    sentiment = set(reviews.SENTIMENT_WORDS)
    modifiers = set(reviews.INTENSIFIERS + reviews.VERB_INTENSIFIERS + reviews.NEGATORS)
    for row, words in enumerate(data.tokens):
        marks = data.relevant[row, : len(words)].tolist()
        assert sum(marks) > 0, words  # every sentence has a deciding word
        assert data.relevant[row, len(words):].sum() == 0  # padding is never relevant
        assert (data.x[row, len(words):] == 0).all()
        marked = {w for w, m in zip(words, marks, strict=True) if m}
        assert marked <= sentiment | modifiers, (words, marked)
        assert marked & sentiment  # at least one sentiment word
        # every sentiment word is marked, and the label is the rule's
        assert all(m for w, m in zip(words, marks, strict=True) if w in sentiment)
        assert reviews.label_of(words) == data.y[row].item()
    assert abs(data.y.float().mean().item() - 0.5) < 0.1  # roughly balanced


def test_reviews_same_seed_same_data_and_prefixes():
    a = zoo.dataset("reviews", split="train", n=60, seed=3)
    b = zoo.dataset("reviews", split="train", n=60, seed=3)
    c = zoo.dataset("reviews", split="train", n=60, seed=4)
    first = zoo.dataset("reviews", split="train", n=25, seed=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and a.tokens == b.tokens
    assert not torch.equal(a.x, c.x)
    assert torch.equal(first.x, a.x[:25]) and torch.equal(first.y, a.y[:25])
    default = zoo.dataset("reviews", split="test", n=40)
    assert torch.equal(default.x, zoo.dataset("reviews", split="test", n=40, seed=1).x)


def test_reviews_train_and_test_never_share_a_sentence(review_test_set):
    train = zoo.dataset("reviews", split="train", n=3000)
    shared = {" ".join(t) for t in train.tokens} & {" ".join(t) for t in review_test_set.tokens}
    assert shared == set()


def test_reviews_unknown_split_names_the_valid_ones():
    with pytest.raises(ValueError, match="train.*test"):
        zoo.dataset("reviews", split="validation")


# Crude, sexual, violent and insulting words that must never reach a projector. Kept in ROT13
# so that this file itself is safe to show; most of them are rated in the VADER lexicon, so
# the check is against the real source of the vocabulary.
BLOCKLIST_ROT13 = """
    shpx shpxvat fuvg fuvggl qnza qnzarq uryy penc penccl ovgpu onfgneq nff nffubyr qvpx cvff
    cvffrq juber fyhg phag snt snttbg ergneq ergneqrq frk frkl cbea ubeal xvyy xvyyrq xvyyre
    zheqre encr encrq qrnq qrngu qvr oybbq oybbql tha thaf fubbg fhvpvqr gbegher greebevfg
    greebe anmv enpvfg enpvfz qehax chxr ibzvg fghcvq vqvbg vqvbgvp qhzo zbeba fhpxf fhpxrq
    fhpx jrrq ivbyrag ivbyrapr jne nohfr pnapre
"""


def test_vocabulary_has_no_crude_words():
    blocklist = set(codecs.decode(BLOCKLIST_ROT13, "rot13").split())
    lexicon = reviews.lexicon()
    assert len(blocklist & set(lexicon)) >= 50  # the blocklist is about words VADER has
    vocab = set(reviews.vocabulary())
    assert vocab & blocklist == set()
    assert all(w.isalpha() and w.islower() for w in vocab - {"<pad>", "<unk>"})
    # sentiment words carry the lexicon's own valence; every other word is unrated (neutral)
    rated = reviews.valences()
    assert all(rated[w] == lexicon[w] for w in reviews.SENTIMENT_WORDS)
    assert [w for w in vocab if w in lexicon and w not in rated] == []
    assert 55 <= len(reviews.POSITIVE_WORDS) and 55 <= len(reviews.NEGATIVE_WORDS)


HAND_MADE = [  # (sentence, its negation)
    ("the plot was good", "the plot was not good"),
    ("the acting was really wonderful", "the acting was not really wonderful"),
    ("i enjoyed the music", "i did not enjoy the music"),
    ("i loved this film", "i never loved this film"),
    ("the ending was boring", "the ending was not boring"),
    ("the characters were awful", "the characters were hardly awful"),
    ("i disliked the script", "i did not dislike the script"),
]


def test_negation_flips_the_rule_and_the_model(review_model):
    sentences = [s for pair in HAND_MADE for s in pair]
    rule = [reviews.label_of(s) for s in sentences]
    with torch.no_grad():
        predicted = review_model(reviews.encode(sentences)).argmax(dim=1).tolist()
    for k, (plain, negated) in enumerate(HAND_MADE):
        assert rule[2 * k] != rule[2 * k + 1], (plain, negated)
    assert predicted == rule
    score, relevant = reviews.sentiment_score("the plot was not very good".split())
    assert score == pytest.approx(1.9 * 1.5 * -0.74)  # "good" is rated 1.9 in VADER
    assert relevant == [0, 0, 0, 1, 1, 1]
    # clauses add up: a dull story (-1.7) but great music (+3.1) is positive
    assert reviews.label_of("the story was dull but the music was great") == 1
    assert reviews.encode(["the plot was zzzz"])[0, 3].item() == 1  # unknown word -> <unk>


def test_embedding_encoder_split_gives_the_same_logits(review_model, review_test_set):
    x = review_test_set.x[:16]
    with torch.no_grad():
        direct = review_model(x)
        split = review_model.encoder(review_model.embedding(x))
    assert direct.shape == (16, 2)
    assert torch.equal(direct, split)
    assert review_model.embedding.padding_idx == 0
    # gradients flow to the embedding output with the model in eval mode
    embedded = review_model.embedding(x).detach().requires_grad_(True)
    review_model.encoder(embedded)[:, 1].sum().backward()
    assert not review_model.training and embedded.grad.abs().sum() > 0


# --- photos -------------------------------------------------------------------------------------


def test_photos_shapes_range_and_labels():
    data = zoo.dataset("photos")
    n = len(photos.PHOTOS)
    assert n >= 7 and data.x.shape == (n, 3, 224, 224) and data.x.dtype == torch.float32
    assert data.x.min() >= 0 and data.x.max() <= 1 and data.x.std() > 0.1
    assert len(data.classes) == 1000 and data.classes[281] == "tabby"
    names = [data.classes[i] for i in data.y.tolist()]
    assert names[:4] == ["tabby", "espresso", "space shuttle", "missile"]
    assert "CC0" in data.notes and "public domain" in data.notes
    assert "CC-BY 2.0" in data.notes and "attribution" in data.notes
    assert data.notes.count("Licence:") == n


def test_photos_seed_reorders_and_n_subsets():
    full = zoo.dataset("photos")
    shuffled = zoo.dataset("photos", seed=0)
    assert sorted(shuffled.y.tolist()) == sorted(full.y.tolist())
    assert torch.equal(zoo.dataset("photos", seed=0).x, shuffled.x)
    three = zoo.dataset("photos", n=3, seed=0)
    assert torch.equal(three.x, shuffled.x[:3]) and len(three) == 3
    with pytest.raises(ValueError, match="test"):
        zoo.dataset("photos", split="train")
    with pytest.raises(ValueError, match="photos"):
        zoo.dataset("photos", n=100)


# --- ImageNet models ----------------------------------------------------------------------------


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """torchvision's cache moved to an empty temporary folder (TORCH_HOME)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path / "hub" / "checkpoints"


@pytest.mark.parametrize("name", ["resnet50-imagenet", "vgg16-imagenet"])
def test_imagenet_not_cached_names_the_fetch_command(empty_cache, name):
    assert imagenet.cache_path(name).parent == empty_cache
    assert not imagenet.cached(name)
    with pytest.raises(zoo.WeightsNotCached, match=f"xai-course fetch-weights {name}"):
        zoo.load_model(name, device="cpu")


def test_imagenet_corrupt_cached_file_is_never_loaded(empty_cache):
    path = imagenet.cache_path("resnet50-imagenet")  # .../resnet50-11ad3fa6.pth
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not the weights torchvision published")
    assert imagenet.cached("resnet50-imagenet")
    with pytest.raises(weights.WeightsHashMismatch, match="11ad3fa6"):
        zoo.load_model("resnet50-imagenet", device="cpu")


def test_imagenet_fetch_offline_says_what_failed(empty_cache, monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(ConnectionError, match="download.pytorch.org.*unreachable"):
        imagenet.fetch_weights("resnet50-imagenet", progress=False)


def test_imagenet_cached_path_loads_and_equals_torchvision(empty_cache, monkeypatch):
    torch.manual_seed(0)
    reference = torchvision.models.resnet50(weights=None).eval()
    # Save random weights where torchvision keeps its cache. Only this test bridges the name:
    # the file name carries this file's own sha256 prefix, as torchvision's names do.
    empty_cache.mkdir(parents=True)
    scratch = empty_cache / "scratch.pth"
    torch.save(reference.state_dict(), scratch)
    prefix = hashlib.sha256(scratch.read_bytes()).hexdigest()[:8]
    scratch.rename(empty_cache / f"resnet50-{prefix}.pth")
    monkeypatch.setitem(imagenet.WEIGHTS_URLS, "resnet50-imagenet",
                        f"https://download.pytorch.org/models/resnet50-{prefix}.pth")
    assert imagenet.cached("resnet50-imagenet")

    model = zoo.load_model("resnet50-imagenet", device="cpu")
    assert not model.training
    assert "net.layer4" in dict(model.named_modules())
    images = zoo.dataset("photos", n=2).x
    with torch.no_grad():
        logits = model(images)
        expected = reference((images - torch.tensor(imagenet.IMAGENET_MEAN).view(1, 3, 1, 1))
                             / torch.tensor(imagenet.IMAGENET_STD).view(1, 3, 1, 1))
    assert logits.shape == (2, 1000)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
