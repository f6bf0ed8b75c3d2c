"""System checks: each refuses a model that would break on its second version."""

import uuid

import pytest
from django.db import models
from django.test.utils import isolate_apps

from versioning.models import Versioned

# isolate_apps finds a model's app through its module.
IN_TEST_APP = "tests.testapp.models"


def messages(model):
    # The isolated registry has no auth app, so Django's own check of the
    # changed_by key (fields.E300) is noise here; keep this app's messages.
    return [m for m in model.check() if m.id.startswith("versioning.")]


def ids(model):
    return sorted(message.id for message in messages(model))


@isolate_apps("tests.testapp")
def test_a_plain_versioned_model_passes():
    class Fine(Versioned):
        __module__ = IN_TEST_APP
        name = models.CharField(max_length=10)

    assert ids(Fine) == []


@isolate_apps("tests.testapp")
def test_redefined_bookkeeping_field_is_an_error():
    class Redefines(Versioned):
        __module__ = IN_TEST_APP
        version = models.IntegerField()

    [error] = messages(Redefines)
    assert error.id == "versioning.E001"
    assert "version" in error.msg and "reserved" in error.hint


@isolate_apps("tests.testapp")
def test_primary_key_without_a_default_is_an_error():
    class NoDefault(Versioned):
        __module__ = IN_TEST_APP
        code = models.CharField(max_length=10, primary_key=True)

    assert ids(NoDefault) == ["versioning.E002"]


@isolate_apps("tests.testapp")
def test_uuid_primary_key_with_a_default_passes():
    class WithDefault(Versioned):
        __module__ = IN_TEST_APP
        id = models.UUIDField(primary_key=True, default=uuid.uuid4)

    assert ids(WithDefault) == []


@isolate_apps("tests.testapp")
def test_multi_table_inheritance_is_refused():
    class Base(Versioned):
        __module__ = IN_TEST_APP
        name = models.CharField(max_length=10)

    class Child(Base):
        __module__ = IN_TEST_APP
        extra = models.CharField(max_length=10)

    assert "versioning.E003" in ids(Child)


@isolate_apps("tests.testapp")
def test_unique_field_is_an_error_with_a_scoped_hint():
    class Unique(Versioned):
        __module__ = IN_TEST_APP
        slug = models.SlugField(unique=True)

    [error] = messages(Unique)
    assert error.id == "versioning.E004"
    assert "valid_to__isnull=True" in error.hint


@isolate_apps("tests.testapp")
def test_one_to_one_field_is_an_error():
    class Target(models.Model):
        __module__ = IN_TEST_APP

        def __str__(self):
            return "target"

        pass

    class HasOneToOne(Versioned):
        __module__ = IN_TEST_APP
        target = models.OneToOneField(Target, on_delete=models.PROTECT)

    assert ids(HasOneToOne) == ["versioning.E005"]


@isolate_apps("tests.testapp")
def test_unique_together_is_an_error():
    class Together(Versioned):
        __module__ = IN_TEST_APP
        a = models.IntegerField()
        b = models.IntegerField()

        class Meta:
            unique_together = [("a", "b")]

    assert ids(Together) == ["versioning.E006"]


@isolate_apps("tests.testapp")
def test_unconditional_unique_constraint_is_an_error_and_scoped_one_passes():
    class Unconditional(Versioned):
        __module__ = IN_TEST_APP
        a = models.IntegerField()

        class Meta:
            constraints = [models.UniqueConstraint(fields=["a"], name="a_unique")]

    class Scoped(Versioned):
        __module__ = IN_TEST_APP
        a = models.IntegerField()

        class Meta:
            constraints = [
                models.UniqueConstraint(
                    fields=["a"],
                    condition=models.Q(valid_to__isnull=True),
                    name="a_cur",
                )
            ]

    assert ids(Unconditional) == ["versioning.E007"]
    assert ids(Scoped) == []


@isolate_apps("tests.testapp")
def test_cascading_foreign_key_is_a_warning_suggesting_protect():
    class Target(models.Model):
        __module__ = IN_TEST_APP

        def __str__(self):
            return "target"

        pass

    class Cascades(Versioned):
        __module__ = IN_TEST_APP
        target = models.ForeignKey(Target, on_delete=models.CASCADE)

    [warning] = messages(Cascades)
    assert warning.id == "versioning.W001"
    assert "PROTECT" in warning.hint


