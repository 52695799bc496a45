"""`reviews`: short movie reviews generated from a real rated lexicon, and an LSTM that reads them.

Why generated text? An explanation of a text classifier is only checkable if we know which
words decided the label. Here we do, by construction: every sentence is built from templates
("the acting was really wonderful", "i did not enjoy the plot", "a dull story but the music
was great"), and its label follows a written-down rule from the valences (-4 .. +4) that human
raters gave each word in the VADER lexicon (Hutto & Gilbert, 2014), which ships inside the
`vaderSentiment` package, so no download is needed.

The labelling rule (`sentiment_score`), for each sentiment word w with valence v(w):

    contribution(w) = v(w) * 1.5 ** [an intensifier comes right before it: "very", "really", ...]
                           * (-0.74) ** [a negator comes right before it: "not", "never", "hardly"]
    score(sentence) = sum of the contributions of its sentiment words (clauses add up)
    label = positive if score > 0 else negative; |score| < MIN_MARGIN is ambiguous and dropped

(-0.74 is VADER's own negation factor: a negation flips the sign and weakens a little, so "not
terrible" is mildly positive.) The tokens that decide the label, marked in `Dataset.relevant`,
are the sentiment words and the negators / intensifiers acting on them; filler words ("the",
"was", "i watched it last night") are never relevant.

The vocabulary is a hand-picked list of everyday words (the course is shown on projectors:
no profanity, slurs, violent or crude words); every sentiment word is checked to be in the
lexicon, and every other word to be absent from it, so fillers are truly neutral.

Splits: a sentence belongs to "test" when a checksum (crc32) of its text falls in one bucket
out of five, else to "train", so no test sentence is ever seen in training, for any seed.

The model (`ReviewClassifier`) is `embedding` -> `encoder` (a bidirectional LSTM, averaged over
positions, then a linear layer). Attribution methods run on the embedding output:

    model = zoo.load_model("reviews"); data = zoo.dataset("reviews")
    embedded = model.embedding(data.x)                 # (N, L, D): the "input" to explain
    attr = method(model.encoder, embedded, data.y)     # (N, L, D); sum over D -> per token
"""

from __future__ import annotations

import functools
import importlib.util
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import Dataset, ModelSpec, accuracy

CLASSES = ["negative", "positive"]
PAD, UNK = "<pad>", "<unk>"  # ids 0 and 1
MAX_LEN = 26  # every sentence is padded (with id 0, at the end) to this many tokens
MIN_MARGIN = 0.5  # sentences with |score| below this are ambiguous and never generated
NEGATION_FACTOR = -0.74  # VADER's N_SCALAR
INTENSIFIER_FACTOR = 1.5
SPLITS = {"train": 20_000, "test": 2_000}  # default number of sentences
DEFAULT_SEEDS = {"train": 0, "test": 1}
TEST_BUCKETS = 5  # crc32(sentence) % 5 == 0 -> test split

# --- the word lists (everyday words only; valences come from the lexicon, not from here) -----

POSITIVE_WORDS = """
    good great wonderful excellent amazing brilliant beautiful charming delightful enjoyable
    fantastic fun funny lovely nice perfect pleasant superb terrific clever creative gorgeous
    impressive inspiring interesting outstanding powerful remarkable smart strong sweet
    thoughtful elegant engaging entertaining exciting fascinating heartwarming hilarious
    magnificent marvelous satisfying sincere splendid stunning talented thrilling worthwhile
    admirable adorable awesome effective energetic fabulous glorious graceful intelligent
    joyful lively playful cheerful
""".split()
NEGATIVE_WORDS = """
    bad awful terrible horrible boring dull poor weak annoying disappointing messy painful
    careless dreadful dreary exhausting fake flawed frustrating irritating lazy lousy miserable
    pathetic unpleasant upsetting useless worthless wrong ugly depressing dismal failed hopeless
    inferior ridiculous unimpressive harsh humorless incompetent meaningless pitiful problematic
    unfortunate charmless cheerless clueless disjointed dissatisfying embarrassing disastrous
    sluggish talentless thoughtless tired unacceptable unfocused uninvolving unprofessional
    unsuccessful woeful uncomfortable
""".split()
ADJECTIVES = POSITIVE_WORDS + NEGATIVE_WORDS
# Verbs as (base form, past form); each form has its own valence in the lexicon.
VERBS = [("enjoy", "enjoyed"), ("love", "loved"), ("like", "liked"), ("admire", "admired"),
         ("adore", "adored"), ("appreciate", "appreciated"), ("hate", "hated"),
         ("dislike", "disliked"), ("despise", "despised")]
