"""Property: on any valid Python source the per-file analysis never crashes."""

from __future__ import annotations

import hypothesmith
import libcst
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hangdoctor.scan.facts import FileFacts, FileProblem, facts_from_json, facts_to_json
from hangdoctor.scan.files import facts_from_bytes, line_count
from hangdoctor.scan.knowledge import build_knowledge

KNOWLEDGE = build_knowledge()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(hypothesmith.from_node(libcst.Module))
def test_any_module_gives_facts(source: str) -> None:
    """Generated modules give facts (or a reported problem), and the facts round-trip."""
    result = facts_from_bytes(source.encode("utf-8"), "gen.py", "gen", False, KNOWLEDGE)
    assert isinstance(result, (FileFacts, FileProblem))
    assert facts_from_json(facts_to_json(result)) == result


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(hypothesmith.from_grammar())
def test_any_grammar_text_gives_facts(source: str) -> None:
    """Text from the grammar (which may not compile) never raises."""
    result = facts_from_bytes(source.encode("utf-8"), "gen.py", "gen", False, KNOWLEDGE)
    assert isinstance(result, (FileFacts, FileProblem))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["a", " ", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "é", "\u2028"])
    ).map("".join)
)
def test_line_count_is_the_number_of_lines_splitlines_makes(text: str) -> None:
    assert line_count(text) == len(text.splitlines())
