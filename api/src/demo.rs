//! `vcintel demo seed`: a realistic sample workspace, so a new user signs in
//! to a populated product. Everything goes through the command services, so
//! the sample is ordinary events: the relay publishes them and the
//! projections build the read models, exactly as for real use.
//!
//! The content is generated from a fixed seed: every run proposes the same
//! companies. Websites are unique per workspace, so a second run adds no
//! company twice; notes go only on companies this run added, and lists and
//! saved searches are created only by a run that added companies, so
//! re-running a finished seed changes nothing.

use futures::{StreamExt, TryStreamExt};
use vcintel_commands::{CommandError, CommandMetadata};
use vcintel_domain::company::{CompanyError, CompanyId, CompanyInput, Stage};
use vcintel_domain::list::ListId;
use vcintel_domain::saved_search::SearchFilters;
use vcintel_domain::user::Email;
use vcintel_domain::{Actor, Role, UserId, WorkspaceId};
use vcintel_infra::accounts::{self, Passwords};
use vcintel_infra::event_store::CommandServices;

/// Commands in flight at once: enough to overlap round trips, few enough
/// to leave the pool to a running API.
const CONCURRENCY: usize = 8;

const NAME_STEMS: [&str; 20] = [
    "Nova", "Helio", "Quanta", "Terra", "Lumen", "Arbor", "Vector", "Cobalt", "Atlas", "Kite",
    "Pulse", "Orbit", "Ferro", "Mosaic", "Tandem", "Beacon", "Cinder", "Delta", "Ember", "Fathom",
];

/// Name endings and the sector they suggest.
const NAME_ENDINGS: [(&str, &str); 15] = [
    ("Pay", "Fintech"),
    ("Ledger", "Fintech"),
    ("Health", "Healthcare"),
    ("Bio", "Biotech"),
    ("Grid", "Climate"),
    ("Carbon", "Climate"),
    ("AI", "AI infrastructure"),
    ("Logic", "AI infrastructure"),
    ("Robotics", "Robotics"),
    ("Stack", "Developer tools"),
    ("Works", "Developer tools"),
    ("Freight", "Logistics"),
    ("Loop", "Logistics"),
    ("Shield", "Security"),
    ("Labs", "Consumer"),
];

const DOMAINS: [&str; 5] = ["io", "com", "ai", "co", "dev"];

const LOCATIONS: [&str; 12] = [
    "Berlin",
    "London",
    "Paris",
    "New York",
    "San Francisco",
    "Stockholm",
    "Tel Aviv",
    "Bangalore",
    "Singapore",
    "Toronto",
    "Lagos",
    "São Paulo",
];

/// Early stages dominate a sourcing pipeline.
const STAGES: [Stage; 10] = [
    Stage::PreSeed,
    Stage::PreSeed,
    Stage::Seed,
    Stage::Seed,
    Stage::Seed,
    Stage::SeriesA,
    Stage::SeriesA,
    Stage::SeriesB,
    Stage::SeriesC,
    Stage::Growth,
];

const NOTES: [&str; 12] = [
    "Intro call with the founders: technical team, second-time CEO. Follow up after their pilot results.",
    "Met at the demo day. Strong pull from mid-market customers; pricing still unclear.",
    "Revenue doubled in two quarters per the founder; ask for the cohort data before partner meeting.",
    "Competes with two incumbents on price. Differentiation is the data moat, worth a deeper look.",
    "Reference check with a customer: sticky product, slow onboarding.",
    "Raising next quarter. Lead investor not chosen yet; we could lead if diligence holds.",
    "Hiring a VP Sales; go-to-market is the main risk.",
    "Regulatory exposure in the EU: check the licensing timeline.",
    "Founder-market fit is excellent: ten years in the industry before starting this.",
    "Passed for now: too early. Revisit when they have ten paying customers.",
    "Partner liked the thesis fit; schedule a technical deep dive.",
    "Burn looks high for the stage; ask about runway and the next milestone.",
];

const LISTS: [(&str, &[&str]); 4] = [
    (
        "Q3 pipeline",
        &["Fintech", "AI infrastructure", "Developer tools"],
    ),
    ("Climate watchlist", &["Climate", "Logistics"]),
    ("Health & bio deep dives", &["Healthcare", "Biotech"]),
    (
        "Partner meeting Monday",
        &["Security", "Robotics", "Consumer"],
    ),
];

/// What to seed and for whom.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The demo account; created with `password` if it does not exist.
    pub email: Email,
    /// Needed only to create the account.
    pub password: Option<String>,
    /// How many companies to propose (at most 300, the generator's range).
    pub companies: usize,
}

