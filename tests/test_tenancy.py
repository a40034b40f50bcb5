"""A practice sees only its own people and data."""

from __future__ import annotations

from smartpractice.storage.staff import staff_member
from tests.helpers import add_member, log_in, post_form


async def test_member_of_one_practice_gets_404_for_another(client, services, practice, clinician):
    other = await services.practices.create("Praxis am See", admin_email="see@example.org", admin_username="see-admin")
    await log_in(client, "dr-berg")
    own = await client.get(f"/p/{practice.slug}/")
    assert own.status == 200
    foreign = await client.get(f"/p/{other.practice.slug}/")
    missing = await client.get("/p/no-such-practice/")
    assert foreign.status == missing.status == 404
    assert "Praxis am See" not in await foreign.text()


async def test_patient_of_two_practices_chooses_and_sees_each(client, services, app, engine, practice):
    second = (await services.practices.create("Praxis am See", admin_email="see@example.org", admin_username="see-admin")).practice
    user_id = await add_member(app, practice, "patient", "erika")
    async with engine.begin() as conn:
        from smartpractice.storage.practices import add_member as join

        await join(conn, practice_id=second.id, user_id=user_id, role="patient", now=services.clock.now())
    await log_in(client, "erika")
    choice = await (await client.get("/")).text()
    assert "Praxis am Markt" in choice and "Praxis am See" in choice
    for slug in (practice.slug, second.slug):
        page = await client.get(f"/p/{slug}/")
        assert page.status == 200


async def test_each_role_sees_its_own_dashboard(client, app, practice):
    await add_member(app, practice, "patient", "erika")
    await log_in(client, "erika")
    page = await (await client.get(f"/p/{practice.slug}/", headers={"Accept-Language": "en"})).text()
    assert "You have no upcoming consultations" in page
    assert "Practice administration" not in page


async def test_pages_need_a_login(client, practice):
    response = await client.get(f"/p/{practice.slug}/", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == f"/login?next=/p/{practice.slug}/"


async def test_another_practices_ids_give_404_on_every_administration_route(client, services, app, engine, practice):
    """Practice B's staff, invitations and keys, addressed from practice A's admin login."""
    other = (await services.practices.create("Praxis am See", admin_email="see@example.org", admin_username="see-admin")).practice
    foreign_clinician = await add_member(app, other, "clinician", "dr-see")
    foreign_invitation = await services.staff_invitations.invite(
        other, email="neu@example.org", role="admin", inviter=await services.users.by_login("see-admin")
    )
    foreign_key = (await services.api_keys.create(other, "EDV")).key_id
    await add_member(app, practice, "admin", "praxis-admin")
    await log_in(client, "praxis-admin")
    slug = practice.slug
    for path in (
        f"/p/{slug}/staff/{foreign_clinician}/role",
        f"/p/{slug}/staff/{foreign_clinician}/deactivate",
        f"/p/{slug}/staff/{foreign_clinician}/reactivate",
        f"/p/{slug}/staff/invitations/{foreign_invitation}/revoke",
        f"/p/{slug}/api-keys/{foreign_key}/revoke",
    ):
        response = await post_form(client, path, {"role": "admin"})
        assert response.status == 404, path
    for path in ("staff", "settings", "plan", "api-keys", "audit", "audit.csv"):
        assert (await client.get(f"/p/{other.slug}/{path}")).status == 404, path
    assert await services.staff_invitations.list(other.id)
    assert await services.api_keys.authenticate((await services.api_keys.create(other, "x")).key) == other
    async with engine.connect() as conn:
        assert (await staff_member(conn, other.id, foreign_clinician)).active