SENTIMENT_WORDS = ADJECTIVES + [form for pair in VERBS for form in pair]

INTENSIFIERS = ["very", "really", "extremely", "incredibly", "so", "particularly"]
VERB_INTENSIFIERS = ["really", "absolutely", "totally"]
NEGATORS = ["not", "never", "hardly"]

ASPECTS = """acting plot story music script ending cast dialogue soundtrack direction pacing
    cinematography performance photography editing writing lighting sound""".split()
PLURAL_ASPECTS = "characters visuals scenes actors costumes songs effects".split()
FILMS = "film movie show sequel documentary drama musical cartoon series episode".split()
NEUTRAL_CLAUSES = [
    "i watched it last night", "we saw it at the cinema", "i saw it with my family",
    "it runs for two hours", "it came out last year", "the film is set in a small town",
    "my sister picked it", "we watched it on sunday", "it is based on a book",
    "the director also wrote it", "i went to the late show",
]
CONNECTIVES = ["and", "but"]
# Words the templates below glue around the slots.
TEMPLATE_WORDS = "the a an what this it i was were is are found thought felt has did".split()


def vocabulary() -> list[str]:
    """id -> word: <pad>, <unk>, then every word the generator can use, sorted (fixed)."""
    words = set(SENTIMENT_WORDS + INTENSIFIERS + VERB_INTENSIFIERS + NEGATORS + ASPECTS
                + PLURAL_ASPECTS + FILMS + CONNECTIVES + TEMPLATE_WORDS)
    for clause in NEUTRAL_CLAUSES:
        words.update(clause.split())
    return [PAD, UNK] + sorted(words)


VOCAB = vocabulary()
WORD_TO_ID = {word: i for i, word in enumerate(VOCAB)}


# --- the lexicon and the labelling rule ---------------------------------------------------------

def lexicon_path() -> Path:
    """vader_lexicon.txt inside the installed vaderSentiment package (no network needed)."""
    spec = importlib.util.find_spec("vaderSentiment")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the reviews data set needs the vaderSentiment package "
                          "(pip install vaderSentiment): it ships the rated lexicon")
    return Path(list(spec.submodule_search_locations)[0]) / "vader_lexicon.txt"


@functools.cache
def lexicon() -> dict[str, float]:
    """VADER's rated words: {token: mean valence of ten human ratings, -4 .. +4}."""
    rated = {}
    with open(lexicon_path(), encoding="utf-8") as f:
        for line in f:
            token, mean = line.rstrip("\n").split("\t")[:2]
            rated[token] = float(mean)
    return rated


@functools.cache
def valences() -> dict[str, float]:
    """The valence of each of our sentiment words, read from the lexicon (and checked).

    Every sentiment word must be in the lexicon with |valence| >= 1.2 and the right sign;
    every other word of the vocabulary must be absent from it (so fillers are neutral).
    """
    lex = lexicon()
    found = {}
    for word in SENTIMENT_WORDS:
        if word not in lex:
            raise ValueError(f"sentiment word {word!r} is not in the VADER lexicon")
        found[word] = lex[word]
    weak = [w for w in POSITIVE_WORDS if found[w] < 1.2] + [
        w for w in NEGATIVE_WORDS if found[w] > -1.2]
    if weak:
        raise ValueError(f"sentiment words need |valence| >= 1.2 with the right sign: {weak}")
    neutral = [w for w in VOCAB[2:] if w not in found]
    rated = [w for w in neutral if w in lex]
    if rated:
        raise ValueError(f"filler words must be neutral, but the lexicon rates {rated}")
    return found


