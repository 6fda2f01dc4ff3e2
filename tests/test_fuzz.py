"""Hypothesis fuzzing of the metadata CHECK constraints: clean on the example, and each
broken variant found and shrunk to a payload of the expected shape.

Every run here is derandomized with no example database (``DETERMINISTIC``), so what a
test sees does not depend on chance or on what an earlier run saved in ``.hypothesis/``;
only the replay test uses a database, a directory of its own."""

from __future__ import annotations

import json
from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis.errors import NoSuchExample
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from pytest_rlscheck.fuzz import FuzzFailure, admits_null
from pytest_rlscheck.strategies import (
    SQL_NULL,
    analyse_checks,
    invalid_json_texts,
    json_values,
    jsonb_objects,
    near_misses,
    payloads_for,
)

#: The same payloads every run, and nothing replayed from (or saved to) .hypothesis/.
DETERMINISTIC = settings(database=None, derandomize=True)

STATUSES = ("active", "waiting", "resolved", "closed")
SENTIMENTS = ("positive", "neutral", "negative")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def conversations_oracle(metadata) -> bool:
    """The documented rules: an object; status in the set; language a string of ≤ 10 characters."""
    if not isinstance(metadata, dict):
        return False
    if "status" in metadata and not (isinstance(metadata["status"], str) and metadata["status"] in STATUSES):
        return False
    if "language" in metadata and not (isinstance(metadata["language"], str) and len(metadata["language"]) <= 10):
        return False
    return True


def messages_oracle(metadata) -> bool:
    """An object; sentiment in the set; response_time_ms a positive number."""
    if not isinstance(metadata, dict):
        return False
    if "sentiment" in metadata and not (isinstance(metadata["sentiment"], str) and metadata["sentiment"] in SENTIMENTS):
        return False
    if "response_time_ms" in metadata and not (_number(metadata["response_time_ms"]) and metadata["response_time_ms"] > 0):
        return False
    return True


MESSAGES_SCHEMA = {
    "type": "object",
    "properties": {
        "sentiment": {"enum": list(SENTIMENTS)},
        "response_time_ms": {"type": "number", "exclusiveMinimum": 0},
    },
}


# -- the worked example ----------------------------------------------------------------------


#: Each table's metadata constraints, and what rejects SQL NULL (the column is NOT NULL).
CONSTRAINTS = {
    "conversations": {"conversations_metadata_is_object", "conversations_metadata_status_valid",
                      "conversations_metadata_language_length", "23502"},
    "messages": {"messages_metadata_is_object", "messages_metadata_sentiment_valid",
                 "messages_metadata_response_time_positive", "23502"},
}


@pytest.mark.parametrize("table, oracle", [("conversations", conversations_oracle), ("messages", messages_oracle)])
def test_corrected_constraints_agree_with_the_documented_rules(rls, table, oracle) -> None:
    result = rls.fuzz_constraint(table, "metadata", oracle=oracle, max_examples=300, settings=DETERMINISTIC)
    assert result.examples >= 300
    # valid payloads were tried, and every one of the column's constraints rejected some
    assert set(result.verdicts) == {"accepted"} | CONSTRAINTS[table]
    assert result.verdicts["accepted"] > 10
    assert all(result.verdicts[name] > 0 for name in CONSTRAINTS[table])


def test_a_json_schema_works_as_the_oracle(rls) -> None:
    result = rls.fuzz_constraint("messages", "metadata", oracle=MESSAGES_SCHEMA, max_examples=150,
                                 settings=DETERMINISTIC)
    assert result.verdicts["accepted"] > 0 and result.verdicts["messages_metadata_response_time_positive"] > 0
    # a schema that disagrees with the constraints (response times from 1000 ms) is caught
    stricter = {**MESSAGES_SCHEMA, "properties": {**MESSAGES_SCHEMA["properties"],
                                                  "response_time_ms": {"type": "number", "minimum": 1000}}}
    with pytest.raises(FuzzFailure) as info:
        rls.fuzz_constraint("messages", "metadata", oracle=stricter, max_examples=150, settings=DETERMINISTIC)
    failure = info.value
    assert failure.kind == "disagrees" and failure.verdict.accepted and failure.expected is False
    assert set(failure.payload) == {"response_time_ms"} and 0 < failure.payload["response_time_ms"] < 1000


