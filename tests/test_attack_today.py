"""
Today's changes attacked as a new user would, with ordinary Django idioms:
the savepoint-free one-statement save inside the caller's transaction, the
copy idiom, one-to-one keys to versioned models, receivers that save again,
and a refused restore. Every test runs on SQLite and on PostgreSQL.
"""

import copy

import pytest
from django import forms
from django.db import IntegrityError, transaction
from django.db.models.signals import post_save
from django.db.transaction import TransactionManagementError
from django.urls import reverse

from tests.factories import ArticleFactory, ExampleFactory, ItemFactory, TagFactory
from tests.test_attack_save_doors import (
    Boom,
    assert_one_current_per_identity,
    versions,
)
from tests.testapp.models import (
    Banner,
    Child,
    Club,
    Document,
    Example,
    Item,
    Kit,
    Mascot,
    Order,
    Parent,
    Place,
    Restaurant,
    Scarf,
    Wine,
    WineDrinker,
    free_agents,
)
from versioning.exceptions import RestoreRefusedError, StaleVersionError
from versioning.signals import version_created

# Django 6.1 renamed savepoint() to savepoint_create(), deprecating the old name.
savepoint_create = getattr(transaction, "savepoint_create", transaction.savepoint)

# Autocommit outside the test's own atomic() blocks, as a request runs.

pytestmark = pytest.mark.django_db(transaction=True)


def stale_pair(data="v1"):
    """Two loads of one version; the first saved, so the second is stale."""
    ExampleFactory(data=data)
    mine, theirs = Example.objects.get(data=data), Example.objects.get(data=data)
    theirs.data = "theirs"
    theirs.save()
    return mine, theirs


# 1. The one-statement save inside the caller's transaction ---------------------


def test_on_commit_callbacks_around_a_caught_stale_save_all_run():
    mine, theirs = stale_pair()
    ran = []
    with transaction.atomic():
        transaction.on_commit(lambda: ran.append("before"))
        mine.data = "mine"
        with pytest.raises(StaleVersionError):
            mine.save()
        transaction.on_commit(lambda: ran.append("after"))
        theirs.data = "more"
        theirs.save()
    assert ran == ["before", "after"]
    assert versions(theirs, "data") == [
        (1, "v1", False),
        (2, "theirs", False),
        (3, "more", True),
    ]
    assert (mine.version, mine.data) == (1, "mine")


def test_a_stale_save_in_a_nested_atomic_leaves_both_levels_usable():
    mine, theirs = stale_pair()
    other = ExampleFactory(data="o1")
    with transaction.atomic():
        with transaction.atomic():
            mine.data = "mine"
            with pytest.raises(StaleVersionError):
                mine.save()
            other.data = "o2"
            other.save()
        assert transaction.get_rollback() is False
        other.data = "o3"
        other.save()
    assert versions(other, "data") == [
        (1, "o1", False),
        (2, "o2", False),
        (3, "o3", True),
    ]
    assert_one_current_per_identity(Example)


def test_a_stale_save_inside_a_durable_atomic_then_more_writes_commit():
    mine, theirs = stale_pair()
    with transaction.atomic(durable=True):
        mine.data = "mine"
        with pytest.raises(StaleVersionError):
            mine.save()
        current = mine.current_version()
        current.data = "mine"
        current.save()
    assert [row[1] for row in versions(theirs, "data")] == ["v1", "theirs", "mine"]
    assert_one_current_per_identity(Example)


def test_a_changed_save_inside_a_durable_atomic():
    example = ExampleFactory(data="v1")
    item = ItemFactory(name="lamp")
    Order.objects.create(item=item)
    with transaction.atomic(durable=True):
        example.data = "v2"
        example.save()
        item.name = "lamp 2"
        item.save()  # a save with referrers: a transaction of its own inside
    assert versions(example, "data") == [(1, "v1", False), (2, "v2", True)]
    assert Order.objects.get().item_id == item.pk


