"""The example todo app as a client uses it: create a list and get it back in the same call."""

from __future__ import annotations

import uuid

from tests.rest.conftest import client


def test_owner_gets_the_list_it_creates_back(api, admin):
    owner, stranger = uuid.uuid4(), uuid.uuid4()
    created = client(api, api.user_token(owner)).table("lists").insert({"title": "Weekend"}).execute().data
    assert [row["title"] for row in created] == ["Weekend"]
    assert created[0]["owner_id"] == str(owner)
    assert client(api, api.user_token(stranger)).table("lists").select("id").execute().data == []
    assert admin.execute("select count(*) from lists where title = 'Weekend'").fetchone()[0] == 1
