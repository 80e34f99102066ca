"""A first pull costs what the user can see where an index allows it (sync/narrow.py): a policy
`list_id in (select ...)` over an indexed list_id is repeated in pass A's WHERE clause, which the planner serves
by the index; the rows sent stay exactly those RLS lets through."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import psycopg
import pytest

from tests.sync.conftest import SyncClient, make_list, new_user
from tuskbase.sync import catalog, narrow

NOTES = """
create table public.notes (
  id uuid primary key default gen_random_uuid(),
  list_id uuid not null references public.lists (id),
  body text not null
);
create index notes_list_id on public.notes (list_id);
alter table public.notes enable row level security;
grant select on public.notes to authenticated;
create policy notes_select on public.notes for select to authenticated
  using (list_id in (select m.list_id from public.list_members m where m.user_id = auth.uid()));
select sync.enable('public.notes');
"""
LISTS, PER_LIST = 500, 100


@pytest.fixture
def notes(admin: psycopg.Connection) -> dict:
    """50,000 notes over 500 lists, spread over the whole heap; a member of one list, and of three."""
    admin.execute(NOTES)
    ids = [make_list(admin, new_user(), f"l{i}") for i in range(LISTS)]
    admin.execute("insert into public.notes (list_id, body) select (%s::uuid[])[1 + g %% %s], 'note ' || g "
                  "from generate_series(0, %s) g", (ids, LISTS, LISTS * PER_LIST - 1))
    one, three = new_user(), new_user()
    admin.execute("insert into public.list_members (list_id, user_id) values (%s, %s)", (ids[7], one))
    for list_id in ids[10:13]:
        admin.execute("insert into public.list_members (list_id, user_id) values (%s, %s)", (list_id, three))
    admin.execute("analyze")

    def visible(lists: list[str]) -> set[str]:
        return {str(i) for (i,) in admin.execute("select id from public.notes where list_id = any(%s::uuid[])",
                                                 (lists,))}

    return {"one": one, "three": three, "ids": ids, "one_sees": visible([ids[7]]), "three_sees": visible(ids[10:13])}


def test_a_selective_first_pull_sends_exactly_the_visible_rows_in_pages(api, notes):
    for user, expected in ((notes["one"], notes["one_sees"]), (notes["three"], notes["three_sees"])):
        # One page; pages of the plain scan; and (the member of three lists, estimated as one) a narrowed query
        # that meets more rows than the page holds, cut and resumed by position.
        for limit in (1000, 150, 40):
            device = SyncClient(api, user)
            sent = []
            while True:
                answer = device.pull_once(limit=limit, tables=["notes"])
                device.apply(answer)
                sent += [row["id"] for row in answer["changes"]["notes"]["created"]]
                if not answer["has_more"]:
                    break
            assert len(sent) == len(set(sent)) == len(expected)
            assert set(sent) == expected


def test_no_narrowing_when_another_permissive_policy_lets_more_rows_in(api, admin, notes):
    admin.execute("create policy notes_public on public.notes for select to authenticated "
                  "using (body like 'note 4999%')")
    public = {str(i) for (i,) in admin.execute("select id from public.notes where body like 'note 4999%'")}
    device = SyncClient(api, notes["one"])
    device.sync(limit=1000)
    assert device.ids("notes") == notes["one_sees"] | public


def _pass_a(database: str, user: str, room: int) -> tuple[str, bool, str]:
    async def run() -> tuple[str, bool, str]:
        conn = await asyncpg.connect(database)
        try:
            tables = (await catalog.load(conn)).by_name
            async with conn.transaction():
                await conn.execute("select set_config('role', 'authenticated', true), "
                                   "set_config('request.jwt.claims', $1, true)",
                                   json.dumps({"sub": user, "role": "authenticated"}))
                table = tables["notes"]
                blocks = await conn.fetchval("select pg_relation_size('public.notes') / 8192")
                sql, whole = await narrow.pass_a_scan(conn, table, "authenticated", {}, "(0,0)", blocks, room)
                plan = "\n".join(r[0] for r in await conn.fetch(f"explain {sql}", "(0,0)", "(4294967295,0)"))
                return sql, whole, plan
        finally:
            await conn.close()

    return asyncio.run(run())


def test_the_narrowed_scan_reads_the_rows_by_the_index(database, notes):
    sql, whole, plan = _pass_a(database, notes["one"], 1000)
    assert whole and "list_members" in sql
    assert "notes_list_id" in plan, plan  # the index, not a walk of the heap
    # More rows expected than the page holds: the plain range scan, stepped by density, as before.
    sql, whole, _plan = _pass_a(database, notes["one"], 10)
    assert not whole and "list_members" not in sql
    # The planner takes a member of three lists for a member of one: the narrowed query is tried with room 150
    # (and the first test shows its 300 rows arrive all the same, cut into pages).
    assert _pass_a(database, notes["three"], 150)[1]
