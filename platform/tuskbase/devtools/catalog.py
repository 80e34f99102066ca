"""What `tuskbase gen types` describes: the relations, functions and types of the exposed schemas.

One catalog query (Postgres renders it as JSON), read with psycopg because the CLI is synchronous. Objects
that extensions own are left out, as are trigger functions: neither is part of an app's API.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import psycopg

CATALOG = """
with schemas as (select oid, nspname from pg_namespace where nspname = any(%(schemas)s::text[])),
ext as (select objid from pg_depend where deptype = 'e')
select json_build_object(
  'relations', coalesce((select json_agg(json_build_object(
      'schema', s.nspname, 'name', c.relname, 'kind', c.relkind,
      'updatable', c.relkind = 'v' and (pg_relation_is_updatable(c.oid, false) & 20) = 20,
      'columns', coalesce((
        select json_agg(json_build_object(
          'name', a.attname, 'type', t.typname, 'type_schema', tn.nspname,
          'nullable', not a.attnotnull or c.relkind in ('v', 'm'),
          'has_default', a.atthasdef or a.attidentity <> '', 'always_generated',
          a.attidentity = 'a' or a.attgenerated <> '',
          'updatable', c.relkind <> 'v' or pg_column_is_updatable(c.oid, a.attnum, false)
        ) order by a.attname)
        from pg_attribute a join pg_type t on t.oid = a.atttypid join pg_namespace tn on tn.oid = t.typnamespace
        where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), '[]'),
      'relationships', coalesce((
        select json_agg(json_build_object(
          'name', pc.conname,
          'columns', (select json_agg(a.attname order by k.ord) from unnest(pc.conkey) with ordinality k(n, ord)
                      join pg_attribute a on a.attrelid = pc.conrelid and a.attnum = k.n),
          'one_to_one', exists (select 1 from pg_constraint u where u.conrelid = pc.conrelid
                                and u.contype in ('p', 'u') and u.conkey::int2[] @> pc.conkey::int2[]
                                and u.conkey::int2[] <@ pc.conkey::int2[]),
          'ref_schema', rn.nspname, 'ref_relation', rc.relname,
          'ref_columns', (select json_agg(a.attname order by k.ord) from unnest(pc.confkey) with ordinality k(n, ord)
                          join pg_attribute a on a.attrelid = pc.confrelid and a.attnum = k.n)
        ) order by pc.conname)
        from pg_constraint pc join pg_class rc on rc.oid = pc.confrelid
        join pg_namespace rn on rn.oid = rc.relnamespace
        where pc.conrelid = c.oid and pc.contype = 'f'), '[]')
    ) order by c.relname)
    from pg_class c join schemas s on s.oid = c.relnamespace
    where c.relkind in ('r', 'p', 'v', 'm', 'f') and c.oid not in (select objid from ext)), '[]'),
  'functions', coalesce((select json_agg(json_build_object(
      'schema', s.nspname, 'name', p.proname, 'returns_set', p.proretset,
      'return_type', rt.typname, 'return_type_schema', rtn.nspname, 'return_relation', rr.relname,
      'args', coalesce((
        select json_agg(json_build_object(
          'name', coalesce(p.proargnames[a.ord], ''), 'mode', coalesce(p.proargmodes[a.ord], 'i'),
          'type', t.typname, 'type_schema', tn.nspname,
          'has_default', coalesce(p.proargmodes[a.ord], 'i') in ('i', 'b', 'v')
            and a.ord > p.pronargs - p.pronargdefaults
        ) order by a.ord)
        from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) with ordinality a(type_oid, ord)
        join pg_type t on t.oid = a.type_oid join pg_namespace tn on tn.oid = t.typnamespace), '[]')
    ) order by p.proname, p.oid)
    from pg_proc p join schemas s on s.oid = p.pronamespace
    join pg_type rt on rt.oid = p.prorettype join pg_namespace rtn on rtn.oid = rt.typnamespace
    left join pg_class rr on rr.oid = rt.typrelid and rr.relkind <> 'c'
    where p.prokind in ('f', 'p') and rt.typname not in ('trigger', 'event_trigger')
      and p.oid not in (select objid from ext)), '[]'),
  'enums', coalesce((select json_agg(json_build_object(
      'schema', s.nspname, 'name', t.typname,
      'values', (select json_agg(e.enumlabel order by e.enumsortorder) from pg_enum e where e.enumtypid = t.oid)
    ) order by t.typname)
    from pg_type t join schemas s on s.oid = t.typnamespace
    where t.typtype = 'e' and t.oid not in (select objid from ext)), '[]'),
  'composites', coalesce((select json_agg(json_build_object(
      'schema', s.nspname, 'name', t.typname,
      'attributes', (select json_agg(json_build_object('name', a.attname, 'type', at.typname,
                                                       'type_schema', atn.nspname) order by a.attnum)
                     from pg_attribute a join pg_type at on at.oid = a.atttypid
                     join pg_namespace atn on atn.oid = at.typnamespace
                     where a.attrelid = t.typrelid and a.attnum > 0 and not a.attisdropped)
    ) order by t.typname)
    from pg_type t join schemas s on s.oid = t.typnamespace join pg_class c on c.oid = t.typrelid
    where t.typtype = 'c' and c.relkind = 'c' and t.oid not in (select objid from ext)), '[]')
)::text
"""


@dataclass(frozen=True)
class TypeRef:
    name: str  # pg_type.typname: int4, _text (an array of text), todo_status
    schema: str


@dataclass(frozen=True)
class Column:
    name: str
    type: TypeRef
    nullable: bool
    has_default: bool
    always_generated: bool  # GENERATED ALWAYS (identity or stored): never written
    updatable: bool


@dataclass(frozen=True)
class Relationship:
    name: str
    columns: list[str]
    one_to_one: bool
    ref_schema: str
    ref_relation: str
    ref_columns: list[str]


@dataclass(frozen=True)
class Relation:
    schema: str
    name: str
    kind: str  # r p v m f
    updatable: bool
    columns: list[Column]
    relationships: list[Relationship]

    @property
    def is_view(self) -> bool:
        return self.kind in ("v", "m")


@dataclass(frozen=True)
class Argument:
    name: str
    mode: str  # i o b v t (in, out, inout, variadic, table)
    type: TypeRef
    has_default: bool


@dataclass(frozen=True)
class Function:
    schema: str
    name: str
    returns_set: bool
    return_type: TypeRef
    return_relation: str | None
    args: list[Argument]


@dataclass(frozen=True)
class Enum:
    schema: str
    name: str
    values: list[str]


@dataclass(frozen=True)
class Composite:
    schema: str
    name: str
    attributes: list[tuple[str, TypeRef]]


@dataclass
class Catalog:
    schemas: list[str]
    relations: list[Relation] = field(default_factory=list)
    functions: list[Function] = field(default_factory=list)
    enums: list[Enum] = field(default_factory=list)
    composites: list[Composite] = field(default_factory=list)

    def enum(self, ref: TypeRef) -> Enum | None:
        return next((e for e in self.enums if e.name == ref.name and e.schema == ref.schema), None)

    def composite(self, ref: TypeRef) -> Composite | None:
        return next((c for c in self.composites if c.name == ref.name and c.schema == ref.schema), None)

    def relation(self, schema: str, name: str) -> Relation | None:
        return next((r for r in self.relations if r.name == name and r.schema == schema), None)


class UnknownSchema(LookupError):
    """A schema asked for does not exist."""


def load(url: str, schemas: list[str]) -> Catalog:
    with psycopg.connect(url) as conn:
        found = {name for (name,) in conn.execute("select nspname from pg_namespace where nspname = any(%s)",
                                                   (schemas,))}
        if missing := [s for s in schemas if s not in found]:
            raise UnknownSchema(f"no schema named {', '.join(missing)} in the database")
        (text,) = conn.execute(CATALOG, {"schemas": schemas}).fetchone()
    raw = json.loads(text)
    catalog = Catalog(sorted(schemas))
    for r in raw["relations"]:
        columns = [Column(c["name"], TypeRef(c["type"], c["type_schema"]), c["nullable"], c["has_default"],
                          c["always_generated"], c["updatable"]) for c in r["columns"]]
        relationships = [Relationship(f["name"], f["columns"], f["one_to_one"], f["ref_schema"], f["ref_relation"],
                                      f["ref_columns"]) for f in r["relationships"]]
        catalog.relations.append(Relation(r["schema"], r["name"], r["kind"], r["updatable"], columns, relationships))
    for f in raw["functions"]:
        args = [Argument(a["name"], a["mode"], TypeRef(a["type"], a["type_schema"]), a["has_default"])
                for a in f["args"]]
        catalog.functions.append(Function(f["schema"], f["name"], f["returns_set"],
                                          TypeRef(f["return_type"], f["return_type_schema"]), f["return_relation"],
                                          args))
    catalog.enums = [Enum(e["schema"], e["name"], e["values"]) for e in raw["enums"]]
    catalog.composites = [Composite(c["schema"], c["name"], [(a["name"], TypeRef(a["type"], a["type_schema"]))
                                                             for a in c["attributes"] or []])
                          for c in raw["composites"]]
    return catalog
