"""What ``probe.exchanges`` keeps of a request target."""

from __future__ import annotations

import pytest

from probe.exchanges import path_of

PATH_CASES = [
    ("origin form", "/api/v1/users/7", "/api/v1/users/7"),
    ("a query is dropped", "/search?q=a/b", "/search"),
    ("a fragment is dropped", "/docs#intro", "/docs"),
    ("a query and then a fragment", "/a?b=1#c", "/a"),
    ("a fragment and then a question mark", "/a#b?c", "/a"),
    ("only a query", "/?x=1", "/"),
    ("absolute form, as sent to proxies", "http://api.internal:8080/v1/x?y=2", "/v1/x"),
    ("absolute form without a path", "http://api.internal", "/"),
    ("authority form (CONNECT)", "api.internal:443", "api.internal:443"),
    ("asterisk form (OPTIONS *)", "*", "*"),
]


@pytest.mark.parametrize(
    ("target", "path"), [case[1:] for case in PATH_CASES], ids=[case[0] for case in PATH_CASES]
)
def test_the_path_is_the_target_without_scheme_authority_query_or_fragment(
    target: str, path: str
) -> None:
    assert path_of(target) == path
