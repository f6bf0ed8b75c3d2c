"""The columns, and what the database itself guarantees."""

import uuid

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from tests.factories import ExampleFactory, ItemFactory
from tests.testapp.models import Child, Document, Example, Item, Review
from versioning.models import Versioned

pytestmark = pytest.mark.django_db

VERSIONED_MODELS = [Example, Child, Item, Document, Review]


@pytest.mark.parametrize("model", VERSIONED_MODELS, ids=lambda m: m.__name__)
def test_every_concrete_model_has_the_version_constraints_in_the_database(model):
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(
            cursor, model._meta.db_table
        )
    unique_column_sets = {
        tuple(info["columns"]) for info in constraints.values() if info["unique"]
    }
    assert ("identity", "version") in unique_column_sets
    assert ("identity",) in unique_column_sets  # the partial "one current row" index
    indexed = {tuple(info["columns"]) for info in constraints.values() if info["index"]}
    assert ("valid_from", "valid_to") in indexed


def test_item_keeps_its_own_meta_and_gets_the_version_constraints():
    names = {c.name for c in Item._meta.constraints}
    assert "item_name_unique_when_current" in names
    assert len(names) == 3
    assert Item._meta.ordering == ["name"]


def insert_raw(model, **values):
    obj = model(**values)
    obj._state.adding = True
    model._base_manager.bulk_create([obj])


def test_database_refuses_two_current_rows_for_one_identity():
    obj = ExampleFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_raw(Example, identity=obj.identity, version=2, data="fork")


def test_database_refuses_a_repeated_version_number():
    obj = ExampleFactory()
    obj.delete()
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_raw(Example, identity=obj.identity, version=1, data="again")


def test_database_allows_many_closed_rows_per_identity():
    identity = uuid.uuid4()
    now = timezone.now()
    for version in (1, 2, 3):
        insert_raw(Example, identity=identity, version=version, data="x", valid_to=now)
    assert Example.all_versions.filter(identity=identity).count() == 3


def test_bookkeeping_fields_are_not_editable_in_forms():
    from django.forms import modelform_factory

    form = modelform_factory(Item, exclude=[])
    assert set(form.base_fields) == {
        "name",
        "price",
        "description",
        "attributes",
        "tags",
        "suppliers",
    }


def test_abstract_base_exposes_the_columns():
    names = {f.name for f in Versioned._meta.get_fields()}
    assert {
        "identity",
        "version",
        "valid_from",
        "valid_to",
        "changed_by",
        "change_reason",
    } <= names


def test_no_missing_migrations():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_scoped_unique_constraint_is_validated_by_forms():
    from django.forms import modelform_factory

    ItemFactory(name="lamp")
    other = ItemFactory(name="desk")
    Form = modelform_factory(Item, fields=["name", "price", "description"])
    form = Form(data={"name": "lamp", "price": "1", "description": ""}, instance=other)
    assert not form.is_valid()
    assert "name" in form.errors or "__all__" in form.errors
    # the object's own current row is not a conflict
    same = modelform_factory(Item, fields=["name", "price", "description"])(
        data={"name": "desk", "price": "2", "description": ""}, instance=other
    )
    assert same.is_valid(), same.errors
    # a name used only by historical rows is free again
    lamp = Item.objects.get(name="lamp")
    lamp.name = "lamp 2"
    lamp.save()
    reuse = Form(data={"name": "lamp", "price": "1", "description": ""}, instance=other)
    assert reuse.is_valid(), reuse.errors