def test_the_reports_payloads_through_the_fuzzer_verdicts(rls) -> None:
    """The optimisation report's examples, as explicit strategies."""
    invalid = st.sampled_from([{"status": "invalid_value"}, {"language": "x" * 11}])
    with pytest.raises(FuzzFailure) as info:
        rls.fuzz_constraint("conversations", "metadata", strategy=invalid, oracle=lambda m: True, max_examples=10,
                            settings=DETERMINISTIC)
    # both are rejected against an oracle that accepts everything; shrunk to the first
    assert (info.value.kind, info.value.payload) == ("disagrees", {"status": "invalid_value"})
    assert info.value.verdict.constraint == "conversations_metadata_status_valid"
    assert info.value.verdict.sqlstate == "23514"
    rejected = rls.fuzz_constraint(
        "messages", "metadata", strategy=st.sampled_from([{"sentiment": 123}, {"response_time_ms": -500}]),
        oracle=lambda m: False, max_examples=10, settings=DETERMINISTIC,
    )
    assert set(rejected.verdicts) == {"messages_metadata_sentiment_valid", "messages_metadata_response_time_positive"}
    accepted = rls.fuzz_constraint(
        "messages", "metadata", strategy=st.sampled_from([{"sentiment": "neutral", "response_time_ms": 12}, {}]),
        oracle=lambda m: True, max_examples=10, settings=DETERMINISTIC,
    )
    assert set(accepted.verdicts) == {"accepted"} and accepted.examples >= 2


RAISING_CAST = "(metadata ->> 'response_time_ms')::numeric > 0"  # 22P02 on a non-numeric string


def _replace_check(rls, table: str, old: str, name: str, expression: str) -> None:
    """Swap one of the example's CHECK constraints for a broken one, inside the test."""
    rls.execute(f"alter table {table} drop constraint {old}")
    rls.execute(f"alter table {table} add constraint {name} check ({expression})")


# -- broken variants: found, and shrunk -----------------------------------------------------


def test_cast_that_raises_is_found_and_shrunk(rls) -> None:
    _replace_check(rls, "messages", "messages_metadata_response_time_positive", "rt_positive", RAISING_CAST)
    with pytest.raises(FuzzFailure) as info:
        rls.fuzz_constraint("messages", "metadata", max_examples=400, settings=DETERMINISTIC)
    failure = info.value
    assert failure.kind == "raises" and failure.verdict.sqlstate == "22P02"
    assert failure.constraint is not None and failure.constraint.name == "rt_positive"
    payload = failure.payload
    assert isinstance(payload, dict) and set(payload) == {"response_time_ms"}
    assert not _number(payload["response_time_ms"]) and payload["response_time_ms"] is not None
    assert "constraint rt_positive raises 22P02" in str(failure) and "shrunk payload" in str(failure)


def test_null_passing_a_typeof_check_is_found(rls) -> None:
    rls.execute("alter table messages alter column metadata drop not null")
    _replace_check(rls, "messages", "messages_metadata_is_object", "is_object", "jsonb_typeof(metadata) = 'object'")
    with pytest.raises(FuzzFailure) as info:
        rls.fuzz_constraint("messages", "metadata", oracle=messages_oracle, max_examples=400, settings=DETERMINISTIC)
    assert info.value.kind == "disagrees" and info.value.payload is SQL_NULL
    assert "the database accepted, the oracle would reject it" in str(info.value)
    assert admits_null(rls, "messages", "metadata").name == "is_object"


def test_status_checked_only_when_a_string_is_found(rls) -> None:
    _replace_check(
        rls, "conversations", "conversations_metadata_status_valid", "status_if_string",
        "jsonb_typeof(metadata -> 'status') <> 'string' or (metadata ->> 'status') in ('active', 'waiting', 'resolved', 'closed')",
    )
    with pytest.raises(FuzzFailure) as info:
        rls.fuzz_constraint("conversations", "metadata", oracle=conversations_oracle, max_examples=400, settings=DETERMINISTIC)
    payload = info.value.payload
    assert info.value.kind == "disagrees" and info.value.verdict.accepted and info.value.expected is False
    assert isinstance(payload, dict) and set(payload) == {"status"} and not isinstance(payload["status"], str)


