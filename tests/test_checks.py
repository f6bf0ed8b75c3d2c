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

    # Django 6 checks every alias unless told; the test replica is a mirror.
    call_command("check", fail_level="WARNING", databases=["default"])


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


@isolate_apps("tests.testapp")
def test_an_index_on_a_data_field_is_a_warning_pointing_at_current_index():
    class Indexed(Versioned):
        __module__ = IN_TEST_APP
        email = models.EmailField(db_index=True)

    [warning] = messages(Indexed)
    assert warning.id == "versioning.W003"
    assert "'testapp.Indexed.email'" in warning.msg and "every version" in warning.msg
    assert "versioning.CurrentIndex(fields=['email']" in warning.hint


@isolate_apps("tests.testapp")
def test_a_plain_meta_index_on_data_fields_is_a_warning():
    from django.db.models.functions import Lower

    class ByFields(Versioned):
        __module__ = IN_TEST_APP
        name = models.CharField(max_length=10)

        class Meta:
            indexes = [models.Index(fields=["-name"], name="by_name")]

    class ByExpression(Versioned):
        __module__ = IN_TEST_APP
        name = models.CharField(max_length=10)

        class Meta:
            indexes = [models.Index(Lower("name"), name="by_lower_name")]

    [warning] = messages(ByFields)
    assert warning.id == "versioning.W003"
    assert "'by_name'" in warning.msg and "CurrentIndex" in warning.hint
    assert ids(ByExpression) == ["versioning.W003"]


@isolate_apps("tests.testapp")
def test_indexes_of_current_rows_only_pass():
    from django.db.models.functions import Lower

    from versioning import CurrentIndex

    class Helper(Versioned):
        __module__ = IN_TEST_APP
        name = models.CharField(max_length=10)
        code = models.CharField(max_length=10)

        class Meta:
            indexes = [
                CurrentIndex(fields=["name"]),
                CurrentIndex(Lower("code"), name="helper_lower_code"),
            ]

    class Conditional(Versioned):
        __module__ = IN_TEST_APP
        name = models.CharField(max_length=10)
        rank = models.IntegerField()

        class Meta:
            indexes = [
                models.Index(
                    fields=["name"],
                    condition=models.Q(valid_to__isnull=True),
                    name="conditional_name",
                ),
                models.Index(
                    fields=["rank"],
                    condition=models.Q(rank__gt=0, valid_to__isnull=True),
                    name="conditional_rank",
                ),
            ]

    assert ids(Helper) == []
    assert ids(Conditional) == []


@isolate_apps("tests.testapp")
def test_a_condition_that_admits_historical_rows_is_still_a_warning():
    class Either(Versioned):
        __module__ = IN_TEST_APP
        rank = models.IntegerField()

        class Meta:
            indexes = [
                models.Index(
                    fields=["rank"],
                    condition=models.Q(rank__gt=0) | models.Q(valid_to__isnull=True),
                    name="either_rank",
                )
            ]

    assert ids(Either) == ["versioning.W003"]


@isolate_apps("tests.testapp")
def test_a_plain_index_kept_next_to_a_current_one_is_deliberate():
    # A slug looked up among current rows and, for old links, in history.
    from versioning import CurrentIndex

    class Kept(Versioned):
        __module__ = IN_TEST_APP
        slug = models.SlugField()
        code = models.CharField(max_length=10)

        class Meta:
            indexes = [
                CurrentIndex(fields=["code"]),
                models.Index(fields=["code", "slug"], name="kept_code_slug"),
            ]
            constraints = [
                models.UniqueConstraint(
                    fields=["slug"],
                    condition=models.Q(valid_to__isnull=True),
                    name="kept_slug_current",
                )
            ]

    assert ids(Kept) == []


@isolate_apps("tests.testapp")
def test_keys_unique_fields_and_bookkeeping_indexes_are_no_index_warning():
    class Target(Versioned):
        __module__ = IN_TEST_APP

    class Others(Versioned):
        __module__ = IN_TEST_APP
        # Django indexes a key; pruning and deletion read history through it.
        target = models.ForeignKey(Target, on_delete=models.PROTECT)
        slug = models.SlugField(unique=True)

        class Meta:
            indexes = [
                models.Index(fields=["identity", "valid_from"], name="others_moment")
            ]

    # unique=True is refused outright (E004), with the scoped constraint as fix.
    assert ids(Others) == ["versioning.E004"]
