"""Who made a change and why."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import HttpResponse
from django.test import RequestFactory

import versioning
from tests.factories import ExampleFactory, UserFactory
from tests.testapp.models import Example
from versioning.middleware import VersioningMiddleware

pytestmark = pytest.mark.django_db


def test_changes_records_user_and_reason_on_every_version_inside():
    alice = UserFactory(username="alice")
    with versioning.changes(user=alice, reason="import"):
        obj = ExampleFactory()
        obj.data = "edited"
        obj.save()
    assert [(v.changed_by, v.change_reason) for v in obj.history()] == [
        (alice, "import"),
        (alice, "import"),
    ]
    obj.data = "outside"
    obj.save()
    assert (obj.changed_by, obj.change_reason) == (None, "")


def test_inner_blocks_keep_what_they_do_not_set():
    alice = UserFactory(username="alice")
    with versioning.changes(user=alice):
        with versioning.changes(reason="typo"):
            obj = ExampleFactory()
    assert (obj.changed_by, obj.change_reason) == (alice, "typo")


def test_values_set_on_the_instance_win():
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    with versioning.changes(user=alice, reason="bulk"):
        obj = ExampleFactory()
        obj.data = "edit"
        obj.changed_by = bob
        obj.change_reason = "by hand"
        obj.save()
    assert (obj.changed_by, obj.change_reason) == (bob, "by hand")
    assert obj.previous_version().change_reason == "bulk"


def test_reason_must_be_text():
    with pytest.raises(TypeError, match="string"):
        with versioning.changes(reason=42):
            pass


def test_middleware_records_the_request_user():
    alice = UserFactory(username="alice")
    request = RequestFactory().post("/")
    request.user = alice

    def view(request):
        ExampleFactory()
        return HttpResponse()

    VersioningMiddleware(view)(request)
    assert Example.objects.get().changed_by == alice


def test_middleware_records_nobody_for_anonymous_requests():
    request = RequestFactory().post("/")
    request.user = AnonymousUser()
    VersioningMiddleware(lambda r: ExampleFactory() and HttpResponse())(request)
    assert Example.objects.get().changed_by is None
