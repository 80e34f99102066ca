"""A first pull that costs what the user can see: pass A's scan, narrowed by the table's own policy.

Postgres plans a row-level security policy such as

    using (list_id in (select m.list_id from public.list_members m where m.user_id = auth.uid()))

as a filter on every row of the table (a hashed SubPlan, never a join): even with an index on `list_id`, a
user who sees 1,000 rows of 300,000 costs a walk of all 300,000. The same condition written in the query's
WHERE clause is pulled up into a semi-join, which can read those rows through the index. So when the one
permissive select policy that applies to the caller's role holds such a condition (`column IN (subquery)`,
alone or as a conjunct of an AND), pass A's range query repeats that conjunct in its WHERE clause
(`Narrowing.sql`): the rows are those RLS lets through anyway (the policy still applies; the conjunct is
implied by it).

Pass A reads in steps of heap blocks sized from the density met so far (`pull._step`), each step a TID range
scan. At the start of each pull's pass A of such a table, an EXPLAIN of the narrowed query over the whole
rest of the table estimates its visible rows; when they fit the page, and the density met so far does not say
otherwise, the rest is read in that one query, which the planner serves by the index (`pass_a_scan`). Else the
plain range scan goes on as before. A wrong estimate costs one query reading too much (cut to the page as any
range is); the density it measured keeps the next pulls of the diff on the plain scan.

The policy text comes from the catalog (`pg_get_expr` of `pg_policy`, written by the DBA), never from a
request. A narrowed query that does not plan (an unusual policy) is dropped, and the plain one used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg
import pglast
from pglast import ast
from pglast.enums import BoolExprType, SubLinkType
from pglast.stream import RawStream

from tuskbase.schema import quote_ident, quote_literal
from tuskbase.sync.catalog import Table

# The select policies of a table that apply to a role (its own, or PUBLIC's, or a role it is a member of).
POLICIES = """
select p.polpermissive, pg_get_expr(p.polqual, p.polrelid)
from pg_policy p
where p.polrelid = $1 and p.polcmd in ('r', '*')
  and (0 = any(p.polroles)
       or exists (select from unnest(p.polroles) r where r <> 0 and pg_has_role($2, r, 'USAGE')))
"""
END = "(4294967295,0)"  # past any tid
RLS_ROLES = ("anon", "authenticated")  # service_role bypasses RLS: nothing to narrow
_CACHE_MAX = 1000


@dataclass
class Narrowing:
    sql: str  # pass A's range query ($1, $2: tids) with the policy's conjuncts repeated in WHERE
    checked: bool = False  # planned once without error


# (id of the catalog's Table object, role) -> (that Table, its narrowing or None). A new catalog (a policy
# changed) has new Table objects, so nothing stale is found; the Table kept alive makes ids unambiguous.
_cache: dict[tuple[int, str], tuple[Table, Narrowing | None]] = {}


async def narrowing(conn: Any, table: Table, role: str) -> Narrowing | None:
    """The narrowed pass-A query of `table` for `role`, or None (no policy of the kind, or it does not plan)."""
    if not table.rls or role not in RLS_ROLES:
        return None
    found = _cache.get((id(table), role))
    if found is not None and found[0] is table:
        return found[1]
    rows = await conn.fetch(POLICIES, table.relid, role)
    permissive = [qual for is_permissive, qual in rows if is_permissive and qual]
    conjuncts = _indexable_conjuncts(permissive[0], table) if len(permissive) == 1 else []
    result = Narrowing(_scan_sql(table, conjuncts)) if conjuncts else None
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[(id(table), role)] = (table, result)
    return result


def forget(table: Table, role: str) -> None:
    _cache[(id(table), role)] = (table, None)


def _indexable_conjuncts(qual: str, table: Table) -> list[str]:
    """The `column IN (subquery)` conjuncts of a policy expression, as SQL text."""
    try:
        expression = pglast.parse_sql(f"select {qual}")[0].stmt.targetList[0].val
    except (pglast.parser.ParseError, AttributeError, IndexError):
        return []
    parts = expression.args if (isinstance(expression, ast.BoolExpr)
                                and expression.boolop == BoolExprType.AND_EXPR) else (expression,)
    return [RawStream()(part) for part in parts if _is_column_in_subquery(part, table)]


def _is_column_in_subquery(node: Any, table: Table) -> bool:
    if not isinstance(node, ast.SubLink) or node.subLinkType != SubLinkType.ANY_SUBLINK:
        return False
    if node.operName and [n.sval for n in node.operName] != ["="]:
        return False
    test = node.testexpr
    if not isinstance(test, ast.ColumnRef) or not all(isinstance(f, ast.String) for f in test.fields):
        return False
    names = [f.sval for f in test.fields]
    return names[-1] in table.columns and (len(names) == 1 or names[:-1] == [table.name])


def _scan_sql(table: Table, conjuncts: list[str]) -> str:
    """pass A's `scan_range` with the policy's conjuncts: the table is named as itself (not `t`), so that the
    expression's references resolve as they do in the policy."""
    alias = quote_ident(table.name)
    key = "jsonb_build_object(" + ", ".join(f"{quote_literal(c)}, {alias}.{quote_ident(c)}"
                                            for c in table.pk) + ")::text"
    where = " and ".join(f"({c})" for c in conjuncts)
    return (f"select {key}, {alias}.xmin::text::bigint, row_to_json({alias}.*)::text, {alias}.ctid "
            f"from {table.qualified} as {alias} "
            f"where {alias}.ctid > $1::text::tid and {alias}.ctid < $2::text::tid and {where}")


async def pass_a_scan(conn: Any, table: Table, role: str, diff: dict[str, Any], resume: str, blocks: int,
                      room: int) -> tuple[str, bool]:
    """The range query for this pull's pass A of `table`, and whether to read the whole rest of it at once."""
    found = await narrowing(conn, table, role)
    if found is None:
        return table.sql["scan_range"], False
    read, seen = diff.get("b", 0), diff.get("r", 0)
    left = blocks - int(resume.strip("()").partition(",")[0])
    if read and seen * left > room * read:  # the density met so far says the rest does not fit
        return table.sql["scan_range"], False
    explain = f"explain (format json) {found.sql}"
    try:
        if found.checked:
            plan = await conn.fetchval(explain, resume, END)
        else:
            async with conn.transaction():  # a savepoint: a narrowing that does not plan is dropped
                plan = await conn.fetchval(explain, resume, END)
            found.checked = True
    except asyncpg.QueryCanceledError:
        raise  # the statement timeout, or the client gone: not a sign that the query cannot plan
    except asyncpg.PostgresError:
        if found.checked:
            raise
        forget(table, role)
        return table.sql["scan_range"], False
    estimate = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]["Plan Rows"]
    if estimate > room:
        return table.sql["scan_range"], False
    return found.sql, True