def test_length_in_bytes_instead_of_characters_is_found(rls) -> None:
    _replace_check(
        rls, "conversations", "conversations_metadata_language_length", "language_bytes",
        "not (metadata ? 'language') or "
        "(jsonb_typeof(metadata -> 'language') = 'string' and octet_length(metadata ->> 'language') <= 10)",
    )
    with pytest.raises(FuzzFailure) as info:
        rls.fuzz_constraint("conversations", "metadata", oracle=conversations_oracle, max_examples=400, settings=DETERMINISTIC)
    payload = info.value.payload
    assert set(payload) == {"language"}
    language = payload["language"]
    assert len(language) <= 10 < len(language.encode())  # fine in characters, too long in bytes
    assert info.value.verdict.constraint == "language_bytes"


def test_two_distinct_failures_are_one_fuzz_failure_naming_both(rls) -> None:
    """A payload that makes the CHECK raise and one it accepts against the rules: Hypothesis
    finds both in one run; the report is one FuzzFailure with each shrunk payload."""
    _replace_check(rls, "messages", "messages_metadata_response_time_positive", "rt_positive", RAISING_CAST)
    raising, admitted = {"response_time_ms": "x"}, {"response_time_ms": "5"}  # 22P02; a string the cast accepts
    with pytest.raises(FuzzFailure) as info:
        rls.fuzz_constraint(
            "messages", "metadata", oracle=messages_oracle, strategy=st.sampled_from([raising, admitted]),
            max_examples=20, settings=settings(derandomize=True, database=None, report_multiple_bugs=True),
        )
    failure = info.value
    message = str(failure)
    assert message.startswith("public.messages.metadata: 2 distinct failures:\n\n1. ")
    assert 'shrunk payload: {"response_time_ms": "x"}' in message
    assert 'shrunk payload: {"response_time_ms": "5"}' in message
    assert "constraint rt_positive raises 22P02" in message
    assert "the database accepted, the oracle would reject it" in message
    assert (failure.kind, failure.payload, failure.verdict.sqlstate) == ("raises", raising, "22P02")
    assert failure.constraint is not None and failure.constraint.name == "rt_positive"
    assert [(f.kind, f.payload) for f in failure.failures] == [("raises", raising), ("disagrees", admitted)]
    assert failure.failures[1].verdict.accepted and failure.failures[1].expected is False


def test_an_error_of_the_oracle_is_raised_as_is(rls) -> None:
    """Only the fuzzer's own findings become a FuzzFailure: an oracle that crashes on one
    payload (while another payload fails) is the user's bug, and reaches them unchanged."""
    _replace_check(rls, "messages", "messages_metadata_response_time_positive", "rt_positive", RAISING_CAST)

    def oracle(metadata) -> bool:
        if metadata == {"response_time_ms": "5"}:
            raise KeyError("broken oracle")
        return messages_oracle(metadata)

    payloads = st.sampled_from([{"response_time_ms": "x"}, {"response_time_ms": "5"}])
    with pytest.raises(KeyError, match="broken oracle") as info:
        rls.fuzz_constraint("messages", "metadata", oracle=oracle, strategy=payloads, max_examples=20,
                            settings=settings(derandomize=True, database=None, report_multiple_bugs=True))
    cause = info.value.__cause__
    assert isinstance(cause, FuzzFailure) and cause.payload == {"response_time_ms": "x"}


def test_a_failure_is_replayed_first_from_the_database(rls, tmp_path) -> None:
    # an explicit database: the active profile may have none (Hypothesis' "ci" profile under CI=1)
    examples = tmp_path / "examples"
    replaying = settings(database=DirectoryBasedExampleDatabase(examples), derandomize=False)
    _replace_check(rls, "messages", "messages_metadata_response_time_positive", "rt_positive", RAISING_CAST)
    # three payloads, so the first run surely meets the one that raises; not the simplest
    # (index 0), which is what a run of one example tries when nothing is replayed
    raising = {"response_time_ms": "x"}
    payloads = st.sampled_from([{"response_time_ms": 5}, raising, {"sentiment": "neutral"}])

    def fuzz(max_examples: int, how: settings):
        return rls.fuzz_constraint("messages", "metadata", strategy=payloads, max_examples=max_examples, settings=how)

    assert fuzz(1, DETERMINISTIC).verdicts == {"accepted": 1}  # nothing saved: one example finds nothing
    assert not examples.exists()
    with pytest.raises(FuzzFailure) as first:
        fuzz(100, replaying)
    assert first.value.payload == raising
    assert [p for p in examples.rglob("*") if p.is_file()], "the failure was not saved"
    with pytest.raises(FuzzFailure) as again:
        fuzz(1, replaying)  # one example: the saved one
    assert again.value.payload == raising and again.value.verdict.sqlstate == "22P02"