def test_an_integrity_error_inside_atomic_breaks_it_as_a_plain_save_does():
    """Documented: like a failed plain save(), the caller's atomic is unusable."""
    ArticleFactory(slug="taken")
    article = ArticleFactory(slug="mine")
    place = Place.objects.create(name="p")
    Restaurant.objects.create(place=place)
    outcomes = []
    for failing_save in (
        lambda: Restaurant(place=place).save(),  # a plain model's save
        lambda: (setattr(article, "slug", "taken"), article.save()),
    ):
        with transaction.atomic():
            with pytest.raises(IntegrityError):
                failing_save()
            try:
                Example.objects.count()
            except Exception as error:  # noqa: BLE001
                outcomes.append(type(error))
            else:
                outcomes.append(None)
    assert outcomes[0] is TransactionManagementError
    assert outcomes == [outcomes[0], outcomes[0]]
    assert (article.version, article.slug) == (1, "taken")
    assert versions(article, "slug") == [(1, "mine", True)]


def test_an_integrity_error_wrapped_in_atomic_then_retry_in_the_same_transaction():
    ArticleFactory(slug="taken")
    article = ArticleFactory(slug="mine")
    with transaction.atomic():
        article.slug = "taken"
        with pytest.raises(IntegrityError), transaction.atomic():
            article.save()
        article.slug = "free"
        article.save()
        article.slug = "free again"
        article.save()
    assert versions(article, "slug") == [
        (1, "mine", False),
        (2, "free", False),
        (3, "free again", True),
    ]


def test_a_user_savepoint_rolled_back_after_a_save_then_the_object_is_refused():
    example = ExampleFactory(data="v1")
    with transaction.atomic():
        sid = savepoint_create()
        example.data = "v2"
        example.save()
        transaction.savepoint_rollback(sid)
        # SQLite may give the rolled-back key to the next row.
        other = Example.objects.create(data="other")
        example.data = "v3"
        with pytest.raises(StaleVersionError):
            example.save()
        fresh = Example.objects.get(identity=example.identity)
        fresh.data = "v3"
        fresh.save()
    assert versions(example, "data") == [(1, "v1", False), (2, "v3", True)]
    assert versions(other, "data") == [(1, "other", True)]


def test_a_user_savepoint_rolled_back_around_a_stale_save():
    mine, theirs = stale_pair()
    with transaction.atomic():
        sid = savepoint_create()
        mine.data = "mine"
        with pytest.raises(StaleVersionError):
            mine.save()
        transaction.savepoint_rollback(sid)
        theirs.data = "after"
        theirs.save()
        transaction.savepoint_commit(savepoint_create())
    assert [row[1] for row in versions(theirs, "data")] == ["v1", "theirs", "after"]


def test_a_user_savepoint_committed_after_a_save_keeps_the_object_usable():
    example = ExampleFactory(data="v1")
    with transaction.atomic():
        sid = savepoint_create()
        example.data = "v2"
        example.save()
        transaction.savepoint_commit(sid)
        example.data = "v3"
        example.save()
    example.data = "v4"
    example.save()
    assert [row[1] for row in versions(example, "data")] == ["v1", "v2", "v3", "v4"]


def test_save_outer_rollback_save_again_on_commit_never_runs():
    example = ExampleFactory(data="v1")
    ran = []
    with pytest.raises(Boom), transaction.atomic():
        example.data = "v2"
        example.save()
        transaction.on_commit(lambda: ran.append("committed"))
        raise Boom
    assert ran == []
    example.data = "v3"
    with pytest.raises(StaleVersionError):
        example.save()
    assert versions(example, "data") == [(1, "v1", True)]


def test_select_for_update_then_save_twice_then_stale_copy_is_refused():
    example = ExampleFactory(data="v1")
    with transaction.atomic():
        locked = Example.objects.select_for_update().get(identity=example.identity)
        locked.data = "v2"
        locked.save()
        locked.data = "v3"
        locked.save()
        example.data = "lost"
        with pytest.raises(StaleVersionError):
            example.save()
        assert Example.objects.get().data == "v3"
    assert [row[1] for row in versions(example, "data")] == ["v1", "v2", "v3"]
    assert (example.version, example.data) == (1, "lost")


