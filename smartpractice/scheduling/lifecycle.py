"""A consultation's lifecycle: its states, and the one table of what may become what.

    scheduled ──change──▶ scheduled
    scheduled ──start───▶ running     (the first admission from the waiting room)
    scheduled ──end─────▶ ended       (the clinician ends it, or nobody came)
    running ────end─────▶ ended
    scheduled ──cancel──▶ cancelled

Every change of state goes through `move`, which changes the row only if it is still in
a state the transition starts from, so two instances racing cannot both apply it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.errors import UserError
from smartpractice.i18n import N_
from smartpractice.storage import consultations as store
from smartpractice.storage.tables import ConsultationState as ConsultationState

SCHEDULED, RUNNING, ENDED, CANCELLED = ConsultationState
# Where the waiting room and the call are open.
OPEN = frozenset({SCHEDULED, RUNNING})


class Transition(StrEnum):
    CHANGE = "change"
    START = "start"
    END = "end"
    CANCEL = "cancel"


TRANSITIONS: dict[Transition, tuple[frozenset[ConsultationState], ConsultationState]] = {
    Transition.CHANGE: (frozenset({SCHEDULED}), SCHEDULED),
    Transition.START: (frozenset({SCHEDULED}), RUNNING),
    Transition.END: (OPEN, ENDED),
    Transition.CANCEL: (frozenset({SCHEDULED}), CANCELLED),
}


def check(state: str, transition: Transition) -> ConsultationState:
    """The state `transition` leads to from `state`; a UserError coded by the state if none."""
    sources, target = TRANSITIONS[transition]
    if state not in sources:
        raise UserError(
            f"consultation_{state}",
            N_("This consultation has already begun, ended or been cancelled and cannot be changed."),
        )
    return target


async def move(conn: AsyncConnection, consultation_id: int, transition: Transition, now: datetime) -> bool:
    """Apply `transition` if the row allows it; False if it was in another state by now."""
    sources, target = TRANSITIONS[transition]
    return await store.set_state(conn, consultation_id, target, now, only_from=tuple(sources))
