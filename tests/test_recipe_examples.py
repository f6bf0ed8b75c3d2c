"""
The two examples of SQLAlchemy's versioned-rows recipe, in Django terms,
literally: an edit inserts a new row, and a parent follows its child.
"""

from tests.testapp.models import Child, Example, Parent


def test_example_1_saving_a_change_inserts_a_new_row(db):
    e1 = Example.objects.create(data="e1")
    e1.data = "e2"
    e1.save()

    rows = list(Example.all_versions.order_by("id").values_list("id", "data"))
    assert [data for _, data in rows] == ["e1", "e2"]
    assert e1.pk == rows[1][0]
    assert rows[1][0] == rows[0][0] + 1


def test_example_2_parent_follows_the_new_child_version(db):
    p1 = Parent.objects.create(child=Child.objects.create(data="c1"))
    p1.child.data = "c2"
    p1.child.save()

    rows = list(Child.all_versions.order_by("id").values_list("id", "data"))
    assert [data for _, data in rows] == ["c1", "c2"]
    new_child_id = rows[1][0]
    assert p1.child_id == new_child_id
    assert Parent.objects.get(pk=p1.pk).child_id == new_child_id