_MODIFIERS = set(INTENSIFIERS + VERB_INTENSIFIERS + NEGATORS)


def sentiment_score(words: list[str]) -> tuple[float, list[int]]:
    """The labelling rule: (score, relevant 0/1 per word) for one sentence.

    Each sentiment word adds its lexicon valence, times 1.5 if an intensifier stands right
    before it and times -0.74 if a negator does ("not very good": both). The relevant tokens
    are the sentiment words and those modifiers.
    """
    rated = valences()
    score, relevant = 0.0, [0] * len(words)
    for i, word in enumerate(words):
        if word not in rated:
            continue
        contribution = rated[word]
        relevant[i] = 1
        j = i - 1
        while j >= 0 and words[j] in _MODIFIERS:  # the run of modifiers just before the word
            if words[j] in NEGATORS:
                contribution *= NEGATION_FACTOR
            else:
                contribution *= INTENSIFIER_FACTOR
            relevant[j] = 1
            j -= 1
        score += contribution
    return score, relevant


def label_of(sentence: str | list[str]) -> int:
    """1 (positive) or 0 (negative) by the rule; ValueError if the sentence is ambiguous."""
    words = sentence.split() if isinstance(sentence, str) else list(sentence)
    score, _ = sentiment_score(words)
    if abs(score) < MIN_MARGIN:
        raise ValueError(f"{' '.join(words)!r} has score {score:.2f}: too close to 0 to label")
    return int(score > 0)


def encode(sentences: list[str] | list[list[str]], max_len: int = MAX_LEN) -> torch.Tensor:
    """Token ids (N, max_len), padded with 0 at the end; unknown words become <unk> (id 1).

    Use it to feed your own sentences to the model: `model(encode(["the plot was not dull"]))`.
    """
    rows = []
    for sentence in sentences:
        words = sentence.split() if isinstance(sentence, str) else list(sentence)
        if len(words) > max_len:
            raise ValueError(f"{' '.join(words)!r} has {len(words)} words, more than {max_len}")
        ids = [WORD_TO_ID.get(w.lower(), WORD_TO_ID[UNK]) for w in words]
        rows.append(ids + [WORD_TO_ID[PAD]] * (max_len - len(ids)))
    return torch.tensor(rows, dtype=torch.long).reshape(len(rows), max_len)


def decode(ids: torch.Tensor) -> list[list[str]]:
    """Words of each row of token ids, padding left out."""
    return [[VOCAB[i] for i in row if i != 0] for row in ids.tolist()]


# --- the generator ------------------------------------------------------------------------------

def _pick(rng: np.random.Generator, items):
    return items[rng.integers(len(items))]


def _adjective_phrase(rng: np.random.Generator, negation_allowed: bool) -> list[str]:
    """An adjective, maybe with an intensifier and/or (when the grammar allows it) a negator."""
    adjective = _pick(rng, ADJECTIVES)
    kind = rng.choice(["plain", "intensified", "negated", "not-intensified"],
                      p=[0.35, 0.25, 0.28, 0.12] if negation_allowed else [0.55, 0.45, 0, 0])
    if kind == "intensified":
        return [_pick(rng, INTENSIFIERS), adjective]
    if kind == "negated":
        return [_pick(rng, NEGATORS), adjective]
    if kind == "not-intensified":
        return ["not", _pick(rng, INTENSIFIERS), adjective]
    return [adjective]


def _subject(rng: np.random.Generator) -> tuple[list[str], str]:
    """('the acting', 'was') or ('the characters', 'were') or ('this film', 'was')."""
    kind = rng.integers(3)
    if kind == 0:
        return ["the", _pick(rng, ASPECTS)], "was"
    if kind == 1:
        return ["the", _pick(rng, PLURAL_ASPECTS)], "were"
    return ["this", _pick(rng, FILMS)], "was"


