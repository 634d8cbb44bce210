"""Searching a migrated workspace (DESIGN §4, §4.1), as a user sees it: `Workspace.search` and `clawfs search`.

A small fixed corpus with known answers, migrated once for the module (the search does not depend on the
PostgreSQL version; one test migrates it again on every version through the CLI and compares):

- full text: FTS5 bm25 (a document repeating the word ranks above one saying it once), every word must
  match, porter stemming, any user string is words (never FTS5 syntax, never an error); `raw=True` / `--fts5`
  is FTS5 syntax and an invalid query is a usage error;
- vector: 4-d hand-made vectors with small integer components (exact in the default bf16 index), the
  exact nearest neighbour first, score = 1 - cosine distance, a document with two vectors appears once;
- hybrid: reciprocal rank fusion with k = 60 of the two lists;
- snippets, the CLI's table and JSON, its errors (one line, the documented exit code), and reads from
  several threads at once.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clawfs import Hit, MigrateOptions, UsageError, Workspace, migrate
from cli_runner import ERROR_PREFIX, Result, run_cli, run_process
from conftest import PG_VERSIONS, fresh_store
from pgstore import PgStore

pytestmark = pytest.mark.pg

VERSIONS = (0,) if os.environ.get("CLAWFS_TEST_PG_URL") else PG_VERSIONS
DIMENSION = 4
RRF_K = 60
HIT_KEYS = {"document_id", "score", "content", "metadata", "created_at", "snippet"}

# Workspace "default": id -> (content, vectors). Every vector points in its own direction.
LONG = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
    " seventeen eighteen nineteen twenty"
)
CORPUS: dict[int, tuple[str, list[list[float]]]] = {
    1: ("alpha alpha alpha kilo lima", [[1, 0, 0, 0]]),  # "alpha" three times ...
    2: ("alpha mike november oscar papa", [[1, 1, 0, 0]]),  # ... once, same length
    3: ("alpha beta quebec romeo sierra xray yankee zulu", [[0, 1, 0, 0]]),  # once, longer; with "beta"
    4: ("beta tango uniform victor whiskey", [[1, 2, 0, 0]]),
    5: ("the dog runs every morning", [[2, 1, 1, 0]]),  # porter: "running" finds "runs"
    6: ("many vectors belong to this note", [[0, 3, 1, 0], [0, 2, 0, 1]]),  # two vectors
    7: ("a note without any vector at all", []),
    8: (LONG, [[1, 1, 1, 1]]),  # longer than a snippet
    10: ("hotel hotel hotel booking desk", []),  # hybrid: full text only (rank 1)
    11: ("hotel garden view with a pool", [[0, 0, 1, 2]]),  # hybrid: both lists (rank 2 in each)
    12: ("quiet cabin in the woods", [[0, 0, 0, 1]]),  # hybrid: vector only (rank 1)
    13: ("gamma delta epsilon", [[2, 0, 1, 0]]),
    14: ("zeta eta theta iota", [[1, 0, 2, 0]]),
    15: ("lambda mu nu xi omicron", [[0, 1, 0, -1]]),
}
DEFAULT_IDS = set(CORPUS)
WITH_VECTORS = {d for d, (_, vectors) in CORPUS.items() if vectors}
# Workspace "other": the same words and vector; never found from "default".
OTHER: dict[int, tuple[str, list[list[float]]]] = {100: ("alpha alpha alpha alpha", [[1, 0, 0, 0]])}

ALPHA = [1, 2, 3]  # the documents with "alpha", best (bm25) first
HOTEL_QUERY = [0.0, 1.0, 1.0, 8.0]  # vector ranks: 12, 11, 8, ...
MULTI = 6


# -- the corpus, migrated once ----------------------------------------------------------------------


def fill_corpus(pg: PgStore) -> None:
    pg.create_schema(dimension=DIMENSION)
    for workspace, docs in (("default", CORPUS), ("other", OTHER)):
        for doc, (content, vectors) in docs.items():
            pg.add_documents(
                [
                    {
                        "id": doc,
                        "workspace_id": workspace,
                        "content": content,
                        "metadata": json.dumps({"n": doc}),
                        "created_at": f"2024-01-{doc % 28 + 1:02d} 10:00:00+00",
                    }
                ]
            )
            pg.add_vectors({"document_id": doc, "embedding": v} for v in vectors)


@dataclass
class Corpus:
    root: Path
    ws: Workspace


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    with fresh_store(VERSIONS[0]) as pg:
        fill_corpus(pg)
        root = tmp_path_factory.mktemp("search") / "clawfs"
        # verify=False: the corpus' hand-made vectors tie (many are orthogonal), which makes migrate's
        # verification fail although the copy is exact; see test_migrate_verifies_a_workspace_whose_vectors_tie
        migrate(pg.url, root, MigrateOptions(all_workspaces=True, verify=False))
    with Workspace.open(root, "default") as ws:
        yield Corpus(root, ws)


# -- helpers --------------------------------------------------------------------------------------------


def ids(hits: Sequence[Hit]) -> list[int]:
    return [h.document_id for h in hits]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def exact_similarities(query: Sequence[float]) -> dict[int, float]:
    """Document -> 1 - cosine distance of its best vector, by brute force."""
    return {d: max(cosine(v, query) for v in vectors) for d, (_, vectors) in CORPUS.items() if vectors}


def assert_well_formed(hits: Sequence[Hit], k: int) -> None:
    """What every answer is: at most k hits of this workspace, each document once, best first."""
    assert isinstance(hits, list)
    assert len(hits) <= k
    assert all(isinstance(h, Hit) for h in hits)
    assert len(set(ids(hits))) == len(hits), f"a document appears twice: {ids(hits)}"
    assert set(ids(hits)) <= DEFAULT_IDS
    scores = [h.score for h in hits]
    assert all(math.isfinite(s) for s in scores), scores
    assert scores == sorted(scores, reverse=True), scores
    assert all(isinstance(h.snippet, str) for h in hits)


def assert_exact_vector_answer(hits: Sequence[Hit], query: Sequence[float], k: int) -> None:
    """The hits are the k most similar documents, each with its exact similarity (within 1e-3)."""
    exact = exact_similarities(query)
    expected = sorted(exact.values(), reverse=True)[:k]
    assert_well_formed(hits, k)
    assert len(hits) == len(expected)
    for hit in hits:
        assert hit.score == pytest.approx(exact[hit.document_id], abs=1e-3), hit
    assert [h.score for h in hits] == pytest.approx(expected, abs=1e-3)


def search_args(root: Path, *more: str | os.PathLike[str]) -> list[str | os.PathLike[str]]:
    return ["search", "--root", root, "--workspace-id", "default", *more]


def assert_one_error_line(result: Result, code: int) -> str:
    """A failure: the documented exit code, exactly one line on stderr (`clawfs: error: ...`), no output."""
    assert result.code == code, f"exit {result.code}, expected {code}; stderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith(ERROR_PREFIX), lines[0]
    assert result.stdout == ""
    return lines[0]


def strict_json(text: str) -> Any:
    """JSON as other tools read it: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> Any:
        raise AssertionError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


