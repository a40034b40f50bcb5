"""CI runs exactly the test command the README gives a newcomer; the licence files are what they say."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```sh\n(.+?)\n```", readme)
    assert len(commands) == 2, "the README shows two commands: start, and test"
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


# The SHA-256 of https://www.gnu.org/licenses/agpl-3.0.txt (34,523 bytes), as cited by
# projects that pin it; Debian's libsoftware-license-perl carries the same text with
# its three links still http.
FSF_AGPL_3_SHA256 = "0d96a4ff68ad6d4b6f1f30f713b18d5184912ba8dd389f86aa7710db079abcb0"


def test_the_licence_is_the_fsf_text_byte_for_byte_and_the_notice_names_it():
    assert hashlib.sha256((ROOT / "LICENSE").read_bytes()).hexdigest() == FSF_AGPL_3_SHA256
    notice = (ROOT / "NOTICE").read_text()
    assert "Copyright (C)" in notice and "either version 3 of the License, or\n(at your option) any later version" in notice
