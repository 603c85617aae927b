"""Precision, recall and cost of the built-in business-error detectors on the silent-error corpus.

Run from the project root: ``python bench/semantics_corpus.py``. Prints one row per corpus file
and a total, and writes bench/results/semantics_corpus.json. Targets: precision >= 99 %,
recall >= 95 %, a few µs per clean body.

The corpus lives in tests/probe/data/semantics/corpus/ (its README describes the format);
``load_corpus`` is also what tests/probe/test_semantics.py reads it with.
"""

from __future__ import annotations

import base64
import gzip
import json
import sys
import timeit
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results import write_results
from probe.model import ResponseView
from probe.semantics import Classifier

ROOT = Path(__file__).resolve().parent.parent

CORPUS = ROOT / "tests" / "probe" / "data" / "semantics" / "corpus"
UNSET = "<unset>"


@dataclass(frozen=True, slots=True)
class CorpusCase:
    source: str  # the corpus file's stem
    name: str
    view: ResponseView
    expect_error: bool
    expect_type: str | None  # UNSET when the case does not say
    known_miss: str | None


def load_corpus(root: Path = CORPUS) -> list[CorpusCase]:
    """Every case of every corpus file, with its body encoded as the probe would see it."""
    cases = []
    for path in sorted(root.glob("*.yaml")):
        for raw in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]:
            cases.append(_case(path.stem, raw))
    return cases


def _case(source: str, raw: dict[str, object]) -> CorpusCase:
    if "body_base64" in raw:
        body = base64.b64decode(str(raw["body_base64"]))
    else:
        body = str(raw["body"]).encode(str(raw.get("charset", "utf-8")))
    headers: list[tuple[str, str]] = []
    content_type = raw.get("content_type", "application/json")
    if content_type is not None:
        headers.append(("content-type", str(content_type)))
    coding = raw.get("encoding")
    if coding == "gzip":
        body = gzip.compress(body, mtime=0)
    elif coding == "deflate":
        body = zlib.compress(body)
    elif coding == "deflate-raw":
        compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        body = compressor.compress(body) + compressor.flush()
    elif coding is not None:
        raise ValueError(f"{source}: {raw['name']}: unknown encoding {coding!r}")
    header_coding = raw.get("content_encoding", "deflate" if coding == "deflate-raw" else coding)
    if header_coding is not None:
        headers.append(("content-encoding", str(header_coding)))
    cut = raw.get("cut")
    truncated = isinstance(cut, int) and cut < len(body)
    if isinstance(cut, int):
        body = body[:cut]
    expect = raw["expect"]
    assert isinstance(expect, dict)
    view = ResponseView(
        service=source,
        route="/corpus",
        method="POST",
        status=int(str(raw.get("status", 200))),
        headers=tuple(headers),
        body=body,
        body_truncated=truncated,
    )
    known_miss = raw.get("known_miss")
    return CorpusCase(
        source=source,
        name=str(raw["name"]),
        view=view,
        expect_error=bool(expect["error"]),
        expect_type=expect.get("type", UNSET),
        known_miss=None if known_miss is None else str(known_miss),
    )


@dataclass(slots=True)
class Tally:
    cases: int = 0
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    types_right: int = 0
    types_checked: int = 0
    seconds: float = 0.0

    def add(self, other: Tally) -> None:
        for name in Tally.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def row(self) -> dict[str, float | str]:
        found = self.true_positives + self.false_positives
        actual = self.true_positives + self.false_negatives
        return {
            "cases": self.cases,
            "precision": self.true_positives / found if found else 1.0,
            "recall": self.true_positives / actual if actual else 1.0,
            "false_positives": self.false_positives,
            "false_negatives": self.false_negatives,
            "types_right": f"{self.types_right}/{self.types_checked}",
            "us_per_body": self.seconds / self.cases * 1e6 if self.cases else 0.0,
        }


def measure(cases: list[CorpusCase], repeat: int = 100) -> dict[str, Tally]:
    classifier = Classifier()
    tallies: dict[str, Tally] = {}
    for case in cases:
        tally = tallies.setdefault(case.source, Tally())
        verdict = classifier.classify(case.view)
        tally.seconds += _best_seconds(partial(classifier.classify, case.view), repeat)
        tally.cases += 1
        if verdict.business_error and case.expect_error:
            tally.true_positives += 1
            if case.expect_type != UNSET:
                tally.types_checked += 1
                tally.types_right += verdict.error_type == case.expect_type
        elif verdict.business_error:
            tally.false_positives += 1
        elif case.expect_error:
            tally.false_negatives += 1
    return tallies


def clean_body_cost(repeat: int = 5_000) -> dict[str, float]:
    """µs for bodies that the cheap pre-check clears, the common case on a real service."""
    bodies = {
        "1 KiB clean JSON": json.dumps(
            {"id": 7, "items": [{"sku": f"W-{i}", "qty": i, "price": 9.5} for i in range(30)]}
        ).encode()[:1024],
        "200 B clean JSON": b'{"user":{"name":"ada","email":"ada@example.com"},"plan":"pro"}',
        "1 KiB gzip clean JSON": gzip.compress(
            json.dumps({"rows": [[i, f"name-{i}", i * 3] for i in range(200)]}).encode()
        )[:1024],
    }
    views = {}
    for label, body in bodies.items():
        headers = [("content-type", "application/json")]
        if label.startswith("1 KiB gzip"):
            headers.append(("content-encoding", "gzip"))
        view = ResponseView("svc", "/r", "GET", 200, tuple(headers), body, len(body) == 1024)
        views[label] = (view, False)
    return _us_per_view(views, repeat)