# -- full text ------------------------------------------------------------------------------------------


def test_full_text_ranks_by_bm25_a_repeated_word_first(corpus: Corpus) -> None:
    hits = corpus.ws.search("alpha")

    assert ids(hits) == ALPHA  # 3 x alpha, then once in 5 words, then once in 8 words; "other" is not searched
    assert hits[0].score > hits[1].score > hits[2].score
    assert_well_formed(hits, 10)
    assert ids(corpus.ws.search("alpha", k=2)) == ALPHA[:2]
    assert ids(corpus.ws.search("ALPHA")) == ALPHA


def test_full_text_needs_every_word(corpus: Corpus) -> None:
    assert ids(corpus.ws.search("alpha beta")) == [3]
    assert ids(corpus.ws.search("beta alpha")) == [3]
    assert sorted(ids(corpus.ws.search("beta"))) == [3, 4]
    assert corpus.ws.search("alpha nosuchword") == []
    assert corpus.ws.search("nosuchword") == []


def test_full_text_stems_words(corpus: Corpus) -> None:
    assert ids(corpus.ws.search("running")) == [5]
    assert ids(corpus.ws.search("run")) == [5]
    assert ids(corpus.ws.search("mornings")) == [5]


def test_full_text_score_is_minus_bm25_and_higher_is_better(corpus: Corpus) -> None:
    hits = corpus.ws.search("hotel")

    assert ids(hits) == [10, 11]
    assert all(h.score > 0 for h in hits)  # bm25 is negative in FTS5: the score is its opposite


def test_a_workspace_opened_by_its_database_path_searches_the_same(corpus: Corpus) -> None:
    with Workspace.open(corpus.ws.path) as ws:
        assert ws.search("alpha") == corpus.ws.search("alpha")


# -- vector -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ([3, 1, 0, 1], 1),  # 0.905, next 0.862
        ([0, 0, 1, 2], 11),  # its own direction: 1.0
        ([2, 1, 1, 0], 5),
        ([0, 1, 1, 8], 12),
        ([1, 0, 2, 1], 14),
    ],
)
def test_vector_search_finds_the_exact_nearest_neighbour_with_its_cosine_similarity(
    corpus: Corpus, query: list[float], first: int
) -> None:
    hits = corpus.ws.search(vector=query, k=len(CORPUS))

    assert hits[0].document_id == first
    assert_exact_vector_answer(hits, query, len(CORPUS))
    assert len(hits) == len(WITH_VECTORS)  # every document with a vector, once
    assert_exact_vector_answer(corpus.ws.search(vector=query, k=3), query, 3)


def test_vector_search_accepts_numpy_arrays(corpus: Corpus) -> None:
    query = [3.0, 1.0, 0.0, 1.0]
    expected = corpus.ws.search(vector=query, k=5)

    assert corpus.ws.search(vector=np.asarray(query, dtype=np.float64), k=5) == expected
    assert corpus.ws.search(vector=np.asarray(query, dtype=np.float32), k=5) == expected


