"""Push refusals under RLS and bad input: every write RLS refuses is answered as refused (never acknowledged, never
a conflict the client could resolve by pulling), a create whose visibility goes through a helper is applied, and
malformed rows are refused per row as `invalid` with nothing written."""

from __future__ import annotations

import uuid

import pytest

from tests.sync.conftest import SyncClient, drain, make_list, make_todo, new_user, push

# A table whose select policy goes only through a SECURITY DEFINER helper reading the same table (the usual
# Supabase pattern): the helper's snapshot, inside the inserting statement, cannot see the new row.
NOTES = """
create table public.notes (
  id uuid primary key,
  owner_id uuid not null default auth.uid(),
  body text not null
);
create function public.can_see_note(target uuid) returns boolean
language sql stable security definer set search_path = ''
as $$ select exists (select 1 from public.notes n where n.id = target and n.owner_id = auth.uid()) $$;
grant execute on function public.can_see_note(uuid) to authenticated;
alter table public.notes enable row level security;
grant select, insert, update, delete on public.notes to authenticated;
create policy notes_select on public.notes for select to authenticated using (public.can_see_note(id));
create policy notes_insert on public.notes for insert to authenticated with check (owner_id = auth.uid());
create policy notes_update on public.notes for update to authenticated
  using (public.can_see_note(id)) with check (owner_id = auth.uid());
create policy notes_delete on public.notes for delete to authenticated using (public.can_see_note(id));
select sync.enable('public.notes', conflict => 'lww');
"""


def snapshot(admin):
    """Every app row, to show that a refused push changed nothing."""
    return (admin.execute("select id, owner_id, title from public.lists order by id").fetchall(),
            admin.execute("select id, list_id, title, done, position from public.todos order by id").fetchall())


def refusals(answer):
    assert answer.status_code == 409 and answer.json()["code"] == "SYNC110", answer.text
    return [(r["table"], r["kind"], r["reason"]) for r in answer.json()["details"]["refused"]]


def member_of_alices_list(api, admin, feed):
    """Alice owns a list with one todo; Bob is a member (he sees the list, only Alice may update or delete it)."""
    alice, bob = new_user(), new_user()
    shared = make_list(admin, alice, "alice's")
    admin.execute("insert into public.list_members (list_id, user_id) values (%s, %s)", (shared, bob))
    item = make_todo(admin, shared, "milk")
    drain(feed)
    laptop = SyncClient(api, bob)
    laptop.sync()
    assert laptop.ids("lists") == {shared} and laptop.ids("todos") == {item}
    return alice, shared, item, laptop


def test_a_create_is_applied_when_the_select_policy_goes_through_a_helper_reading_the_table(api, admin, feed):
    admin.execute(NOTES)
    alice = new_user()
    phone, tablet = SyncClient(api, alice), SyncClient(api, alice)
    phone.sync()
    note = str(uuid.uuid4())
    answer = push(phone, {"notes": {"created": [{"id": note, "owner_id": alice, "body": "first"}]}})
    assert answer.status_code == 200, answer.text
    assert admin.execute("select owner_id::text, body from public.notes").fetchall() == [(alice, "first")]
    # The row is the user's as any other: it reaches her other device, and the phone edits it on.
    drain(feed)
    tablet.sync()
    assert tablet.ids("notes") == {note}
    phone.sync()
    edit = push(phone, {"notes": {"updated": [{"id": note, "body": "second"}]}})
    assert edit.status_code == 200, edit.text
    assert admin.execute("select body from public.notes").fetchone()[0] == "second"
    # The insert policy still decides: a note claimed for someone else is refused by RLS.
    stranger = push(phone, {"notes": {"created": [{"id": str(uuid.uuid4()), "owner_id": new_user(), "body": "x"}]}})
    assert refusals(stranger) == [("notes", "created", "forbidden")]


def test_a_delete_rls_refuses_is_refused_and_the_whole_push_is_rolled_back(api, admin, feed):
    _alice, shared, _item, laptop = member_of_alices_list(api, admin, feed)
    before = snapshot(admin)
    fine = {"id": str(uuid.uuid4()), "list_id": shared, "title": "eggs"}  # Bob may add todos to the list
    answer = push(laptop, {"lists": {"deleted": [shared]}, "todos": {"created": [fine]}})
    assert refusals(answer) == [("lists", "deleted", "forbidden")]
    assert answer.json()["details"]["refused"][0]["key"] == shared
    assert snapshot(admin) == before, "nothing of the push is applied"


def test_an_update_rls_refuses_is_forbidden_not_a_conflict(api, admin, feed):
    _alice, shared, _item, laptop = member_of_alices_list(api, admin, feed)
    before = snapshot(admin)
    answer = push(laptop, {"lists": {"updated": [{"id": shared, "title": "bob's now"}]}})
    assert refusals(answer) == [("lists", "updated", "forbidden")]
    # A create of the visible key (last writer wins: it becomes an update) is the same refusal.
    answer = push(laptop, {"lists": {"created": [{"id": shared, "owner_id": laptop.user_id, "title": "mine"}]}})
    assert refusals(answer) == [("lists", "created", "forbidden")]
    # Following a conflict's advice (pull, push again) would never help; the answer stays the same.
    laptop.sync()
    again = push(laptop, {"lists": {"updated": [{"id": shared, "title": "bob's now"}]}})
    assert refusals(again) == [("lists", "updated", "forbidden")]
    assert snapshot(admin) == before


