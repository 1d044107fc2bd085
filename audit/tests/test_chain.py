"""The audit log's chain: appends link each row to the one before, audit_verify holds on an
untouched log and names the first row changed or removed, a rolled-back action leaves no row,
concurrent appends never fork the chain."""

import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, connections, transaction

from audit.chain import GENESIS, entry_hash
from audit.models import AuditChainHead, AuditEntry
from audit.services import audit_record
from moderation.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def appended(n: int, actor=None) -> list[AuditEntry]:
    return [
        audit_record(action="item.claim", actor=actor, object_type="item", object_id=i)
        for i in range(1, n + 1)
    ]


def verify() -> str:
    call_command("audit_verify", stdout=(out := _Out()))
    return out.text


class _Out:
    text = ""

    def write(self, s):
        self.text += s


def verify_fails() -> str:
    with pytest.raises(CommandError) as refused:
        call_command("audit_verify", stdout=_Out())
    return str(refused.value)


def test_each_row_links_to_the_row_before():
    rows = appended(3, actor=UserFactory(username="ana"))
    assert [r.seq for r in rows] == [1, 2, 3]
    assert rows[0].prev_hash == GENESIS
    assert rows[1].prev_hash == rows[0].hash and rows[2].prev_hash == rows[1].hash
    assert rows[0].actor_username == "ana"
    head = AuditChainHead.objects.get(pk=1)
    assert (head.seq, head.hash) == (3, rows[2].hash)


def test_verify_holds_on_an_untouched_log():
    appended(5)
    assert "5 rows" in verify()


def test_verify_holds_on_an_empty_log():
    assert "0 rows" in verify()


def test_verify_names_a_row_changed_by_sql():
    rows = appended(4)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditentry SET object_id = %s WHERE id = %s", ["999", rows[1].pk]
        )
    said = verify_fails()
    assert f"seq 2 (id {rows[1].pk})" in said and "does not match its hash" in said


def test_verify_names_a_row_whose_hash_was_recomputed_after_a_change():
    """Rewriting a row's hash to fit its new content breaks the next row's link."""
    rows = appended(4)
    changed = AuditEntry.objects.filter(pk=rows[1].pk).values().get()
    changed["actor_username"] = "someone else"
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditentry SET actor_username = %s, hash = %s WHERE id = %s",
            ["someone else", entry_hash(changed), rows[1].pk],
        )
    said = verify_fails()
    assert f"seq 3 (id {rows[2].pk})" in said and "link" in said


def test_verify_names_the_row_after_a_removed_one():
    rows = appended(4)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [rows[1].pk])
    said = verify_fails()
    assert f"seq 3 (id {rows[2].pk})" in said and "seq 2..2" in said and "removed" in said


def test_verify_notices_the_newest_row_removed():
    rows = appended(3)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [rows[2].pk])
    said = verify_fails()
    assert "seq 3" in said and "newest rows removed" in said


def test_a_rolled_back_action_leaves_no_row():
    appended(1)
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(action="decision.remove", object_type="item", object_id=1)
        raise RuntimeError("the action failed after recording")
    assert list(AuditEntry.objects.values_list("seq", flat=True)) == [1]
    assert AuditChainHead.objects.get(pk=1).seq == 1
    assert "1 rows" in verify()
    assert audit_record(action="item.claim").seq == 2


def test_two_rows_cannot_follow_the_same_row():
    """The chain cannot fork even if two appends read the same head: prev_hash is unique."""
    first = appended(1)[0]
    fork = {
        "seq": 2,
        "at": first.at,
        "actor_id": None,
        "actor_username": "",
        "ip": "",
        "action": "item.claim",
        "object_type": "",
        "object_id": "",
        "before": None,
        "after": None,
        "prev_hash": first.hash,
    }
    audit_record(action="item.claim")
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEntry.objects.create(**{**fork, "seq": 3}, hash=entry_hash(fork))


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_form_one_chain():
    """Appends from several connections at once take turns on the chain head: every row is
    there, numbered without gaps, and the chain verifies."""
    threads, per_thread, failures = 4, 8, []
    start = threading.Barrier(threads)

    def append(n):
        try:
            start.wait()
            for i in range(per_thread):
                audit_record(action="item.claim", object_type="item", object_id=f"{n}-{i}")
        except Exception as exc:  # reported below
            failures.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=append, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    assert sorted(AuditEntry.objects.values_list("seq", flat=True)) == list(
        range(1, threads * per_thread + 1)
    )
    assert f"{threads * per_thread} rows" in verify()


@pytest.mark.parametrize(
    "values",
    [
        {"content_text": "x"},
        {"note": "x"},
        {"webhook_secret": "whsec_x"},
        {"api_token": "mqt_x"},
        {"nested": {"password": "x"}},
        {"reason": "y" * 201},
        {"ids": list(range(2000))},
    ],
)
def test_content_secrets_and_large_values_are_refused(values):
    with pytest.raises(ValueError):
        audit_record(action="item.claim", after=values)
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("action", ["claim", "Item.Claim", "item.claim; drop", ""])
def test_an_action_is_thing_dot_verb(action):
    with pytest.raises(ValueError):
        audit_record(action=action)


def test_values_are_stored_as_they_were_hashed():
    """Times and other non-JSON values are stored as text, so the row verifies after a
    round trip through the database."""
    user = UserFactory()
    audit_record(
        action="item.claim",
        actor=user,
        after={"until": user.date_joined, "share": 0.1 + 0.2, "ids": [1, 2]},
        before={"status": "flagged", "none": None},
    )
    assert "1 rows" in verify()