def test_a_document_with_several_vectors_appears_once_with_its_best_score(corpus: Corpus) -> None:
    first, second = CORPUS[MULTI][1]
    # near both of its vectors (0.954 and 0.944), which are the two nearest vectors of the workspace
    query = [0.0, 3.0, 1.0, 1.0]

    hits = corpus.ws.search(vector=query, k=len(CORPUS))

    assert ids(hits)[:2] == [MULTI, 3]
    assert ids(hits).count(MULTI) == 1
    assert hits[0].score == pytest.approx(max(cosine(first, query), cosine(second, query)), abs=1e-3)
    assert hits[0].score == pytest.approx(cosine(first, query), abs=1e-3)
    assert_exact_vector_answer(hits, query, len(CORPUS))
    # k = 2 although the two nearest vectors belong to one document: the next document fills the second place
    assert ids(corpus.ws.search(vector=query, k=2)) == [MULTI, 3]
    assert ids(corpus.ws.search(vector=query, k=1)) == [MULTI]
    # its second vector's own direction: the score is that vector's (1.0), not the first one's
    hit = corpus.ws.search(vector=second, k=1)[0]
    assert hit.document_id == MULTI
    assert hit.score == pytest.approx(1.0, abs=1e-3)


def test_ef_search_gives_the_same_answer_on_a_small_workspace(corpus: Corpus) -> None:
    query = [3.0, 1.0, 0.0, 1.0]
    expected = corpus.ws.search(vector=query, k=3)

    for ef in (1, 10, 500):
        hits = corpus.ws.search(vector=query, k=3, ef_search=ef)
        assert ids(hits) == ids(expected), ef
        assert_exact_vector_answer(hits, query, 3)


@pytest.mark.parametrize(
    "vector",
    [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0, 5.0], [], [math.nan, 0, 0, 0], [math.inf, 0, 0, 0], [[1, 0, 0, 0]]],
    ids=["3-d", "5-d", "empty", "nan", "inf", "nested"],
)
def test_a_query_vector_that_cannot_be_searched_is_a_usage_error(corpus: Corpus, vector: Any) -> None:
    with pytest.raises(UsageError):
        corpus.ws.search(vector=vector)
    with pytest.raises(UsageError):
        corpus.ws.search("alpha", vector=vector)


def test_a_query_vector_without_a_direction_gives_finite_scores_or_a_usage_error(corpus: Corpus) -> None:
    """A zero vector, or one so small that its squared norm underflows, has no cosine with anything:
    either it is refused, or the scores are still numbers (a NaN score cannot be ranked, nor printed as JSON)."""
    for vector in ([0.0, 0.0, 0.0, 0.0], [1e-30, 0.0, 0.0, 0.0], [1e-30, 1e-30, 0.0, 0.0]):
        try:
            hits = corpus.ws.search(vector=vector, k=5)
        except UsageError:
            continue
        assert_well_formed(hits, 5)


# -- hybrid ---------------------------------------------------------------------------------------------


def test_hybrid_is_reciprocal_rank_fusion_with_k_60(corpus: Corpus) -> None:
    hits = corpus.ws.search("hotel", vector=HOTEL_QUERY, k=5)

    # 11: rank 2 in both lists; 10: full-text rank 1 only; 12: vector rank 1 only; 8: vector rank 3 only
    assert ids(hits)[:4] == [11, 10, 12, 8]
    assert hits[0].score == pytest.approx(1 / (RRF_K + 2) + 1 / (RRF_K + 2), abs=1e-12)
    assert hits[1].score == pytest.approx(1 / (RRF_K + 1), abs=1e-12)
    assert hits[2].score == pytest.approx(1 / (RRF_K + 1), abs=1e-12)
    assert hits[3].score == pytest.approx(1 / (RRF_K + 3), abs=1e-12)
    assert_well_formed(hits, 5)


@pytest.mark.parametrize(
    ("text", "vector"),
    [("hotel", HOTEL_QUERY), ("alpha", [0.0, 1.0, 0.0, 0.0]), ("alpha", [3.0, 1.0, 0.0, 1.0]), ("beta", [0, 0, 1, 0])],
)
def test_hybrid_score_is_the_sum_of_1_over_60_plus_rank_in_each_list(
    corpus: Corpus, text: str, vector: list[float]
) -> None:
    k = len(CORPUS)
    full_text = {h.document_id: r for r, h in enumerate(corpus.ws.search(text, k=50), start=1)}
    nearest = {h.document_id: r for r, h in enumerate(corpus.ws.search(vector=vector, k=50), start=1)}

    hits = corpus.ws.search(text, vector=vector, k=k)

    assert_well_formed(hits, k)
    assert set(ids(hits)) == set(full_text) | set(nearest)
    for hit in hits:
        expected = sum(
            1 / (RRF_K + ranks[hit.document_id]) for ranks in (full_text, nearest) if hit.document_id in ranks
        )
        assert hit.score == pytest.approx(expected, abs=1e-12), hit
    both = [h for h in hits if h.document_id in full_text and h.document_id in nearest]
    one = [h for h in hits if (h.document_id in full_text) != (h.document_id in nearest)]
    assert both
    assert min(h.score for h in both) > max(h.score for h in one)  # small lists: found twice beats found once
    assert ids(corpus.ws.search(text, vector=vector, k=2)) == ids(hits)[:2]


# -- snippets -------------------------------------------------------------------------------------------