def test_each_column_keeps_its_own_failures_in_the_database(rls, tmp_path) -> None:
    """Another column's run replays none of this column's failures (it would drop them: they
    do not fail there), so this column's next run still starts with the saved one."""
    replaying = settings(database=DirectoryBasedExampleDatabase(tmp_path / "examples"), derandomize=False)
    _replace_check(rls, "messages", "messages_metadata_response_time_positive", "rt_positive", RAISING_CAST)
    with pytest.raises(FuzzFailure) as first:
        rls.fuzz_constraint("messages", "metadata", max_examples=400, settings=replaying)
    # max_examples=500: up to 50 saved examples are replayed first (each dropped if it passes)
    rls.fuzz_constraint("conversations", "metadata", strategy=st.integers(), max_examples=500, settings=replaying)
    with pytest.raises(FuzzFailure) as again:
        rls.fuzz_constraint("messages", "metadata", max_examples=1, settings=replaying)  # one example: the saved one
    assert again.value.payload == first.value.payload


def test_derandomized_runs_repeat_and_the_active_profile_is_followed(rls) -> None:
    # Hypothesis' "ci" profile (database=None, derandomize=True): the same payloads every run
    runs = [rls.fuzz_constraint("messages", "metadata", max_examples=150, settings=DETERMINISTIC).verdicts
            for _ in range(2)]
    assert runs[0] == runs[1]
    assert sum(runs[0].values()) == 150 and "accepted" in runs[0] and len(runs[0]) > 1  # accepted and rejected
    # without settings=, the active profile is what the run follows: the same payloads again
    previous = settings.get_current_profile_name()
    settings.register_profile("rlscheck-test-deterministic", DETERMINISTIC)
    settings.load_profile("rlscheck-test-deterministic")
    try:
        by_profile = rls.fuzz_constraint("messages", "metadata", max_examples=150).verdicts
    finally:
        settings.load_profile(previous)
    assert by_profile == runs[0]


# -- strategies ---------------------------------------------------------------------------------


def _exact(text: str):
    """A JSON text's value with every number as a Decimal: jsonb keeps numbers as numeric."""
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