def _sentiment_clause(rng: np.random.Generator) -> list[str]:
    """One clause that carries sentiment, from one of a handful of templates."""
    template = rng.integers(7)
    subject, be = _subject(rng)
    if template == 0:  # the acting was (not) (very) good
        return subject + [be] + _adjective_phrase(rng, negation_allowed=True)
    if template == 1:  # the acting is (not) (very) good
        return subject + [{"was": "is", "were": "are"}[be]] + _adjective_phrase(rng, True)
    if template == 2:  # i thought the plot was (not) good
        return ["i", "thought"] + subject + [be] + _adjective_phrase(rng, True)
    if template == 3:  # i found the plot (very) good / the plot felt (very) good
        if rng.random() < 0.5:
            return ["i", "found"] + subject + _adjective_phrase(rng, negation_allowed=False)
        return subject + ["felt"] + _adjective_phrase(rng, negation_allowed=False)
    if template == 4:  # (what) a (really) wonderful film / really good acting
        phrase = _adjective_phrase(rng, negation_allowed=False)
        if rng.random() < 0.5:
            article = "an" if phrase[0][0] in "aeiou" else "a"
            return (["what"] if rng.random() < 0.5 else []) + [article] + phrase + [
                _pick(rng, FILMS)]
        return phrase + [_pick(rng, ASPECTS + PLURAL_ASPECTS)]
    if template == 5:  # the film has very good music
        return (["the", _pick(rng, FILMS), "has"] + _adjective_phrase(rng, False)
                + [_pick(rng, ASPECTS + PLURAL_ASPECTS)])
    # template 6: i (really) loved the plot / i did not enjoy it / i never liked this film
    base, past = _pick(rng, VERBS)
    obj = _pick(rng, [subject, ["it"]])
    kind = rng.integers(4)
    if kind == 0:
        return ["i", past] + obj
    if kind == 1:
        return ["i", _pick(rng, VERB_INTENSIFIERS), past] + obj
    if kind == 2:
        return ["i", "did", "not", base] + obj
    return ["i", _pick(rng, ["never", "hardly"]), past] + obj


def _sentence(rng: np.random.Generator) -> list[str]:
    """One or two sentiment clauses joined by 'and' / 'but', maybe with a neutral clause."""
    words = _sentiment_clause(rng)
    if rng.random() < 0.5:
        words = words + [_pick(rng, CONNECTIVES)] + _sentiment_clause(rng)
    if rng.random() < 0.25:
        neutral = _pick(rng, NEUTRAL_CLAUSES).split()
        words = neutral + ["and"] + words if rng.random() < 0.5 else words + ["and"] + neutral
    return words


def _split_of(words: list[str]) -> str:
    """'test' for one checksum bucket out of TEST_BUCKETS, else 'train' (never both)."""
    return "test" if zlib.crc32(" ".join(words).encode()) % TEST_BUCKETS == 0 else "train"


@functools.lru_cache(maxsize=8)
def _generate(split: str, n: int, seed: int) -> tuple[tuple[tuple[str, ...], ...], tuple[int, ...]]:
    """n sentences of `split` and their labels; each label is a fair coin drawn first, then
    sentences are drawn until one of that label (clear margin, right split) comes up."""
    rng = np.random.default_rng(seed)
    sentences, labels = [], []
    while len(sentences) < n:
        wanted = int(rng.integers(2))
        while True:
            words = _sentence(rng)
            score, _ = sentiment_score(words)
            if abs(score) >= MIN_MARGIN and int(score > 0) == wanted and _split_of(words) == split:
                break
        sentences.append(tuple(words))
        labels.append(wanted)
    return tuple(sentences), tuple(labels)


