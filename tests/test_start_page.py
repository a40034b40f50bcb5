"""The site's root: a public start page for visitors (what this is and every way in, German
first, English through the catalog); a logged-in user still goes to their dashboard."""

from __future__ import annotations

from smartpractice.i18n import Catalogs
from tests.helpers import log_in

EN = {"Accept-Language": "en"}
WAYS_IN = ('href="/login"', 'href="/login#tan-login"', 'action="/register"', 'href="/signup"', 'href="/pricing"')


async def test_a_visitor_sees_what_this_is_and_every_way_in_in_german_and_english(client):
    german = await client.get("/", allow_redirects=False)
    page = await german.text()
    assert german.status == 200 and '<html lang="de">' in page
    assert "Videosprechstunde mit Ihrer Praxis" in page and "Sie brauchen keine App" in page
    assert "Mit dem Code Ihrer Praxis registrieren" in page
    # The buttons in the catalog's words (which the wording pass may change).
    german_of = Catalogs().get("de").gettext
    for button in ("Log in", "Log in with TAN", "Sign up your practice", "For practices"):
        assert german_of(button) != button and german_of(button) in page, button
    assert all(way in page for way in WAYS_IN), [way for way in WAYS_IN if way not in page]
    english = await (await client.get("/", headers=EN)).text()
    assert '<html lang="en">' in english and "Video consultations with your practice" in english
    assert "Register with your practice's code" in english.replace("&#39;", "'")
    assert all(way in english for way in WAYS_IN)


async def test_a_logged_in_user_goes_to_their_dashboard_as_before(client, practice, clinician):
    await log_in(client, "dr-berg")
    home = await client.get("/", allow_redirects=False)
    assert home.status == 303 and home.headers["Location"] == f"/p/{practice.slug}/"


async def test_the_practices_code_or_its_whole_link_leads_to_its_registration_form(client, services, practice):
    options = await services.registrations.options(practice)
    await services.registrations.configure(practice, enabled=True, ask_date_of_birth=False, actor=None)
    for typed in (options.code, f"  https://praxis.example/register/{options.code}  ", f"/register/{options.code}/"):
        found = await client.get("/register", params={"code": typed}, allow_redirects=False)
        assert found.status == 303 and found.headers["Location"] == f"/register/{options.code}", typed
    form = await client.get(f"/register/{options.code}")
    assert form.status == 200 and "Praxis am Markt" in await form.text()


async def test_a_wrong_code_is_explained_and_an_unknown_one_leads_to_the_closed_page(client):
    for typed in ("", "a b", "<script>", "x" * 400):
        refused = await client.get("/register", params={"code": typed}, headers=EN)
        page = await refused.text()
        assert refused.status == 400 and "Please enter the registration code or link" in page, typed
        assert "<script>" not in page
    unknown = await client.get("/register", params={"code": "no-such-code"})
    assert unknown.status == 404 and str(unknown.url).endswith("/register/no-such-code")