def capture_size_cost(repeat: int = 500) -> dict[str, float]:
    """µs for bodies of 1 KiB, what the probe keeps of a response (probe.http's body limit):
    lists of records cut in the middle of one, whose ``code`` keys the pre-check finds, and
    envelopes around such lists."""
    records = [
        {"id": i, "name": f"item-{i}", "price": i * 1.5, "code": f"SKU{i}"} for i in range(60)
    ]
    clean = [{"id": i, "name": f"n{i}"} for i in range(200)]
    whole = json.dumps({"items": records[:12]}).encode()
    # The envelopes many APIs wrap every answer in, whose own keys are the detectors' words.
    envelope = json.dumps({"code": 0, "msg": "success", "data": {"total": 60, "items": records}})
    graphql = json.dumps({"data": {"orders": records[:12]}, "errors": []}).encode()
    bodies = {
        "1 KiB clean JSON, cut": json.dumps({"items": clean}).encode()[:1024],
        "1 KiB list in an object, code keys, cut": json.dumps({"items": records}).encode()[:1024],
        "1 KiB top-level list, code keys, cut": json.dumps(records).encode()[:1024],
        "1 KiB JSON, error member last": whole[:-1] + b', "error": "insufficient_balance"}',
        ENVELOPE_CUT: envelope.encode()[:1024],
        '1 KiB {"data": {list}, "errors": []}, whole': graphql,
    }
    headers = (("content-type", "application/json"),)
    views = {
        label: (
            ResponseView("svc", "/r", "GET", 200, headers, body, label.endswith("cut")),
            label.endswith("last"),
        )
        for label, body in bodies.items()
    }
    costs = _us_per_view(views, repeat)
    # The envelope again, through a classifier that has judged its outline before: an endpoint
    # whose answers differ only inside their lists.
    remembering = Classifier()
    envelope_view = views[ENVELOPE_CUT][0]
    remembering.classify(envelope_view)
    again = _best_seconds(partial(remembering.classify, envelope_view), repeat)
    costs[f"{ENVELOPE_CUT}, seen before"] = round(again * 1e6, 2)
    return costs


ENVELOPE_CUT = '1 KiB {"code": 0, "data": {list}} envelope, cut'


def _us_per_view(views: dict[str, tuple[ResponseView, bool]], repeat: int) -> dict[str, float]:
    """µs to classify each view, once each is checked to be judged as expected (a business
    error or not). Each body is judged as if for the first time: the classifier remembers no
    outline (capture_size_cost's last row has one that does)."""
    classifier = Classifier(outlines=0)
    costs = {}
    for label, (view, business_error) in views.items():
        assert classifier.classify(view).business_error == business_error, label
        costs[label] = round(_best_seconds(partial(classifier.classify, view), repeat) * 1e6, 2)
    return costs


def _best_seconds(call: Callable[[], object], number: int) -> float:
    """Seconds per call, best of five runs: the machine is shared, the minimum is the cost."""
    return min(timeit.repeat(call, number=number, repeat=5)) / number


def main() -> None:
    tallies = measure(load_corpus())
    total = Tally()
    print(f"{'corpus file':20s} {'cases':>5s} {'prec':>7s} {'recall':>7s} {'FP':>3s} {'FN':>3s} "
          f"{'types':>7s} {'µs/body':>8s}")  # fmt: skip
    rows = {}
    for source, tally in sorted(tallies.items()):
        total.add(tally)
        rows[source] = tally.row()
    rows["TOTAL"] = total.row()
    for source, row in rows.items():
        print(
            f"{source:20s} {row['cases']:5d} {row['precision']:7.1%} {row['recall']:7.1%} "
            f"{row['false_positives']:3d} {row['false_negatives']:3d} {row['types_right']:>7s} "
            f"{row['us_per_body']:8.1f}"
        )
    clean = clean_body_cost()
    print()
    for label, us in clean.items():
        print(f"{label:30s} {us:6.2f} µs/body")
    at_capture = capture_size_cost()
    width = max(map(len, at_capture))
    for label, us in at_capture.items():
        print(f"{label:{width}s} {us:7.2f} µs/body")
    kib = bytes(1024)
    reference_ns = round(_best_seconds(partial(bytes.__contains__, kib, b"rror"), 200_000) * 1e9)
    print(f"machine reference: one substring test on 1 KiB = {reference_ns} ns")
    write_results(
        "semantics_corpus",
        {
            "corpus": rows,
            "clean_bodies_us": clean,
            "capture_size_bodies_us": at_capture,
            "reference_ns": reference_ns,
        },
    )


if __name__ == "__main__":
    main()