/// What a seed run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemoReport {
    pub user: Option<UserId>,
    pub workspace: Option<WorkspaceId>,
    pub account_created: bool,
    pub companies_added: usize,
    pub companies_already_there: usize,
    pub notes_added: usize,
    pub lists_created: usize,
    pub list_memberships: usize,
    pub saved_searches_created: usize,
    /// Companies enriched by the built-in heuristic over the demo's pages.
    pub enrichments: usize,
}

/// One proposed company.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleCompany {
    pub name: String,
    pub website: String,
    pub sector: &'static str,
    pub stage: Stage,
    pub location: &'static str,
}

/// The companies a seed proposes, the same on every run.
pub fn sample_companies(count: usize) -> Vec<SampleCompany> {
    let mut random = SplitMix64(0x0005_eed0_f7c1_e7e1);
    let mut companies = Vec::with_capacity(count);
    'outer: for (i, stem) in NAME_STEMS.iter().enumerate() {
        for (j, (ending, sector)) in NAME_ENDINGS.iter().enumerate() {
            if companies.len() == count {
                break 'outer;
            }
            let tld = DOMAINS[(i + j) % DOMAINS.len()];
            companies.push(SampleCompany {
                name: format!("{stem} {ending}"),
                website: format!("{}{}.{tld}", stem.to_lowercase(), ending.to_lowercase()),
                sector,
                stage: STAGES[random.below(STAGES.len())],
                location: LOCATIONS[random.below(LOCATIONS.len())],
            });
        }
    }
    companies
}

