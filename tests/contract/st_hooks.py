"""Schemathesis hooks: what a well-behaved client does that a schema
cannot say.

* A consistency token is valid only if this service issued it (it is
  signed): a generated value in an otherwise valid request is replaced by
  one the service has issued during the run.
* A page cursor is valid only if this service issued it (it is signed
  too): a generated one is dropped (the first page), one seen in an
  earlier answer's `next_cursor` is kept.
* An Idempotency-Key is unique per request: clients mint a new one for
  each new request, so a generated key is made unique.

Negative cases are left alone: Schemathesis decides whether a case is
valid after the hooks run, and editing one would change its meaning.
"""

import random
import uuid

import schemathesis

ISSUED = []
CURSORS = set()


def _is_positive(case):
    meta = getattr(case, "meta", None)
    return meta is None or meta.generation.mode.is_positive


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if not _is_positive(case):
        return
    for name in list(case.headers or {}):
        lower = name.lower()
        if lower == "x-consistency-token" and case.headers[name] not in ISSUED:
            if ISSUED:
                case.headers[name] = random.Random(str(case.headers[name])).choice(ISSUED)
            else:
                del case.headers[name]
        elif lower == "idempotency-key":
            case.headers[name] = f"st-{uuid.uuid4()}"
    if case.query and "cursor" in case.query and case.query["cursor"] not in CURSORS:
        del case.query["cursor"]


@schemathesis.hook
def after_call(ctx, case, response):
    try:
        body = response.json()
    except Exception:
        body = None
    if isinstance(body, dict) and isinstance(body.get("next_cursor"), str):
        CURSORS.add(body["next_cursor"])
    for name, values in response.headers.items():
        if name.lower() != "x-consistency-token":
            continue
        for value in values if isinstance(values, list) else [values]:
            if value not in ISSUED:
                ISSUED.append(value)
