"""A short session through the Python client openapi-python-client
generates from the served document (tests/e2e/contract.rs generates it and
runs this with VCINTEL_BASE_URL and VCINTEL_TOKEN set): each call goes
through the generated models, so an operation, parameter or schema the
generator could not use shows up as a failure here.
"""

import os
import sys
import uuid

from vc_intel_api_client import AuthenticatedClient
from vc_intel_api_client.api.audit import list_events
from vc_intel_api_client.api.companies import add_company, get_company, list_companies
from vc_intel_api_client.api.notes import add_note, list_notes
from vc_intel_api_client.api.saved_searches import create_saved_search, run_saved_search
from vc_intel_api_client.api.workspaces import get_thesis, set_thesis
from vc_intel_api_client.models import (
    AddCompanyRequest,
    AuditEventCompanyAdded,
    CompanyDetail,
    CreateSavedSearchRequest,
    NoteContent,
    SearchFilters,
    Stage,
    Thesis,
)


def expect(response, status):
    if response.status_code != status:
        sys.exit(f"expected {status}, got {response.status_code}: {response.content!r}")
    return response


client = AuthenticatedClient(base_url=os.environ["VCINTEL_BASE_URL"], token=os.environ["VCINTEL_TOKEN"])

added = expect(
    add_company.sync_detailed(
        client=client,
        body=AddCompanyRequest(name="Generated Robotics", website="generated-robotics.example", stage=Stage.SEED),
        idempotency_key=str(uuid.uuid4()),
    ),
    201,
)
company_id = added.parsed.id
token = added.headers["x-consistency-token"]

detail = expect(get_company.sync_detailed(company_id, client=client, x_consistency_token=token), 200).parsed
assert isinstance(detail, CompanyDetail), detail
assert detail.name == "Generated Robotics" and detail.stage == Stage.SEED, detail

past = expect(get_company.sync_detailed(company_id, client=client, as_of=1), 200).parsed
assert past.as_of.version == 1, past

page = expect(list_companies.sync_detailed(client=client, q="generated", x_consistency_token=token), 200).parsed
assert [c.id for c in page.items] == [company_id], page

noted = expect(
    add_note.sync_detailed(company_id, client=client, body=NoteContent(content="Met the founders.\nStrong team.")),
    201,
)
notes = expect(
    list_notes.sync_detailed(company_id, client=client, x_consistency_token=noted.headers["x-consistency-token"]),
    200,
).parsed
assert [n.content for n in notes.items] == ["Met the founders.\nStrong team."], notes

expect(set_thesis.sync_detailed(client=client, body=Thesis(sectors=["Robotics"], stages=[Stage.SEED])), 200)
thesis = expect(get_thesis.sync_detailed(client=client), 200).parsed
assert thesis.sectors == ["Robotics"] and thesis.stages == [Stage.SEED], thesis

saved = expect(
    create_saved_search.sync_detailed(
        client=client,
        body=CreateSavedSearchRequest(name="Seed robotics", filters=SearchFilters(stage=Stage.SEED, text="robotics")),
    ),
    201,
)
results = expect(
    run_saved_search.sync_detailed(
        saved.parsed.id, client=client, x_consistency_token=saved.headers["x-consistency-token"]
    ),
    200,
).parsed
assert [c.id for c in results.items] == [company_id], results

events = expect(list_events.sync_detailed(client=client, aggregate_id=str(company_id)), 200).parsed
first = events.items[0]
assert isinstance(first, AuditEventCompanyAdded), type(first)
assert first.data.name == "Generated Robotics" and first.data.website == "generated-robotics.example", first

print("generated client: every call answered as documented")
