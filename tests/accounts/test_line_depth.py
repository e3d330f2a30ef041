"""How deep a line may go: the path's B-tree index takes 384 levels of a path that does not compress
(accounts.models.LINE_MAX_LEVELS); a deeper registration, bulk import or sponsor change is refused
with `line_too_deep` before the database would fail, and writes nothing."""

import random
import string

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction

from accounts.models import LINE_MAX_LEVELS, PATH_STEP, User
from accounts.services import NewMember, member_create, member_sponsor_change, members_create_bulk

pytestmark = pytest.mark.django_db

DEEPEST = LINE_MAX_LEVELS - 1  # the root is level 1, at depth 0


def line(n: int, prefix: str = "m") -> list[User]:
    """A chain of n members under the root, each the sponsor of the next (one call)."""
    members = [NewMember(email=f"{prefix}0@example.com")]
    members += [NewMember(email=f"{prefix}{i}@example.com", sponsor=f"{prefix}{i - 1}@example.com")
                for i in range(1, n)]
    return members_create_bulk(members=members)


def code(exc: pytest.ExceptionInfo) -> list[str]:
    return [e.code for e in exc.value.error_dict["sponsor"]]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the limit is PostgreSQL's B-tree index's")
def test_the_limit_is_the_index_s_for_a_path_that_does_not_compress(root):
    member = member_create(email="probe@example.com")
    rng = random.Random(7)

    def write(levels: int) -> None:
        path = "".join(rng.choice(string.digits + string.ascii_lowercase) for _ in range(levels * PATH_STEP))
        with transaction.atomic():
            User.objects.filter(pk=member.pk).update(path=path)

    write(LINE_MAX_LEVELS)  # the deepest line allowed: its path fits the index
    with pytest.raises(DatabaseError, match="index row size"):
        write(LINE_MAX_LEVELS + 1)  # one level more does not, well below the column's 4000 characters


def test_the_deepest_line_is_accepted_and_one_level_more_refused(root, api_client):
    chain = line(DEEPEST)
    bottom = chain[-1]
    assert bottom.depth == DEEPEST and len(bottom.path) == LINE_MAX_LEVELS * PATH_STEP
    count = User.objects.count()
    with pytest.raises(ValidationError) as exc:
        member_create(email="deeper@example.com", sponsor=bottom)
    assert code(exc) == ["line_too_deep"]
    with pytest.raises(ValidationError) as exc:
        members_create_bulk(members=[NewMember(email="b1@example.com", sponsor=chain[-2]),
                                     NewMember(email="b2@example.com", sponsor="b1@example.com")])
    assert code(exc) == ["line_too_deep"]
    # Over the API: a 400 with the code, not a database error.
    r = api_client.post("/api/auth/register/", {"email": "api@example.com", "password": "a-long-password-1",
                                                "referral_code": bottom.referral_code}, format="json")
    assert r.status_code == 400 and r.json()["codes"] == {"sponsor": ["line_too_deep"]}, r.content
    assert User.objects.count() == count  # nothing written


def test_a_bulk_line_deeper_than_the_limit_is_refused_whole(root):
    with pytest.raises(ValidationError) as exc:
        line(DEEPEST + 1, prefix="x")
    assert code(exc) == ["line_too_deep"]
    assert not User.objects.filter(email__startswith="x").exists()


def test_a_sponsor_change_that_would_push_a_subtree_too_deep_is_refused(root):
    chain = line(DEEPEST - 1)
    top = member_create(email="top@example.com")
    member_create(email="kid@example.com", sponsor=top)  # top's subtree is 2 levels
    with pytest.raises(ValidationError) as exc:
        member_sponsor_change(user=top, sponsor=chain[-1])
    assert code(exc) == ["line_too_deep"]
    assert User.objects.get(email="top@example.com").depth == 1
    member_sponsor_change(user=top, sponsor=chain[-2])  # fits exactly
    assert User.objects.get(email="kid@example.com").depth == DEEPEST