def test_a_row_the_user_cannot_see_is_still_not_found_and_its_delete_a_no_op(api, admin, feed):
    mine = make_list(admin, new_user())
    item = make_todo(admin, mine, "alice's")
    drain(feed)
    thief = SyncClient(api, new_user())
    thief.sync()
    answer = push(thief, {"todos": {"updated": [{"id": item, "title": "pwned"}]}, "lists": {"deleted": [mine]}})
    assert refusals(answer) == [("todos", "updated", "not_found")], "nothing tells a hidden row from a missing one"
    assert push(thief, {"lists": {"deleted": [mine]}}).status_code == 200
    assert admin.execute("select count(*) from public.lists").fetchone()[0] == 1


BAD_VALUES = [
    pytest.param({"title": ["a"]}, "title", id="array-for-text"),
    pytest.param({"title": {"a": 1}}, "title", id="object-for-text"),
    pytest.param({"title": 5}, "title", id="number-for-text"),
    pytest.param({"title": True}, "title", id="boolean-for-text"),
    pytest.param({"position": {"a": 1}}, "position", id="object-for-integer"),
    pytest.param({"position": [1]}, "position", id="array-for-integer"),
    pytest.param({"position": True}, "position", id="boolean-for-integer"),
    pytest.param({"done": "yes"}, "done", id="string-for-boolean"),
    pytest.param({"done": 1}, "done", id="number-for-boolean"),
    pytest.param({"list_id": 7}, "list_id", id="number-for-uuid"),
    pytest.param({"title": "nul\x00byte"}, None, id="nul-in-value"),
    pytest.param({"title\x00": "x"}, None, id="nul-in-column-name"),
]


@pytest.mark.parametrize(("values", "column"), BAD_VALUES)
def test_a_value_of_the_wrong_type_or_with_a_nul_is_refused_as_invalid(api, admin, feed, values, column):
    alice = new_user()
    shared = make_list(admin, alice)
    item = make_todo(admin, shared, "milk")
    drain(feed)
    phone = SyncClient(api, alice)
    phone.sync()
    before = snapshot(admin)
    created = {"id": str(uuid.uuid4()), "list_id": shared, "title": "eggs", **values}
    for changes, kind in (({"todos": {"created": [created]}}, "created"),
                          ({"todos": {"updated": [{"id": item, **values}]}}, "updated")):
        answer = push(phone, changes)
        assert refusals(answer) == [("todos", kind, "invalid")]
        refusal = answer.json()["details"]["refused"][0]
        if column is not None:
            assert refusal["columns"] == [column], refusal
        assert snapshot(admin) == before


def test_a_nul_in_a_deleted_key_or_the_mutation_id_is_refused(api, admin, feed):
    alice = new_user()
    shared = make_list(admin, alice)
    make_todo(admin, shared, "milk")
    drain(feed)
    phone = SyncClient(api, alice)
    phone.sync()
    before = snapshot(admin)
    answer = push(phone, {"todos": {"deleted": ["00000000-0000-0000-0000-00000000000\x00"]}})
    assert refusals(answer) == [("todos", "deleted", "invalid")]
    answer = push(phone, {"todos": {"deleted": [shared]}}, mutation_id="m\x00")
    assert (answer.status_code, answer.json()["code"]) == (400, "SYNC100"), answer.text
    assert snapshot(admin) == before


def test_well_typed_values_are_still_applied(api, admin, feed):
    alice = new_user()
    shared = make_list(admin, alice)
    drain(feed)
    phone = SyncClient(api, alice)
    phone.sync()
    new_id = str(uuid.uuid4())
    row = {"id": new_id, "list_id": shared, "title": "eggs", "done": True, "position": 3,
           "created_at": "2026-01-01T00:00:00+00:00", "created_by": None}
    assert push(phone, {"todos": {"created": [row]}}).status_code == 200
    # Numbers may come as strings (a client keeping a bigint or a decimal exact); Postgres reads them.
    assert push(phone, {"todos": {"updated": [{"id": new_id, "position": "4"}]}}).status_code == 200
    assert admin.execute("select title, done, position from public.todos where id = %s",
                         (new_id,)).fetchone() == ("eggs", True, 4)


# An append-only table: its users may insert and read, never update or delete.
EVENTS = """
create table public.events (id uuid primary key, owner_id uuid not null default auth.uid(), what text not null);
alter table public.events enable row level security;
grant select, insert on public.events to authenticated;
create policy events_select on public.events for select to authenticated using (owner_id = auth.uid());
create policy events_insert on public.events for insert to authenticated with check (owner_id = auth.uid());
select sync.enable('public.events', conflict => 'lww');
"""


def test_an_append_only_table_takes_creates_and_refuses_updates_and_deletes(api, admin, feed):
    admin.execute(EVENTS)
    phone = SyncClient(api, new_user())
    phone.sync()
    event = str(uuid.uuid4())
    answer = push(phone, {"events": {"created": [{"id": event, "owner_id": phone.user_id, "what": "opened"}]}})
    assert answer.status_code == 200, answer.text
    edit = push(phone, {"events": {"updated": [{"id": event, "what": "closed"}]}})
    assert refusals(edit) == [("events", "updated", "forbidden")]
    delete = push(phone, {"events": {"deleted": [event]}})
    assert refusals(delete) == [("events", "deleted", "forbidden")]
    assert admin.execute("select what from public.events").fetchall() == [("opened",)]