def test_restore_refused_inside_atomic_leaves_it_usable_and_writes_nothing():
    barolo = Wine.objects.create(name="barolo")
    ann = WineDrinker.objects.create(name="ann")
    ann.glasses.add(barolo)
    ann.glasses.clear()
    barolo.delete()
    old = ann.history().get(version=2)
    with transaction.atomic():
        with pytest.raises(RestoreRefusedError) as raised:
            old.restore()
        assert "barolo" in raised.value.reason
        ann.name = "ann 2"
        ann.save()
    assert [row[1] for row in versions(ann, "name")] == ["ann", "ann", "ann", "ann 2"]
    assert (old.version, old.valid_to is not None) == (2, True)


def test_restore_after_a_stale_save_in_one_transaction():
    mine, theirs = stale_pair()
    with transaction.atomic():
        mine.data = "mine"
        with pytest.raises(StaleVersionError):
            mine.save()
        restored = Example.all_versions.get(identity=mine.identity, version=1)
        restored = restored.restore()
    assert versions(theirs, "data") == [
        (1, "v1", False),
        (2, "theirs", False),
        (3, "v1", True),
    ]


# 2. Copies ------------------------------------------------------------------------


def copied(obj):
    obj.pk = None
    obj._state.adding = True
    return obj


def test_a_copy_of_an_object_just_created_in_hand():
    """The docs' idiom on the very object create() returned, not reloaded."""
    original = Example.objects.create(data="original")
    identity = original.identity
    clone = copied(original)
    clone.data = "copy"
    clone.save()
    assert clone.identity != identity
    assert Example.objects.count() == 2
    assert_one_current_per_identity(Example)


def test_a_copy_of_an_object_just_saved_in_hand():
    example = ExampleFactory(data="v1")
    example.data = "v2"
    example.save()
    identity = example.identity
    clone = copied(example)
    clone.save()
    assert clone.identity != identity and clone.version == 1
    assert Example.objects.filter(identity=identity).get().data == "v2"
    assert_one_current_per_identity(Example)


def test_many_copies_from_one_instance_in_a_loop():
    """The docs copy one instance repeatedly: each save makes another object."""
    template = ExampleFactory(data="t")
    identities = {template.identity}
    for n in range(3):
        copied(template)
        template.data = f"copy {n}"
        template.save()
        identities.add(template.identity)
    assert len(identities) == 4
    assert Example.objects.count() == 4
    assert_one_current_per_identity(Example)


def test_a_copy_with_only_pk_none():
    """Many tutorials write only ``obj.pk = None; obj.save()``."""
    ExampleFactory(data="original")
    clone = Example.objects.get()
    clone.pk = None
    clone.data = "copy"
    clone.save()
    assert Example.objects.count() == 2
    assert_one_current_per_identity(Example)
    assert sorted(Example.objects.values_list("data", flat=True)) == [
        "copy",
        "original",
    ]


def test_a_copy_of_a_uuid_keyed_object():
    Document.objects.create(title="original")
    clone = copied(Document.objects.get())
    clone.title = "copy"
    clone.save()
    assert Document.objects.count() == 2
    assert_one_current_per_identity(Document)


def test_a_copy_does_not_take_links_referrers_or_the_original_history():
    red = TagFactory(name="red")
    item = ItemFactory(name="lamp")
    item.tags.add(red)
    Order.objects.create(item=Item.objects.get())
    item.name = "lamp 2"
    item.save()
    clone = copied(Item.objects.get())
    clone.name = "lamp copy"
    clone.save()
    assert clone.identity != item.identity and clone.version == 1
    assert list(clone.tags.all()) == []
    assert list(Item.objects.get(identity=item.identity).tags.all()) == [red]
    assert Order.objects.get().item.identity == item.identity
    assert [row[1] for row in versions(item, "name")] == ["lamp", "lamp", "lamp 2"]


def test_a_copy_with_a_taken_unique_value_fails_and_can_be_retried():
    ItemFactory(name="lamp")
    clone = copied(Item.objects.get())
    with pytest.raises(IntegrityError), transaction.atomic():
        clone.save()
    assert clone.pk is None
    clone.name = "other lamp"
    clone.save()
    assert Item.objects.count() == 2
    assert_one_current_per_identity(Item)