@isolate_apps("tests.testapp")
def test_cascading_to_a_versioned_model_is_no_warning():
    # Deleting a versioned object closes its CASCADE referrers: history stays.
    class Target(Versioned):
        __module__ = IN_TEST_APP

    class Cascades(Versioned):
        __module__ = IN_TEST_APP
        target = models.ForeignKey(Target, on_delete=models.CASCADE)

    assert messages(Cascades) == []


@pytest.mark.django_db
def test_the_test_project_passes_all_checks():
    from django.core.management import call_command

    call_command("check", fail_level="WARNING")


@isolate_apps("tests.testapp")
def test_a_plain_default_manager_is_a_warning():
    from versioning.managers import CurrentManager

    class PlainManagerFirst(Versioned):
        __module__ = IN_TEST_APP
        everything = models.Manager()
        objects = CurrentManager()

    class Subclassed(Versioned):
        __module__ = IN_TEST_APP

        class Meta:
            default_manager_name = "all_versions"

    assert ids(Subclassed) == ["versioning.W002"]
    [warning] = messages(Subclassed)
    assert "historical rows" in warning.msg and "CurrentManager" in warning.hint
    # A plain Manager also writes in place: that is E008.
    assert sorted(ids(PlainManagerFirst)) == ["versioning.E008", "versioning.W002"]


@isolate_apps("tests.testapp")
def test_a_manager_on_a_plain_queryset_is_an_error():
    from versioning.managers import CurrentManager, VersionedQuerySet

    class PlainQuerySet(models.QuerySet):
        def cheap(self):
            return self.filter(a__lt=10)

    class MineQuerySet(VersionedQuerySet):
        def cheap(self):
            return self.filter(a__lt=10)

    class Plain(Versioned):
        __module__ = IN_TEST_APP
        a = models.IntegerField()
        objects = CurrentManager.from_queryset(PlainQuerySet)()

    class Mine(Versioned):
        __module__ = IN_TEST_APP
        a = models.IntegerField()
        objects = CurrentManager.from_queryset(MineQuerySet)()

    errors = [e for e in Plain.check() if e.id == "versioning.E008"]
    assert len(errors) == 1
    assert "PlainQuerySet" in errors[0].msg and "VersionedQuerySet" in errors[0].hint
    assert ids(Mine) == []


@pytest.mark.parametrize("owner_is_versioned", [True, False])
@isolate_apps("tests.testapp")
def test_a_versioned_through_model_is_an_error(owner_is_versioned):
    class Person(models.Model):
        __module__ = IN_TEST_APP

        def __str__(self):
            return "person"

    class Membership(Versioned):
        __module__ = IN_TEST_APP
        club = models.ForeignKey("Club", on_delete=models.PROTECT)
        person = models.ForeignKey(Person, on_delete=models.PROTECT)

    class Club(Versioned if owner_is_versioned else models.Model):
        __module__ = IN_TEST_APP
        members = models.ManyToManyField(Person, through=Membership)

    [error] = messages(Membership)
    assert error.id == "versioning.E009" and error.obj is Membership
    assert "'testapp.Club.members'" in error.msg
    assert "plain model" in error.hint and "ForeignKeys" in error.hint
    assert ids(Club) == []


@isolate_apps("tests.testapp")
def test_a_plain_through_model_of_a_versioned_model_passes():
    class Person(models.Model):
        __module__ = IN_TEST_APP

        def __str__(self):
            return "person"

    class Membership(models.Model):
        __module__ = IN_TEST_APP
        club = models.ForeignKey("Club", on_delete=models.CASCADE)
        person = models.ForeignKey(Person, on_delete=models.CASCADE)

        def __str__(self):
            return "membership"

    class Club(Versioned):
        __module__ = IN_TEST_APP
        members = models.ManyToManyField(Person, through=Membership)
        friends = models.ManyToManyField("self", through="Friendship")

    class Friendship(Versioned):
        __module__ = IN_TEST_APP
        one = models.ForeignKey(Club, on_delete=models.PROTECT, related_name="+")
        other = models.ForeignKey(Club, on_delete=models.PROTECT, related_name="+")

    assert ids(Club) == []
    # Between two rows of one model, the versioned through is reported once.
    assert ids(Friendship) == ["versioning.E009"]