def test_snippets_mark_the_matched_terms(corpus: Corpus) -> None:
    hits = {h.document_id: h for h in corpus.ws.search("alpha")}

    assert hits[2].snippet == "**alpha** mike november oscar papa"
    assert hits[1].snippet == "**alpha** **alpha** **alpha** kilo lima"
    assert corpus.ws.search("running")[0].snippet == "the dog **runs** every morning"
    assert corpus.ws.search("alpha beta")[0].snippet == "**alpha** **beta** quebec romeo sierra xray yankee zulu"
    marked = corpus.ws.search("mike", marks=("<b>", "</b>"))[0]
    assert marked.snippet == "alpha <b>mike</b> november oscar papa"


def test_a_long_document_gets_a_window_of_its_text_around_the_match(corpus: Corpus) -> None:
    hit = corpus.ws.search("twenty")[0]

    assert hit.document_id == 8
    assert "**twenty**" in hit.snippet
    assert len(hit.snippet.split()) < len(LONG.split())
    assert hit.content == LONG


def test_vector_hits_get_the_first_words_of_the_document(corpus: Corpus) -> None:
    hits = {h.document_id: h for h in corpus.ws.search(vector=[1, 1, 1, 1], k=len(CORPUS))}

    assert hits[8].snippet == " ".join(LONG.split()[:16]) + " …"
    assert hits[12].snippet == "quiet cabin in the woods"
    assert all("**" not in h.snippet for h in hits.values())


def test_hybrid_snippets_mark_text_matches_and_lead_the_others(corpus: Corpus) -> None:
    hits = {h.document_id: h for h in corpus.ws.search("hotel", vector=HOTEL_QUERY, k=5)}

    assert hits[11].snippet == "**hotel** garden view with a pool"
    assert hits[10].snippet == "**hotel** **hotel** **hotel** booking desk"
    assert hits[12].snippet == "quiet cabin in the woods"  # found by its vector only


def test_hits_carry_content_metadata_and_created_at(corpus: Corpus) -> None:
    hit = corpus.ws.search("kilo")[0]

    assert hit.document_id == 1
    assert hit.content == CORPUS[1][0]
    assert hit.metadata == {"n": 1}
    assert isinstance(hit.created_at, str)
    assert hit.created_at.startswith("2024-01-02")


# -- user text is never syntax ------------------------------------------------------------------------

# Strings that mean "alpha" once the syntax characters are read as what they are to a user: punctuation.
MEANS_ALPHA = [
    '"alpha"',
    'alpha"',
    '"alpha',
    "alpha*",
    "^alpha",
    "+alpha",
    "-alpha",
    "alpha:",
    "(alpha",
    "alpha)",
    "alpha -",
    'alpha """',
    "alpha\x00",
    "\x00alpha",
    "alpha\x00alpha",
    "ALPHA!",
    "  alpha \n\t",
    "alpha\u3000",
    "alpha ...",
]

NASTY = [
    "",
    " ",
    "\t\n\r ",
    "\u3000\u2028\u00a0",
    '"',
    '""',
    '"""',
    "'",
    "''",
    "AND",
    "OR",
    "NOT",
    "NEAR",
    "NEAR(",
    "NEAR(alpha",
    "NEAR(alpha beta, -1)",
    "NEAR/3",
    "alpha AND",
    "AND alpha",
    "alpha OR beta",
    "NOT alpha",
    "alpha NOT",
    "*",
    "**",
    "alph*",
    "^",
    ":",
    "-",
    "+",
    "(",
    ")",
    "((((alpha",
    "alpha))))",
    ")(",
    "\x00",
    "\x00\x00\x00",
    "🙂",
    "👍🏽 alpha",
    "ｆｕｌｌ ｗｉｄｔｈ",
    "e\u0301",
    "\u0301",
    "\u200b",
    "\ufeff",
    "content:alpha",
    "content: alpha",
    "{content metadata}: alpha",
    "id: 1",
    "metadata:",
    "alpha'; DROP TABLE document_store; --",
    "\\",
    "%_",
    "rank",
    "bm25(documents)",
    "a" * 10_000,
    '"' * 1001,
    "NEAR(" * 300,
    "(" * 300,
    " OR ".join(["alpha"] * 200),
    "\x7f\x01\x1b[31m",
]


@pytest.mark.parametrize("text", MEANS_ALPHA, ids=range(len(MEANS_ALPHA)))
def test_syntax_characters_in_user_text_are_punctuation(corpus: Corpus, text: str) -> None:
    assert ids(corpus.ws.search(text)) == ALPHA


@pytest.mark.parametrize("text", NASTY, ids=range(len(NASTY)))
def test_nasty_user_text_never_raises(corpus: Corpus, text: str) -> None:
    hits = corpus.ws.search(text, k=5)
    assert_well_formed(hits, 5)

    hybrid = corpus.ws.search(text, vector=[1, 0, 0, 0], k=5)
    assert_well_formed(hybrid, 5)
    assert len(hybrid) == 5  # the vector list alone has more than five documents


def test_operators_in_user_text_are_words_that_must_match(corpus: Corpus) -> None:
    assert corpus.ws.search("alpha OR beta") == []  # no document has the word "or"
    assert corpus.ws.search("NOT alpha") == []
    assert corpus.ws.search("alph*") == []  # no prefix search: "alph" is a word
    assert corpus.ws.search("NEAR(alpha beta)") == []