def test_a_copy_of_a_historical_row_is_a_new_current_object():
    example = ExampleFactory(data="v1")
    example.data = "v2"
    example.save()
    old = Example.all_versions.get(identity=example.identity, version=1)
    clone = copied(old)
    clone.save()
    assert clone.identity != example.identity
    assert (clone.version, clone.valid_to, clone.data) == (1, None, "v1")
    assert versions(example, "data") == [(1, "v1", False), (2, "v2", True)]
    assert_one_current_per_identity(Example)


def test_a_copy_of_a_deleted_objects_last_row_is_a_new_object():
    example = ExampleFactory(data="gone")
    example.delete()
    last = Example.all_versions.get(identity=example.identity)
    clone = copied(last)
    clone.save()
    assert Example.objects.get().identity != example.identity
    assert Example.all_versions.filter(identity=example.identity).count() == 1


def test_a_copy_saved_through_a_model_form():
    class ExampleForm(forms.ModelForm):
        class Meta:
            model = Example
            fields = ["data"]

    ExampleFactory(data="original")
    clone = copied(Example.objects.get())
    form = ExampleForm({"data": "from form"}, instance=clone)
    assert form.is_valid(), form.errors
    saved = form.save()
    assert Example.objects.count() == 2
    assert saved.identity != Example.objects.get(data="original").identity
    assert_one_current_per_identity(Example)


def test_update_or_create_after_a_copy_edits_the_copy():
    ExampleFactory(data="original")
    clone = copied(Example.objects.get())
    clone.data = "copy"
    clone.save()
    got, created = Example.objects.update_or_create(
        data="copy", defaults={"data": "copy 2"}
    )
    assert created is False
    assert got.identity == clone.identity and got.version == 2
    assert sorted(Example.objects.values_list("data", flat=True)) == [
        "copy 2",
        "original",
    ]
    assert_one_current_per_identity(Example)


def test_a_deepcopy_saved_after_the_original_is_stale_not_a_copy():
    """copy.deepcopy without pk = None is the same object, not a Django copy."""
    example = ExampleFactory(data="v1")
    twin = copy.deepcopy(example)
    example.data = "v2"
    example.save()
    twin.data = "twin"
    with pytest.raises(StaleVersionError):
        twin.save()
    assert versions(example, "data") == [(1, "v1", False), (2, "v2", True)]


def test_a_copy_inside_an_atomic_that_rolls_back_then_saved_again():
    ExampleFactory(data="original")
    clone = copied(Example.objects.get())
    with pytest.raises(Boom), transaction.atomic():
        clone.data = "copy"
        clone.save()
        raise Boom
    assert Example.objects.count() == 1
    clone.data = "copy again"
    with pytest.raises(StaleVersionError):
        clone.save()
    assert Example.objects.count() == 1
    assert_one_current_per_identity(Example)


# 3. One-to-one keys to versioned models ------------------------------------------


def test_a_one_to_one_referrer_follows_save_and_restore():
    place = Place.objects.create(name="v1")
    restaurant = Restaurant.objects.create(place=place, rating=1)
    place.name = "v2"
    place.save()
    assert Restaurant.objects.get().place_id == place.pk
    restored = place.history().get(version=1).restore()
    assert Restaurant.objects.get().place_id == restored.pk
    restaurant.rating = 2
    restaurant.save()  # loaded at version 1: must not write that key back
    assert Restaurant.objects.get().place_id == restored.pk
    assert restaurant.place_id == restored.pk


def test_a_protected_one_to_one_referrer_refuses_a_delete_and_nothing_changes():
    from django.db.models import ProtectedError

    place = Place.objects.create(name="p")
    Restaurant.objects.create(place=place)
    with pytest.raises(ProtectedError):
        place.delete()
    assert Place.objects.get().pk == place.pk and place.valid_to is None
    assert Restaurant.objects.get().place_id == place.pk


def given_club(model):
    return lambda: model.objects.create(club=Club.objects.create(name="c"))