# rls is safe across examples here: each example only reads
@settings(DETERMINISTIC, max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(json_values(max_depth=3))
def test_every_json_value_is_accepted_by_jsonb(rls, value) -> None:
    # accepted, and held exactly: the same keys, strings and numbers back
    stored = rls.scalar("select (%s::jsonb)::text", [json.dumps(value)])
    assert _exact(stored) == _exact(json.dumps(value))


@settings(DETERMINISTIC, max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(invalid_json_texts())
def test_invalid_texts_are_refused_by_jsonb(rls, text) -> None:
    with pytest.raises(psycopg.errors.DataError) as info:
        rls.execute("select %s::jsonb", [text])
    # not JSON (22P02), a \u0000 escape (22P05 untranslatable), a number beyond numeric (22003)
    assert info.value.sqlstate in ("22P02", "22P05", "22003"), (text, info.value.sqlstate)


def _sample(strategy, n: int) -> list:
    """``n`` values of ``strategy``, the same ones every run (generated only, not shrunk)."""
    values: list = []

    @settings(DETERMINISTIC, max_examples=n, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value) -> None:
        values.append(value)

    collect()
    return values


def test_json_objects_take_the_known_keys_alone_together_or_not_at_all() -> None:
    known = {"status", "language"}
    objects = _sample(jsonb_objects(sorted(known), values=st.just("v"), max_extra_keys=2), 200)
    assert all(isinstance(o, dict) and all(isinstance(k, str) for k in o) for o in objects)
    # each known key present alone, both together, and neither
    assert {frozenset(set(o) & known) for o in objects} == {frozenset(), frozenset({"status"}),
                                                           frozenset({"language"}), frozenset(known)}
    # other keys besides, as many as max_extra_keys and no more; every value from `values`
    assert max(len(set(o) - known) for o in objects) == 2
    assert {v for o in objects for v in o.values()} == {"v"}


def _reaches(strategy, predicate, why: str) -> None:
    """``strategy`` makes a value ``predicate`` holds for: found by Hypothesis' own search
    (derandomized, so the same every run), not by hoping a fixed sample happens to hold it."""
    try:
        find(strategy, predicate, settings=settings(DETERMINISTIC, max_examples=5000, phases=[Phase.generate],
                                                    suppress_health_check=list(HealthCheck)))
    except NoSuchExample:
        raise AssertionError(f"the strategy never makes {why}") from None


def _key(name, test):
    return lambda p: isinstance(p, dict) and name in p and test(p[name])


def test_payloads_reach_the_edges_of_each_constraint(rls) -> None:
    """The strategy aimed at the example's constraints makes what they must be tried with:
    SQL NULL, a non-object, each literal and a near miss of it, a language at the length
    limit and one past it (also in multi-byte characters), numbers at the bound, and the
    wrong type where a number belongs."""
    conversations = payloads_for(rls, "conversations", "metadata")
    messages = payloads_for(rls, "messages", "metadata")
    for strategy in (conversations, messages):
        _reaches(strategy, lambda p: p is SQL_NULL, "SQL NULL")
    _reaches(conversations, lambda p: p is not SQL_NULL and not isinstance(p, dict), "a JSON value that is no object")
    for status in (*STATUSES, "ACTIVE", " active"):  # each literal, and near misses of one
        _reaches(conversations, _key("status", lambda v, s=status: v == s), f"status {status!r}")
    for length in (9, 10, 11):  # at the limit of 10 characters, and around it
        _reaches(conversations, _key("language", lambda v, n=length: isinstance(v, str) and len(v) == n),
                 f"a language of {length} characters")
    _reaches(conversations, _key("language", lambda v: isinstance(v, str) and len(v) <= 10 < len(v.encode())),
             "a language short in characters and long in bytes")
    _reaches(conversations, _key("language", lambda v: not isinstance(v, str)), "a language that is no string")
    for bound in (0, 1, -1):  # at and around the bound
        _reaches(messages, _key("response_time_ms", lambda v, b=bound: _number(v) and v == b),
                 f"response_time_ms {bound}")
    _reaches(messages, _key("response_time_ms", lambda v: isinstance(v, str)), "a string where a number belongs")
    for sentiment in SENTIMENTS:
        _reaches(messages, _key("sentiment", lambda v, s=sentiment: v == s), f"sentiment {sentiment!r}")


def _depth(value) -> int:
    if isinstance(value, (list, dict)):
        return 1 + max(map(_depth, value if isinstance(value, list) else value.values()), default=0)
    return 0


def _leaves(value) -> int:
    if isinstance(value, (list, dict)):
        return sum(map(_leaves, value if isinstance(value, list) else value.values()))
    return 1


@settings(max_examples=200, deadline=None)
@given(json_values(max_depth=2, max_leaves=5))
def test_json_values_keep_to_max_leaves_and_max_depth(value) -> None:
    assert _leaves(value) <= 5 and _depth(value) <= 2


def test_json_values_reach_their_bounds() -> None:
    """max_leaves is st.recursive's: the number of scalars in all, whatever the nesting."""
    quick = settings(database=None, max_examples=2000)
    assert _depth(find(json_values(max_depth=2), lambda v: _depth(v) >= 2, settings=quick)) == 2
    most = find(json_values(max_depth=None, max_leaves=5), lambda v: _leaves(v) >= 5, settings=quick)
    assert _leaves(most) == 5 and isinstance(most, (list, dict))
    assert _depth(find(json_values(max_depth=None), lambda v: _depth(v) >= 4, settings=quick)) >= 4


def test_analysis_reads_keys_sets_bounds_and_types(rls) -> None:
    rel = rls.relation("messages")
    shape = analyse_checks([c.definition for c in rel.checks() if "metadata" in c.columns], "metadata")
    assert shape.top_types == {"object"}
    assert shape.keys["sentiment"].literals == list(SENTIMENTS)
    assert shape.keys["response_time_ms"].bounds == [0.0] and shape.keys["response_time_ms"].types == {"number"}
    rel = rls.relation("conversations")
    shape = analyse_checks([c.definition for c in rel.checks() if "metadata" in c.columns], "metadata")
    assert shape.keys["language"].length_bounds == [10]
    assert set(shape.keys["status"].literals) == set(STATUSES)


def test_near_misses() -> None:
    misses = near_misses("active")
    assert {"ACTIVE", "Active", " active", "active ", "activ", "activee", "аctive"} <= set(misses)
    assert "active" not in misses