def reviews_dataset(split: str = "test", n: int | None = None,
                    seed: int | None = None) -> Dataset:
    """Generated movie-review sentences with their labels and the tokens that decide them.

    split: "train" (20 000 sentences by default) or "test" (2 000); disjoint for every seed.
    n: how many (the first n of the same stream: n=10 gives the first 10 of n=100).
    seed: the numpy Generator seed (default: 0 for train, 1 for test).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} for 'reviews'; valid: {', '.join(SPLITS)}")
    n = SPLITS[split] if n is None else n
    seed = DEFAULT_SEEDS[split] if seed is None else seed
    sentences, labels = _generate(split, n, seed)
    tokens = [list(words) for words in sentences]
    relevant = torch.zeros(n, MAX_LEN, dtype=torch.long)
    for row, words in enumerate(tokens):
        relevant[row, : len(words)] = torch.tensor(sentiment_score(words)[1])
    return Dataset(
        name="reviews",
        x=encode(tokens),
        y=torch.tensor(labels, dtype=torch.long),
        classes=list(CLASSES),
        relevant=relevant,
        tokens=tokens,
        vocab=list(VOCAB),
        notes="Generated from templates and the VADER lexicon (vaderSentiment, MIT licence; "
              "Hutto & Gilbert, ICWSM 2014). Labels by the rule in xai_course/zoo/reviews.py.",
    )


# --- the model ----------------------------------------------------------------------------------

class ReviewEncoder(nn.Module):
    """Embedded tokens (N, L, D) -> logits (N, 2): a bidirectional LSTM, mean over positions, a
    linear layer. The mean makes the logit a sum of per-position terms, like the label rule."""

    def __init__(self, embedding_dim: int = 32, hidden_size: int = 64):
        super().__init__()
        self.lstm = nn.LSTM(embedding_dim, hidden_size, batch_first=True, bidirectional=True)
        self.classifier = nn.Linear(2 * hidden_size, len(CLASSES))

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        # cuDNN's RNN kernels cannot run backward in eval mode, and explanations need gradients
        # of a model in eval mode; the plain kernels can, and are fast enough for these sizes.
        with torch.backends.cudnn.flags(enabled=False):
            states, _ = self.lstm(embedded)  # (N, L, 2 * hidden)
        return self.classifier(states.mean(dim=1))


class ReviewClassifier(nn.Module):
    """Token ids (N, L) -> logits (N, 2): `encoder(embedding(tokens))`.

    The split lets attribution methods work on the continuous embedding output:
    `method(model.encoder, model.embedding(tokens), target)`.
    """

    def __init__(self, vocab_size: int = len(VOCAB), embedding_dim: int = 32,
                 hidden_size: int = 64):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.encoder = ReviewEncoder(embedding_dim, hidden_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.embedding(tokens))


def train(progress: bool = True, epochs: int = 8,
          batch_size: int = 128) -> tuple[nn.Module, float]:
    """The script that made the shipped weights: Adam on 20 000 generated training sentences.

    Fixed seeds, so a rerun gives the same model on the same machine. Returns (model, held-out
    accuracy on the 2 000 test sentences) and prints the accuracy.
    """
    from tqdm.auto import tqdm

    torch.manual_seed(0)
    train_data, test_data = reviews_dataset("train"), reviews_dataset("test")
    model = ReviewClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=3e-3, total_steps=epochs * -(-len(train_data) // batch_size))
    shuffle = torch.Generator().manual_seed(0)
    bar = tqdm(range(epochs), desc="reviews", disable=not progress)
    for _ in bar:
        model.train()
        order = torch.randperm(len(train_data), generator=shuffle)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            loss = nn.functional.cross_entropy(model(train_data.x[batch]), train_data.y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", test_acc=f"{accuracy(model, test_data):.3f}")
    test_accuracy = accuracy(model, test_data)
    print(f"reviews: held-out accuracy {test_accuracy:.4f} on {len(test_data)} test sentences")
    return model.eval(), test_accuracy


MODELS = [
    ModelSpec(
        name="reviews",
        build=ReviewClassifier,
        dataset="reviews",
        description="Bidirectional LSTM on generated movie reviews (embedding -> encoder); "
                    "explain it on `model.embedding(x)` with `model.encoder`.",
        train=train,
    )
]
DATASETS = {"reviews": reviews_dataset}