def test_lone_surrogates_in_user_text_never_raise_anything_but_a_usage_error(corpus: Corpus) -> None:
    """What Python makes of bytes that are not UTF-8 (file names, argv under `surrogateescape`)."""
    for text in ("\udcff", "alpha \udce9t\udce9", "\ud83d"):
        for vector in (None, [1.0, 0.0, 0.0, 0.0]):
            try:
                hits = corpus.ws.search(text, vector=vector, k=5)
            except UsageError:
                continue
            assert_well_formed(hits, 5)


# Pieces a user (or an agent pasting text) might type: FTS5 operators and punctuation, NULs, emoji,
# full-width letters, combining marks, spaces of every kind, and the corpus' own words.
PIECES = [
    '"', "'", '""', "AND", "OR", "NOT", "NEAR", "NEAR(", "NEAR/2", "(", ")", "*", "^", ":", "-", "+", ",",
    "{", "}", "\\", "\x00", "🙂", "👍🏽", "ｆｕｌｌ", "e\u0301", "\u0301", " ", "  ", "\t", "\n", "\r\n", "\u3000",
    "\u200b", "\ufeff", "\u2028", "alpha", "beta", "hotel", "runs", "content:", "metadata:", "id:", "…", "%",
]  # fmt: skip
user_text = st.one_of(
    st.lists(st.sampled_from(PIECES) | st.text(max_size=6), max_size=12).map("".join),
    st.text(),
    st.lists(st.sampled_from(PIECES), max_size=20).map("".join),
)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(user_text, min_size=1, max_size=8))
def test_any_user_text_is_safe_in_full_text_and_hybrid_search(corpus: Corpus, texts: list[str]) -> None:
    for text in texts:
        hits = corpus.ws.search(text, k=5)
        assert_well_formed(hits, 5)
        if not text.replace("\x00", " ").split():
            assert hits == []  # no word: nothing to match

        hybrid = corpus.ws.search(text, vector=[0.0, 1.0, 1.0, 8.0], k=5)
        assert_well_formed(hybrid, 5)
        assert len(hybrid) == 5


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(user_text, min_size=1, max_size=8))
def test_any_raw_fts5_query_either_works_or_is_a_usage_error(corpus: Corpus, texts: list[str]) -> None:
    for text in texts:
        for vector in (None, [1.0, 0.0, 0.0, 0.0]):
            try:
                hits = corpus.ws.search(text, vector=vector, k=5, raw=True)
            except UsageError:
                continue
            assert_well_formed(hits, 5)


# -- raw FTS5 syntax --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("alpha OR beta", {1, 2, 3, 4}),
        ("alpha AND beta", {3}),
        ("alpha NOT beta", {1, 2}),
        ("alph*", {1, 2, 3}),
        ("NEAR(alpha beta)", {3}),
        ("NEAR(alpha zulu, 2)", set()),
        ("NEAR(alpha zulu, 10)", {3}),
        ('"alpha mike"', {2}),
        ("content: beta", {3, 4}),
        ("^beta", {4}),
        ("(alpha OR hotel) NOT kilo", {2, 3, 10, 11}),
    ],
)
def test_raw_fts5_syntax_works(corpus: Corpus, query: str, expected: set[int]) -> None:
    hits = corpus.ws.search(query, raw=True, k=len(CORPUS))

    assert set(ids(hits)) == expected
    assert_well_formed(hits, len(CORPUS))


def test_raw_snippets_mark_the_matched_terms(corpus: Corpus) -> None:
    hits = {h.document_id: h for h in corpus.ws.search("alph* OR hotel", raw=True)}

    assert hits[2].snippet == "**alpha** mike november oscar papa"
    assert hits[11].snippet == "**hotel** garden view with a pool"


INVALID_FTS5 = [
    "alpha AND",
    "AND alpha",
    "alpha OR",
    '"unterminated',
    "NEAR(alpha",
    "(alpha",
    "alpha)",
    "*",
    "-alpha",
    "nosuchcolumn: alpha",
    "alpha NOT",
    "NEAR(alpha beta, -1)",
]


@pytest.mark.parametrize("query", INVALID_FTS5)
def test_invalid_raw_fts5_syntax_is_a_usage_error(corpus: Corpus, query: str) -> None:
    with pytest.raises(UsageError, match="FTS5"):
        corpus.ws.search(query, raw=True)
    with pytest.raises(UsageError, match="FTS5"):
        corpus.ws.search(query, vector=[1, 0, 0, 0], raw=True)
    assert_well_formed(corpus.ws.search(query), 10)  # the same text as words is fine


def test_raw_empty_query_finds_nothing(corpus: Corpus) -> None:
    assert corpus.ws.search("", raw=True) == []
    assert corpus.ws.search("   ", raw=True) == []


@pytest.mark.parametrize("text", ["", " ", "  \t\n", "\u3000"])
def test_raw_empty_query_in_hybrid_search_leaves_the_vector_list(corpus: Corpus, text: str) -> None:
    """An empty full-text query finds nothing, so the hybrid answer is the vector list's order."""
    vector = [3.0, 1.0, 0.0, 1.0]
    nearest = ids(corpus.ws.search(vector=vector, k=5))

    hits = corpus.ws.search(text, vector=vector, k=5, raw=True)

    assert ids(hits) == nearest
    assert hits == corpus.ws.search(text, vector=vector, k=5)  # the same as when the text is words


