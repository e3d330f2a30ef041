"""Bulk writes on the hot paths, without the ORM's per-value preparation.

Django's `bulk_create` and `bulk_update` prepare every value of every row through the field
(`get_db_prep_save`) and build `CASE WHEN` expressions for updates: most of the time of a
batch of purchases went there. On PostgreSQL these helpers send the attribute values as they
are (psycopg adapts `Decimal`, aware `datetime`, `int`, `str`, `bool` and `None` natively) in
one multi-row statement; on other databases they fall back to the ORM.

Only for models whose fields hold plain values (no custom field types needing conversion).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, models
from django.db.models.expressions import RawSQL

_CHUNK = 5000  # rows per statement


def ids_in(ids):
    """For `filter(field__in=ids_in(ids))`: on PostgreSQL one array parameter
    (`IN (SELECT unnest(%s::bigint[]))`) instead of one `%s` per id, which the driver would
    otherwise parse into the statement id by id; elsewhere the list itself."""
    ids = list(ids)
    if connection.vendor != "postgresql":
        return ids
    return RawSQL("SELECT unnest(%s::bigint[])", (ids,))


def _array_type(field: models.Field) -> str:
    return field.db_type(connection) + "[]"


def insert_many(objs: Sequence[models.Model]) -> list[models.Model]:
    """INSERT `objs` (all of one model, pk unset) and set their primary keys; returns them.

    On PostgreSQL: `INSERT … SELECT * FROM unnest(%s::type[], …) RETURNING id`, one array per
    column, so the statement text and its parameters stay small whatever the number of rows.
    """
    if not objs:
        return list(objs)
    model = type(objs[0])
    if connection.vendor != "postgresql":
        return model.objects.bulk_create(objs)
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    arrays = ", ".join(f"%s::{_array_type(f)}" for f in fields)
    with connection.cursor() as cur:
        for i in range(0, len(objs), _CHUNK):
            chunk = objs[i:i + _CHUNK]
            params = [[getattr(obj, f.attname) for obj in chunk] for f in fields]
            cur.execute(f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({columns}) "
                        f"SELECT * FROM unnest({arrays}) RETURNING {meta.pk.column}", params)
            for obj, (pk,) in zip(chunk, cur.fetchall(), strict=True):
                obj.pk = pk
                obj._state.adding = False
                obj._state.db = "default"
    return list(objs)


def update_many(model: type[models.Model], rows: dict[int, dict[str, object]]) -> None:
    """`UPDATE … SET col = v.col FROM unnest(…)` by primary key: one statement per chunk.

    `rows` maps pk → {attname: value}, every row with the same attnames.
    """
    if not rows:
        return
    names = list(next(iter(rows.values())))
    if connection.vendor != "postgresql":  # the ORM's CASE … WHEN: one statement too
        objs = [model(pk=pk, **values) for pk, values in rows.items()]
        model.objects.bulk_update(objs, names)
        return
    meta = model._meta
    fields = [meta.get_field(n) for n in names]
    table = connection.ops.quote_name(meta.db_table)
    sets = ", ".join(f"{connection.ops.quote_name(f.column)} = v.c{i}" for i, f in enumerate(fields))
    arrays = ", ".join(f"%s::{_array_type(f)}" for f in fields)
    aliases = ", ".join(f"c{i}" for i in range(len(fields)))
    items = sorted(rows.items())
    with connection.cursor() as cur:
        for i in range(0, len(items), _CHUNK):
            chunk = items[i:i + _CHUNK]
            params = [[pk for pk, _ in chunk], *[[values[n] for _, values in chunk] for n in names]]
            cur.execute(f"UPDATE {table} AS t SET {sets} FROM unnest(%s::{_array_type(meta.pk)}, {arrays}) "
                        f"AS v(pk, {aliases}) WHERE t.{meta.pk.column} = v.pk", params)