@pytest.mark.parametrize(
    "make, key, becomes",
    [
        # A plain one-to-one (Parent.child) and plain foreign keys to clubs:
        # SET_NULL, SET_DEFAULT and SET() to the free agents' club.
        (
            lambda: Parent.objects.create(child=Child.objects.create(data="c")),
            "child",
            lambda: None,
        ),
        (given_club(Scarf), "club", lambda: None),
        (given_club(Kit), "club", free_agents),
        (given_club(Banner), "club", free_agents),
    ],
    ids=["one-to-one SET_NULL", "SET_NULL", "SET_DEFAULT", "SET()"],
)
def test_a_referrer_loaded_before_the_delete_gets_what_the_delete_gave(
    make, key, becomes
):
    Club.objects.create(name="free agents")
    made = make()
    referrer = type(made).objects.get()  # holds the target's key
    getattr(made, key).delete()
    referrer.save()
    expected = becomes()
    assert getattr(type(made).objects.get(), f"{key}_id") == expected
    assert getattr(referrer, f"{key}_id") == expected


def test_the_reverse_one_to_one_from_an_as_of_object():
    from django.utils import timezone

    place = Place.objects.create(name="v1")
    restaurant = Restaurant.objects.create(place=place)
    then = timezone.now()
    place.name = "v2"
    place.save()
    old = Place.objects.as_of(then).get()
    assert old.name == "v1"
    assert old.restaurant.pk == restaurant.pk
    assert Restaurant.objects.get().place.name == "v2"


def test_a_one_to_one_referrer_in_hand_after_a_nested_rollback_is_refused():
    place = Place.objects.create(name="v1")
    first_pk = place.pk
    restaurant = Restaurant.objects.create(place=place)  # caches the place
    with transaction.atomic():
        with pytest.raises(Boom), transaction.atomic():
            restaurant.place.name = "v2"
            restaurant.place.save()
            raise Boom
        Place.objects.create(name="other")  # may take the rolled-back key
        restaurant.rating = 5
        with pytest.raises((StaleVersionError, IntegrityError)):
            with transaction.atomic():
                restaurant.save()
    assert Restaurant.objects.get().place_id == first_pk
    assert Place.objects.get(pk=first_pk).name == "v1"


def test_a_new_one_to_one_on_a_place_that_already_has_one_after_its_save():
    place = Place.objects.create(name="v1")
    Restaurant.objects.create(place=place)
    place.name = "v2"
    place.save()
    with pytest.raises(IntegrityError), transaction.atomic():
        Restaurant.objects.create(place=place)
    assert Restaurant.objects.count() == 1


# 4. Receivers that save again ---------------------------------------------------


def test_a_receiver_saving_inside_a_receiver_chain():
    """a → b → c: each post_save saves the object again from inside the last."""

    def chain(sender, instance, created, **kwargs):
        following = {"a": "b", "b": "c"}.get(instance.data)
        if following:
            instance.data = following
            instance.save()

    example = ExampleFactory(data="x")
    post_save.connect(chain, sender=Example)
    try:
        example.data = "a"
        example.save()
    finally:
        post_save.disconnect(chain, sender=Example)
    assert versions(example, "data") == [
        (1, "x", False),
        (2, "a", False),
        (3, "b", False),
        (4, "c", True),
    ]
    assert (example.version, example.data) == (4, "c")
    example.data = "d"
    example.save()
    assert example.version == 5


def test_a_version_created_receiver_that_saves_the_instance_again():
    def stamp(sender, instance, **kwargs):
        if not instance.data.endswith("!"):
            instance.data += "!"
            instance.save()

    example = ExampleFactory(data="v1")
    version_created.connect(stamp, sender=Example)
    try:
        example.data = "v2"
        example.save()
    finally:
        version_created.disconnect(stamp, sender=Example)
    assert [row[1] for row in versions(example, "data")] == ["v1", "v2", "v2!"]
    assert example.data == "v2!" and example.is_current