def test_cli_fts5_runs_raw_syntax(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, *search_args(corpus.root, "--text", "alph* OR beta", "--fts5", "--json", "-k", "20"))

    assert result.code == 0, result.stderr
    assert {h["document_id"] for h in strict_json(result.stdout)} == {1, 2, 3, 4}
    # without --fts5 the same text is four words, which no document has together
    plain = run_cli(capsys, *search_args(corpus.root, "--text", "alph* OR beta", "--json"))
    assert plain.code == 0, plain.stderr
    assert strict_json(plain.stdout) == []


def test_cli_fts5_with_blank_text_and_a_vector_is_a_vector_search(
    corpus: Corpus, capsys: pytest.CaptureFixture[str]
) -> None:
    hits = cli_hits(capsys, corpus.root, "--text", " ", "--fts5", "--vector", "[3, 1, 0, 1]", "-k", "3")

    assert [h["document_id"] for h in hits] == ids(corpus.ws.search(vector=[3, 1, 0, 1], k=3))


@pytest.mark.parametrize("query", ["alpha AND", '"unterminated', "NEAR(alpha", "(", "*"])
def test_cli_fts5_with_invalid_syntax_is_one_error_line_and_exit_2(
    corpus: Corpus, capsys: pytest.CaptureFixture[str], query: str
) -> None:
    for more in ([], ["--json"], ["--vector", "[1, 0, 0, 0]"]):
        result = run_cli(capsys, *search_args(corpus.root, "--text", query, "--fts5", *more))
        line = assert_one_error_line(result, 2)
        assert "FTS5" in line


# -- the command line -----------------------------------------------------------------------------------


def cli_hits(capsys: pytest.CaptureFixture[str], root: Path, *more: str | os.PathLike[str]) -> list[dict[str, Any]]:
    result = run_cli(capsys, *search_args(root, *more, "--json"))
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    hits: list[dict[str, Any]] = strict_json(result.stdout)
    return hits


