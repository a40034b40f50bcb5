"""In real browsers: a clinician invites by email, the guest follows the mail's link and TAN
into the waiting room (tests/test_browser_tan_path.py follows them into the call)."""

from __future__ import annotations

import re

from smartpractice.keys import services_key
from tests.helpers import PASSWORD, add_member, mail_text, needs_chromium, totp_code

pytestmark = needs_chromium


async def test_tan_invitation_from_mail_link_to_the_waiting_room(live_server, browser, smtp):
    services = live_server.app[services_key]
    practice = (await services.practices.create("Praxis Lindenhof", admin_email="linde@example.org", admin_username="linde")).practice
    await add_member(live_server.app, practice, "clinician", "dr-sommer")
    base = str(live_server.make_url("")).rstrip("/")

    clinician = await (await browser.new_context(locale="de-DE")).new_page()
    await clinician.goto(base + "/login")
    await clinician.fill("#identifier", "dr-sommer")
    await clinician.fill("#password", PASSWORD)
    await clinician.click("form[action='/login'] button[type=submit]")
    await clinician.wait_for_url("**/login/second-factor")
    await clinician.fill("#code", await totp_code(live_server.app, "dr-sommer"))
    await clinician.click("form[action='/login/second-factor'] button[type=submit]")
    await clinician.wait_for_url(f"**/p/{practice.slug}/")
    await clinician.click(f"a[href='/p/{practice.slug}/invitations']")
    await clinician.fill("#email", "gabi@example.org")
    await clinician.fill("#display_name", "Gabi Gast")
    await clinician.click(f"form[action='/p/{practice.slug}/invitations'] button[type=submit]")
    await clinician.wait_for_selector("h1")

    [message] = await smtp.wait_for(1)
    text = mail_text(message)
    link = re.search(r"(http://127\.0\.0\.1:\d+/invitation/\S+)", text).group(1)
    tan = re.search(r"\b(\d{4} \d{4})\b", text).group(1)

    guest = await (await browser.new_context(locale="de-DE")).new_page()
    problems: list[str] = []
    guest.on("console", lambda entry: problems.append(entry.text) if entry.type == "error" else None)
    await guest.goto(link)
    await guest.fill("#tan", tan)
    await guest.click("form:has(#tan) button[type=submit]")
    # An invitation without a planned time is a consultation that starts now: the guest
    # waits in its waiting room.
    [view] = await services.invitations.list(practice.id)
    await guest.wait_for_url(f"**/c/{view.consultation_id}")
    await guest.wait_for_selector("#room[data-state=waiting]")
    assert "Bitte warten Sie" in await guest.inner_text("#status")
    assert problems == []