def test_a_receiver_saving_a_fresh_load_makes_the_callers_object_stale():
    def bump(sender, instance, created, **kwargs):
        if not created and instance.data == "v2":
            fresh = Example.objects.get(identity=instance.identity)
            fresh.data = "bumped"
            fresh.save()

    example = ExampleFactory(data="v1")
    post_save.connect(bump, sender=Example)
    try:
        example.data = "v2"
        example.save()
    finally:
        post_save.disconnect(bump, sender=Example)
    example.data = "v3"
    with pytest.raises(StaleVersionError):
        example.save()
    assert [row[1] for row in versions(example, "data")] == ["v1", "v2", "bumped"]


def test_a_receiver_saving_again_inside_an_atomic_that_rolls_back():
    def again(sender, instance, created, **kwargs):
        if instance.data == "v2":
            instance.data = "v3"
            instance.save()

    example = ExampleFactory(data="v1")
    post_save.connect(again, sender=Example)
    try:
        with pytest.raises(Boom), transaction.atomic():
            example.data = "v2"
            example.save()
            raise Boom
    finally:
        post_save.disconnect(again, sender=Example)
    assert versions(example, "data") == [(1, "v1", True)]
    example.data = "later"
    with pytest.raises(StaleVersionError):
        example.save()


def test_a_receiver_saving_again_keeps_referrers_on_the_final_version():
    def again(sender, instance, created, **kwargs):
        if instance.name == "lamp 2":
            instance.name = "lamp 3"
            instance.save()

    item = ItemFactory(name="lamp")
    Order.objects.create(item=item)
    post_save.connect(again, sender=Item)
    try:
        item.name = "lamp 2"
        item.save()
    finally:
        post_save.disconnect(again, sender=Item)
    assert Order.objects.get().item_id == item.pk == Item.objects.get().pk
    assert [row[1] for row in versions(item, "name")] == ["lamp", "lamp 2", "lamp 3"]


def test_a_failing_receiver_after_a_save_again_undoes_both():
    def again(sender, instance, created, **kwargs):
        if instance.data == "v2":
            instance.data = "v3"
            instance.save()
        elif instance.data == "v3":
            raise Boom

    example = ExampleFactory(data="v1")
    post_save.connect(again, sender=Example)
    try:
        example.data = "v2"
        with pytest.raises(Boom):
            example.save()
    finally:
        post_save.disconnect(again, sender=Example)
    assert versions(example, "data") == [(1, "v1", True)]
    assert example.version == 1 and example.pk == Example.objects.get().pk


# 5. The admin -------------------------------------------------------------------


def test_admin_restore_of_a_mascot_whose_club_was_deleted_says_why(admin_client):
    club = Club.objects.create(name="c")
    mascot = Mascot.objects.create(name="m", club=club)
    club.delete()  # closes the mascot too
    old = Mascot.all_versions.get(identity=mascot.identity)
    rows = Mascot.all_versions.count()
    response = admin_client.post(
        reverse("admin:testapp_mascot_restore", args=(old.pk,)),
        {"version": "1"},
        follow=True,
    )
    assert response.status_code == 200
    shown = " ".join(str(m) for m in response.context["messages"])
    assert "has been deleted since" in shown
    assert Mascot.all_versions.count() == rows


def test_admin_links_of_an_object_name_its_identity_after_more_saves(admin_client):
    item = ItemFactory(name="lamp", price=10)
    change = reverse("admin:testapp_item_change", args=(item.identity,))
    for price in ("11", "12"):
        page = admin_client.get(change)
        form = page.context["adminform"].form
        data = {
            name: form[name].value() if form[name].value() is not None else ""
            for name in form.fields
        }
        data.update(price=price, _continue="1", tags=[])
        response = admin_client.post(change, data)
        assert response.status_code == 302, response.content[:2000]
        assert response["Location"] == change
    assert Item.objects.get().price == 12
    history = reverse("admin:testapp_item_history", args=(item.identity,))
    assert admin_client.get(history).status_code == 200


def test_admin_history_shows_a_null_value_as_empty_value_display(admin_client):
    doc = Document.objects.create(title="t", summary=None)
    doc.summary = "s"
    doc.save()
    page = admin_client.get(
        reverse("admin:testapp_document_history", args=(doc.identity,))
    ).content.decode()
    assert "None" not in page.split("<body", 1)[-1]
    assert "∅" not in page