def test_cli_json_prints_the_hits_with_their_fields(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    for more, expected in (
        (["--text", "alpha"], corpus.ws.search("alpha")),
        (["--vector", "[0, 1, 1, 8]", "-k", "4"], corpus.ws.search(vector=HOTEL_QUERY, k=4)),
        (["--text", "hotel", "--vector", "[0, 1, 1, 8]", "-k", "5"], corpus.ws.search("hotel", HOTEL_QUERY, k=5)),
    ):
        hits = cli_hits(capsys, corpus.root, *more)
        assert hits, more
        assert all(set(h) == HIT_KEYS for h in hits)
        assert hits == [asdict(h) for h in expected], more


def test_cli_modes_choose_the_list(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    both = ["--text", "hotel", "--vector", "[0, 1, 1, 8]", "-k", "5"]
    as_fts = cli_hits(capsys, corpus.root, *both, "--mode", "fts")
    as_vector = cli_hits(capsys, corpus.root, *both, "--mode", "vector")
    as_hybrid = cli_hits(capsys, corpus.root, *both, "--mode", "hybrid")

    assert [h["document_id"] for h in as_fts] == [10, 11]
    assert [h["document_id"] for h in as_vector][:3] == [12, 11, 8]
    assert [h["document_id"] for h in as_hybrid][:4] == [11, 10, 12, 8]
    assert [h["document_id"] for h in cli_hits(capsys, corpus.root, "--text", "hotel", "--mode", "fts")] == [10, 11]


def test_cli_table_shows_rank_score_document_and_snippet(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, *search_args(corpus.root, "--text", "mike"))

    assert result.code == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if "Rank" in line)
    for column in ("Rank", "Score", "Document", "Snippet"):
        assert column in header
    row = next(line for line in result.stdout.splitlines() if "november" in line)
    assert " 2 " in row  # the document id
    assert f"{corpus.ws.search('mike')[0].score:.4f}" in row
    assert "alpha mike november oscar papa" in row  # the marks become bold, not asterisks
    assert "**" not in result.stdout


def test_cli_table_of_a_vector_search_shows_the_first_words(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, *search_args(corpus.root, "--vector", "[0, 0, 0, 1]", "-k", "2"))

    assert result.code == 0, result.stderr
    assert "Snippet" in result.stdout
    assert "quiet cabin in the woods" in result.stdout


def test_cli_without_hits_says_so(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, *search_args(corpus.root, "--text", "nosuchword"))

    assert result.code == 0, result.stderr
    assert result.stdout.strip() == "no hits"
    assert cli_hits(capsys, corpus.root, "--text", "nosuchword") == []


@pytest.mark.parametrize("doc", [12, 11, 1, MULTI])
def test_cli_like_finds_the_document_itself_first(corpus: Corpus, capsys: pytest.CaptureFixture[str], doc: int) -> None:
    hits = cli_hits(capsys, corpus.root, "--like", str(doc), "-k", "3")

    assert hits[0]["document_id"] == doc
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert len({h["document_id"] for h in hits}) == 3
    # with --text it is hybrid, with the document's (first) vector
    hybrid = cli_hits(capsys, corpus.root, "--like", str(doc), "--text", "hotel", "-k", "3")
    assert hybrid == [asdict(h) for h in corpus.ws.search("hotel", CORPUS[doc][1][0], k=3)]


def test_cli_vector_from_a_file(corpus: Corpus, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "query.json"
    path.write_text("[0, 1, 1, 8]\n")

    from_file = cli_hits(capsys, corpus.root, "--vector", f"@{path}", "-k", "5")

    assert from_file == cli_hits(capsys, corpus.root, "--vector", "[0.0, 1.0, 1.0, 8.0]", "-k", "5")
    assert [h["document_id"] for h in from_file][:3] == [12, 11, 8]
    assert from_file == [asdict(h) for h in corpus.ws.search(vector=HOTEL_QUERY, k=5)]


def test_cli_ef_search_is_accepted_and_keeps_the_top_hit(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    default = cli_hits(capsys, corpus.root, "--vector", "[3, 1, 0, 1]", "-k", "3")
    assert default[0]["document_id"] == 1

    for ef in ("1", "16", "400"):
        hits = cli_hits(capsys, corpus.root, "--vector", "[3, 1, 0, 1]", "-k", "3", "--ef-search", ef)
        assert hits[0]["document_id"] == 1, ef
        assert [h["document_id"] for h in hits] == [h["document_id"] for h in default], ef
        hybrid = cli_hits(capsys, corpus.root, "--text", "alpha", "--vector", "[3, 1, 0, 1]", "--ef-search", ef)
        assert hybrid[0]["document_id"] == 1, ef


CLI_ERRORS: list[tuple[str, list[str], int]] = [
    ("wrong-dimension", ["--vector", "[1, 2, 3]"], 2),
    ("too-many-dimensions", ["--vector", "[1, 2, 3, 4, 5]"], 2),
    ("hybrid-wrong-dimension", ["--text", "alpha", "--vector", "[1, 2]"], 2),
    ("not-json", ["--vector", "one two"], 2),
    ("strings", ["--vector", '["a", 1, 2, 3]'], 2),
    ("booleans", ["--vector", "[true, 0, 0, 0]"], 2),
    ("object", ["--vector", '{"x": 1}'], 2),
    ("number", ["--vector", "7"], 2),
    ("nested", ["--vector", "[[1, 0, 0, 0]]"], 2),
    ("nan", ["--vector", "[NaN, 0, 0, 0]"], 2),
    ("infinity", ["--vector", "[Infinity, 0, 0, 0]"], 2),
    ("empty", ["--vector", "[]"], 2),
    ("missing-file", ["--vector", "@/nonexistent/query.json"], 2),
    ("directory-as-file", ["--vector", "@/"], 2),
    ("like-without-vectors", ["--like", "7"], 2),
    ("like-unknown-document", ["--like", "9999"], 2),
    ("like-not-a-number", ["--like", "seven"], 2),
    ("like-and-vector", ["--like", "1", "--vector", "[1, 0, 0, 0]"], 2),
    ("k-0-text", ["--text", "alpha", "-k", "0"], 2),
    ("k-0-vector", ["--vector", "[1, 0, 0, 0]", "-k", "0"], 2),
    ("k-0-hybrid", ["--text", "alpha", "--vector", "[1, 0, 0, 0]", "-k", "0"], 2),
    ("k-negative", ["--text", "alpha", "-k", "-3"], 2),
    ("k-not-a-number", ["--text", "alpha", "-k", "ten"], 2),
    ("ef-search-0", ["--vector", "[1, 0, 0, 0]", "--ef-search", "0"], 2),
    ("no-query", [], 2),
    ("fts-without-text", ["--vector", "[1, 0, 0, 0]", "--mode", "fts"], 2),
    ("vector-without-vector", ["--text", "alpha", "--mode", "vector"], 2),
    ("hybrid-without-vector", ["--text", "alpha", "--mode", "hybrid"], 2),
    ("unknown-mode", ["--text", "alpha", "--mode", "semantic"], 2),
]


@pytest.mark.parametrize(("args", "code"), [(a, c) for _, a, c in CLI_ERRORS], ids=[n for n, _, _ in CLI_ERRORS])
def test_cli_errors_are_one_line_with_the_documented_exit_code(
    corpus: Corpus, capsys: pytest.CaptureFixture[str], args: list[str], code: int
) -> None:
    result = run_cli(capsys, *search_args(corpus.root, *args))

    assert_one_error_line(result, code)
    assert_one_error_line(run_cli(capsys, *search_args(corpus.root, *args, "--json")), code)


@pytest.mark.parametrize("workspace", ["nosuch", "Default", "other/x", ""])
def test_cli_unknown_workspace_is_exit_5(corpus: Corpus, capsys: pytest.CaptureFixture[str], workspace: str) -> None:
    result = run_cli(capsys, "search", "--root", corpus.root, "--workspace-id", workspace, "--text", "alpha")

    line = assert_one_error_line(result, 5)
    assert "workspace" in line


def test_cli_missing_root_is_exit_5(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    result = run_cli(capsys, *search_args(tmp_path / "nothing-here", "--text", "alpha"))

    assert_one_error_line(result, 5)


def test_cli_search_in_another_workspace(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "search", "--root", corpus.root, "--workspace-id", "other", "--text", "alpha", "--json")

    assert result.code == 0, result.stderr
    assert [h["document_id"] for h in strict_json(result.stdout)] == [100]


def test_cli_text_that_is_not_utf8_is_searched_or_refused_in_one_line(corpus: Corpus) -> None:
    """Bytes that are not UTF-8 on the command line (a Latin-1 terminal: "été"): a search, or a usage error."""
    result = run_process(*search_args(corpus.root, "--text", "alpha \udce9t\udce9", "--json"))

    assert result.code in (0, 2), result.stderr
    if result.code == 0:
        assert result.stderr == ""
        assert isinstance(strict_json(result.stdout), list)
    else:
        assert_one_error_line(result, 2)


@pytest.mark.parametrize("vector", ["[1e39, 0, 0, 0]", "[1e-30, 0, 0, 0]", "[0, 0, 0, 0]"])
def test_cli_extreme_vectors_are_searched_or_refused_in_one_line(corpus: Corpus, vector: str) -> None:
    """Numbers that float32 cannot hold (overflow to infinity), or a vector without a direction: a usage
    error in one line, or hits with numeric scores (valid JSON), in a real process (its warnings included)."""
    result = run_process(*search_args(corpus.root, "--vector", vector, "--json"))

    assert result.code in (0, 2), result.stderr
    if result.code == 0:
        assert result.stderr == ""
        hits = strict_json(result.stdout)
        assert all(math.isfinite(h["score"]) for h in hits)
    else:
        assert_one_error_line(result, 2)


# -- both PostgreSQL versions, end to end through the CLI -------------------------------------------------


def test_cli_migrate_then_search_gives_the_known_answers(
    pg: PgStore, root: Path, corpus: Corpus, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_corpus(pg)
    migrated = run_cli(capsys, "migrate", "--pg-url", pg.url, "--root", root, "--all-workspaces", "--no-verify")
    assert migrated.code == 0, migrated.stderr

    for more, expected in (
        (["--text", "alpha"], corpus.ws.search("alpha")),
        (["--text", "running"], corpus.ws.search("running")),
        (["--vector", "[3, 1, 0, 1]", "-k", "20"], corpus.ws.search(vector=[3, 1, 0, 1], k=20)),
        (["--text", "hotel", "--vector", "[0, 1, 1, 8]"], corpus.ws.search("hotel", HOTEL_QUERY)),
        (["--like", str(MULTI), "-k", "3"], corpus.ws.search(vector=CORPUS[MULTI][1][0], k=3)),
    ):
        assert cli_hits(capsys, root, *more) == [asdict(h) for h in expected], more
    assert [h["document_id"] for h in cli_hits(capsys, root, "--text", "alpha")] == ALPHA


def test_migrate_verifies_a_workspace_whose_vectors_tie(pg: PgStore, root: Path) -> None:
    """The corpus holds orthogonal vectors, so several vectors lie at exactly the same distance from a
    sampled one. An exact copy must pass verification whichever of the tied vectors each side lists 10th."""
    fill_corpus(pg)

    report = migrate(pg.url, root, MigrateOptions(all_workspaces=True))

    assert report.verified
    with Workspace.open(root, "default") as ws:
        assert ids(ws.search("alpha")) == ALPHA


# -- several threads at once ----------------------------------------------------------------------------

THREADS = 8
SEARCHES_PER_THREAD = 50
MIXED: list[tuple[str | None, list[float] | None, int, bool]] = [
    ("alpha", None, 10, False),
    ("alpha beta", None, 10, False),
    ("running", None, 3, False),
    ('"alpha" ( *', None, 5, False),
    ("alph* OR hotel", None, 10, True),
    ("alpha AND", None, 10, True),  # a usage error, in the middle of the others
    (None, [3, 1, 0, 1], 5, False),
    (None, [0, 3, 1, 1], 2, False),
    (None, [1, 1, 1, 1], 14, False),
    ("hotel", HOTEL_QUERY, 5, False),
    ("alpha", [0, 1, 0, 0], 10, False),
    ("\x00🙂 ｆｕｌｌ", [1, 0, 2, 1], 4, False),
]


def run_mixed(ws: Workspace, n: int) -> list[Hit] | str:
    text, vector, k, raw = MIXED[n]
    try:
        return ws.search(text, vector, k=k, raw=raw)
    except UsageError as e:
        return f"UsageError: {e}"


def test_searches_from_several_threads_at_once_match_serial_searches(corpus: Corpus) -> None:
    expected = [run_mixed(corpus.ws, n) for n in range(len(MIXED))]
    assert sum(isinstance(e, str) for e in expected) == 1
    assert all(isinstance(e, str) or e for e in expected)
    barrier = threading.Barrier(THREADS)

    def worker(ws: Workspace, t: int) -> list[tuple[int, list[Hit] | str]]:
        barrier.wait(timeout=60)  # all threads start together, each on its first connection
        out = []
        for i in range(SEARCHES_PER_THREAD):
            n = (t * 5 + i * (t + 1)) % len(MIXED)
            out.append((n, run_mixed(ws, n)))
        return out

    with Workspace.open(corpus.root, "default") as ws, ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(worker, ws, t) for t in range(THREADS)]
        results = [f.result(timeout=120) for f in futures]

    seen = set()
    for out in results:
        assert len(out) == SEARCHES_PER_THREAD
        for n, got in out:
            assert got == expected[n], MIXED[n]
            seen.add(n)
    assert seen == set(range(len(MIXED)))