/// Seeds the demo account's personal workspace (creating the account
/// first if needed).
pub async fn seed(
    vault: &vcintel_infra::vault::Vault,
    passwords: &Passwords,
    commands: &CommandServices,
    options: &DemoOptions,
) -> anyhow::Result<DemoReport> {
    let pool = vault.pool();
    let metadata = CommandMetadata {
        request_id: Some("demo-seed".to_owned()),
        ..CommandMetadata::default()
    };
    let mut report = DemoReport::default();
    let (user, workspace) = match accounts::user_by_email(pool, &options.email).await? {
        Some(user) => {
            let registered = accounts::registered_user(vault, user)
                .await?
                .ok_or_else(|| anyhow::anyhow!("account {user} has no registration event"))?;
            (user, registered.personal_workspace_id)
        }
        None => {
            let password = options.password.as_deref().ok_or_else(|| {
                anyhow::anyhow!(
                    "{} has no account yet: give a password (VCINTEL_DEMO_PASSWORD) to create it",
                    options.email
                )
            })?;
            if let Err(reason) =
                vcintel_domain::user::check_password_policy(password, Some(&options.email))
            {
                anyhow::bail!("demo password {reason}");
            }
            let credentials =
                vcintel_infra::accounts::PgCredentials::new(vault.clone(), passwords.clone());
            let created = commands
                .accounts
                .create_account(
                    &credentials,
                    &options.email,
                    "Demo analyst".to_owned(),
                    password,
                    &metadata,
                )
                .await?;
            report.account_created = true;
            created
        }
    };
    report.user = Some(user);
    report.workspace = Some(workspace);
    let actor = Actor {
        workspace_id: workspace,
        user_id: user,
        role: Role::Owner,
        api_key: None,
    };

    let proposed = sample_companies(options.companies.min(NAME_STEMS.len() * NAME_ENDINGS.len()));
    let outcomes: Vec<Option<(CompanyId, SampleCompany)>> = futures::stream::iter(proposed)
        .map(|sample| {
            let metadata = metadata.clone();
            async move {
                let input = CompanyInput {
                    name: sample.name.clone(),
                    website: sample.website.clone(),
                    sector: Some(sample.sector.to_owned()),
                    stage: Some(sample.stage),
                    location: Some(sample.location.to_owned()),
                };
                match commands.companies.add(actor, input, &metadata).await {
                    Ok(committed) => {
                        let id = CompanyId(committed.aggregate_id.parse()?);
                        Ok(Some((id, sample)))
                    }
                    Err(CommandError::Company(CompanyError::WebsiteTaken { .. })) => Ok(None),
                    Err(error) => Err(anyhow::Error::new(error)),
                }
            }
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    report.companies_already_there = outcomes.iter().filter(|o| o.is_none()).count();
    let added: Vec<(CompanyId, SampleCompany)> = outcomes.into_iter().flatten().collect();
    report.companies_added = added.len();
    if added.is_empty() {
        return Ok(report);
    }

    // About two in five companies get one to three notes.
    let mut random = SplitMix64(added.len() as u64);
    let mut notes = Vec::new();
    for (id, _) in &added {
        if random.below(5) < 2 {
            for _ in 0..=random.below(3) {
                notes.push((*id, NOTES[random.below(NOTES.len())]));
            }
        }
    }
    report.notes_added = futures::stream::iter(notes)
        .map(|(company, text)| {
            let metadata = metadata.clone();
            async move {
                commands
                    .notes
                    .add(actor, company, text.to_owned(), &metadata)
                    .await
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_fold(0, |n, _| async move { Ok(n + 1) })
        .await?;

    for (name, sectors) in LISTS {
        let committed = commands
            .lists
            .create(actor, name.to_owned(), &metadata)
            .await?;
        let list = ListId(committed.aggregate_id.parse()?);
        report.lists_created += 1;
        // Every third company of the list's sectors, so lists stay curated.
        let members: Vec<CompanyId> = added
            .iter()
            .filter(|(_, sample)| sectors.contains(&sample.sector))
            .step_by(3)
            .map(|(id, _)| *id)
            .collect();
        // One list is one aggregate: its additions are serial by nature.
        for company in members {
            commands
                .lists
                .add_company(actor, list, company, &metadata)
                .await?;
            report.list_memberships += 1;
        }
    }

    for (name, filters) in saved_searches() {
        commands
            .saved_searches
            .create(actor, name.to_owned(), filters, &metadata)
            .await?;
        report.saved_searches_created += 1;
    }

    // A thesis to score against, then every company enriched through the
    // job's own events (requested, started, succeeded) by the built-in
    // heuristic over a page the demo ships: scores, summaries and
    // keywords to sort, filter and search by, offline.
    let (sectors, stages, locations) = THESIS;
    commands
        .workspaces
        .set_thesis(
            &actor,
            sectors.iter().map(|s| (*s).to_owned()).collect(),
            stages.to_vec(),
            locations.iter().map(|s| (*s).to_owned()).collect(),
            &metadata,
        )
        .await?;
    let thesis = vcintel_domain::enrichment::Thesis::parse(
        sectors.iter().map(|s| (*s).to_owned()).collect(),
        stages.to_vec(),
        locations.iter().map(|s| (*s).to_owned()).collect(),
    )
    .map_err(|invalid| anyhow::anyhow!("the demo thesis: {invalid:?}"))?;
    report.enrichments = futures::stream::iter(&added)
        .map(|(id, sample)| {
            let (metadata, thesis) = (metadata.clone(), &thesis);
            async move { enrich_offline(commands, actor, *id, sample, thesis, &metadata).await }
        })
        .buffer_unordered(CONCURRENCY)
        .try_fold(
            0,
            |n, enriched| async move { Ok(n + usize::from(enriched)) },
        )
        .await?;
    Ok(report)
}

/// The demo workspace's thesis: sectors, stages and locations.
const THESIS: (&[&str], &[Stage], &[&str]) = (
    &["Robotics", "Climate", "AI infrastructure"],
    &[Stage::Seed, Stage::SeriesA],
    &["Berlin", "London", "Stockholm"],
);

/// Runs one company's enrichment job as a worker without a model would,
/// over the page [`demo_page`] writes for it instead of a fetched one;
/// whether it did (a live worker may have taken the job).
async fn enrich_offline(
    commands: &CommandServices,
    actor: Actor,
    company: CompanyId,
    sample: &SampleCompany,
    thesis: &vcintel_domain::enrichment::Thesis,
    metadata: &CommandMetadata,
) -> anyhow::Result<bool> {
    use vcintel_domain::enrichment::EnrichmentCommand;
    let jobs = &commands.enrichments;
    let details = jobs.live_company(actor, company).await?;
    let requested = jobs.request(actor, company, &details, metadata).await?;
    let Some(committed) = requested.committed else {
        return Ok(false); // A job is already under way for it.
    };
    let result = vcintel_infra::enrichment::heuristic_result(&details, &demo_page(sample), thesis)
        .map_err(|error| anyhow::anyhow!("{}: {error}", sample.name))?;
    let start = EnrichmentCommand::Start {
        worker: "demo-seed".to_owned(),
        takeover: false,
    };
    // A running enrichment worker may take the job first (the seed ran
    // beside a live service): then the job is its to finish.
    let taken = |error: &CommandError| {
        matches!(error, CommandError::Conflict | CommandError::Enrichment(_))
    };
    match jobs
        .advance(requested.job_id, start, committed.version, metadata)
        .await
    {
        Err(error) if taken(&error) => return Ok(false),
        outcome => outcome?,
    };
    match jobs
        .advance(
            requested.job_id,
            EnrichmentCommand::Succeed { result },
            committed.version + 1,
            metadata,
        )
        .await
    {
        Err(error) if taken(&error) => Ok(false),
        outcome => outcome.map(|_| true).map_err(Into::into),
    }
}

/// What each sector's companies say they do, and the words they use.
const PITCHES: [(&str, &str, &str); 10] = [
    (
        "Fintech",
        "payments, treasury and reconciliation software for mid-market finance teams",
        "payments treasury reconciliation invoicing",
    ),
    (
        "Healthcare",
        "clinical workflow software that cuts hospital admission times",
        "clinical hospital workflow patients",
    ),
    (
        "Biotech",
        "enzyme discovery with automated wet labs and machine learning",
        "enzymes protein discovery laboratory",
    ),
    (
        "Climate",
        "grid-scale battery storage and carbon accounting for utilities",
        "battery storage carbon grid utilities",
    ),
    (
        "AI infrastructure",
        "inference serving and GPU scheduling for machine-learning teams",
        "inference GPU models serving",
    ),
    (
        "Robotics",
        "autonomous picking robots for mid-size warehouses",
        "robots warehouse picking automation",
    ),
    (
        "Developer tools",
        "build caching and test orchestration for large codebases",
        "builds testing developers CI",
    ),
    (
        "Logistics",
        "freight matching and route planning for regional carriers",
        "freight routing carriers shipments",
    ),
    (
        "Security",
        "identity threat detection for cloud-first companies",
        "identity threats detection cloud",
    ),
    (
        "Consumer",
        "a subscription app for home cooking with weekly meal kits",
        "recipes subscription cooking households",
    ),
];

/// The page the demo ships for `sample`: what its website would say.
fn demo_page(sample: &SampleCompany) -> String {
    let (pitch, words) = PITCHES
        .iter()
        .find(|(sector, ..)| *sector == sample.sector)
        .map_or(
            ("software for businesses", "software"),
            |(_, pitch, words)| (*pitch, *words),
        );
    let name = &sample.name;
    format!(
        "<html><head><title>{name}: {pitch}</title>\
         <meta name=\"description\" content=\"{name} builds {pitch}.\"></head>\
         <body><h1>{name}</h1><p>{name} builds {pitch}. Founded in {location}, \
         the team works on {words}. Customers use {name} every day; we are hiring \
         engineers in {location}.</p></body></html>",
        location = sample.location,
    )
}

fn saved_searches() -> [(&'static str, SearchFilters); 3] {
    [
        (
            "Seed fintech in London",
            SearchFilters {
                sector: Some("Fintech".to_owned()),
                stage: Some(Stage::Seed),
                location: Some("London".to_owned()),
                ..SearchFilters::default()
            },
        ),
        (
            "Climate, Series A",
            SearchFilters {
                sector: Some("Climate".to_owned()),
                stage: Some(Stage::SeriesA),
                ..SearchFilters::default()
            },
        ),
        (
            "Anything robotics",
            SearchFilters {
                text: Some("robotics".to_owned()),
                ..SearchFilters::default()
            },
        ),
    ]
}

/// A small, fixed-seed generator: the demo must be the same on every run
/// and needs no cryptographic quality.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_sample_is_the_same_every_time_with_unique_websites_across_sectors_and_stages() {
        let first = sample_companies(300);
        assert_eq!(first, sample_companies(300));
        assert_eq!(first.len(), 300);
        let websites: HashSet<&str> = first.iter().map(|c| c.website.as_str()).collect();
        assert_eq!(websites.len(), 300);
        let sectors: HashSet<&str> = first.iter().map(|c| c.sector).collect();
        assert!(sectors.len() >= 10, "{sectors:?}");
        let stages: HashSet<&str> = first.iter().map(|c| c.stage.as_str()).collect();
        assert!(stages.len() >= 5, "{stages:?}");
        let locations: HashSet<&str> = first.iter().map(|c| c.location).collect();
        assert!(locations.len() >= 10, "{locations:?}");
        for company in &first {
            vcintel_domain::website::Website::parse(&company.website)
                .unwrap_or_else(|e| panic!("{}: {e}", company.website));
        }
    }
}
